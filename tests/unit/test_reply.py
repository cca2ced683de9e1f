"""A Reply addresses the conversation's room and any others watching it, and the /copilot transport delivers each
emit to all of them: driven in-process with Flask-SocketIO's test client over a fake service."""
import pytest
from flask import Flask
from flask_socketio import SocketIO

from copilot.assist import Reply
from copilot.metrics import Metrics
from copilot.realtime import NAMESPACE, Connections, register
from copilot.security import Tokens

SECRET = "reply-test-secret-0123456789abcdef01234567"
HIGHLIGHT = ("cue.highlight", {"conversation_id": "c-1", "line": "Frustration"})


def test_a_reply_goes_to_its_conversations_room_alone_by_default():
    reply = Reply({"ok": True}, "acme/c-1")
    assert reply.rooms == ("acme/c-1",) and reply.to == "acme/c-1"


def test_a_reply_to_several_rooms_names_each_once_the_conversations_first():
    reply = Reply({"ok": True}, "acme/c-1", also=("acme/floor", "acme/c-1", "acme/floor"))
    assert reply.rooms == ("acme/c-1", "acme/floor") and reply.to == ["acme/c-1", "acme/floor"]


class RoomService:
    """`conversation.join` joins the room the payload names; `conversation.start` emits one highlight to the
    conversation's room and to the rooms in `also`, and `conversation.end` does the same and leaves."""

    def join(self, who, payload):
        return Reply({"ok": True}, payload["room"])

    def start(self, who, payload):
        return Reply({"ok": True}, "acme/c-1", [HIGHLIGHT], also=tuple(payload["also"]))

    def end(self, who, payload):
        return Reply({"ok": True}, "acme/c-1", [HIGHLIGHT], leave=True, also=tuple(payload["also"]))

    def snippet(self, who, payload):
        raise AssertionError("not sent in these tests")

    mode = feedback = transfer = raise_hand = snippet


@pytest.fixture
def connect():
    """A /copilot server in this process over RoomService; connect() gives a client in the rooms named."""
    app = Flask(__name__)
    socketio = SocketIO(app, async_mode="threading")
    register(socketio, RoomService(), Tokens(SECRET), Metrics(), Connections(rate=100, burst=100))

    def client(*rooms):
        c = socketio.test_client(app, namespace=NAMESPACE, auth={"token": Tokens(SECRET).issue("acme", "lead", "lee")})
        for room in rooms:
            assert c.emit("conversation.join", {"room": room}, namespace=NAMESPACE, callback=True) == {"ok": True}
        return c
    return client


def highlights(client) -> int:
    return sum(item["name"] == "cue.highlight" for item in client.get_received(NAMESPACE))


def test_every_emit_reaches_every_room_of_the_reply_and_a_client_in_two_of_them_once(connect):
    agent, floor, both, elsewhere = connect(), connect("acme/floor"), connect("acme/floor", "acme/c-1"), connect("acme/c-2")
    ack = agent.emit("conversation.start", {"also": ["acme/floor"]}, namespace=NAMESPACE, callback=True)
    assert ack == {"ok": True}
    assert [highlights(c) for c in (agent, floor, both, elsewhere)] == [1, 1, 1, 0]


def test_a_reply_to_its_conversations_room_alone_reaches_no_watcher(connect):
    agent, floor = connect(), connect("acme/floor")
    agent.emit("conversation.start", {"also": []}, namespace=NAMESPACE, callback=True)
    assert [highlights(agent), highlights(floor)] == [1, 0]


def test_leaving_a_conversation_leaves_its_room_and_keeps_the_others(connect):
    agent, other = connect("acme/floor"), connect()
    agent.emit("conversation.end", {"also": []}, namespace=NAMESPACE, callback=True)
    assert highlights(agent) == 1
    other.emit("conversation.start", {"also": ["acme/floor"]}, namespace=NAMESPACE, callback=True)
    assert [highlights(agent), highlights(other)] == [1, 1]  # through the floor, which it never left
    other.emit("conversation.start", {"also": []}, namespace=NAMESPACE, callback=True)
    assert [highlights(agent), highlights(other)] == [0, 1]
