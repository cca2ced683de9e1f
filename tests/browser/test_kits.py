"""The desktop kits under integrations/ in headless Chromium against a real server: each kit's code in a page on an
allowed origin, where the desktop would stand, framing the sidebar it computes for a contact. ZAF and Lightning do
not run here (the pages call the kit's code as their events would); the Amazon Connect SDK does, once built."""
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from playwright.sync_api import expect

from copilot.security import Tokens
from tests.browser.conftest import needs_chromium, shot
from tests.conftest import ROOT, AgentClient, ServerProcess

SECRET = "kits-test-secret-0123456789abcdef01234567"
KITS = ROOT / "integrations"
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".json": "application/json"}
pytestmark = needs_chromium

# Where the agent desktop would stand: a panel of the width each desktop gives an app, the kit's own code in it.
CONNECT = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/integrations/amazon-connect/app.css">
<style>body { display: flex; } #ccp { flex: 1; } #panel { width: 360px; height: 720px; }</style></head>
<body><div id="ccp">Contact control panel</div><div id="panel"><main id="copilot"></main></div>
<script type="module">
import { ContactFrame } from "/integrations/amazon-connect/frame.js";
import { settingsFrom } from "/integrations/amazon-connect/mapping.js";
window.kit = new ContactFrame(document.getElementById("copilot"), settingsFrom(location.search));
</script></body></html>"""

ZENDESK = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/integrations/zendesk/assets/main.css">
<style>body { display: flex; } #ticket { flex: 1; } #apps { width: 340px; }</style></head>
<body><div id="ticket">Ticket</div><div id="apps"><main id="copilot"></main></div>
<script type="module">
import { conversationId, settingsFrom, sidebarUrl, ticketFrom } from "/integrations/zendesk/assets/mapping.js";
const query = new URLSearchParams(location.search);
const settings = settingsFrom({ settings: { copilot_url: query.get("copilot"), token_url: "/token" } });
const ticket = ticketFrom({ location: "ticket_sidebar", ticketId: Number(query.get("ticket")) }, null);
const token = (await (await fetch(settings.tokenUrl)).json()).token;
const frame = document.createElement("iframe");
frame.title = "Empathy Copilot";
frame.src = sidebarUrl(settings.copilotUrl, token, conversationId(ticket));
document.getElementById("copilot").replaceChildren(frame);
</script></body></html>"""

# copilotSidebar.js's wiring, with the Voice Toolkit's events posted by the test through window.toolkit.
SALESFORCE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/integrations/salesforce/force-app/main/default/lwc/copilotSidebar/copilotSidebar.css">
<style>body { display: flex; margin: 0; } #record { flex: 1; }</style></head>
<body><div id="record">Voice call</div><div class="copilot"><iframe title="Empathy Copilot"></iframe></div>
<script type="module">
import { Relay } from "/integrations/salesforce/force-app/main/default/lwc/copilotSidebar/relay.js";
const copilot = new URLSearchParams(location.search).get("copilot");
const origin = new URL(copilot).origin;
const frame = document.querySelector("iframe");
const relay = new Relay();
window.acks = [];
const post = (commands) => commands.forEach((c) => frame.contentWindow.postMessage(c, origin));
window.addEventListener("message", async (event) => {
  if (event.origin !== origin || event.source !== frame.contentWindow) { return; }
  if (event.data.type === "copilot.ready") {
    post(relay.connect((await (await fetch("/token")).json()).token));
  } else if (event.data.type === "copilot.ack") {
    window.acks.push(event.data);
    post(relay.ack(event.data.command, event.data.ack));
  }
});
window.toolkit = (type, detail) => post(relay.toolkit(type, detail));
frame.src = copilot + "/sidebar";
</script></body></html>"""

# The agent workspace's side of the Amazon Connect SDK's channel, as @amazon-connect/core 1.0.11 (the kit's
# package-lock.json) speaks it: the app posts connect-app-host-init with a MessagePort; the workspace acknowledges,
# sends the app's lifecycle (create, on a contact) and publishes contact events to the app's subscriptions.
WORKSPACE = """<!doctype html><html><head><meta charset="utf-8">
<style>body { display: flex; margin: 0; } #ccp { flex: 1; } iframe { width: 380px; height: 760px; border: 0; }</style>
</head><body><div id="ccp">Agent workspace</div><iframe title="Empathy Copilot app"></iframe>
<script>
const query = new URLSearchParams(location.search);
const frame = document.querySelector("iframe");
const subscriptions = [];
let port = null;
window.subscriptions = subscriptions;
window.addEventListener("message", (event) => {
  if (event.source !== frame.contentWindow || !event.data || event.data.type !== "connect-app-host-init") { return; }
  port = event.ports[0];
  port.onmessage = (m) => { if (m.data.type === "subscribe") { subscriptions.push(m.data); } };
  port.postMessage({ type: "acknowledge", connectionId: "connection-1", status: { initialized: true },
                     healthCheckInterval: 0 });
  const contactId = query.get("contact");
  port.postMessage({ type: "appLifecycle", stage: "create", instanceId: "app-instance-1", region: "us-west-2",
    config: { name: "Empathy Copilot" }, launchedBy: { type: "user" },
    scope: contactId ? { type: "contact", contactId } : { type: "idle" },
    contactScope: contactId ? { type: "contact", contactId } : undefined });
});
window.publish = (key, data) => subscriptions.filter((s) => s.topic.key === key).forEach((s) =>
  port.postMessage({ type: "publish", topic: s.topic, handlerId: s.handlerId, data }));
