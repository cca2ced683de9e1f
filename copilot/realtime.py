"""Socket.IO transport, namespace /copilot: authenticate on connect, then thin handlers that validate, call the
service and emit. Every client event gets an acknowledgment; no error closes the connection.
"""
from __future__ import annotations

import logging
import threading
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


def cap_websocket_messages(socketio: SocketIO, max_bytes: int) -> None:
    """Make the WebSocket reader refuse (close code 1009) a message past max_bytes while it arrives. Engine.IO only
    checks a message's size once the whole of it has been buffered, so without this one client could stream an
    endless fragmented message into the worker's memory. Engine.IO has no option for it: its WebSocket class is
    wrapped for this server only."""
    eio = socketio.server.eio
    base = eio._async["websocket"]
    if base is None or getattr(base, "capped", False):
        return

    class Capped(base):
        capped = True

        def __init__(self, handler: Any, server: Any, **kwargs: Any) -> None:
            super().__init__(handler, server, **kwargs)
            self.server_args["max_message_size"] = max_bytes
    eio._async = {**eio._async, "websocket": Capped}


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
