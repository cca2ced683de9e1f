"""Every connection's Engine.IO pings sent from one supervised task instead of a task per connection.

Upstream gap: Engine.IO's Socket.schedule_ping starts a background task per connection for each ping, which
sleeps out the ping interval; on the event loop each sleeping task holds about 8 KB (its greenlet and Python
stack), a fifth of what a connection costs, and Engine.IO has no option to share them. Drop this patch when
Engine.IO schedules pings from one task, or when the lead's sessions figure no longer shows the saving.
Before python-engineio 4.13.2 a socket started with no last_ping and was scheduled before its handshake: this
schedule() would then never ping anyone, hence the window.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from importlib import metadata
from typing import Any

from copilot.compat.seam import Replacement, Window, supported

ENGINEIO = Window("python-engineio", "4.13.2", "5")
log = logging.getLogger("copilot.compat")


class SharedPinger:
    """One task that pings every connection of an Engine.IO server when its interval is up. Every connection
    waits the same interval, so appending to a FIFO keeps it in due order. If the task dies (killed, or an error
    outside one connection's send), a new one takes over after RESTART_S, so pings never stop process-wide."""

    RESTART_S = 1.0  # a task that keeps failing restarts at most this often

    def __init__(self, eio: Any) -> None:
        self.eio = eio
        self.due: deque[tuple[float, Any]] = deque()
        self.wake = eio.create_event()
        self.task: Any = None
        self.stopped = False

    def schedule(self, sock: Any) -> None:
        """Engine.IO's Socket.schedule_ping, with the wait kept here instead of in a task of its own."""
        if not sock.last_ping:  # the previous cycle has not ended (no PONG yet)
            return
        sock.last_ping = None
        self.due.append((time.monotonic() + self.eio.ping_interval, sock))
        if self.task is None:
            self.task = self.eio.start_background_task(self._run, False)
        self.wake.set()

    def stop(self) -> None:
        """End the task (uninstall): the sockets still due are left to their read timeout."""
        self.stopped = True
        self.wake.set()

    def _run(self, restarted: bool) -> None:
        try:
            if restarted:
                self.eio.sleep(self.RESTART_S)
            self._ping_when_due()
        except Exception:  # noqa: BLE001 - logged here; the finally below starts the next task
            log.exception("the shared pinger failed")
        finally:
            if self.stopped:
                self.task = None
            else:  # killed or failed: without a successor no connection of this server would be pinged again
                log.warning("the shared pinger's task ended; a new one takes over")
                self.task = self.eio.start_background_task(self._run, True)

    def _ping_when_due(self) -> None:
        from engineio import packet

        while not self.stopped:
            if not self.due:
                self.wake.clear()
                self.wake.wait()
                continue
            wait = self.due[0][0] - time.monotonic()
            if wait > 0:
                self.eio.sleep(wait)
                continue
            sock = self.due[0][1]  # taken off only once sent: a task killed mid-send leaves it for the next
            if not (sock.closing or sock.closed):
                sock.last_ping = time.time()
                try:
                    sock.send(packet.Packet(packet.PING))
                except Exception:  # noqa: BLE001 - one connection's failure must not stop everyone's pings
                    log.exception("ping to %s failed", sock.sid)
            self.due.popleft()


def shared_schedule_ping(sock: Any) -> None:
    """Engine.IO's Socket.schedule_ping, sending to the server's SharedPinger where the server has one."""
    pinger = getattr(sock.server, "copilot_pinger", None)
    return pinger.schedule(sock) if pinger is not None else schedule_ping.original(sock)


def _socket_class() -> type:
    from engineio.socket import Socket

    return Socket


schedule_ping = Replacement(_socket_class, "schedule_ping", shared_schedule_ping)


def install_shared_pinger(eio: Any, version_of: Callable[[str], str] = metadata.version) -> bool:
    """Route this Engine.IO server's pings through one SharedPinger; False (and one log line) outside the window."""
    if not supported("the shared pinger", (ENGINEIO,), "Engine.IO pings from a task per connection", version_of):
        return False
    eio.copilot_pinger = SharedPinger(eio)
    schedule_ping.install(eio)
    return True


def uninstall_shared_pinger(eio: Any) -> None:
    """Undo install_shared_pinger for this server; Engine.IO's own schedule_ping returns with the last one."""
    pinger = vars(eio).pop("copilot_pinger", None)
    if pinger is not None:
        pinger.stop()
    schedule_ping.uninstall(eio)
