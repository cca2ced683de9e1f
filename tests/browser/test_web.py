"""The sidebar, the demo and the console in headless Chromium (Debian's), driven by Playwright, against a real
server on loopback. Screenshots go to test-artifacts/."""
import json
import threading
import time

import pytest
import requests
from playwright.sync_api import expect

from copilot.security import Tokens
from tests.browser.conftest import needs_chromium, shot
from tests.conftest import ROOT, AgentClient, ServerProcess

SECRET = "browser-test-secret-0123456789abcdef0123"
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("web")
    proc = ServerProcess({"COPILOT_SECRET": SECRET, "COPILOT_INSTANCE_DIR": str(workdir / "instance"),
                          "COPILOT_SUGGESTION_COOLDOWN_S": "0"}, workdir)
    yield proc
    proc.stop()


def lead_headers(tenant):
    return {"Authorization": f"Bearer {Tokens(SECRET).issue(tenant, 'lead', 'lee')}"}


def test_demo_replays_a_conversation_with_highlights_and_suggestions_and_use_counts(server, page):
    page.goto(server.url + "/demo?speed=400")
    sidebar = page.frame_locator("#sidebar")
    sidebar.locator('mark[data-cue="repeat_contact"]').first.wait_for(timeout=30000)
    assert sidebar.locator('mark[data-cue="repeat_contact"]').first.inner_text() == "third time"
    card = sidebar.locator("[data-suggestion-id]").first
    card.wait_for(timeout=30000)
    sidebar.locator('mark[data-cue="frustration"]').first.wait_for(timeout=30000)
    assert sidebar.locator("[data-suggestion-id]").count() <= 2
    assert "x" in sidebar.locator(".chip").first.inner_text()
    shot(page, "demo")
    used_id = card.get_attribute("data-suggestion-id")
    card.get_by_role("button", name="Use").click()
    deadline = time.time() + 10
    while time.time() < deadline:
        rows = requests.get(server.url + "/api/v1/analytics/usage", headers=lead_headers("demo"), timeout=5).json()["rows"]
        if any(r["phrasing_id"] == used_id and r["used"] >= 1 for r in rows):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the Use click was not counted")


def open_sidebar(server, page, agent: str, prefix: str, height: int = 760, query: str = "",
                 sidebar_token: str | None = None) -> tuple[str, AgentClient, str]:
    """Start a chat conversation as `agent` from a backend client and open the sidebar on it alone (the token and
    the conversation in the URL fragment), 360 px wide; returns (token, backend client, conversation id) once the
    sidebar says it is connected."""
    token = Tokens(SECRET).issue("acme", "agent", agent)
    backend = AgentClient(server.url, token)
    cid = f"{prefix}-{time.time_ns()}"
    assert backend.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]
    page.set_viewport_size({"width": 360, "height": height})
    page.goto(f"{server.url}/sidebar{query}#token={sidebar_token or token}&conversation_id={cid}")
    expect(page.locator("#status")).to_have_text("connected")
    return token, backend, cid


def test_sidebar_alone_joins_with_a_fragment_token_shows_highlights_and_wipes_the_token_from_the_address(
        server, page):
    token, backend, cid = open_sidebar(server, page, "amy", "direct", query="?theme=dark")
    assert page.evaluate("location.hash") == "" and token not in page.url and "theme=dark" in page.url
    backend.call("transcript.snippet", {"conversation_id": cid, "snippet_id": "s1", "speaker": "customer",
                                        "text": "I'm so worried my card has been used by someone else", "final": True})
    mark = page.locator('mark[data-cue="anxiety"]')
    mark.wait_for(timeout=10000)
    box = mark.bounding_box()
    assert mark.is_visible() and box["width"] > 10 and box["height"] > 8 and box["x"] + box["width"] <= 360
    assert box["y"] + box["height"] <= 760  # in view, not below the fold
    # Tinted with the legend's colour for anxiety, in the dark theme: not the page's own background.
    painted = mark.evaluate("m => [getComputedStyle(m).backgroundColor, getComputedStyle(document.body).backgroundColor]")
    assert painted[0] != painted[1] and painted[0] not in ("rgba(0, 0, 0, 0)", "transparent"), painted
    chip = page.locator('.chip[data-cue="anxiety"]')
    assert chip.is_visible() and chip.inner_text() == "Anxiety x1"
    line = page.locator("#tone-line").bounding_box()
    assert line is not None and line["width"] > 50, "one turn's tone draws a line, not nothing"
    assert page.locator("#notice").is_hidden()
    expect(page.locator("#live")).to_contain_text("Anxiety")
    shot(page, "sidebar-dark")
    backend.close()


