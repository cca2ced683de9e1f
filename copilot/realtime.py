"""Socket.IO transport, namespace /copilot: authenticate on connect, then thin handlers that validate, call the
service and emit. Every client event gets an acknowledgment; no error closes the connection.
"""
from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from flask import request
from flask_socketio import ConnectionRefusedError, SocketIO, join_room, leave_room

from copilot.errors import CopilotError, InvalidPayload, error_body
from copilot.metrics import Metrics
from copilot.protocol import EVENTS
from copilot.security import Identity, TokenBucket, Tokens
from copilot.service import CopilotService, Reply

NAMESPACE = "/copilot"
log = logging.getLogger("copilot.realtime")


class Connections:
    """Who each live connection is, and its rate limit (connections are sticky to one worker)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.items: dict[str, tuple[Identity, TokenBucket]] = {}
        self.lock = threading.Lock()

    def add(self, sid: str, identity: Identity) -> None:
        with self.lock:
            self.items[sid] = (identity, TokenBucket(self.rate, self.burst))

    def remove(self, sid: str) -> None:
        with self.lock:
            self.items.pop(sid, None)

    def admit(self, sid: str) -> Identity:
        """The identity of a connection that may send one more event (or RateLimited)."""
        identity, bucket = self.items[sid]
        with self.lock:
            bucket.take()
        return identity

    def __len__(self) -> int:
        return len(self.items)


class InlineReader:
    """simple-websocket's `thread_class` for LoopWebSocket: starts nothing, because the connection's own task reads."""

    name = "inline"

    def __init__(self, target: Callable[[], None]) -> None:
        pass

    def start(self) -> None:
        pass


def serve_websockets(socketio: SocketIO, max_bytes: int) -> None:
    """Engine.IO's WebSocket class for this server, changed in two ways; Engine.IO has no option for either.
    - A message past max_bytes is refused (close code 1009) while it arrives. Engine.IO only checks a message's
      size once the whole of it has been buffered, so one client could stream an endless fragmented message into
      the worker's memory.
    - The connection's own task reads its frames. simple-websocket starts a reader task per connection that hands
      each message over through an event; on the event loop that task holds about 8 KB, and the hand-over is one
      more switch per message. A silent peer times out after the ping interval and timeout."""
    eio = socketio.server.eio
    base = eio._async["websocket"]
    if base is None or getattr(base, "inline", False):
        return
    from wsproto.frame_protocol import CloseReason
    from wsproto.utilities import LocalProtocolError

    class LoopWebSocket(base):
        inline = True

        def __init__(self, handler: Any, server: Any, **kwargs: Any) -> None:
            super().__init__(handler, server, **kwargs)
            self.server_args.update(max_message_size=max_bytes, thread_class=InlineReader)

        def __call__(self, environ: dict, start_response: Callable) -> Any:
            try:
                return super().__call__(environ, start_response)
            finally:  # what simple-websocket's reader would have done: end the connection, close its socket
                ws = getattr(self, "ws", None)
                if ws is not None:
                    ws.connected = False
                    with contextlib.suppress(OSError):  # under gevent the socket is a duplicate: shut both
                        ws.sock.shutdown(socket.SHUT_RDWR)
                    ws.sock.close()

        @property
        def socket(self) -> socket.socket:
            """Engine.IO sets its read timeout (ping interval plus ping timeout) on this attribute where it has one:
            a silent peer then ends wait() below."""
            return self.ws.sock

        def wait(self) -> Any:
            """The next message, or None once the connection has ended."""
            ws = self.ws
            while ws.connected and not ws.input_buffer:
                try:
                    data = ws.sock.recv(ws.receive_bytes)
                    if not data:
                        raise ConnectionResetError("closed by the peer")
                    ws.ws.receive_data(data)
                    ws.connected = ws._handle_events()
                except TimeoutError:  # a silent peer: no pong within the ping interval and timeout
                    with contextlib.suppress(Exception):
                        ws.close(CloseReason.POLICY_VIOLATION, "no traffic within the ping timeout")
                    ws.connected = False
                except (OSError, LocalProtocolError):
                    ws.connected = False
            return ws.input_buffer.pop(0) if ws.input_buffer else None
    eio._async = {**eio._async, "websocket": LoopWebSocket}


class SharedPinger:
    """Sends every connection's Engine.IO pings from one task. Engine.IO itself starts a task per connection that
    sleeps out the ping interval, and on the event loop each sleeping task holds about 8 KB (its greenlet and
    Python stack): a fifth of what a connection costs. Every connection waits the same interval, so appending to
    a FIFO keeps it in due order."""

    def __init__(self, eio: Any) -> None:
        self.eio = eio
        self.due: deque[tuple[float, Any]] = deque()
        self.wake = eio.create_event()
        self.task = None

    def schedule(self, sock: Any) -> None:
        """Engine.IO's Socket.schedule_ping, with the wait kept here instead of in a task of its own."""
        if not sock.last_ping:  # the previous cycle has not ended (no PONG yet)
            return
        sock.last_ping = None
        self.due.append((time.monotonic() + self.eio.ping_interval, sock))
        if self.task is None:
            self.task = self.eio.start_background_task(self._run)
        self.wake.set()

    def _run(self) -> None:
        from engineio import packet

        while True:
            if not self.due:
                self.wake.clear()
                self.wake.wait()
                continue
            wait = self.due[0][0] - time.monotonic()
            if wait > 0:
                self.eio.sleep(wait)
                continue
            _, sock = self.due.popleft()
            if sock.closing or sock.closed:
                continue
            sock.last_ping = time.time()
            try:
                sock.send(packet.Packet(packet.PING))
            except Exception:  # one connection's failure must not stop everyone's pings
                log.exception("ping to %s failed", sock.sid)


