"""The one exceptions module and its table of codes, and the one place the /copilot transport turns an exception
into an answer, driven in-process with Flask-SocketIO's test client over a fake service."""
import ast
import logging
from pathlib import Path

import pytest
from flask import Flask
from flask_socketio import SocketIO

from copilot import errors
from copilot.errors import (
    CODES,
    AnswerLog,
    CopilotError,
    Flooding,
    ImportRejected,
    InvalidPayload,
    InvalidPhrasingError,
    LibraryDamaged,
    NotAuthenticated,
    RateLimited,
    StoreUnavailable,
    UnknownConversation,
    error_body,
)
from copilot.metrics import Metrics
from copilot.realtime import NAMESPACE, Connections, register
from copilot.security import Tokens

PACKAGE = Path(errors.__file__).parent
SECRET = "errors-test-secret-0123456789abcdef0123"


def test_every_copilot_error_is_defined_in_the_errors_module():
    names = {name for name, value in vars(errors).items() if isinstance(value, type)
             and issubclass(value, CopilotError)}
    elsewhere = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", None)) for b in node.bases}
                if bases & names:
                    elsewhere.append(f"{path.relative_to(PACKAGE)}: {node.name}")
    assert elsewhere == []


def test_each_code_belongs_to_one_exception_and_each_class_carries_its_table_pair():
    codes = [code for code, _ in CODES.values()]
    assert len(codes) == len(set(codes))
    for kind, (code, status) in CODES.items():
        assert (kind.code, kind.status) == (code, status)


@pytest.mark.parametrize(("kind", "parent"), [(Flooding, RateLimited), (LibraryDamaged, StoreUnavailable)])
def test_a_subclass_left_out_of_the_table_answers_with_its_parent_s_code(kind, parent):
    assert kind not in CODES
    assert (kind.code, kind.status) == CODES[parent]


def test_no_exception_sets_a_code_of_its_own_outside_the_table():
    known = {code for code, _ in CODES.values()}
    kinds = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, CopilotError)]
    assert {kind.code for kind in kinds} <= known


class Problems(ValueError):
    problems = [{"field": "text", "problem": "empty"}]


class Row:
    def as_dict(self):
        return {"row": 2, "problem": "no text"}


class Parsed:
    rows, rejected, errors = 5, 3, [Row()]


def test_the_error_body_carries_code_message_and_details_when_the_error_has_them():
    assert error_body(UnknownConversation("no conversation c-1")) == {
        "ok": False, "error": {"code": "unknown_conversation", "message": "no conversation c-1"}}
    assert error_body(InvalidPhrasingError(Problems("bad phrasing")))["error"] == {
        "code": "invalid_phrasing", "message": "bad phrasing", "details": Problems.problems}
    rejected = error_body(ImportRejected(Parsed()))["error"]
    assert rejected["code"] == "import_rejected" and rejected["details"] == [{"row": 2, "problem": "no text"}]
    assert "the first 1 are listed" in rejected["message"]


def test_a_connection_that_holds_no_identity_is_not_authenticated_rather_than_a_key_error():
    connections = Connections()
    identity = Tokens(SECRET).verify(Tokens(SECRET).issue("acme", "agent", "amy"))
    for look_up in (connections.identity, connections.admit, lambda sid: connections.refresh(sid, identity)):
        with pytest.raises(NotAuthenticated) as refused:
            look_up("never-connected")
        assert refused.value.code == "not_authenticated"
    connections.add("s1", identity)
    assert connections.identity("s1") == identity
    connections.remove("s1")
    with pytest.raises(NotAuthenticated):
        connections.identity("s1")


class BrokenService:
    """A service whose snippet handling has a bug (a KeyError), and that knows no conversation otherwise."""

    def snippet(self, who, payload):
        raise KeyError("speaker")

    def unknown(self, who, payload):
        raise UnknownConversation("no conversation c-1; start it first")

    start = mode = feedback = transfer = end = join = raise_hand = unknown


