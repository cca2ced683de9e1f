"""The console's analytics charts in headless Chromium against a real server: conversations held over Socket.IO,
outcomes posted over REST, then every chart drawn, visible and sized, each bar with its n and a group below the
minimum n saying "too few"."""
import time

import pytest
import requests
from playwright.sync_api import expect

from copilot.security import Tokens
from tests.browser.conftest import needs_chromium, shot
from tests.conftest import own_server
from tests.integration.test_analytics_api import hold, loaded

SECRET = "analytics-api-secret-0123456789abcdef0123"  # what hold() and loaded() sign with
TENANT = "acme"
pytestmark = needs_chromium
CHARTS = ("#chart-resolution-days", "#chart-csat-ack", "#chart-cqs", "#chart-lift", "#chart-scorecards")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("analytics-console")
    proc = own_server(workdir, SECRET, COPILOT_ANALYTICS_LOAD_MS="50", COPILOT_REPORT_MIN_N="2")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def data(server):
    """Three acknowledged conversations and one not (a group of one: too few), each with a survey answer."""
    run = time.time_ns()
    ids = [f"console-{run}-{n}" for n in range(4)]
    for n, cid in enumerate(ids):
        hold(server.url, cid, acknowledged=n < 3)
    for cid in ids:
        loaded(server.url, cid)
    survey = [{"conversation_id": cid, "csat": csat, "felt_understood": felt, "acknowledged_situation": felt,
               "clear_next_steps": 4} for cid, csat, felt in zip(ids, [5, 4, 5, 2], [5, 4, 4, 1])]
    sent = requests.post(f"{server.url}/api/v1/outcomes", json={"outcomes": survey}, timeout=30,
                         headers={"Authorization": f"Bearer {Tokens(SECRET).issue(TENANT, 'integration', 'crm')}"})
    assert sent.json()["accepted"] == 4, sent.text
    return ids


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    yield page
    context.close()
    assert problems == [], problems


def test_every_analytics_chart_is_drawn_visible_and_sized_with_its_n(server, data, page):
    page.goto(server.url + "/console")
    page.fill("#token", Tokens(SECRET).issue(TENANT, "lead", "lee"))
    page.click("#login button")
    page.click("#tab-insights")
    for chart in CHARTS:
        drawn = page.locator(f"{chart} svg")
        expect(drawn).to_be_visible(timeout=15000)
        box = drawn.bounding_box()
        assert box["width"] >= 600 and box["height"] >= 25, (chart, box)
        bar = page.locator(f"{chart} g.cell rect.value").first
        expect(bar).to_be_visible()
        assert bar.bounding_box()["width"] >= 3 and bar.bounding_box()["height"] >= 10, chart
        assert "n=" in page.locator(f"{chart} g.cell").first.text_content(), chart
    page.locator("#chart-csat-ack").scroll_into_view_if_needed()
    shot(page, "console-analytics")


def test_a_group_below_the_minimum_n_says_too_few_and_draws_no_bar(server, data, page):
    page.goto(server.url + "/console")
    page.fill("#token", Tokens(SECRET).issue(TENANT, "lead", "lee"))
    page.click("#login button")
    page.click("#tab-insights")
    few = page.locator("#chart-csat-ack g.cell.too-few")
    expect(few.first).to_be_visible(timeout=15000)
    assert few.count() == 1 and few.first.get_attribute("data-n") == "1"
    assert "too few" in few.first.text_content() and few.first.locator("rect.value").count() == 0
    enough = page.locator("#chart-csat-ack g.cell:not(.too-few)")
    assert enough.count() == 1 and enough.first.get_attribute("data-n") == "3"
    expect(page.locator("#chart-csat-ack .difference")).to_contain_text("too few")


def test_the_existing_charts_still_draw_beside_the_new_ones(server, data, page):
    page.goto(server.url + "/console")
    page.fill("#token", Tokens(SECRET).issue(TENANT, "lead", "lee"))
    page.click("#login button")
    page.click("#tab-insights")
    for chart in ("#chart-cues", "#chart-resolution"):
        point = page.locator(f"{chart} svg circle").first
        expect(point).to_be_visible(timeout=15000)
        assert point.bounding_box()["width"] >= 4, chart
    expect(page.locator("#chart-acceptance svg, #chart-acceptance:has-text('Nothing shown')").first).to_be_visible()