def test_sidebar_says_when_its_token_expired_and_carries_on_once_the_host_refreshes_it(server, page):
    short = Tokens(SECRET).issue("acme", "agent", "kim", ttl_s=6)
    issued = time.time()
    _, backend, cid = open_sidebar(server, page, "kim", "expiry", sidebar_token=short)
    backend.say(cid, "s1", "This is the third time I've called and I'm furious about this bill")
    cards = page.locator("[data-suggestion-id]")
    cards.first.wait_for(timeout=10000)
    time.sleep(max(0.0, issued + 7 - time.time()))  # the token has now expired on the open connection
    cards.first.get_by_role("button", name="Dismiss").click()
    status = page.locator("#status")
    expect(status).to_have_text("session expired: waiting for a new token")
    assert status.is_visible() and cards.count() >= 1, "an event refused for an expired token changed nothing"
    fresh = Tokens(SECRET).issue("acme", "agent", "kim")
    page.evaluate("t => window.postMessage({type: 'copilot.refresh', token: t}, location.origin)", fresh)
    expect(status).to_have_text("connected")
    before = cards.count()
    cards.first.get_by_role("button", name="Dismiss").click()
    expect(cards).to_have_count(before - 1)
    backend.close()


def test_sidebar_refuses_a_query_string_token_and_tells_the_integrator_to_use_the_fragment(server, page):
    token = Tokens(SECRET).issue("acme", "agent", "amy")
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.set_viewport_size({"width": 320, "height": 600})
    page.goto(f"{server.url}/sidebar?token={token}&conversation_id=c-1")
    notice = page.locator("#notice")
    notice.wait_for(state="visible")
    box = notice.bounding_box()
    assert box["width"] > 200 and box["height"] > 30 and box["y"] + box["height"] <= 600  # read in place, in view
    assert "#token=" in notice.inner_text() and "query string" in notice.inner_text()
    page.wait_for_timeout(1000)  # the fragment path connects within a few hundred ms
    assert sockets == [] and page.inner_text("#status") == "not connected"
    assert token not in page.url  # nor left in the address bar to be copied on
    shot(page, "sidebar-query-token")


class HostPage:
    """A CRM page on another loopback port (so another origin) that embeds a URL in an iframe."""

    def __init__(self, embed: str) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        body = f'<!doctype html><iframe id="sidebar" src="{embed}"></iframe>'.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/crm"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_sidebar_may_be_framed_by_its_own_origin_but_not_by_one_that_is_not_allowed(server, page, violations):
    page.goto(server.url + "/demo")  # the demo embeds the sidebar from the same origin
    page.frame_locator("#sidebar").locator("#status").wait_for(state="visible")
    host = HostPage(server.url + "/sidebar")
    try:
        page.goto(host.url)
        page.wait_for_load_state("load")
        assert [f.url for f in page.frames][1].startswith("chrome-error:")  # Chromium's page for a refused frame
        assert page.frame_locator("#sidebar").locator("#status").count() == 0
        for _ in range(100):  # the console message may trail the load event
            if violations:
                break
            page.wait_for_timeout(50)
        assert len(violations) == 1 and "frame-ancestors 'self'" in violations[0]
        violations.clear()
    finally:
        host.stop()