@pytest.fixture
def copilot():
    """A /copilot server in this process over BrokenService, and a way to connect to it."""
    app = Flask(__name__)
    socketio = SocketIO(app, async_mode="threading")
    metrics, connections = Metrics(), Connections(rate=100, burst=100)
    register(socketio, BrokenService(), Tokens(SECRET), metrics, connections)

    def connect(with_token=True):
        auth = {"token": Tokens(SECRET).issue("acme", "agent", "amy")} if with_token else None
        return socketio.test_client(app, namespace=NAMESPACE, auth=auth)
    connect.metrics, connect.connections = metrics, connections
    return connect


def errors_counted(metrics, code):
    return metrics.registry.get_sample_value("copilot_errors_total", {"code": code}) or 0


def test_a_key_error_from_the_service_is_an_internal_error_with_its_traceback_in_the_log(copilot, caplog):
    client = copilot()
    with caplog.at_level(logging.ERROR, logger="copilot.realtime"):
        ack = client.emit("transcript.snippet", {"conversation_id": "c-1"}, namespace=NAMESPACE, callback=True)
    assert ack == {"ok": False, "error": {"code": "internal_error",
                                          "message": "the server failed to process this event"}}
    logged = [r for r in caplog.records if r.name == "copilot.realtime" and r.levelno == logging.ERROR]
    assert len(logged) == 1 and isinstance(logged[0].exc_info[1], KeyError)
    assert "transcript.snippet" in logged[0].getMessage()
    assert errors_counted(copilot.metrics, "internal_error") == 1
    again = client.emit("conversation.join", {"conversation_id": "c-1"}, namespace=NAMESPACE, callback=True)
    assert again["error"]["code"] == "unknown_conversation"  # the connection stays, and the next event is answered
    assert errors_counted(copilot.metrics, "unknown_conversation") == 1


def test_an_event_from_a_connection_without_an_identity_is_answered_not_authenticated(copilot):
    client = copilot()
    (sid,) = copilot.connections.items
    copilot.connections.remove(sid)  # as when its disconnect is handled before an event it had sent
    ack = client.emit("conversation.join", {"conversation_id": "c-1"}, namespace=NAMESPACE, callback=True)
    assert ack["error"]["code"] == "not_authenticated"
    assert errors_counted(copilot.metrics, "not_authenticated") == 1


def test_unknown_events_and_bad_shapes_are_answered_by_the_one_error_handler(copilot):
    client = copilot()
    unknown = client.emit("conversation.frobnicate", {}, namespace=NAMESPACE, callback=True)
    assert unknown["error"]["code"] == "unknown_event"
    two = client.emit("conversation.join", {}, {}, namespace=NAMESPACE, callback=True)
    assert two["error"] == {"code": "invalid_payload", "message": "send one JSON object per event"}
    assert errors_counted(copilot.metrics, "unknown_event") == 1
    assert errors_counted(copilot.metrics, "invalid_payload") == 1


def test_a_connection_refused_by_the_error_handler_is_not_counted_in(copilot):
    refused = copilot(with_token=False)
    assert not refused.is_connected(NAMESPACE)
    assert len(copilot.connections) == 0
    assert copilot.metrics.registry.get_sample_value("copilot_connections_total", {"result": "refused"}) == 1
    assert copilot().is_connected(NAMESPACE)


def test_a_clients_mistake_is_logged_at_debug_and_a_store_failure_at_warning_once_per_interval(caplog):
    now = [100.0]
    answers = AnswerLog(logging.getLogger("copilot.test.answers"), every_s=10, clock=lambda: now[0])
    with caplog.at_level(logging.DEBUG, logger="copilot.test.answers"):
        answers.answered("transcript.snippet", InvalidPayload("no text"))
        for _ in range(3):
            answers.answered("transcript.snippet", StoreUnavailable("Redis is down"))
        now[0] += 10
        answers.answered("conversation.start", StoreUnavailable("Redis is down"))
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("DEBUG", "transcript.snippet answered invalid_payload: no text"),
        ("WARNING", "transcript.snippet answered store_unavailable: Redis is down"),
        ("WARNING", "conversation.start answered store_unavailable: Redis is down (2 more answered so since the "
                    "last line)"),
    ]