frame.src = "/integrations/amazon-connect/app.html?copilot=" + encodeURIComponent(query.get("copilot")) +
  "&token_url=/token";
</script></body></html>"""

PAGES = {"/desktop/connect": CONNECT, "/desktop/zendesk": ZENDESK, "/desktop/salesforce": SALESFORCE,
         "/desktop/workspace": WORKSPACE}
BUNDLE = KITS / "amazon-connect" / "dist" / "app.js"


class Desktop:
    """An agent desktop on a loopback port of its own (so an origin of its own): the pages above, the kit files
    under /integrations/, and the tenant's token endpoint at /token ({"token"} for the signed-in agent)."""

    def __init__(self) -> None:
        desktop = self
        self.token = ""
        self.token_requests = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?")[0]
                if path == "/token":
                    desktop.token_requests += 1
                    self.answer(json.dumps({"token": desktop.token}).encode(), "application/json")
                elif path in PAGES:
                    self.answer(PAGES[path].encode(), "text/html")
                elif path.startswith("/integrations/") and ".." not in path and (ROOT / path[1:]).is_file():
                    file = ROOT / path[1:]
                    self.answer(file.read_bytes(), TYPES.get(file.suffix, "application/octet-stream"))
                else:
                    self.send_error(404)

            def answer(self, body: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def desktop():
    """The desktop whose origin the copilot allows."""
    host = Desktop()
    yield host
    host.stop()


@pytest.fixture(scope="module")
def stranger():
    """The same desktop on an origin the copilot does not allow."""
    host = Desktop()
    yield host
    host.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, desktop):
    workdir = tmp_path_factory.mktemp("kits")
    proc = ServerProcess({"COPILOT_SECRET": SECRET, "COPILOT_INSTANCE_DIR": str(workdir / "instance"),
                          "COPILOT_SUGGESTION_COOLDOWN_S": "0", "COPILOT_ALLOWED_ORIGINS": desktop.origin}, workdir)
    yield proc
    proc.stop()


def agent_token(agent: str) -> str:
    return Tokens(SECRET).issue("acme", "agent", agent)


def assert_seen(page, frame_selector: str) -> None:
    """The sidebar's frame as the agent sees it: visible, 320-400 px wide, wholly inside the window."""
    frame = page.locator(frame_selector)
    expect(frame).to_be_visible()
    box = frame.bounding_box()
    viewport = page.viewport_size
    assert 320 <= box["width"] <= 400 and box["height"] >= 500, box
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= viewport["width"] and box["y"] + box["height"] <= viewport["height"], box


