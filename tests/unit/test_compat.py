"""The patches to dependencies' internals: each installs inside its version window and uninstalls to the original;
outside it nothing is patched and one line is logged; the shared pinger outlives its own task."""
import logging
import sys
import time

import engineio
import gevent
import gevent.event
import pytest
from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI
from engineio.socket import Socket

from copilot.compat import (
    SharedPinger,
    install_send_queue_cap,
    install_shared_pinger,
    install_short_switches,
    install_websocket_reader,
    pings,
    send_queue,
    uninstall_send_queue_cap,
    uninstall_shared_pinger,
    uninstall_short_switches,
    uninstall_websocket_reader,
)
from copilot.compat.seam import Replacement, Window
from copilot.compat.websocket import InlineReader

INSIDE = {"python-engineio": "4.15.1", "simple-websocket": "1.1.0"}


def versions(**found):
    """A fake importlib.metadata.version: the versions inside every window, with `found` instead where given."""
    table = {**INSIDE, **{name.replace("_", "-"): version for name, version in found.items()}}
    return lambda package: table[package]


def compat_lines(caplog):
    return [r for r in caplog.records if r.name == "copilot.compat"]


@pytest.mark.parametrize(("version", "inside"), [
    ("4.13.2", True), ("4.15.1", True), ("4.99.0", True), ("4.13.1", False), ("4.9", False), ("5.0.0", False),
    ("5.0rc1", False), ("(not installed)", False),
])
def test_a_window_holds_from_its_low_release_up_to_but_not_including_its_high_one(version, inside):
    assert Window("python-engineio", "4.13.2", "5").holds(version) is inside


def test_a_replacement_patches_once_for_two_users_and_the_last_uninstall_restores_the_original():
    class Owner:
        def act(self):
            return "stock"
    stock = Owner.act
    replacement = Replacement(lambda: Owner, "act", lambda self: "patched")
    first, second = Owner(), Owner()
    replacement.install(first)
    replacement.install(second)
    assert Owner().act() == "patched" and replacement.original is stock
    replacement.uninstall(first)
    assert Owner().act() == "patched"
    replacement.uninstall(second)
    assert Owner.act is stock and replacement.original is None


def test_the_send_queue_cap_is_per_server_and_uninstall_forgets_the_server():
    stock = send_queue.send_queue.original or Socket.send  # an app built earlier in this process may hold it
    first, second = engineio.Server(async_mode="threading"), engineio.Server(async_mode="threading")
    assert install_send_queue_cap(first, 3, version_of=versions())
    assert install_send_queue_cap(second, 5, version_of=versions())
    assert Socket.send is send_queue.capped_send and (first.copilot_max_queued, second.copilot_max_queued) == (3, 5)
    uninstall_send_queue_cap(first)
    assert Socket.send is send_queue.capped_send and not hasattr(first, "copilot_max_queued")
    uninstall_send_queue_cap(second)
    assert first not in send_queue.send_queue.users and second not in send_queue.send_queue.users
    assert Socket.send is (send_queue.capped_send if send_queue.send_queue.users else stock)


def test_the_shared_pinger_installs_per_server_and_uninstall_restores_schedule_ping():
    stock = pings.schedule_ping.original or Socket.schedule_ping  # an app built earlier may hold it
    eio = engineio.Server(async_mode="threading")
    assert install_shared_pinger(eio, version_of=versions())
    assert isinstance(eio.copilot_pinger, SharedPinger) and Socket.schedule_ping is not stock
    uninstall_shared_pinger(eio)
    assert not hasattr(eio, "copilot_pinger")
    assert Socket.schedule_ping is (pings.shared_schedule_ping if pings.schedule_ping.users else stock)


def test_the_websocket_class_is_capped_and_reads_inline_and_uninstall_gives_engineio_its_own_back():
    eio = engineio.Server(async_mode="threading")
    stock = eio._async["websocket"]
    assert install_websocket_reader(eio, 1000, version_of=versions())
    patched = eio._async["websocket"]
    assert issubclass(patched, stock) and patched.wait is not stock.wait
    ws = patched(lambda ws: [], eio)
    assert ws.server_args == {"max_message_size": 1000, "thread_class": InlineReader}
    assert install_websocket_reader(eio, 1000, version_of=versions()) and eio._async["websocket"] is patched
    uninstall_websocket_reader(eio)
    assert eio._async["websocket"] is stock is SimpleWebSocketWSGI


