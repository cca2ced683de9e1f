"""Engine.IO's WebSocket class for one server, replaced to cap a message while it streams in and to read each
connection's frames in the connection's own task.

Upstream gaps:
- The cap: Engine.IO applies max_http_buffer_size to a WebSocket message only once simple-websocket has buffered
  all of it (miguelgrinberg/python-engineio#260), so one client could stream an endless fragmented message into the
  worker's memory. simple-websocket's public `max_message_size` refuses it as it arrives (close code 1009), but
  Engine.IO passes no options to simple_websocket.Server, so the class that builds it is replaced to add that one
  argument. Drop this when python-engineio passes max_http_buffer_size on as max_message_size.
- The reader: simple-websocket starts a reader task per connection that hands each message over through an
  event; on the event loop that task holds about 8 KB, and the hand-over is one more switch per message. There is
  no option to read in the caller's task, so LoopWebSocket.wait runs a copy of simple-websocket 1.1's read loop
  (its private _handle_events and input_buffer), hence the narrow window: review it against each simple-websocket
  release (it has fixed that loop often), and drop it when the lead's sessions figure no longer shows the saving.
Outside simple-websocket's window the cap stays and its own reader runs; outside Engine.IO's, neither is installed.
"""
from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from importlib import metadata
from typing import Any

from copilot.compat.seam import Window, log, supported

ENGINEIO = Window("python-engineio", "4.9", "5")  # _async["websocket"] builds SimpleWebSocketWSGI(handler, server)
SIMPLE_WEBSOCKET = Window("simple-websocket", "1.1", "1.2")  # the read loop copied into LoopWebSocket.wait
YIELD_EVERY = 8  # messages a connection's reader takes in before the loop's other tasks run


class InlineReader:
    """simple-websocket's `thread_class` for LoopWebSocket: starts nothing, because the connection's own task reads."""

    name = "inline"

    def __init__(self, target: Callable[[], None]) -> None:
        pass

    def start(self) -> None:
        pass


def capped_websocket(base: type, max_bytes: int) -> type:
    """Engine.IO's WebSocket class `base`, building its simple-websocket server with max_message_size=max_bytes."""

    class CappedWebSocket(base):
        copilot_patched = True

        def __init__(self, handler: Any, server: Any, **kwargs: Any) -> None:
            super().__init__(handler, server, **kwargs)
            self.server_args.update(max_message_size=max_bytes)
            owner = getattr(handler, "__self__", None)  # the Engine.IO socket: hang_up cuts its connection here
            if owner is not None:
                owner.copilot_transport = self
    return CappedWebSocket


def loop_websocket(base: type, max_bytes: int, eio: Any) -> type:
    """capped_websocket(base), reading in the connection's own task. A silent peer times out after the ping
    interval and timeout (the read timeout Engine.IO sets on `socket`)."""
    from wsproto.frame_protocol import CloseReason
    from wsproto.utilities import LocalProtocolError

    class LoopWebSocket(capped_websocket(base, max_bytes)):
        def __init__(self, handler: Any, server: Any, **kwargs: Any) -> None:
            super().__init__(handler, server, **kwargs)
            self.server_args.update(thread_class=InlineReader)
            self.received = 0

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
                    wsgi_input = environ.get("wsgi.input")
                    rfile = getattr(wsgi_input, "rfile", wsgi_input)  # where simple-websocket found the socket
                    if ws.mode == "gevent" and hasattr(rfile, "raw"):
                        # Else gevent's server reads on, and parses what a client sent after a close by the
                        # server as a new request: a bad-request line and a BrokenPipe traceback in the log.
                        rfile.close()

        @property
        def socket(self) -> socket.socket:
            """Engine.IO sets its read timeout (ping interval plus ping timeout) on this attribute where it has one:
            a silent peer then ends wait() below."""
            return self.ws.sock

        def wait(self) -> Any:
            """The next message, or None once the connection has ended. Every YIELD_EVERY messages the task lets
            the others run first: a socket's recv returns at once while data waits, so a client sending in a tight
            loop kept the loop to itself (another tenant's acks took 21-30 s)."""
            self.received += 1
            if self.received % YIELD_EVERY == 0:
                eio.sleep(0)
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
    return LoopWebSocket


def install_websocket_reader(eio: Any, max_bytes: int, version_of: Callable[[str], str] = metadata.version) -> bool:
    """Give this Engine.IO server the capped WebSocket class, reading inline where simple-websocket is in its
    window; False (and one log line) where Engine.IO is outside its own, or serves WebSockets some other way."""
    base = eio._async.get("websocket")
    if base is None or getattr(base, "copilot_patched", False):
        return base is not None
    if not supported("the streamed WebSocket message cap", (ENGINEIO,),
                     "a message's size is checked only once all of it is buffered", version_of):
        return False
    from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI

    if not issubclass(base, SimpleWebSocketWSGI):  # gevent-websocket, for one, is not built this way
        log.warning("copilot.compat: Engine.IO serves WebSockets with %s, not simple-websocket, so the streamed "
                    "WebSocket message cap is not installed: a message's size is checked only once all of it is "
                    "buffered", base.__qualname__)
        return False
    inline = supported("the inline WebSocket reader", (SIMPLE_WEBSOCKET,),
                       "simple-websocket's own reader task per connection runs (the message cap stays)", version_of)
    eio.copilot_stock_websocket = base
    eio._async = {**eio._async,
                  "websocket": loop_websocket(base, max_bytes, eio) if inline else capped_websocket(base, max_bytes)}
    return True


def uninstall_websocket_reader(eio: Any) -> None:
    """Give this server back the WebSocket class Engine.IO chose (sessions already open keep theirs)."""
    base = vars(eio).pop("copilot_stock_websocket", None)
    if base is not None:
        eio._async = {**eio._async, "websocket": base}