def import_kit(page, module: str, script: str):
    """Run `script` (a function body given `kit`, the module's exports) in the page."""
    return page.evaluate(f"async () => {{ const kit = await import('/integrations/{module}'); {script} }}")


def test_connect_mapping_names_the_contact_conversation_and_puts_the_token_in_the_fragment(desktop, page):
    page.goto(desktop.origin + "/desktop/none")  # any page on the desktop's origin; a 404 will do
    contact = "8f6e0c2a-3b1d-4b6e-9f0a-2c4d6e8f0a1b"
    got = import_kit(page, "amazon-connect/mapping.js", f"""
        const bad = []; for (const id of ["", "has space", "../x", null]) {{
          try {{ kit.conversationId(id); }} catch (e) {{ bad.push(String(id)); }} }}
        return [kit.conversationId("{contact}"), kit.sidebarUrl("https://copilot.example.com/", "a.b=c", "{contact}"),
                kit.settingsFrom("?copilot=https://copilot.example.com&token_url=/token"), bad];""")
    assert got[0] == contact
    assert got[1] == f"https://copilot.example.com/sidebar#token=a.b%3Dc&conversation_id={contact}"
    assert got[2] == {"copilotUrl": "https://copilot.example.com", "tokenUrl": "/token"}
    assert got[3] == ["", "has space", "../x", "null"]


def test_connect_kit_shows_the_contacts_highlights_and_a_second_contact_starts_clean(server, desktop, page):
    token = agent_token("amy")
    desktop.token = token
    backend = AgentClient(server.url, token)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    for contact in (first, second):  # the calls' transcript source starts each conversation
        assert backend.call("conversation.start", {"conversation_id": contact, "channel": "voice"})["ok"]
    page.goto(f"{desktop.origin}/desktop/connect?copilot={server.url}&token_url=/token")
    expect(page.locator("#copilot .idle")).to_have_text("The copilot appears here when a contact connects.")
    page.wait_for_function("() => window.kit")
    page.evaluate("id => window.kit.show(id)", first)  # the workspace's contact connected event
    sidebar = page.frame_locator(f'#copilot iframe[data-contact-id="{first}"]')
    expect(sidebar.locator("#status")).to_have_text("connected")
    assert_seen(page, "#copilot iframe")
    assert page.locator("#copilot .idle").is_hidden()
    backend.say(first, "c1", "This is the third time I've called about this and I'm furious")
    mark = sidebar.locator('mark[data-cue="repeat_contact"]')
    expect(mark).to_be_visible(timeout=10000)
    expect(mark).to_be_in_viewport()
    expect(sidebar.locator('.chip[data-cue="repeat_contact"]')).to_have_text("Repeat contact x1")
    shot(page, "kit-amazon-connect")

    page.evaluate("id => window.kit.clear(id)", first)  # contact cleared: nothing of that customer stays
    expect(page.locator("#copilot iframe")).to_have_count(0)
    expect(page.locator("#copilot .idle")).to_be_visible()
    page.evaluate("id => window.kit.show(id)", second)
    sidebar = page.frame_locator(f'#copilot iframe[data-contact-id="{second}"]')
    expect(sidebar.locator("#status")).to_have_text("connected")
    expect(sidebar.locator(".chip")).to_have_count(0)
    expect(sidebar.locator("mark")).to_have_count(0)
    backend.say(second, "c1", "I'm so worried my card has been used by someone else")
    expect(sidebar.locator('.chip[data-cue="anxiety"]')).to_have_text("Anxiety x1")
    expect(sidebar.locator(".chip")).to_have_count(1)
    assert_seen(page, "#copilot iframe")
    assert token not in page.frames[1].url  # the sidebar wiped its fragment once read
    backend.close()