def test_console_approves_a_phrasing_that_then_appears_in_a_live_suggestion(server, page):
    utterance = "the letter about my tariff change uses words I cannot follow"
    page.goto(server.url + "/console")
    page.fill("#token", Tokens(SECRET).issue("acme", "lead", "lee"))
    page.click("#login button")
    page.locator("#phrasings tbody tr").first.wait_for()
    page.click("#new")
    page.fill("#editor [name=id]", "confusion-checkin-browser")
    page.fill("#editor [name=text]", "Which part of the tariff letter would be most useful to go through together?")
    page.fill("#editor [name=cues]", "confusion")
    page.select_option("#editor [name=stage]", "check-in")
    page.fill("#editor [name=channels]", "chat")
    page.fill("#editor [name=use_when]", f"{utterance}\nwhat does this letter even mean")
    page.click("#save")
    row = page.locator('#phrasings tr[data-phrasing-id="confusion-checkin-browser"]')
    row.wait_for()  # the list has reloaded: the save's outcome must still be on show, not the list's count
    assert "Saved confusion-checkin-browser" in page.inner_text("#message")
    assert "phrasings" in page.inner_text("#count")
    page.click("#approve")
    expect(row).to_contain_text("approved")  # no wait_for_function: its string is eval()ed, which the CSP forbids
    assert "is now approved" in page.inner_text("#message")
    shot(page, "console")

    agent = AgentClient(server.url, Tokens(SECRET).issue("acme", "agent", "amy"))
    cid = f"console-{time.time_ns()}"
    agent.call("conversation.start", {"conversation_id": cid, "channel": "chat"})
    agent.call("transcript.snippet", {"conversation_id": cid, "snippet_id": "s1", "speaker": "customer",
                                      "text": f"I'm confused, {utterance}", "final": True})
    push = agent.wait_for("suggestion.push")
    assert "confusion-checkin-browser" in [s["id"] for s in push["suggestions"]]
    agent.close()


def test_console_shows_an_invalid_phrasing_error_in_place(server, page):
    page.goto(server.url + "/console")
    page.fill("#token", Tokens(SECRET).issue("acme", "lead", "lee"))
    page.click("#login button")
    page.click("#new")
    page.fill("#editor [name=id]", "bad-one-01")
    page.fill("#editor [name=text]", "Did you try restarting it?")
    page.fill("#editor [name=cues]", "frustration")
    page.fill("#editor [name=use_when]", "it is broken\nnothing works")
    page.click("#validate")
    error = page.locator('.field-error[data-field="text"]')
    error.wait_for(state="visible")
    assert "closed yes/no" in error.inner_text()
    shot(page, "console-error")


def test_console_insights_draw_charts(server, page):
    page.goto(server.url + "/console")
    page.fill("#token", Tokens(SECRET).issue("demo", "lead", "lee"))
    page.click("#login button")
    page.click("#tab-insights")
    page.locator("#chart-cues svg, #chart-cues:has-text('No conversations')").first.wait_for()
    page.locator("#chart-acceptance svg").wait_for(timeout=10000)
    shot(page, "console-insights")


# Issue #12: what an agent and a lead see in their first hour.

def post(page, message):
    """A postMessage command to a sidebar opened as the page itself (its own origin is always allowed)."""
    page.evaluate("m => window.postMessage(m, location.origin)", message)


def open_hosted_sidebar(server, page, agent, width=360, height=740):
    """/sidebar at a size, connected with copilot.connect as `agent` of tenant acme; returns the token."""
    token = Tokens(SECRET).issue("acme", "agent", agent)
    page.set_viewport_size({"width": width, "height": height})
    page.goto(server.url + "/sidebar")
    post(page, {"type": "copilot.connect", "token": token})
    return token


def say_in_sidebar(page, sid, text, speaker="customer"):
    """One final snippet through the sidebar, waiting until its turn is on screen as final."""
    post(page, {"type": "copilot.snippet", "snippet_id": sid, "speaker": speaker, "text": text, "final": True})
    page.locator(f'[data-snippet-id="{sid}"]:not(.partial)').wait_for(state="attached", timeout=10000)


