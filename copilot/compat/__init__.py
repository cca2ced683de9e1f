"""Every replacement of a dependency's internals, one module per patch, in the way httpie's compat.py and
python-socketio's admin.py (instrument / uninstrument) do it: each install_...() keeps the original and checks
the versions it was written for, outside which the stock behaviour stays and one log line says so; each
uninstall_...() puts the original back; each module names the upstream gap it fills and when to drop it.
Only these modules touch python-socketio's, python-engineio's or simple-websocket's internals (what their
documentation does not offer) or the interpreter's switch interval; the rest of copilot uses their public API.
"""
from __future__ import annotations

from typing import Any

from copilot.compat.pings import SharedPinger, install_shared_pinger, uninstall_shared_pinger
from copilot.compat.send_queue import MAX_QUEUED_PACKETS, hang_up, install_send_queue_cap, uninstall_send_queue_cap
from copilot.compat.sessions import (
    decoding_errors,
    eio_sid_of,
    has_session,
    install_session_guard,
    raised_while_decoding,
    uninstall_session_guard,
)
from copilot.compat.switch_interval import install_short_switches, uninstall_short_switches
from copilot.compat.websocket import install_websocket_reader, uninstall_websocket_reader

__all__ = ["MAX_QUEUED_PACKETS", "SharedPinger", "decoding_errors", "eio_sid_of", "hang_up", "has_session",
           "install_send_queue_cap", "install_session_guard", "install_shared_pinger", "install_short_switches",
           "install_transport", "install_websocket_reader", "raised_while_decoding", "uninstall_send_queue_cap",
           "uninstall_session_guard", "uninstall_shared_pinger", "uninstall_short_switches", "uninstall_transport",
           "uninstall_websocket_reader"]


def install_transport(eio: Any, max_message_bytes: int, event_loop: bool) -> None:
    """The transport's patches for one Engine.IO server. The shared pinger only on the event loop (gevent), where
    a task per connection costs memory; with threads Engine.IO keeps its own."""
    install_websocket_reader(eio, max_message_bytes)
    install_send_queue_cap(eio)
    if event_loop:
        install_shared_pinger(eio)


def uninstall_transport(eio: Any) -> None:
    """Undo install_transport for one server."""
    uninstall_shared_pinger(eio)
    uninstall_send_queue_cap(eio)
    uninstall_websocket_reader(eio)
