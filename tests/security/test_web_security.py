"""The web pages' headers and the demo's exposure (issue #11, defect 12), on apps driven in-process."""
import time
from html.parser import HTMLParser

import pytest

from copilot import create_app
from copilot.settings import Settings

PAGES = ("/sidebar", "/console", "/floor", "/demo")
CRM = "https://crm.example"
SECRET = "web-security-test-secret-0123456789abcdef"  # at least 32 bytes, as the server now requires


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """Apps built from settings (host, origins...), one per distinct set, kept for the module."""
    apps = {}

    def app_for(**overrides):
        key = tuple(sorted(overrides.items()))
        if key not in apps:
            folder = tmp_path_factory.mktemp("web")
            apps[key] = create_app(Settings(instance_dir=folder / "instance", secret=SECRET, async_mode="threading",
                                            **overrides))
        return apps[key]
    return app_for


def policy(response) -> dict[str, str]:
    """The Content-Security-Policy as {directive: sources}."""
    header = response.headers.get("Content-Security-Policy", "")
    return {d.split()[0]: " ".join(d.split()[1:]) for d in header.split(";") if d.strip()}


class InlineCode(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' would block: inline scripts, <style>, style= and on*= attributes.
    A JSON data block (<script type="application/json">) is not run, so a CSP does not block it; its text is kept."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.data: dict[str, str] = {}
        self.reading: str | None = None

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "script" and names.get("type") == "application/json" and "src" not in names:
            self.reading = names.get("id", "")
            self.data[self.reading] = ""
        elif tag == "script" and "src" not in names:
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style>")
        self.found += [f"{tag} {name}=" for name in names if name == "style" or name.startswith("on")]

    def handle_data(self, data):
        if self.reading is not None:
            self.data[self.reading] += data

    def handle_endtag(self, tag):
        if tag == "script":
            self.reading = None


def test_every_response_sends_no_referrer_and_forbids_content_sniffing(build):
    client = build().test_client()
    for path in (*PAGES, "/demo/conversation", "/healthz", "/web/static/sidebar.js", "/no-such-page"):
        response = client.get(path)
        assert response.headers.get("Referrer-Policy") == "no-referrer", path
        assert response.headers.get("X-Content-Type-Options") == "nosniff", path


def test_pages_may_be_framed_by_themselves_only_when_no_origins_are_allowed(build):
    client = build().test_client()
    for path in PAGES:
        directives = policy(client.get(path))
        assert directives.get("frame-ancestors") == "'self'", path
        assert directives.get("default-src") == "'self'", path


def test_pages_may_be_framed_by_the_allowed_origins_and_a_malformed_origin_adds_no_directive(build):
    client = build(allowed_origins=(CRM, "https://x.example; script-src *")).test_client()
    for path in PAGES:
        directives = policy(client.get(path))
        assert directives.get("frame-ancestors") == f"'self' {CRM}", path
        assert "script-src" in directives and "*" not in directives["script-src"], path


def test_pages_allow_only_their_own_scripts_styles_and_socket(build):
    client = build().test_client()
    for path in PAGES:
        directives = policy(client.get(path))
        for name in ("script-src", "style-src", "connect-src"):
            assert directives.get(name) == "'self'", (path, name)
        assert directives.get("object-src") == "'none'" and directives.get("base-uri") == "'none'", path
        assert "unsafe" not in " ".join(directives.values()), path


def test_pages_hold_no_inline_code_that_their_policy_would_block(build):
    client = build().test_client()
    for path in PAGES:
        parser = InlineCode()
        parser.feed(client.get(path).get_data(as_text=True))
        assert parser.found == [], path


def test_the_sidebar_console_and_floor_carry_the_legend_as_json_data_and_nothing_else_inline(build):
    import json

    from copilot.web.legend import legend

    client = build().test_client()
    for path in ("/sidebar", "/console", "/floor"):
        parser = InlineCode()
        parser.feed(client.get(path).get_data(as_text=True))
        assert list(parser.data) == ["copilot-legend"], path
        assert json.loads(parser.data["copilot-legend"]) == legend(), path


def test_the_demo_is_not_served_when_the_server_listens_on_every_interface(build):
    client = build(host="0.0.0.0").test_client()
    assert client.get("/demo").status_code == 404
    assert client.get("/demo/conversation").status_code == 404
    response = client.post("/demo/token")
    assert response.status_code == 404 and "token" not in response.get_json()
    assert client.get("/sidebar").status_code == 200  # the sidebar itself is the product, not the demo


def test_the_demo_is_not_served_to_a_remote_client_even_when_host_says_loopback(build):
    """`gunicorn -b 0.0.0.0:8000 wsgi:app` listens everywhere while HOST keeps its 127.0.0.1 default."""
    client = build().test_client()
    remote = {"REMOTE_ADDR": "192.0.2.7"}
    assert client.get("/demo", environ_base=remote).status_code == 404
    assert client.post("/demo/token", environ_base=remote).status_code == 404
    assert client.get("/demo").status_code == 200  # the test client's own address is 127.0.0.1


def test_the_demo_is_served_on_any_loopback_host():
    from copilot.web import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "", "10.0.0.5", "copilot.example", "localhost.evil"))


def test_the_demo_can_be_forced_onto_a_public_address(build):
    client = build(host="0.0.0.0", demo_public=True).test_client()
    assert client.get("/demo").status_code == 200
    assert client.post("/demo/token").get_json()["ok"] is True


def test_demo_tokens_are_rate_limited_per_client_address_after_a_burst(build):
    client = build().test_client()
    started = time.monotonic()
    answers = [client.post("/demo/token", environ_base={"REMOTE_ADDR": "127.0.0.9"}) for _ in range(30)]
    assert time.monotonic() - started < 10
    codes = [a.status_code for a in answers]
    assert codes[:5] == [200] * 5 and set(codes[5:]) == {429}, codes  # old: 30 tokens, all 200
    refused = answers[-1]
    assert refused.get_json()["ok"] is False and refused.get_json()["error"]["code"] == "rate_limited"
    assert "token" not in refused.get_json() and int(refused.headers["Retry-After"]) > 0
    other = client.post("/demo/token", environ_base={"REMOTE_ADDR": "127.0.0.10"})
    assert other.status_code == 200 and other.headers.get("Cache-Control") == "no-store"


def test_the_demo_token_buckets_refill_and_stay_bounded_in_number():
    from copilot.errors import RateLimited
    from copilot.web import AddressLimits

    now = [0.0]
    limits = AddressLimits(rate_per_s=1.0, burst=2, max_addresses=100, clock=lambda: now[0])
    limits.take("10.0.0.1")
    limits.take("10.0.0.1")
    with pytest.raises(RateLimited):
        limits.take("10.0.0.1")
    now[0] += 1.0
    limits.take("10.0.0.1")  # one token back after a second
    for i in range(10_000):
        limits.take(f"10.1.{i // 256}.{i % 256}")
    assert len(limits.buckets) == 100
    limits.take("2001:db8::1")
    limits.take("2001:db8::2")
    with pytest.raises(RateLimited):  # one /64 is one client
        limits.take("2001:db8::3")



def test_each_demo_visitor_is_an_agent_of_its_own(build):
    from copilot.security import Tokens

    client = build().test_client()
    agents = {Tokens(SECRET).verify(client.post("/demo/token", environ_base={"REMOTE_ADDR": f"127.0.0.{n}"})
                                    .get_json()["token"]).agent for n in range(20, 24)}
    assert len(agents) == 4  # old: every visitor was demo-agent, so one could join another's conversation
