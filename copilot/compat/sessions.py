"""A guard in front of the Engine.IO handlers Socket.IO registered, the Engine.IO session behind a Socket.IO sid,
and Engine.IO's decoding errors told apart from its other errors.

Upstream gaps:
- The guard: Socket.IO has no hook before it handles an Engine.IO session: no deadline for a session that joins no
  namespace (the JavaScript server's connectTimeout has no Python counterpart), no cap per address, and a binary
  event's attachments buffered with no cap on their count. So the handlers python-socketio registers with Engine.IO's
  public `on` (its private _handle_eio_connect, _message and _disconnect(eio_sid, reason)) are wrapped, and its
  manager's eio_sid_from_sid maps a Socket.IO sid back. Drop this when python-socketio has a connect timeout
  and a cap on attachments.
- The short line: Engine.IO raises a plain ValueError for a client's undecodable packet and logs its traceback
  (0.8 KB a request), so only the source file of the innermost frame tells it from a bug. Drop this when
  Engine.IO raises an exception class of its own there.
Outside a window the guard is not installed (Socket.IO's handlers run alone) or every error keeps its traceback.
"""
from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from typing import Any, Protocol

from copilot.compat.seam import Window, supported

# Server.__init__ registers _handle_eio_connect(eio_sid, environ), _message(eio_sid, data) and
# _disconnect(eio_sid, reason) with eio.on, the last with its reason since 5.12.0; manager.eio_sid_from_sid since 5.0.1.
SOCKETIO = Window("python-socketio", "5.12", "6")
# handlers{} and on(); a connect handler's return value other than True becomes the 401's JSON body; a reason for
# the disconnect handler since 4.11.0 (what python-socketio 5.12 requires); decoding in engineio/packet.py, payload.py.
ENGINEIO = Window("python-engineio", "4.11", "5")
EVENTS = ("connect", "message", "disconnect")
DECODERS = (("engineio", "packet.py"), ("engineio", "payload.py"))


class SessionGuard(Protocol):
    """What install_session_guard puts in front of Socket.IO's Engine.IO handlers."""

    def admit(self, eio_sid: str, environ: dict) -> Any:
        """None to let Socket.IO connect the session, or Engine.IO's refusal (the 401's body)."""

    def receive(self, eio_sid: str, data: Any, handle: Callable[[Any], Any]) -> Any:
        """Take in one message; `handle` hands a message to Socket.IO."""

    def forget(self, eio_sid: str) -> None:
        """The session has ended (Socket.IO has handled its disconnect)."""


def install_session_guard(server: Any, guard: SessionGuard, version_of: Callable[[str], str] = metadata.version) -> bool:
    """Put `guard` in front of the Engine.IO handlers this Socket.IO server registered, keeping each (a second
    install replaces the guard); False (and one log line) outside the windows, where Socket.IO's run alone."""
    eio = server.eio
    stock = vars(eio).get("copilot_stock_handlers") or {event: eio.handlers.get(event) for event in EVENTS}
    if not supported("the session guard", (SOCKETIO, ENGINEIO), "no join deadline and no per-address cap for "
                     "sessions not yet on /copilot, and one that sends what the protocol lacks stays open (the JSON "
                     "serializer still refuses it, buffering nothing)", version_of):
        return False
    on_connect, on_message, on_disconnect = (stock[event] for event in EVENTS)

    def connect(eio_sid: str, environ: dict) -> Any:
        refusal = guard.admit(eio_sid, environ)
        return on_connect(eio_sid, environ) if refusal is None else refusal

    def message(eio_sid: str, data: Any) -> Any:
        sock = eio.sockets.get(eio_sid)
        if sock is None or sock.closed:  # hung up (hang_up): what its reader had buffered goes unanswered
            return None
        return guard.receive(eio_sid, data, lambda text: on_message(eio_sid, text))

    def disconnect(eio_sid: str, reason: Any = None) -> Any:
        try:
            return on_disconnect(eio_sid, reason)
        finally:
            guard.forget(eio_sid)

    eio.copilot_stock_handlers = stock
    for event, handler in zip(EVENTS, (connect, message, disconnect), strict=True):
        eio.on(event, handler)
    return True


def uninstall_session_guard(server: Any) -> None:
    """Give this server's Engine.IO back the handlers Socket.IO registered."""
    stock = vars(server.eio).pop("copilot_stock_handlers", None) or {}
    for event, handler in stock.items():
        server.eio.on(event, handler)


def eio_sid_of(server: Any, sid: str, namespace: str) -> str | None:
    """The Engine.IO session of a Socket.IO connection, or None once it has left the namespace."""
    return server.manager.eio_sid_from_sid(sid, namespace)


def has_session(eio: Any, eio_sid: str) -> bool:
    """Whether Engine.IO still holds this session (it may be closing)."""
    return eio_sid in eio.sockets


def raised_while_decoding(error: BaseException | None) -> bool:
    """Whether Engine.IO's packet or payload decoder raised `error` (a client's bad input, not a bug)."""
    if not isinstance(error, (ValueError, TypeError)) or error.__traceback__ is None:
        return False
    tb = error.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tuple(tb.tb_frame.f_code.co_filename.replace("\\", "/").split("/")[-2:]) in DECODERS


def never(error: BaseException | None) -> bool:
    """No error is Engine.IO's decoding error (outside its window)."""
    return False


def decoding_errors(version_of: Callable[[str], str] = metadata.version) -> Callable[[BaseException | None], bool]:
    """raised_while_decoding where Engine.IO is inside its window; outside it `never` (and one log line)."""
    if supported("the short line for Engine.IO's decoding errors", (ENGINEIO,),
                 "a client's undecodable Engine.IO packet is logged with its traceback", version_of):
        return raised_while_decoding
    return never
