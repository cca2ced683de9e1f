"""The patches to dependencies' internals: each installs inside its version window and uninstalls to the original;
outside it nothing is patched and one line is logged; the shared pinger outlives its own task."""
import logging
import sys
import time

import engineio
import gevent
import gevent.event
import pytest
import socketio
from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI
from engineio.socket import Socket

from copilot.compat import (
    SharedPinger,
    decoding_errors,
    install_send_queue_cap,
    install_session_guard,
    install_shared_pinger,
    install_short_switches,
    install_websocket_reader,
    pings,
    raised_while_decoding,
    send_queue,
    uninstall_send_queue_cap,
    uninstall_session_guard,
    uninstall_shared_pinger,
    uninstall_short_switches,
    uninstall_websocket_reader,
)
from copilot.compat.seam import Replacement, Window
from copilot.compat.websocket import InlineReader
from copilot.concurrency import QuickSwitches, run_here

INSIDE = {"python-engineio": "4.15.1", "python-socketio": "5.18.1", "simple-websocket": "1.1.0"}


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


def test_two_apps_bulk_work_keeps_the_short_interval_until_the_last_of_them_ends():
    default = sys.getswitchinterval()
    first, second = QuickSwitches(run_here), QuickSwitches(run_here)
    seen = []

    def inner():
        seen.append(sys.getswitchinterval())

    def outer():
        second(inner)  # the other app's bulk work ends while this one's still runs
        seen.append(sys.getswitchinterval())
    first(outer)
    assert seen == [QuickSwitches.INTERVAL_S, QuickSwitches.INTERVAL_S] and sys.getswitchinterval() == default


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


class RecordingGuard:
    """A session guard that refuses the addresses it is given, passes every message on, and records what it saw."""

    def __init__(self, refused=()) -> None:
        self.refused, self.seen = set(refused), []

    def admit(self, eio_sid, environ):
        self.seen.append(("admit", eio_sid))
        return {"code": "too_many_pending"} if environ["REMOTE_ADDR"] in self.refused else None

    def receive(self, eio_sid, data, handle):
        self.seen.append(("receive", eio_sid))
        return handle(data)

    def forget(self, eio_sid):
        self.seen.append(("forget", eio_sid))


class OpenSocket:
    """An Engine.IO session that is still open."""

    closed = False


def test_the_session_guard_runs_before_socketios_engineio_handlers_and_uninstall_gives_them_back():
    server = socketio.Server(async_mode="threading")
    eio, guard = server.eio, RecordingGuard()
    stock = dict(eio.handlers)
    assert install_session_guard(server, guard, version_of=versions())
    assert all(eio.handlers[event] != stock[event] for event in stock)
    eio.handlers["connect"]("e1", {"REMOTE_ADDR": "10.0.0.1"})
    assert server.environ["e1"]["REMOTE_ADDR"] == "10.0.0.1"  # Socket.IO's own handler ran after the guard's
    assert eio.handlers["message"]("e1", "zzz") is None and guard.seen == [("admit", "e1")]  # no such session
    eio.sockets["e1"] = OpenSocket()
    with pytest.raises(ValueError):  # passed on by the guard to Socket.IO's decoder, which refuses it
        eio.handlers["message"]("e1", "zzz")
    eio.handlers["disconnect"]("e1", "client disconnect")
    assert "e1" not in server.environ and guard.seen[1:] == [("receive", "e1"), ("forget", "e1")]
    uninstall_session_guard(server)
    assert eio.handlers == stock and "copilot_stock_handlers" not in vars(eio)


def test_a_session_the_guard_refuses_gets_its_refusal_and_never_reaches_socketio():
    server = socketio.Server(async_mode="threading")
    assert install_session_guard(server, RecordingGuard(refused={"10.0.0.9"}), version_of=versions())
    assert server.eio.handlers["connect"]("e2", {"REMOTE_ADDR": "10.0.0.9"}) == {"code": "too_many_pending"}
    assert "e2" not in server.environ


def test_a_second_session_guard_replaces_the_first_in_front_of_the_same_handlers():
    server = socketio.Server(async_mode="threading")
    stock = dict(server.eio.handlers)
    first, second = RecordingGuard(), RecordingGuard()
    install_session_guard(server, first, version_of=versions())
    install_session_guard(server, second, version_of=versions())
    server.eio.handlers["connect"]("e3", {"REMOTE_ADDR": "10.0.0.1"})
    assert (first.seen, second.seen) == ([], [("admit", "e3")]) and "e3" in server.environ
    uninstall_session_guard(server)
    assert server.eio.handlers == stock


@pytest.mark.parametrize("found", [{"python_socketio": "5.11.4"}, {"python_socketio": "6.0.0"},
                                   {"python_engineio": "4.10.1"}])
def test_outside_its_windows_the_session_guard_leaves_socketios_handlers_and_logs_one_line(caplog, found):
    server = socketio.Server(async_mode="threading")
    stock = dict(server.eio.handlers)
    with caplog.at_level(logging.WARNING):
        assert install_session_guard(server, RecordingGuard(), version_of=versions(**found)) is False
    assert server.eio.handlers == stock and "copilot_stock_handlers" not in vars(server.eio)
    [line] = compat_lines(caplog)
    assert "is outside" in line.getMessage() and "no join deadline" in line.getMessage()


def test_only_errors_raised_in_engineios_decoders_count_as_a_clients_bad_input_and_none_outside_the_window(caplog):
    from engineio import packet, payload

    errors = []
    for decode in (lambda: packet.Packet(encoded_packet=""), lambda: payload.Payload(encoded_payload="4x\x1e" * 20),
                   lambda: int("not a number")):
        with pytest.raises(ValueError) as raised:
            decode()
        errors.append(raised.value)
    assert [raised_while_decoding(error) for error in errors] == [True, True, False]
    assert decoding_errors(versions()) is raised_while_decoding
    with caplog.at_level(logging.WARNING):
        outside = decoding_errors(versions(python_engineio="5.0.0"))
    assert not any(outside(error) for error in errors)
    [line] = compat_lines(caplog)
    assert "python-engineio 5.0.0 is outside" in line.getMessage()
