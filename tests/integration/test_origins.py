"""COPILOT_ALLOWED_ORIGINS adds origins to the server's own: over a real `python wsgi.py` server, Socket.IO clients
whose Origin is the server's own URL, a listed CRM, or a foreign site."""
from __future__ import annotations

import pytest
import requests
import socketio

from copilot.security import AllowedOrigins, Tokens
from tests.conftest import TEST_SECRET, own_server

CRM = "https://crm.example.com"
FOREIGN = "https://attacker.example.net"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = own_server(tmp_path_factory.mktemp("origins"), TEST_SECRET, COPILOT_ALLOWED_ORIGINS=CRM,
                      COPILOT_PROXY_HOPS="1")
    yield proc
    proc.stop()


def connects(url: str, origin: str, headers: dict | None = None) -> bool:
    """Whether a Socket.IO client over WebSocket that sends this Origin joins /copilot."""
    client = socketio.Client(reconnection=False, websocket_extra_options={"origin": origin})
    token = Tokens(TEST_SECRET).issue("acme", "agent", "amy")
    try:
        client.connect(url, namespaces=["/copilot"], auth={"token": token}, transports=["websocket"],
                       headers=headers or {}, wait_timeout=10)
    except socketio.exceptions.ConnectionError:
        return False
    try:
        return client.connected
    finally:
        client.disconnect()


def polls(url: str, origin: str) -> int:
    """The status of an Engine.IO long-polling handshake that sends this Origin."""
    return requests.get(f"{url}/socket.io/?EIO=4&transport=polling", headers={"Origin": origin}, timeout=5).status_code


def test_a_page_served_by_the_server_itself_connects_while_other_origins_are_listed(server):
    assert connects(server.url, server.url)
    assert polls(server.url, server.url) == 200


def test_a_listed_crm_origin_connects(server):
    assert connects(server.url, CRM)
    assert polls(server.url, CRM) == 200


def test_a_foreign_origin_is_refused(server):
    assert not connects(server.url, FOREIGN)
    assert polls(server.url, FOREIGN) == 400


def test_behind_a_tls_proxy_the_pages_https_origin_connects(server):
    host = server.url.removeprefix("http://")
    assert connects(server.url, f"https://{host}", headers={"X-Forwarded-Proto": "https"})
    assert not connects(server.url, f"https://{host}")  # plain http: an https page is another origin


def test_the_origin_check_allows_the_requests_own_scheme_and_host_and_the_listed_ones():
    allowed = AllowedOrigins((CRM,))
    environ = {"wsgi.url_scheme": "http", "HTTP_HOST": "copilot.internal:8000"}
    assert allowed("http://copilot.internal:8000", environ)
    assert allowed(CRM, environ)
    assert not allowed(FOREIGN, environ)
    assert not allowed("https://copilot.internal:8000", environ)
    assert not allowed(None, {})