def test_connect_kit_answers_the_sidebars_expired_token_with_a_fresh_one_from_the_token_endpoint(
        server, desktop, page):
    issued = time.time()
    desktop.token = Tokens(SECRET).issue("acme", "agent", "kai", ttl_s=5)
    backend = AgentClient(server.url, Tokens(SECRET).issue("acme", "agent", "kai"))
    contact = str(uuid.uuid4())
    assert backend.call("conversation.start", {"conversation_id": contact, "channel": "voice"})["ok"]
    page.goto(f"{desktop.origin}/desktop/connect?copilot={server.url}&token_url=/token")
    page.wait_for_function("() => window.kit")
    page.evaluate("id => window.kit.show(id)", contact)
    sidebar = page.frame_locator("#copilot iframe")
    expect(sidebar.locator("#status")).to_have_text("connected")
    asked = desktop.token_requests
    desktop.token = Tokens(SECRET).issue("acme", "agent", "kai")
    time.sleep(max(0.0, issued + 6 - time.time()))  # the sidebar's token has now expired on its open connection
    sidebar.locator("#raise-hand").click()  # an event the server refuses as token_expired
    expect(sidebar.locator("#status")).to_have_text("connected")  # the kit answered with copilot.refresh
    assert desktop.token_requests == asked + 1
    sidebar.locator("#raise-hand").click()
    expect(sidebar.locator("#raise-hand")).to_have_text("Hand raised")
    backend.close()


