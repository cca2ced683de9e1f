"""Socket.IO transport, namespace /copilot: authenticate on connect, then thin handlers that validate, call the
service and emit. Every client event gets an acknowledgment; no error closes the connection. Below the namespace,
the Engine.IO sessions are guarded: JSON packets only, and a deadline and a per-address cap for joining /copilot
(copilot.compat puts the guard in front of Socket.IO's handlers).
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

from flask import Flask, request
from flask_socketio import ConnectionRefusedError, SocketIO, join_room, leave_room
from socketio import packet as sio_packet

from copilot.assist import CopilotService, Reply
from copilot.compat import (
    decoding_errors,
    eio_sid_of,
    hang_up,
    has_session,
    install_session_guard,
    install_transport,
    raised_while_decoding,
)
from copilot.errors import (
    AnswerLog,
    CopilotError,
    Flooding,
    Forbidden,
    InvalidPayload,
    NotAuthenticated,
    RateLimited,
    TokenExpired,
    TooManyConnections,
    TooManyPending,
    UnknownEvent,
    error_body,
    internal_error_body,
)
from copilot.floor import BoardChange
from copilot.metrics import Metrics
from copilot.protocol import EVENTS, validate
from copilot.security import AllowedOrigins, Identity, Lobby, RateLimits, TokenBucket, Tokens, take_together
from copilot.settings import Settings

NAMESPACE = "/copilot"
MAX_MESSAGE_BYTES = 1_000_000  # largest Socket.IO message; a snippet is at most COPILOT_MAX_TEXT_CHARS anyway
log = logging.getLogger("copilot.realtime")


class Connections:
    """Who each live connection is, and the rate limits its events spend: its own, its agent's and its tenant's,
    the last two shared by all their connections to this worker (connections are sticky to one worker). An
    identity may hold `max_per_agent` connections here. A connection's refusals spend from a bucket of their own
    (2 x burst, refilled at 2 x burst a second): one that keeps sending past that is Flooding, and is closed."""

    def __init__(self, rate: float = Settings.rate_per_s, burst: int = Settings.rate_burst,
                 agent_rate: float = Settings.agent_rate_per_s, agent_burst: int = Settings.agent_rate_burst,
                 tenant_rate: float = Settings.tenant_rate_per_s, tenant_burst: int = Settings.tenant_rate_burst,
                 max_per_agent: int = Settings.max_connections_per_agent,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.items: dict[str, tuple[Identity, TokenBucket, TokenBucket]] = {}  # sid -> (who, events, refusals)
        self.agents = RateLimits(agent_rate, agent_burst, "agent", clock)
        self.tenants = RateLimits(tenant_rate, tenant_burst, "tenant", clock)
        self.max_per_agent = max_per_agent
        self.per_agent: Counter[tuple[str, str]] = Counter()
        self.turns: dict[str, threading.Lock] = {}  # sid -> held while one of its events is handled
        self.lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Connections:
        """The limits the settings give each connection, agent and tenant (on /copilot, and again on /floor)."""
        return cls(settings.rate_per_s, settings.rate_burst, settings.agent_rate_per_s, settings.agent_rate_burst,
                   settings.tenant_rate_per_s, settings.tenant_rate_burst, settings.max_connections_per_agent)

    def add(self, sid: str, identity: Identity) -> None:
        """Count a new connection in, or raise TooManyConnections when its identity already has its share."""
        key = (identity.tenant, identity.agent)
        with self.lock:
            if sid in self.items:
                return
            if self.per_agent[key] >= self.max_per_agent:
                raise TooManyConnections(f"this agent already has {self.max_per_agent} open connections to this "
                                         "server; close one first")
            self.per_agent[key] += 1
            self.items[sid] = (identity, TokenBucket(self.rate, self.burst, self.clock),
                               TokenBucket(2 * self.burst, 2 * self.burst, self.clock))
            self.turns[sid] = threading.Lock()

    def in_turn(self, sid: str) -> Any:
        """A lock that one connection's events take in turn. Socket.IO handles each event in a task of its own, so
        without it a snippet sent right after its conversation.start, before the ack, could be handled first
        (unknown_conversation). The event loop wakes a lock's waiters in the order they came, which is the order
        the events arrived; connections still run side by side."""
        return self.turns.get(sid) or contextlib.nullcontext()

    def remove(self, sid: str) -> None:
        with self.lock:
            entry = self.items.pop(sid, None)
            self.turns.pop(sid, None)
            if entry is not None:
                key = (entry[0].tenant, entry[0].agent)
                self.per_agent[key] -= 1
                if self.per_agent[key] <= 0:
                    del self.per_agent[key]

    def identity(self, sid: str) -> Identity:
        """Who a connection is; NotAuthenticated when it holds no identity here (it never connected with a token,
        or its disconnect was handled before an event it had sent)."""
        return self.entry(sid)[0]

    def entry(self, sid: str) -> tuple[Identity, TokenBucket, TokenBucket]:
        """A connection's identity and its two buckets (events, refusals), or NotAuthenticated as identity says."""
        entry = self.items.get(sid)
        if entry is None:
            raise NotAuthenticated("this connection is not authenticated; reconnect with a token")
        return entry

    def refresh(self, sid: str, identity: Identity) -> None:
        """Carry on with a new token's identity, which must name the same tenant and agent (or Forbidden)."""
        with self.lock:
            current, bucket, refusals = self.entry(sid)
            if (identity.tenant, identity.agent) != (current.tenant, current.agent):
                raise Forbidden("token.refresh takes a token for the same tenant and agent; connect again "
                                "to change who you are")
            self.items[sid] = (identity, bucket, refusals)

    def admit(self, sid: str, expired_ok: bool = False) -> Identity:
        """The identity of a connection that may send one more event; NotAuthenticated, RateLimited (Flooding
        once it has been refused far too often), or TokenExpired once the connection's token has run out (the
        connection stays open for token.refresh)."""
        with self.lock:
            identity, bucket, refusals = self.entry(sid)
            try:
                take_together([bucket, self.agents[identity.tenant, identity.agent], self.tenants[identity.tenant]])
            except RateLimited as error:
                if refusals.refill() < 1:
                    raise Flooding(f"{error} (this connection kept sending after being refused, and is "
                                   "closed)") from None
                refusals.tokens -= 1
                raise
        if not expired_ok and identity.expired():
            raise TokenExpired("this connection's token has expired; send token.refresh with a new one")
        return identity

    def admit_tenant(self, tenant: str) -> None:
        """Spend one of the tenant's events for a transcript source's utterance (copilot.sources): its model
        time, shared with its agents' events; RateLimited when the tenant has none left."""
        with self.lock:
            self.tenants[tenant].take()

    def __len__(self) -> int:
        return len(self.items)