def test_a_new_start_clears_the_previous_conversation_its_chips_alerts_turns_cards_triage_and_tone(server, page):
    open_hosted_sidebar(server, page, "clara")
    post(page, {"type": "copilot.start", "conversation_id": f"first-{time.time_ns()}", "channel": "chat"})
    say_in_sidebar(page, "a1", "This is the third time I've called, it's ridiculous, I want to speak to a manager")
    expect(page.locator(".alert").first).to_be_visible(timeout=10000)
    expect(page.locator('.alert[data-kind="handoff"]')).to_be_visible()
    expect(page.locator('.chip[data-cue="repeat_contact"]')).to_be_visible()
    expect(page.locator("[data-suggestion-id]").first).to_be_visible()
    post(page, {"type": "copilot.start", "conversation_id": f"second-{time.time_ns()}", "channel": "chat"})
    for old in ['.chip[data-cue="repeat_contact"]', ".alert", '[data-snippet-id="a1"]', "[data-suggestion-id]"]:
        expect(page.locator(old)).to_have_count(0)
    expect(page.locator("#chips-empty")).to_be_visible()
    expect(page.locator("#transcript-empty")).to_be_visible()
    expect(page.locator("#triage")).to_be_hidden()
    expect(page.locator("#tone-label")).to_have_text("neutral, steady")
    say_in_sidebar(page, "b1", "I'm so worried my card has been used by someone else")
    expect(page.locator('.chip[data-cue="anxiety"]')).to_have_text("Anxiety x1")
    expect(page.locator(".chip")).to_have_count(1)
    expect(page.locator(".turn")).to_have_count(1)


def test_joining_another_conversation_clears_the_previous_one_and_says_earlier_turns_are_not_shown(server, page):
    token = open_hosted_sidebar(server, page, "jo")
    post(page, {"type": "copilot.start", "conversation_id": f"mine-{time.time_ns()}", "channel": "chat"})
    say_in_sidebar(page, "m1", "This is the third time I've called about this, I want a manager")
    expect(page.locator('.alert[data-kind="handoff"]')).to_be_visible(timeout=10000)
    backend = AgentClient(server.url, token)
    other = f"other-{time.time_ns()}"
    assert backend.call("conversation.start", {"conversation_id": other, "channel": "chat"})["ok"]
    backend.say(other, "o1", "Thank you so much, that is a real relief")
    post(page, {"type": "copilot.join", "conversation_id": other})
    expect(page.locator('.chip[data-cue="gratitude"]')).to_be_visible()
    for old in ['.chip[data-cue="repeat_contact"]', ".alert", '[data-snippet-id="m1"]']:
        expect(page.locator(old)).to_have_count(0)
    expect(page.locator("#transcript .gap")).to_have_text(
        "Earlier turns are not shown after reconnecting; counts and cards are kept.")
    backend.close()


def test_a_host_s_start_of_a_call_a_transcript_source_started_claims_it_and_shows_its_counts_so_far(server, page):
    call = f"call-{time.time_ns()}"
    source = {"Authorization": f"Bearer {Tokens(SECRET).issue('acme', 'integration', 'stt')}"}
    said = requests.post(server.url + "/api/v1/transcripts", headers=source, timeout=30, json={"start": True, "utterances": [
        {"conversation_id": call, "utterance_id": "u1", "speaker": "customer", "final": True,
         "text": "This is the third time I've called about this bill"}]}).json()
    assert said["started"] == [call], said
    open_hosted_sidebar(server, page, "uma")
    post(page, {"type": "copilot.start", "conversation_id": call, "channel": "voice"})
    expect(page.locator('.chip[data-cue="repeat_contact"]')).to_have_text("Repeat contact x1")
    expect(page.locator("#transcript .gap")).to_have_text("Earlier turns of this call are not shown; their counts are.")
    expect(page.locator("#notice")).to_be_hidden()
    said = requests.post(server.url + "/api/v1/transcripts", headers=source, timeout=30, json=[
        {"conversation_id": call, "utterance_id": "u2", "speaker": "customer", "final": True,
         "text": "I'm so worried my card has been used by someone else"}]).json()
    assert said["accepted"] == 1, said
    expect(page.locator('.chip[data-cue="anxiety"]')).to_have_text("Anxiety x1")
    expect(page.locator('mark[data-cue="anxiety"]')).to_be_in_viewport()


