"""The sidebar, the demo and the console in headless Chromium (Debian's), driven by Playwright, against a real
server on loopback. Screenshots go to test-artifacts/."""
import shutil
import threading
import time

import pytest
import requests
from playwright.sync_api import expect

from copilot.security import Tokens
from tests.conftest import ROOT, AgentClient, ServerProcess

SECRET = "browser-test-secret-0123456789abcdef0123"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (tests/run.sh installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("web")
    proc = ServerProcess({"COPILOT_SECRET": SECRET, "COPILOT_INSTANCE_DIR": str(workdir / "instance"),
                          "COPILOT_SUGGESTION_COOLDOWN_S": "0"}, workdir)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield chromium
        chromium.close()


@pytest.fixture
def violations():
    """The Content-Security-Policy violations that the page's frames log to the console."""
    return []


@pytest.fixture
def page(browser, violations):
    """A fresh page; at the end, no frame of it may have logged a CSP violation that the test did not expect."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    yield page
    context.close()
    assert violations == [], violations


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


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


def test_sidebar_alone_joins_with_a_fragment_token_shows_highlights_and_wipes_the_token_from_the_address(
        server, page):
    token = Tokens(SECRET).issue("acme", "agent", "amy")
    backend = AgentClient(server.url, token)
    cid = f"direct-{time.time_ns()}"
    assert backend.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]
    page.set_viewport_size({"width": 360, "height": 760})
    page.goto(f"{server.url}/sidebar?theme=dark#token={token}&conversation_id={cid}")
    expect(page.locator("#status")).to_have_text("connected")
    assert page.evaluate("location.hash") == "" and token not in page.url and "theme=dark" in page.url
    backend.call("transcript.snippet", {"conversation_id": cid, "snippet_id": "s1", "speaker": "customer",
                                        "text": "I'm so worried my card has been used by someone else", "final": True})
    mark = page.locator('mark[data-cue="anxiety"]')
    mark.wait_for(timeout=10000)
    box = mark.bounding_box()
    assert mark.is_visible() and box["width"] > 10 and box["height"] > 8 and box["x"] + box["width"] <= 360
    assert box["y"] + box["height"] <= 760  # in view, not below the fold
    chip = page.locator('.chip[data-cue="anxiety"]')
    assert chip.is_visible() and chip.inner_text() == "Anxiety x1"
    assert page.locator("#notice").is_hidden()
    expect(page.locator("#live")).to_contain_text("Anxiety")
    shot(page, "sidebar-dark")
    backend.close()


def test_sidebar_says_when_its_token_expired_and_carries_on_once_the_host_refreshes_it(server, page):
    short = Tokens(SECRET).issue("acme", "agent", "kim", ttl_s=6)
    issued = time.time()
    backend = AgentClient(server.url, Tokens(SECRET).issue("acme", "agent", "kim"))
    cid = f"expiry-{time.time_ns()}"
    assert backend.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]
    page.set_viewport_size({"width": 360, "height": 760})
    page.goto(f"{server.url}/sidebar#token={short}&conversation_id={cid}")
    expect(page.locator("#status")).to_have_text("connected")
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
