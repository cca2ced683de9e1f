"""The /copilot handlers in the test process through Flask-SocketIO's test client: acks and emits as a client
sees them, in milliseconds, without a socket."""
import time

import pytest

from copilot.realtime import NAMESPACE
from copilot.security import Tokens
from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.inprocess

FURIOUS = "This is the third time I've called and I'm furious about this bill"


def connect(app, token: str | None = None):
    """A test client on /copilot, with `auth={"token": token}` when a token is given."""
    socketio = app.extensions["socketio"]
    return socketio.test_client(app, namespace=NAMESPACE, auth={"token": token} if token else None)


def token(agent: str = "amy", **kw) -> str:
    return Tokens(TEST_SECRET).issue("acme", "agent", agent, **kw)


def call(client, event: str, payload) -> dict:
    """Send one event and return its ack."""
    return client.emit(event, payload, namespace=NAMESPACE, callback=True)


def received(client) -> dict[str, list[dict]]:
    """The events the server emitted to this client since the last look, by name."""
    out: dict[str, list[dict]] = {}
    for item in client.get_received(NAMESPACE):
        out.setdefault(item["name"], []).append(item["args"][0])
    return out


def test_a_conversation_gets_its_highlight_suggestions_and_summary_with_no_network(app):
    client = connect(app, token())
    assert client.is_connected(NAMESPACE)
    started = call(client, "conversation.start", {"conversation_id": "c-in-1", "channel": "chat"})
    assert started["ok"] and started["conversation_id"] == "c-in-1"
    said = call(client, "transcript.snippet", {"conversation_id": "c-in-1", "snippet_id": "s1",
                                              "speaker": "customer", "text": FURIOUS, "final": True})
    assert said == {**said, "ok": True, "snippet_id": "s1", "duplicate": False}
    events = received(client)
    highlight = events["cue.highlight"][0]
    cues = {c["cue"]: c for c in highlight["cues"]}
    assert {"frustration", "repeat_contact"} <= set(cues) and highlight["snippet_id"] == "s1"
    start, end = cues["repeat_contact"]["spans"][0]
    assert FURIOUS[start:end] == "third time"
    assert 1 <= len(events["suggestion.push"][0]["suggestions"]) <= 2
    ended = call(client, "conversation.end", {"conversation_id": "c-in-1"})
    assert ended["ok"] and ended["summary"]["counts"]["frustration"] == 1
    assert received(client)["conversation.summary"] == [ended["summary"]]
    client.disconnect(NAMESPACE)


@pytest.mark.parametrize("event, payload, code", [
    ("transcript.snippet", {"conversation_id": "c-in-2", "snippet_id": "s1", "speaker": "robot", "text": "hi",
                            "final": True}, "invalid_payload"),
    ("transcript.snippet", {"conversation_id": "c-in-2", "snippet_id": "s2", "speaker": "customer",
                            "text": "x" * 4001, "final": True}, "text_too_long"),
    ("conversation.start", {"conversation_id": "c-in-2", "channel": "fax"}, "invalid_payload"),
    ("conversation.end", {"conversation_id": "never-started"}, "unknown_conversation"),
    ("no.such.event", {}, "unknown_event"),
])
def test_a_bad_event_is_acked_with_its_error_code_and_the_connection_stays(app, event, payload, code):
    client = connect(app, token("bea"))
    call(client, "conversation.start", {"conversation_id": "c-in-2", "channel": "chat"})
    reply = call(client, event, payload)
    assert reply["ok"] is False and reply["error"]["code"] == code, reply
    assert reply["error"]["message"]
    assert client.is_connected(NAMESPACE)
    assert call(client, "conversation.join", {"conversation_id": "c-in-2"})["ok"]
    client.disconnect(NAMESPACE)


@pytest.mark.parametrize("credential", [None, Tokens("not-the-server-secret-0123456789abcdef").issue("acme", "agent",
                                                                                                   "amy"),
                                        token(now=time.time() - 10**6)], ids=["none", "forged", "expired"])
def test_a_connection_without_a_valid_token_is_refused(app, credential):
    client = connect(app, credential)
    assert not client.is_connected(NAMESPACE)
    with pytest.raises(RuntimeError, match="not connected"):
        call(client, "conversation.start", {"conversation_id": "c-in-3", "channel": "chat"})