class BadPacket(ValueError):
    """A client's Socket.IO packet that this protocol does not have: binary, malformed, or of a type a client
    never sends. The session is closed; nothing of it is buffered."""


class JsonPacket(sio_packet.Packet):
    """Socket.IO's packet class (the server's `serializer`), refusing while it decodes what our JSON-only protocol
    has no use for. Socket.IO itself buffers a binary event's attachments until the count in its header has
    arrived, with no cap on that count or on their bytes: 9,999,999,999 announced, then 900 KB frames, grew a
    worker by 850 MB that stayed. BinaryEvents takes binary packets first; this is the backstop.

    It never sends binary either (`uses_binary_events`, the switch python-socketio's own MsgPackPacket turns off):
    otherwise every packet the server sends is walked item by item looking for bytes first, which cost 80 ms of
    the loop's time for a floor snapshot of 2,000 rows, more than writing its JSON."""

    ALLOWED = (sio_packet.CONNECT, sio_packet.DISCONNECT, sio_packet.EVENT, sio_packet.ACK)
    uses_binary_events = False

    def decode(self, encoded_packet: Any) -> int:
        if not isinstance(encoded_packet, str):
            raise BadPacket("binary messages are not part of this protocol (JSON only)")
        if encoded_packet[:1] in (str(sio_packet.BINARY_EVENT), str(sio_packet.BINARY_ACK)):
            raise BadPacket("binary events are not part of this protocol (JSON only)")
        try:
            attachments = super().decode(encoded_packet)
        except Exception as error:  # noqa: BLE001 - RecursionError too: "[" x 5000 is undecodable, not a crash
            raise BadPacket(f"undecodable packet: {type(error).__name__}: {str(error)[:80]}") from None
        if self.packet_type not in self.ALLOWED or attachments:
            raise BadPacket(f"a client never sends packet type {self.packet_type!r}")
        if self.packet_type == sio_packet.EVENT and not (
                isinstance(self.data, list) and self.data and isinstance(self.data[0], str)):
            raise BadPacket("an event is a JSON array that starts with the event's name")
        if self.packet_type == sio_packet.ACK and not isinstance(self.data, list):
            raise BadPacket("an acknowledgment is a JSON array")
        return 0


