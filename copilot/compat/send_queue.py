"""A cap on each Engine.IO session's send queue, and hang_up, which closes a session without draining it.

Upstream gap: Engine.IO's send queue has no bound and no option for one (a maxsize was welcomed in
miguelgrinberg/Flask-SocketIO#311 but never added), so a client that sends but never reads grew it, and the
worker by hundreds of MB, with every acknowledgment. Drop this patch once python-engineio bounds that queue.
"""
from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable
from importlib import metadata
from typing import Any

from copilot.compat.seam import Replacement, Window, supported

MAX_QUEUED_PACKETS = 1000  # packets waiting for one connection's writer before the connection is closed
ENGINEIO = Window("python-engineio", "4.9", "5")  # Socket.send, .queue, .server and close(wait, abort) as read here
log = logging.getLogger("copilot.realtime")


def hang_up(eio: Any, eio_sid: str) -> None:
    """Close an Engine.IO session now: without waiting for its send queue to drain (a peer that does not read
    would hold the caller up), dropping what it still queues, and cutting its TCP connection if a WebSocket."""
    sock = eio.sockets.get(eio_sid)
    if sock is None:
        return
    sock.close(wait=False, abort=True)
    eio.sockets.pop(eio_sid, None)
    ws = getattr(getattr(sock, "copilot_transport", None), "ws", None)  # set by the WebSocket reader's patch
    if ws is not None:  # its reader and writer then fail at once, and the connection's task ends
        with contextlib.suppress(OSError):
            ws.sock.shutdown(socket.SHUT_RDWR)


def capped_send(sock: Any, pkt: Any) -> None:
    """Engine.IO's Socket.send, closing the session instead once its server's cap of packets waits."""
    cap = getattr(sock.server, "copilot_max_queued", None)
    if cap is None or sock.queue.qsize() < cap:
        return send_queue.original(sock, pkt)
    if not sock.closed:
        quiet = getattr(sock.server, "copilot_quiet", None)  # the transport's short-line log for bad clients
        what = f"{cap} packets waiting to be sent (the client does not read); session closed"
        if quiet is not None:
            quiet.report(log, what)
        else:
            log.warning("%s", what)
        hang_up(sock.server, sock.sid)


def _socket_class() -> type:
    from engineio.socket import Socket

    return Socket


send_queue = Replacement(_socket_class, "send", capped_send)


def install_send_queue_cap(eio: Any, max_packets: int = MAX_QUEUED_PACKETS,
                           version_of: Callable[[str], str] = metadata.version) -> bool:
    """Cap this Engine.IO server's send queues at max_packets; False (and one log line) outside the window."""
    if not supported("the send-queue cap", (ENGINEIO,), "a client that never reads grows its send queue without bound",
                     version_of):
        return False
    eio.copilot_max_queued = max_packets
    send_queue.install(eio)
    return True


def uninstall_send_queue_cap(eio: Any) -> None:
    """Undo install_send_queue_cap for this server; Engine.IO's own send returns with the last one."""
    vars(eio).pop("copilot_max_queued", None)
    send_queue.uninstall(eio)