def test_a_newer_simple_websocket_keeps_the_message_cap_with_its_own_reader_and_says_so_once(caplog):
    eio = engineio.Server(async_mode="threading")
    with caplog.at_level(logging.WARNING):
        assert install_websocket_reader(eio, 1000, version_of=versions(simple_websocket="1.2.0"))
    patched = eio._async["websocket"]
    assert patched.wait is SimpleWebSocketWSGI.wait  # simple-websocket's reader task, not our copy of its loop
    assert patched(lambda ws: [], eio).server_args == {"max_message_size": 1000}
    [line] = compat_lines(caplog)
    assert "simple-websocket 1.2.0" in line.getMessage() and "inline WebSocket reader" in line.getMessage()
    uninstall_websocket_reader(eio)


@pytest.mark.parametrize("install", [
    lambda eio, version_of: install_send_queue_cap(eio, 3, version_of=version_of),
    install_shared_pinger,
    lambda eio, version_of: install_websocket_reader(eio, 1000, version_of=version_of),
], ids=["send-queue cap", "shared pinger", "websocket reader"])
def test_outside_its_window_a_patch_changes_nothing_and_logs_one_line(caplog, install):
    eio = engineio.Server(async_mode="threading")
    stock = (Socket.send, Socket.schedule_ping, dict(eio._async), set(vars(eio)))
    with caplog.at_level(logging.WARNING):
        assert install(eio, versions(python_engineio="5.0.0")) is False
    assert (Socket.send, Socket.schedule_ping, dict(eio._async), set(vars(eio))) == stock
    [line] = compat_lines(caplog)
    assert "python-engineio 5.0.0 is outside" in line.getMessage()


def test_the_short_switch_interval_is_undone_to_the_one_in_force_and_skipped_without_a_gil(caplog):
    default = sys.getswitchinterval()
    assert install_short_switches(0.0005)
    assert sys.getswitchinterval() == 0.0005
    uninstall_short_switches()
    assert sys.getswitchinterval() == default
    with caplog.at_level(logging.WARNING):
        assert install_short_switches(0.0005, gil=False) is False
    assert sys.getswitchinterval() == default
    assert len(compat_lines(caplog)) == 1


class LoopServer:
    """The part of an Engine.IO server a SharedPinger uses, on gevent's loop (greenlets, no monkey-patching)."""

    ping_interval = 0.01

    def __init__(self, failing_sleeps: int = 0) -> None:
        self.failing_sleeps = failing_sleeps

    def create_event(self):
        return gevent.event.Event()

    def start_background_task(self, target, *args):
        return gevent.spawn(target, *args)

    def sleep(self, seconds):
        if self.failing_sleeps:
            self.failing_sleeps -= 1
            raise RuntimeError("the loop failed under the pinger")
        gevent.sleep(seconds)


class AnsweringClient:
    """An Engine.IO socket whose client answers each ping at once (a PONG schedules the next ping)."""

    sid, closing, closed = "s1", False, False

    def __init__(self, pinger: SharedPinger) -> None:
        self.pinger, self.pings, self.last_ping = pinger, 0, time.time()

    def send(self, pkt) -> None:
        self.pings += 1
        self.pinger.schedule(self)


def started_pinger(server: LoopServer) -> tuple[SharedPinger, AnsweringClient]:
    pinger = SharedPinger(server)
    pinger.RESTART_S = 0.01
    client = AnsweringClient(pinger)
    pinger.schedule(client)
    return pinger, client


def test_pings_continue_after_the_shared_pingers_task_is_killed():
    pinger, client = started_pinger(LoopServer())
    try:
        gevent.sleep(0.1)
        assert client.pings >= 3
        killed, before = pinger.task, client.pings
        killed.kill()
        assert killed.dead
        gevent.sleep(0.1)
        assert client.pings >= before + 3 and pinger.task is not killed and not pinger.task.dead
    finally:
        pinger.stop()
        gevent.sleep(0.05)
    assert pinger.task is None


def test_pings_continue_after_the_shared_pingers_task_fails_and_the_failure_is_logged(caplog):
    server = LoopServer()
    pinger, client = started_pinger(server)
    try:
        gevent.sleep(0.05)
        server.failing_sleeps, before = 1, client.pings
        with caplog.at_level(logging.WARNING):
            gevent.sleep(0.1)
        assert client.pings >= before + 3
        assert any(r.exc_info and "shared pinger failed" in r.getMessage() for r in compat_lines(caplog))
    finally:
        pinger.stop()
        gevent.sleep(0.05)