BINARY_PAYLOAD = "(binary data)"  # what a binary event's payload becomes; every handler refuses it
MAX_ATTACHMENTS = 10


class BinaryEvents:
    """Binary events answered without keeping their attachments: each attachment is dropped as it arrives, and
    the event then reaches its handler with BINARY_PAYLOAD, which gets an invalid_payload acknowledgment. A
    header announcing more than MAX_ATTACHMENTS, or a binary message that no header announced, is a BadPacket."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[int, str | None]] = {}  # session -> (attachments still to drop, event)

    def screen(self, eio_sid: str, data: Any) -> str | None:
        """The text packet Socket.IO should handle for this message, or None when there is none (yet)."""
        if not isinstance(data, str):
            left, event = self.pending.pop(eio_sid, (0, None))
            if left == 0:
                raise BadPacket("binary messages are not part of this protocol (JSON only)")
            if left > 1:
                self.pending[eio_sid] = (left - 1, event)
                return None
            return event
        if eio_sid in self.pending:
            raise BadPacket("a packet arrived before the binary event's attachments were complete")
        if data[:1] not in (str(sio_packet.BINARY_EVENT), str(sio_packet.BINARY_ACK)):
            return data
        try:
            header = sio_packet.Packet(encoded_packet=data)
        except Exception as error:  # noqa: BLE001 - as in JsonPacket.decode
            raise BadPacket(f"undecodable binary packet: {type(error).__name__}: {str(error)[:80]}") from None
        if header.attachment_count > MAX_ATTACHMENTS:
            raise BadPacket(f"a binary packet announced {header.attachment_count} attachments; this protocol is "
                            "JSON only")
        event = None
        if header.packet_type == sio_packet.BINARY_EVENT:
            if not (isinstance(header.data, list) and header.data and isinstance(header.data[0], str)):
                raise BadPacket("an event is a JSON array that starts with the event's name")
            event = JsonPacket(sio_packet.EVENT, [header.data[0], BINARY_PAYLOAD], header.namespace,
                               header.id).encode()
        if header.attachment_count == 0:
            return event
        self.pending[eio_sid] = (header.attachment_count, event)
        return None

    def forget(self, eio_sid: str) -> None:
        self.pending.pop(eio_sid, None)


class BadInputLog(logging.Filter):
    """One short line for a client's bad input instead of the traceback Engine.IO logs (0.8 KB a request, which
    let anyone fill the log): the first at its own level, the rest at INFO, Engine.IO's own habit for bad
    handshakes. As a filter on Engine.IO's logger it shortens only a BadPacket and the errors that
    `from_engineio_decoder` (copilot.compat) says Engine.IO raised decoding; every other error keeps its traceback."""

    def __init__(self, from_engineio_decoder: Callable[[BaseException | None], bool] = raised_while_decoding) -> None:
        super().__init__()
        self.from_engineio_decoder = from_engineio_decoder
        self.seen = False

    def line(self, what: str, level: int) -> tuple[int, str]:
        """The level and text for one piece of bad input."""
        if self.seen:
            return logging.INFO, f"bad input from a client: {what}"
        self.seen = True
        return level, f"bad input from a client: {what} (further bad input is logged at INFO)"

    def report(self, logger: logging.Logger, what: str) -> None:
        """Log one piece of bad input that the transport caught itself."""
        logger.log(*self.line(what, logging.WARNING))

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or not self.from_decoding(record.exc_info[1]):
            return True
        error = record.exc_info[1]
        level, text = self.line(f"{record.getMessage()}: {type(error).__name__}: {str(error)[:80]}", record.levelno)
        record.msg, record.args, record.exc_info, record.exc_text = text, (), None, None
        record.levelno, record.levelname = level, logging.getLevelName(level)
        return logging.getLogger(record.name).isEnabledFor(level)

    def from_decoding(self, error: BaseException | None) -> bool:
        """Whether `error` is a client's bad input: refused by our decoder, or by Engine.IO's."""
        return isinstance(error, BadPacket) or self.from_engineio_decoder(error)


def quiet_bad_input(socketio: SocketIO) -> BadInputLog:
    """This server's Engine.IO logger, with client decoding errors shortened to a line (added once per logger);
    the send-queue cap reports through it too (copilot.compat)."""
    logger = socketio.server.eio.logger
    quiet = next((existing for existing in logger.filters if isinstance(existing, BadInputLog)), None)
    if quiet is None:
        quiet = BadInputLog(decoding_errors())
        logger.addFilter(quiet)
    socketio.server.eio.copilot_quiet = quiet
    return quiet


class JoinDeadline:
    """Closes the Engine.IO sessions that have stayed in the lobby past its deadline: one task that looks once a
    second while anyone waits, not a timer per session."""

    def __init__(self, eio: Any, lobby: Lobby, lock: threading.Lock) -> None:
        self.eio, self.lobby, self.lock = eio, lobby, lock
        self.task = None

    def wake(self) -> None:
        """Make sure the task runs (call with the lock held)."""
        if self.task is None:
            self.task = self.eio.start_background_task(self._run)

    def _run(self) -> None:
        while True:
            self.eio.sleep(min(1.0, self.lobby.deadline_s / 4))
            with self.lock:
                overdue = list(self.lobby.overdue())
                if not overdue and not len(self.lobby):
                    self.task = None
                    return
            for sid in overdue:
                try:
                    self.eio.disconnect(sid)
                except Exception:  # one session's failure must not keep the others open
                    log.exception("closing session %s past the join deadline failed", sid)


class Sessions:
    """One server's Engine.IO sessions, guarded below Socket.IO: a session must connect to /copilot within the
    lobby's deadline, and an address may hold only so many sessions that have not; binary events are answered
    without buffering (BinaryEvents); a session that sends a packet this protocol lacks is closed. The addresses
    are REMOTE_ADDR, which ProxyFix sets behind COPILOT_PROXY_HOPS proxies."""

    def __init__(self, eio: Any, lobby: Lobby, quiet: BadInputLog) -> None:
        self.eio, self.lobby, self.quiet = eio, lobby, quiet
        self.binary = BinaryEvents()
        self.lock = threading.Lock()
        self.deadline = JoinDeadline(eio, lobby, self.lock)

    def admit(self, eio_sid: str, environ: dict) -> Any:
        """None to let Socket.IO connect the session, or the refusal of an address that holds its share."""
        with self.lock:
            try:
                self.lobby.enter(eio_sid, environ.get("REMOTE_ADDR") or "")
            except TooManyPending as error:
                return error_body(error)["error"]  # Engine.IO answers 401 with this {code, message} as its body
            self.deadline.wake()
        return None

    def receive(self, eio_sid: str, data: Any, handle: Callable[[Any], Any]) -> Any:
        """Hand one message to Socket.IO (`handle`) once BinaryEvents has screened it; close the session on a
        BadPacket."""
        try:
            with self.lock:
                text = self.binary.screen(eio_sid, data)
            return None if text is None else handle(text)
        except BadPacket as error:
            self.quiet.report(log, f"{error}; session closed")
            self.eio.disconnect(eio_sid)

    def forget(self, eio_sid: str) -> None:
        with self.lock:
            self.lobby.leave(eio_sid)
            self.binary.forget(eio_sid)

    def joined(self, eio_sid: str, on_copilot: bool, address: str) -> None:
        """Out of the lobby on joining /copilot; back in (uncapped, with a new deadline) on leaving it while the
        Engine.IO session stays."""
        with self.lock:
            if on_copilot:
                self.lobby.leave(eio_sid)
            elif has_session(self.eio, eio_sid):
                self.lobby.enter(eio_sid, address, capped=False)
                self.deadline.wake()


def guard_sessions(socketio: SocketIO, lobby: Lobby) -> Sessions | None:
    """Put Sessions in front of this server's Socket.IO handlers (copilot.compat); None where python-socketio or
    python-engineio is outside its window, and one log line says what runs instead."""
    sessions = Sessions(socketio.server.eio, lobby, quiet_bad_input(socketio))
    if not install_session_guard(socketio.server, sessions):
        return None
    socketio.server.copilot_sessions = sessions
    return sessions


def joined(socketio: SocketIO, sid: str, on_copilot: bool, namespace: str = NAMESPACE) -> None:
    """Take a session out of the lobby when it joins /copilot (or a lead's /floor, or a source's /ingest), and
    put it back (uncapped, with a new deadline) when it leaves but keeps its Engine.IO session."""
    sessions = getattr(socketio.server, "copilot_sessions", None)
    eio_sid = None if sessions is None else eio_sid_of(socketio.server, sid, namespace)
    if eio_sid is not None:
        environ = socketio.server.get_environ(sid, namespace) or {}
        sessions.joined(eio_sid, on_copilot, environ.get("REMOTE_ADDR") or "")


def answer_errors(socketio: SocketIO, namespace: str, connections: Connections, metrics: Metrics) -> None:
    """Make `socketio.on_error(namespace)` the one place an exception raised by one of the namespace's handlers
    becomes an answer and a log line: the event's acknowledgment (Flask-SocketIO acks with what it returns), or a
    refused connect. Anything but a CopilotError is a bug: internal_error, with its traceback in the log; the
    connection stays, unless it kept sending after its refusals (Flooding), which closes it."""
    quiet = quiet_bad_input(socketio)
    answers = AnswerLog(log)

    def flooding() -> None:
        eio_sid = eio_sid_of(socketio.server, request.sid, namespace)
        quiet.report(log, f"a connection kept sending after {2 * connections.burst} refusals; session closed")
        if eio_sid is not None:
            hang_up(socketio.server.eio, eio_sid)

    @socketio.on_error(namespace)
    def answer(error: Exception) -> dict:
        event = request.event["message"]
        if isinstance(error, CopilotError):
            body = error_body(error)
            answers.answered(event, error)
        else:
            body = internal_error_body()
            log.error("unexpected error in the %s handler of %s", namespace, event, exc_info=error)
        if event == "connect":
            connections.remove(request.sid)  # it may have been counted in before the failure
            metrics.connections.labels("refused").inc()
            raise ConnectionRefusedError(body["error"]["message"], body["error"])
        metrics.errors.labels(body["error"]["code"]).inc()
        if isinstance(error, Flooding):
            flooding()
        return body


def refresher(tokens: Tokens, connections: Connections, role: str = "agent", *others: str) -> Callable[[Any], dict]:
    """token.refresh: the connection carries on as the new token's identity (same tenant and agent, and at least
    `role` or one of `others`: a lead's /floor connection cannot carry on as an agent)."""
    def refresh(payload: Any) -> dict:
        data = validate("token.refresh", payload, 0)
        identity = tokens.verify(data["token"])
        identity.require(role, *others)
        connections.refresh(request.sid, identity)
        return {"ok": True, "expires": identity.expires, "role": identity.role}
    return refresh