def share_pings(socketio: SocketIO) -> None:
    """Route this server's Engine.IO pings through one SharedPinger (for the event loop, where a task per
    connection costs memory; threads keep Engine.IO's own). Engine.IO has no option for it: Socket.schedule_ping
    is replaced once, and sends to the server's pinger where the server has one."""
    from engineio.socket import Socket

    socketio.server.eio.copilot_pinger = SharedPinger(socketio.server.eio)
    if getattr(Socket.schedule_ping, "shared", False):
        return
    own = Socket.schedule_ping

    def schedule_ping(sock: Any) -> None:
        pinger = getattr(sock.server, "copilot_pinger", None)
        return pinger.schedule(sock) if pinger is not None else own(sock)
    schedule_ping.shared = True
    Socket.schedule_ping = schedule_ping


def register(socketio: SocketIO, service: CopilotService, tokens: Tokens, metrics: Metrics,
             rate: float, burst: int) -> Connections:
    """Attach the /copilot handlers to a SocketIO server."""
    connections = Connections(rate, burst)

    @socketio.on("connect", namespace=NAMESPACE)
    def connect(auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            identity = tokens.verify(token)
        except CopilotError as error:
            metrics.connections.labels("refused").inc()
            raise ConnectionRefusedError(str(error), error_body(error)["error"]) from None
        connections.add(request.sid, identity)
        metrics.connections.labels("accepted").inc()

    @socketio.on("disconnect", namespace=NAMESPACE)
    def disconnect(*_: Any) -> None:
        connections.remove(request.sid)

    def deliver(reply: Reply) -> dict:
        join_room(reply.room)  # acting on a conversation (re)joins its room, so a reconnect resumes delivery
        for event, payload in reply.emits:
            socketio.emit(event, payload, to=reply.room, namespace=NAMESPACE)
        if reply.leave:
            leave_room(reply.room)
        if reply.then:
            socketio.sleep(0)  # let the writers send the emits before the bookkeeping runs
            for work in reply.then:
                work()
        return reply.ack

    def handler(method: Callable[[Identity, Any], Reply]) -> Callable[..., dict]:
        def handle(*args: Any) -> dict:
            try:
                if len(args) > 1:
                    raise InvalidPayload("send one JSON object per event")
                identity = connections.admit(request.sid)
                return deliver(method(identity, args[0] if args else None))
            except CopilotError as error:
                metrics.errors.labels(error.code).inc()
                return error_body(error)
            except KeyError:
                return error_body(InvalidPayload("this connection is not authenticated; reconnect with a token"))
            except Exception:  # noqa: BLE001 - a handler must never take the worker or the connection down
                log.exception("unexpected error in a Socket.IO handler")
                metrics.errors.labels("internal_error").inc()
                return {"ok": False, "error": {"code": "internal_error", "message": "the server failed to "
                                                                                    "process this event"}}
        return handle

    methods = {"conversation.start": service.start, "transcript.snippet": service.snippet,
               "conversation.mode": service.mode, "suggestion.feedback": service.feedback,
               "conversation.transfer": service.transfer, "conversation.end": service.end,
               "conversation.join": service.join}
    assert set(methods) == set(EVENTS)
    for name, method in methods.items():
        socketio.on_event(name, handler(method), namespace=NAMESPACE)

    @socketio.on("*", namespace=NAMESPACE)
    def unknown(event: str, *_: Any) -> dict:
        metrics.errors.labels("unknown_event").inc()
        return {"ok": False, "error": {"code": "unknown_event", "message": f"there is no event '{event}'; see the "
                                                                          "protocol in the README"}}

    return connections
