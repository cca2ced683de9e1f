"""What the browser tests share: Debian's Chromium driven by Playwright, and screenshots in test-artifacts/."""
import shutil

import pytest

from tests.conftest import ROOT

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None,
                                    reason="Debian's chromium is not installed (tests/run.sh installs it)")


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield chromium
        chromium.close()


def shot(page, name: str) -> None:
    """A screenshot of what the page shows now, for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


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