def test_the_demo_replayed_twice_shows_only_the_new_replay(server, page):
    page.goto(server.url + "/demo?speed=150")
    sidebar = page.frame_locator("#sidebar")
    expect(sidebar.locator('.alert[data-kind="handoff"]')).to_be_visible(timeout=30000)
    page.select_option("#speed", "2500")  # the replay's first customer turn comes 2.5 s after the click
    page.click("#replay")
    expect(sidebar.locator(".alert")).to_have_count(0)
    expect(sidebar.locator(".chip")).to_have_count(0)
    expect(sidebar.locator("[data-suggestion-id]")).to_have_count(0)
    expect(sidebar.locator(".turn")).to_have_count(1)  # the agent's greeting of the new call
    expect(sidebar.locator('mark[data-cue="repeat_contact"]')).to_have_count(1, timeout=10000)


DEMO_TURNS = [t for t in json.loads((ROOT / "copilot/web/static/demo-conversation.json").read_text())["turns"]
              if not t.get("mode")]


@pytest.mark.parametrize("width,height", [(360, 740), (320, 600)])
def test_a_long_call_keeps_the_transcript_readable_its_newest_turn_and_both_cards_in_view(
        server, page, width, height):
    open_hosted_sidebar(server, page, f"long-{width}", width, height)
    post(page, {"type": "copilot.start", "conversation_id": f"long-{time.time_ns()}", "channel": "voice"})
    turns = DEMO_TURNS + [{"speaker": "customer", "text": "No, that's everything. Thanks again."}]
    assert len(turns) >= 15
    for i, turn in enumerate(turns):
        say_in_sidebar(page, f"t{i}", turn["text"], turn["speaker"])
    expect(page.locator("[data-suggestion-id]")).to_have_count(2)
    page.wait_for_timeout(300)  # the last pushes and alerts have been laid out
    transcript = page.locator("#transcript").bounding_box()
    assert transcript["height"] >= 100, transcript
    newest = page.locator(f'[data-snippet-id="t{len(turns) - 1}"]').bounding_box()
    assert transcript["y"] - 1 <= newest["y"] and newest["y"] + newest["height"] <= transcript["y"] + transcript["height"] + 1
    for card in page.locator("[data-suggestion-id]").all():
        box = card.bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, box
    assert page.evaluate("document.documentElement.scrollHeight") <= height  # the page itself does not scroll
    shot(page, f"sidebar-long-{width}")
    # The agent scrolls up to read: a new turn must not pull the transcript back down.
    page.evaluate("document.getElementById('transcript').scrollTop = 0")
    page.wait_for_timeout(100)
    say_in_sidebar(page, "late", "One more thing, actually.")
    page.wait_for_timeout(100)
    assert page.evaluate("document.getElementById('transcript').scrollTop") == 0


def test_sidebar_says_in_plain_words_that_a_conversation_id_is_not_known(server, page):
    token = Tokens(SECRET).issue("acme", "agent", "una")
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(f"{server.url}/sidebar#token={token}&conversation_id=no-such-call-{time.time_ns()}")
    notice = page.locator("#notice")
    expect(notice).to_have_text("This conversation is not known to the copilot. Check the link, or ask your admin.")
    expect(notice).to_be_in_viewport()
    expect(page.get_by_text("Waiting for the conversation")).to_be_hidden()
    shot(page, "sidebar-unknown-conversation")


@pytest.mark.parametrize("kind", ["invalid", "expired"])
def test_sidebar_explains_a_bad_or_expired_token_in_plain_words_not_codes(server, page, kind):
    if kind == "invalid":
        token, words = "not-a-token", "Ask your admin for a new copilot link"
    else:
        token, words = Tokens(SECRET).issue("acme", "agent", "eve", ttl_s=1), "session has expired"
        time.sleep(2)
    page.set_viewport_size({"width": 320, "height": 600})
    page.goto(f"{server.url}/sidebar#token={token}&conversation_id=c-1")
    notice = page.locator("#notice")
    expect(notice).to_contain_text(words)
    expect(notice).to_be_in_viewport()
    text = page.inner_text("body")
    for code in ["invalid_token", "token_expired", "auth_required", "error"]:
        assert code not in text
    expect(page.locator("#status")).to_have_text("not connected")