def event_handler(connections: Connections, method: Callable[[Identity, Any], Any] | None,
                  deliver: Callable[[Any], dict], refresh: Callable[[Any], dict],
                  expired_ok: bool = False) -> Callable[..., dict]:
    """One event's handler: the connection's events in turn, each spending from its rate limits first, one JSON
    payload, then `method`'s reply delivered (or token.refresh, when method is None)."""
    def handle(*args: Any) -> dict:
        with connections.in_turn(request.sid):
            # Every event spends first, whatever it holds: token.refresh (no method) is allowed once the
            # token has expired, and rate-limited as any event.
            identity = connections.admit(request.sid, expired_ok=expired_ok or method is None)
            if len(args) > 1:
                raise InvalidPayload("send one JSON object per event")
            payload = args[0] if args else None
            if payload == BINARY_PAYLOAD:
                raise InvalidPayload("binary data is not part of this protocol; send JSON")
            return refresh(payload) if method is None else deliver(method(identity, payload))
    return handle


def deliver_to_rooms(socketio: SocketIO, board: Callable[[BoardChange], None], reply: Reply) -> dict:
    """Emit a Reply to every one of its rooms on /copilot without joining any (a REST call has no connection;
    with a message queue every worker's clients get it), share its board change with the floor, run its `then`,
    and return its ack."""
    to = reply.to  # every room of the reply; only a /copilot caller joins the conversation's
    for event, payload in reply.emits:
        socketio.emit(event, payload, to=to, namespace=NAMESPACE)
    if reply.emits:
        # let the writers send the emits now, not after the caller's answer (a REST response, a batch's next
        # utterance) or the bookkeeping
        socketio.sleep(0)
    if reply.board is not None:
        board(reply.board)
    for work in reply.then:
        work()
    return reply.ack


