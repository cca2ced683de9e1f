"""The sidebar, the demo and the console in headless Chromium (Debian's), driven by Playwright, against a real
server on loopback. Screenshots go to test-artifacts/."""
import shutil
import time

import pytest
import requests

from copilot.security import Tokens
from tests.conftest import ROOT, AgentClient, ServerProcess

SECRET = "browser-test-secret"
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
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    yield page
    context.close()


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


def test_sidebar_alone_joins_a_conversation_fed_by_the_host_backend(server, page):
    token = Tokens(SECRET).issue("acme", "agent", "amy")
    backend = AgentClient(server.url, token)
    cid = f"direct-{time.time_ns()}"
    assert backend.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]
    page.set_viewport_size({"width": 360, "height": 760})
    page.goto(f"{server.url}/sidebar?token={token}&conversation_id={cid}&theme=dark")
    page.wait_for_function("document.getElementById('status').textContent === 'connected'")
    backend.call("transcript.snippet", {"conversation_id": cid, "snippet_id": "s1", "speaker": "customer",
                                        "text": "I'm so worried my card has been used by someone else", "final": True})
    page.locator('mark[data-cue="anxiety"]').wait_for(timeout=10000)
    page.wait_for_function("document.getElementById('live').textContent.includes('Anxiety')")
    shot(page, "sidebar-dark")
    backend.close()


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
    page.wait_for_function("document.querySelector('#phrasings tr[data-phrasing-id=\"confusion-checkin-browser\"]')"
                           ".textContent.includes('approved')")
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