def test_direct_embedding_shows_agent_turns_unmarked_shows_no_triage_before_a_cue_and_says_what_a_join_keeps(
        server, page):
    token, backend, cid = open_sidebar(server, page, "dee", "direct-agent", height=740)
    page.wait_for_timeout(300)  # the join has been answered
    expect(page.locator("#triage")).to_be_hidden()  # nothing happened yet: no "Triage 1"
    expect(page.locator("#chips-empty")).to_be_visible()
    expect(page.locator("#transcript .gap")).to_have_count(0)  # a new conversation lost nothing
    backend.say(cid, "a1", "I'm sorry, I can hear how frustrating and worrying this has been", speaker="agent")
    turn = page.locator('[data-snippet-id="a1"]')
    expect(turn).to_be_visible()
    expect(turn.locator(".who")).to_have_text("Agent")
    expect(turn.locator("mark")).to_have_count(0)
    expect(page.locator(".chip")).to_have_count(0)
    backend.say(cid, "c1", "This is the third time I've called and I'm furious")
    expect(page.locator('[data-snippet-id="c1"] .who')).to_have_text("Customer")
    expect(page.locator('.chip[data-cue="repeat_contact"]')).to_have_text("Repeat contact x1")
    expect(page.locator("#triage")).to_be_visible()
    # A second screen (the agent reloads) joins the same conversation: counts come back, the words do not.
    page.goto("about:blank")
    page.goto(f"{server.url}/sidebar#token={token}&conversation_id={cid}")
    expect(page.locator('.chip[data-cue="repeat_contact"]')).to_have_text("Repeat contact x1")
    expect(page.locator("#transcript .gap")).to_have_text(
        "Earlier turns are not shown after reconnecting; counts and cards are kept.")
    expect(page.get_by_text("Waiting for the conversation")).to_be_hidden()
    backend.close()


def test_console_insights_hide_the_library_and_draw_one_day_of_data_visibly(server, page):
    agent = AgentClient(server.url, Tokens(SECRET).issue("oneday", "agent", "amy"))
    cid = f"oneday-{time.time_ns()}"
    agent.call("conversation.start", {"conversation_id": cid, "channel": "chat"})
    agent.say(cid, "s1", "This is the third time I've called and I'm furious about this bill")
    agent.say(cid, "a1", "I'm sorry, I can hear how frustrating this has been", speaker="agent")
    agent.say(cid, "s2", "Thank you, that's a relief")
    agent.call("conversation.end", {"conversation_id": cid})
    agent.close()
    deadline = time.time() + 30  # the charts read the analytics store, which the loader fills within a second
    while not requests.get(server.url + "/api/v1/analytics/conversations", headers=lead_headers("oneday"),
                           timeout=10).json()["days"] and time.time() < deadline:
        time.sleep(0.2)
    page.goto(server.url + "/console")
    page.fill("#token", Tokens(SECRET).issue("oneday", "lead", "lee"))
    page.click("#login button")
    page.locator("#phrasings tbody tr").first.wait_for()
    page.click("#tab-insights")
    expect(page.locator("#library")).to_be_hidden()
    expect(page.locator("#phrasings")).to_be_hidden()
    expect(page.locator("#insights")).to_be_visible()
    for chart in ["#chart-cues", "#chart-resolution"]:
        point = page.locator(f"{chart} svg circle").first
        expect(point).to_be_visible(timeout=10000)
        box = point.bounding_box()
        assert box["width"] >= 4 and box["height"] >= 4, (chart, box)
    page.click("#tab-library")
    expect(page.locator("#library")).to_be_visible()
    expect(page.locator("#insights")).to_be_hidden()


def test_console_clears_a_wrong_token_message_once_a_good_token_loads(server, page):
    page.goto(server.url + "/console")
    page.fill("#token", "not-a-token")
    page.click("#login button")
    message = page.locator("#message")
    expect(message).to_contain_text("That token was not accepted")
    assert "invalid_token" not in message.inner_text()
    page.fill("#token", Tokens(SECRET).issue("acme", "lead", "lee"))
    page.click("#login button")
    page.locator("#phrasings tbody tr").first.wait_for()
    expect(message).to_have_text("")


# Issue #14: the console reads the audit of the phrasing it shows, every fetch fails visibly, reconnects spread out.

LATE = {"id": "aaa-late-phrasing", "text": "Which part of this would help most to go through together?",
        "cues": ["confusion"], "stage": "investigate", "channels": ["chat"],
        "use_when": ["I don't get what this letter says", "what does this even mean"]}