def admit_connection(socketio: SocketIO, tokens: Tokens, connections: Connections, metrics: Metrics, namespace: str,
                     auth: Any, *roles: str) -> Identity:
    """A connect to `namespace`: the token in `auth` of one of `roles` (else its error, which answer_errors turns
    into connect_error data), counted in and out of the lobby."""
    token = auth.get("token") if isinstance(auth, dict) else None
    identity = tokens.verify(token)
    identity.require(*roles)
    connections.add(request.sid, identity)
    joined(socketio, request.sid, True, namespace)
    metrics.connections.labels("accepted").inc()
    return identity


def refuse_unknown_events(socketio: SocketIO, namespace: str, connections: Connections,
                          deliver: Callable[[Any], dict], refresh: Callable[[Any], dict], hint: str) -> None:
    """Answer any event the namespace lacks with unknown_event (and `hint`); it spends and waits its turn as a
    known one does."""
    where = "" if namespace == NAMESPACE else f" on {namespace}"

    @socketio.on("*", namespace=namespace)
    def unknown(event: str, *_: Any) -> dict:
        def no_such_event(who: Identity, payload: Any) -> Any:
            raise UnknownEvent(f"there is no event '{event[:64]}'{where}; {hint}")
        return event_handler(connections, no_such_event, deliver, refresh, expired_ok=True)()