def contact_lens(contact: str, event: str = "SEGMENTS", **transcript) -> dict:
    """One Contact Lens real-time segment message (the documented data model) with a customer's final line."""
    body = {"Version": "1.0.0", "Channel": "VOICE", "AccountId": "123456789012", "ContactId": contact,
            "InstanceId": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", "LanguageCode": "en-US", "EventType": event}
    if transcript:
        body["Segments"] = [{"Transcript": {"ParticipantId": "CUSTOMER", "ParticipantRole": "CUSTOMER",
                                            "Sentiment": "NEGATIVE", **transcript}}]
    return body


def test_connect_kit_joins_a_call_contact_lens_started_claims_it_and_shows_its_counts_and_new_highlights(
        server, desktop, page):
    token = agent_token("ivy")
    desktop.token = token
    source = {"Authorization": "Bearer " + Tokens(SECRET).issue("acme", "integration", "contact-lens")}
    url = server.url + "/api/v1/sources/contact-lens"
    contact = str(uuid.uuid4())
    said = requests.post(url, headers=source, timeout=30, json=contact_lens(
        contact, Id="t-1", Content="This is the third time I've called about this bill", BeginOffsetMillis=5200,
        EndOffsetMillis=8100)).json()
    assert said["ok"] and said["started"] == [contact], said
    page.goto(f"{desktop.origin}/desktop/connect?copilot={server.url}&token_url=/token")
    page.wait_for_function("() => window.kit")
    page.evaluate("id => window.kit.show(id)", contact)
    sidebar = page.frame_locator(f'#copilot iframe[data-contact-id="{contact}"]')
    expect(sidebar.locator('.chip[data-cue="repeat_contact"]')).to_have_text("Repeat contact x1")  # the counts so far
    expect(sidebar.locator("#notice")).to_be_hidden()
    said = requests.post(url, headers=source, timeout=30, json=contact_lens(
        contact, Id="t-2", Content="I'm so worried my card has been used by someone else", BeginOffsetMillis=9000,
        EndOffsetMillis=12000)).json()
    assert said["ok"] and said["accepted"] == 1, said
    mark = sidebar.locator('mark[data-cue="anxiety"]')
    expect(mark).to_be_visible(timeout=10000)
    expect(mark).to_be_in_viewport()
    assert_seen(page, "#copilot iframe")
    assert requests.post(url, headers=source, timeout=30, json=contact_lens(contact, "COMPLETED")).json()["ok"]
    expect(sidebar.locator("#status")).to_have_text("conversation ended")


def test_connect_kit_replaces_the_frame_when_a_new_contact_connects_without_a_clear(server, desktop, page):
    token = agent_token("bo")
    desktop.token = token
    backend = AgentClient(server.url, token)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    for contact in (first, second):
        assert backend.call("conversation.start", {"conversation_id": contact, "channel": "voice"})["ok"]
    backend.say(first, "c1", "This is the third time I've called, I want to speak to a manager")
    page.goto(f"{desktop.origin}/desktop/connect?copilot={server.url}&token_url=/token")
    page.wait_for_function("() => window.kit")
    page.evaluate("id => window.kit.show(id)", first)
    expect(page.frame_locator("#copilot iframe").locator('.chip[data-cue="repeat_contact"]')).to_be_visible()
    page.evaluate("id => window.kit.show(id)", second)
    page.evaluate("id => window.kit.clear(id)", first)  # a late clear of the previous contact changes nothing
    expect(page.locator("#copilot iframe")).to_have_count(1)
    sidebar = page.frame_locator(f'#copilot iframe[data-contact-id="{second}"]')
    expect(sidebar.locator("#status")).to_have_text("connected")
    expect(sidebar.locator(".chip")).to_have_count(0)
    backend.close()


def test_connect_app_with_the_real_sdk_follows_the_workspaces_contact_events(server, desktop, page):
    assert BUNDLE.is_file(), "the Amazon Connect app is not built: tests/run.sh builds it (npm ci && npm run build)"
    token = agent_token("cy")
    desktop.token = token
    backend = AgentClient(server.url, token)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    for contact in (first, second):
        assert backend.call("conversation.start", {"conversation_id": contact, "channel": "voice"})["ok"]
    backend.say(first, "c1", "This is the third time I've called about this and I'm furious")
    page.goto(f"{desktop.origin}/desktop/workspace?copilot={server.url}&contact={first}")  # opened on a contact
    app = page.frame_locator("iframe")
    sidebar = app.frame_locator(f'#copilot iframe[data-contact-id="{first}"]')
    expect(sidebar.locator('.chip[data-cue="repeat_contact"]')).to_have_text("Repeat contact x1", timeout=15000)
    page.wait_for_function("() => ['contact/connected', 'contact/cleared'].every((k) => "
                           "window.subscriptions.some((s) => s.topic.key === k))")
    page.evaluate("id => window.publish('contact/cleared', { contactId: id })", first)
    expect(app.locator("#copilot iframe")).to_have_count(0)
    expect(app.locator("#copilot .idle")).to_be_visible()
    page.evaluate("id => window.publish('contact/connected', { contactId: id })", second)
    sidebar = app.frame_locator(f'#copilot iframe[data-contact-id="{second}"]')
    expect(sidebar.locator("#status")).to_have_text("connected")
    expect(sidebar.locator(".chip")).to_have_count(0)
    backend.say(second, "c1", "I'm so worried my card has been used by someone else")
    expect(sidebar.locator('.chip[data-cue="anxiety"]')).to_have_text("Anxiety x1")
    frame = app.locator("#copilot iframe").bounding_box()
    assert 320 <= frame["width"] <= 400 and frame["y"] + frame["height"] <= page.viewport_size["height"], frame
    backend.close()


def test_zendesk_mapping_names_the_ticket_conversation_from_the_context_or_the_ticket_id(desktop, page):
    page.goto(desktop.origin + "/desktop/none")
    got = import_kit(page, "zendesk/assets/mapping.js", """
        const bad = []; for (const id of ["", "12a", -3, null]) {
          try { kit.conversationId(id); } catch (e) { bad.push(String(id)); } }
        let unset = null; try { kit.settingsFrom({ settings: {} }); } catch (e) { unset = e.message; }
        return [kit.conversationId(4711), kit.ticketFrom({ ticketId: 12 }, null),
                kit.ticketFrom({ location: "ticket_sidebar" }, { "ticket.id": 13 }),
                kit.sidebarUrl("https://copilot.example.com", "t", "zendesk-4711"), bad, unset];""")
    assert got[:3] == ["zendesk-4711", 12, 13]
    assert got[3] == "https://copilot.example.com/sidebar#token=t&conversation_id=zendesk-4711"
    assert got[4] == ["", "12a", "-3", "null"] and "copilot_url" in got[5]


def test_zendesk_kit_frames_the_sidebar_of_the_ticket_and_its_highlights_arrive(server, desktop, page):
    token = agent_token("zoe")
    desktop.token = token
    ticket = time.time_ns() % 10**9
    backend = AgentClient(server.url, token)
    assert backend.call("conversation.start", {"conversation_id": f"zendesk-{ticket}", "channel": "chat"})["ok"]
    page.goto(f"{desktop.origin}/desktop/zendesk?copilot={server.url}&ticket={ticket}")
    sidebar = page.frame_locator("#copilot iframe")
    expect(sidebar.locator("#status")).to_have_text("connected")
    assert_seen(page, "#copilot iframe")
    backend.say(f"zendesk-{ticket}", "m1", "Thank you so much, that is a real relief")
    expect(sidebar.locator('.chip[data-cue="gratitude"]')).to_be_visible(timeout=10000)
    expect(sidebar.locator('mark[data-cue="gratitude"]').first).to_be_in_viewport()
    backend.close()


def transcript(call: str, role: str, text: str) -> dict:
    """A Voice Toolkit TRANSCRIPT event's detail, in the documented shape."""
    now = int(time.time() * 1000)
    return {"id": str(uuid.uuid4()), "callId": call, "clientSentTimestamp": now, "serverReceivedTimestamp": now + 20,
            "content": {"formatType": "Text", "text": text}, "sender": {"role": role}}


def test_salesforce_relay_maps_voice_toolkit_transcripts_to_sidebar_snippets(desktop, page):
    page.goto(desktop.origin + "/desktop/none")
    got = import_kit(page, "salesforce/force-app/main/default/lwc/copilotSidebar/relay.js", """
        const r = new kit.Relay();
        const held = r.toolkit("callstarted", { callId: "call-1", callType: "inbound", participant: "+1 555" });
        const first = r.connect("tok");
        const again = r.toolkit("callconnected", { callId: "call-1", callType: "inbound", participant: "+1 555" });
        const said = r.toolkit("transcript", { id: "m-1", callId: "call-1", content: { formatType: "Text",
          text: "hello" }, sender: { role: "EndUser" } });
        const reply = r.toolkit("transcript", { id: "m-2", callId: "call-1", content: { formatType: "Text",
          text: "hi" }, sender: { role: "Agent" } });
        const blank = r.toolkit("transcript", { id: "m-3", callId: "call-1", content: { text: " " }, sender: {} });
        const ended = r.toolkit("callended", { callId: "call-1" });
        return [held, first, again, said, reply, blank, ended];""")
    held, first, again, said, reply, blank, ended = got
    assert held == [] and again == [] and blank == []  # held until the sidebar is ready; one start per call
    assert first == [{"type": "copilot.connect", "token": "tok"},
                     {"type": "copilot.start", "conversation_id": "call-1", "channel": "voice"}]
    assert said == [{"type": "copilot.snippet", "snippet_id": "m-1", "speaker": "customer", "text": "hello",
                     "final": True}]
    assert reply[0]["speaker"] == "agent" and ended == [{"type": "copilot.end"}]


def test_salesforce_relay_feeds_the_sidebar_highlights_ends_the_call_and_a_new_call_starts_clean(
        server, desktop, page):
    desktop.token = agent_token("sam")
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    page.goto(f"{desktop.origin}/desktop/salesforce?copilot={server.url}")
    page.wait_for_function("() => window.toolkit")
    toolkit = "([type, detail]) => window.toolkit(type, detail)"
    page.evaluate(toolkit, ["callstarted", {"callId": first, "callType": "inbound", "participant": "+1 415 555"}])
    sidebar = page.frame_locator(".copilot iframe")
    expect(sidebar.locator("#status")).to_have_text("connected")
    assert_seen(page, ".copilot iframe")
    page.evaluate(toolkit, ["transcript", transcript(first, "Agent", "Thanks for calling, how can I help?")])
    page.evaluate(toolkit, ["transcript", transcript(
        first, "EndUser", "This is the third time I've called, it's ridiculous, I want to speak to a manager")])
    expect(sidebar.locator('mark[data-cue="repeat_contact"]')).to_be_visible(timeout=10000)
    expect(sidebar.locator('.turn[data-speaker="agent"] .who').first).to_have_text("Agent")
    expect(sidebar.locator('.turn[data-speaker="agent"] mark')).to_have_count(0)
    expect(sidebar.locator('.chip[data-cue="repeat_contact"]')).to_have_text("Repeat contact x1")
    shot(page, "kit-salesforce")
    page.evaluate(toolkit, ["callended", {"callId": first}])
    expect(sidebar.locator("#status")).to_have_text("conversation ended")
    page.evaluate(toolkit, ["callstarted", {"callId": second, "callType": "inbound", "participant": "+1 415 556"}])
    expect(sidebar.locator(".chip")).to_have_count(0)
    expect(sidebar.locator(".turn")).to_have_count(0)
    page.evaluate(toolkit, ["transcript", transcript(second, "EndUser", "I'm so worried my card has been used by someone else")])
    expect(sidebar.locator('.chip[data-cue="anxiety"]')).to_have_text("Anxiety x1")
    expect(sidebar.locator(".chip")).to_have_count(1)
    page.wait_for_function("() => window.acks.some(a => a.command === 'conversation.start' && a.ack.ok)")
    acks = page.evaluate("window.acks.map(a => [a.command, a.ack.ok])")
    assert ["conversation.end", True] in acks and ["conversation.start", True] in acks, acks


def test_salesforce_relay_loaded_mid_call_starts_the_call_it_finds_unknown_and_keeps_its_first_words(
        server, desktop, page):
    desktop.token = agent_token("mia")
    call = str(uuid.uuid4())
    page.goto(f"{desktop.origin}/desktop/salesforce?copilot={server.url}")
    page.wait_for_function("() => window.toolkit")
    sidebar = page.frame_locator(".copilot iframe")
    expect(sidebar.locator("#status")).to_have_text("connected")
    page.evaluate("([type, detail]) => window.toolkit(type, detail)",
                  ["transcript", transcript(call, "EndUser", "This is the third time I've called about my bill")])
    expect(sidebar.locator('.chip[data-cue="repeat_contact"]')).to_have_text("Repeat contact x1", timeout=10000)
    page.wait_for_function("() => window.acks.length >= 3")  # the snippet's answer may trail its highlight
    acks = page.evaluate("window.acks.map(a => [a.command, a.ack.ok])")
    assert acks[:3] == [["conversation.join", False], ["conversation.start", True],
                        ["transcript.snippet", True]], acks
    expect(sidebar.locator("#notice")).to_be_hidden()  # the join's refusal was the relay's to handle


def test_sidebar_frame_ancestors_name_the_desktop_and_a_desktop_on_another_origin_cannot_frame_it(
        server, desktop, stranger, page, violations):
    policy = requests.get(server.url + "/sidebar", timeout=10).headers["Content-Security-Policy"]
    assert f"frame-ancestors 'self' {desktop.origin}" in policy and stranger.origin not in policy
    token = agent_token("una")
    stranger.token = token
    backend = AgentClient(server.url, token)
    contact = str(uuid.uuid4())
    assert backend.call("conversation.start", {"conversation_id": contact, "channel": "voice"})["ok"]
    page.goto(f"{stranger.origin}/desktop/connect?copilot={server.url}&token_url=/token")
    page.wait_for_function("() => window.kit")
    page.evaluate("id => window.kit.show(id)", contact)
    expect(page.locator("#copilot iframe")).to_have_count(1)
    for _ in range(100):  # the refusal's console message may trail the frame's load
        if violations:
            break
        page.wait_for_timeout(50)
    assert len(violations) == 1 and "frame-ancestors" in violations[0], violations
    violations.clear()
    assert page.frames[1].url.startswith("chrome-error:")  # Chromium's page for a refused frame
    assert page.frame_locator("#copilot iframe").locator("#status").count() == 0
    backend.close()