def login_console(server, page, tenant):
    page.goto(server.url + "/console")
    page.fill("#token", Tokens(SECRET).issue(tenant, "lead", "lee"))
    page.click("#login button")
    page.locator("#phrasings tbody tr").first.wait_for()


def test_console_shows_the_audit_trail_of_a_phrasing_created_after_a_thousand_other_audit_entries(server, page):
    tenant, headers = "auditlong", lead_headers("auditlong")
    url = server.url + "/api/v1"
    ids = [p["id"] for p in requests.get(url + "/phrasings", headers=headers, timeout=30).json()["phrasings"]]
    for _ in range(1000 // (2 * len(ids)) + 1):  # retire and restore the whole library until 1,000 entries precede
        for action in ("retire", "restore"):
            assert requests.post(url + "/phrasings/bulk", json={"action": action, "ids": ids}, headers=headers,
                                 timeout=60).json()["ok"]
    assert requests.post(url + "/phrasings", json=LATE, headers=headers, timeout=30).status_code == 201
    edited = requests.patch(url + f"/phrasings/{LATE['id']}", json={"notes": "for the tariff letters"},
                            headers=headers, timeout=30)
    assert edited.status_code == 200, edited.text
    first = requests.get(url + "/audit?limit=1000", headers=headers, timeout=30).json()["entries"]
    assert len(first) == 1000 and LATE["id"] not in {e["phrasing_id"] for e in first}  # what the console used to read
    login_console(server, page, tenant)
    page.click(f'#phrasings tr[data-phrasing-id="{LATE["id"]}"]')
    rows = page.locator("#audit li")
    expect(rows).to_have_count(2)
    rows.last.scroll_into_view_if_needed()
    for row, action in zip(rows.all(), ("create", "edit")):
        expect(row).to_be_visible()
        expect(row).to_be_in_viewport()
        expect(row).to_contain_text(f"lee · {action}")
        box = row.bounding_box()
        assert box["width"] > 100 and box["height"] >= 10, box
    shot(page, "console-audit-late-phrasing")


def test_console_says_in_place_when_a_phrasings_audit_trail_cannot_be_read(server, page):
    login_console(server, page, "acme")
    page.route("**/api/v1/audit*", lambda route: route.abort())
    page.locator("#phrasings tbody tr").first.click()
    problem = page.locator("#audit li.load-error")
    expect(problem).to_have_text(
        "Could not load the audit trail: The server cannot be reached. Check the connection, then try again.")
    problem.scroll_into_view_if_needed()
    expect(problem).to_be_in_viewport()
    expect(page.locator("#versions li").first).to_be_visible()  # the versions still came
    box = problem.bounding_box()
    assert box["width"] > 100 and box["height"] >= 10, box


def test_the_demo_says_it_could_not_start_when_its_token_cannot_be_fetched(server, page):
    page.route("**/demo/token", lambda route: route.fulfill(
        status=429, content_type="application/json", headers={"Retry-After": "6"},
        body=json.dumps({"ok": False, "error": {"code": "rate_limited", "message": "too many demo tokens"}})))
    page.goto(server.url + "/demo")
    problem = page.locator("#problem")
    expect(problem).to_have_text("The demo could not start: too many demo tokens")
    expect(problem).to_be_in_viewport()
    assert problem.bounding_box()["height"] > 20


def test_sidebar_reconnect_delays_grow_stay_capped_and_are_spread_at_random(server, page):
    page.goto(server.url + "/sidebar")
    attempts, middles = [0, 1, 2, 3, 10, 40], [500, 1000, 2000, 4000, 10000, 10000]
    delays = page.evaluate("""attempts => {
        const s = new window.CopilotSocket({ token: "t" });
        return attempts.map(a => Array.from({ length: 200 }, () => s.reconnectDelay(a)));
    }""", attempts)
    for attempt, middle, got in zip(attempts, middles, delays):
        assert all(middle * 0.5 <= d <= middle * 1.5 for d in got), (attempt, min(got), max(got))
        assert max(got) - min(got) > middle * 0.5, (attempt, "not spread")  # 200 draws cover most of +-50 %