def register(socketio: SocketIO, service: CopilotService, tokens: Tokens, metrics: Metrics,
             connections: Connections, board: Callable[[BoardChange], None] = lambda change: None) -> Connections:
    """Attach the /copilot handlers to a SocketIO server; `board` takes what each event changed on the tenant's
    live floor (copilot.realtime_floor)."""

    @socketio.on("connect", namespace=NAMESPACE)
    def connect(auth: Any = None) -> None:
        # an integration token sends transcripts through /ingest or REST, and has no sidebar
        admit_connection(socketio, tokens, connections, metrics, NAMESPACE, auth, "agent")

    @socketio.on("disconnect", namespace=NAMESPACE)
    def disconnect(*_: Any) -> None:
        connections.remove(request.sid)
        joined(socketio, request.sid, False)

    def deliver(reply: Reply) -> dict:
        join_room(reply.room)  # acting on a conversation (re)joins its room, so a reconnect resumes delivery
        ack = deliver_to_rooms(socketio, board, reply)
        if reply.leave:  # after the emits, which this connection still gets
            leave_room(reply.room)
        return ack

    answer_errors(socketio, NAMESPACE, connections, metrics)
    refresh = refresher(tokens, connections)

    def handler(method: Callable[[Identity, Any], Reply] | None, expired_ok: bool = False) -> Callable[..., dict]:
        return event_handler(connections, method, deliver, refresh, expired_ok)

    methods = {"conversation.start": service.start, "transcript.snippet": service.snippet,
               "conversation.mode": service.mode, "suggestion.feedback": service.feedback,
               "conversation.transfer": service.transfer, "conversation.end": service.end,
               "conversation.join": service.join, "conversation.raise_hand": service.raise_hand,
               "token.refresh": None}
    assert set(methods) == set(EVENTS)
    for name, method in methods.items():
        socketio.on_event(name, handler(method), namespace=NAMESPACE)

    refuse_unknown_events(socketio, NAMESPACE, connections, deliver, refresh, "see the protocol in the README")

    return connections


def init_app(app: Flask, settings: Settings, service: CopilotService, tokens: Tokens, metrics: Metrics,
             board: Callable[[BoardChange], None] = lambda change: None) -> SocketIO:
    """The Socket.IO server in the settings' async mode (app.extensions["socketio"]), with the transport's patches
    (copilot.compat), the Engine.IO sessions guarded, and the /copilot handlers with each connection's, agent's
    and tenant's rate limits (app.extensions["copilot.connections"]); app.extensions["copilot.deliver"] delivers
    a Reply from outside a /copilot handler."""
    socketio = SocketIO(app, async_mode=settings.async_mode, message_queue=settings.redis_url or None,
                        cors_allowed_origins=AllowedOrigins(settings.allowed_origins),
                        max_http_buffer_size=MAX_MESSAGE_BYTES, ping_interval=settings.ping_interval_s,
                        ping_timeout=settings.ping_timeout_s, serializer=JsonPacket)
    install_transport(socketio.server.eio, MAX_MESSAGE_BYTES, event_loop=settings.async_mode == "gevent")
    guard_sessions(socketio, Lobby(settings.join_deadline_s, settings.max_pending_per_address))
    connections = Connections.from_settings(settings)
    app.extensions["copilot.connections"] = register(socketio, service, tokens, metrics, connections, board)
    app.extensions["copilot.deliver"] = partial(deliver_to_rooms, socketio, board)  # for copilot.sources
    return socketio
