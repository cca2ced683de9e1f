"""Run this off the loop. On gevent one native thread runs the event loop and every connection's greenlet, so
work that would hold that thread (a forward pass, parsing an import, a write and fsync) goes to a small pool of
native threads while the asking greenlet waits; with threads (COPILOT_ASYNC_MODE=threading) it runs in place.

The rule for everything offloaded: it touches no lock and no greenlet. gevent's locks and greenlets belong to the
loop's thread, so a pool thread that takes one or switches to one deadlocks or fails. Offload a function of its
arguments (or of an object the loop leaves alone meanwhile) and let its result or exception come back (Outcome).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from copilot.compat import install_short_switches, uninstall_short_switches
from copilot.settings import InvalidSetting, Settings

Offload = Callable[..., Any]  # offload(fn, *args) returns fn(*args), or raises what it raised


def run_here(fn: Callable[..., Any], *args: Any) -> Any:
    """The offload of a threading server: run on the calling thread."""
    return fn(*args)


def async_mode(settings: Settings) -> str:
    """settings.async_mode, once the process can serve it: gevent needs the standard library patched first."""
    if settings.async_mode == "gevent" and not gevent_patched():
        raise InvalidSetting("COPILOT_ASYNC_MODE is gevent, but gevent has not patched this process: start the "
                             "server with `python wsgi.py`, `python -m copilot serve` or `gunicorn -k gevent "
                             "wsgi:app`, or set COPILOT_ASYNC_MODE=threading to build the app in a process of your "
                             "own (tests, a debugger)")
    return settings.async_mode


def gevent_patched() -> bool:
    """Whether gevent has patched this process's socket module (`python wsgi.py`, gunicorn -k gevent)."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("socket")


def native_lock() -> Any:
    """A lock of the OS even where gevent has patched threading: for what native threads (the analytics loader,
    a pool's threads) share among themselves, which a greenlet's lock must never be."""
    if gevent_patched():
        from gevent.monkey import get_original

        return get_original("_thread", "allocate_lock")()
    import _thread

    return _thread.allocate_lock()


class Outcome:
    """What a function returned or raised on a pool thread, handed back to the waiting greenlet. gevent's pool
    prints a traceback for every exception a task raises, even one the caller handles (store_unavailable)."""

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error

    @classmethod
    def of(cls, pool: Any, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn(*args) on pool and return its value or raise its exception here."""
        def capture() -> Outcome:
            try:
                return cls(fn(*args))
            except Exception as error:  # noqa: BLE001 - re-raised on the caller's greenlet below
                return cls(error=error)
        outcome = pool.submit(capture).result()
        if outcome.error is not None:
            raise outcome.error
        return outcome.value


class QuickSwitches:
    """Runs pure-Python bulk work (parsing an import) through `run` with the GIL handed over every 0.5 ms instead
    of every 5 ms, so that the event loop's thread gets it back quickly (compat.switch_interval says why). Only
    while such work runs: the default stays otherwise."""

    INTERVAL_S = 0.0005

    def __init__(self, run: Offload) -> None:
        self.run, self.supported = run, True

    def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:
        # Each call installs and uninstalls; compat.switch_interval counts them (across apps too), so the default
        # comes back when the last bulk job ends. Only the event loop's greenlets call this: no lock needed.
        installed = self.supported and install_short_switches(self.INTERVAL_S)
        self.supported = installed  # False: one log line, and never again
        try:
            return self.run(fn, *args)
        finally:
            if installed:
                uninstall_short_switches()


@dataclass(frozen=True)
class Pools:
    """Where each kind of blocking work runs. With threads every field is None (the detector and the stores then
    run in place) and `python` runs in place too."""

    model: Any = None  # an Executor for the detector's forward passes
    bulk: Offload | None = None  # the library's embedding and large commits, beside the live passes
    log: Offload | None = None  # the event log's write and sync, never queued behind a bulk edit
    python: Offload = run_here  # pure-Python work that holds the GIL (parsing an import, trends): bulk, switching quickly

    @classmethod
    def for_mode(cls, mode: str, model_workers: int) -> Pools:
        """gevent: native threads, model_workers of them for forward passes (0: passes run on the loop)."""
        if mode != "gevent":
            return cls()
        from functools import partial

        from gevent.threadpool import ThreadPoolExecutor

        bulk = partial(Outcome.of, ThreadPoolExecutor(1))
        return cls(model=ThreadPoolExecutor(model_workers) if model_workers else None, bulk=bulk,
                   log=partial(Outcome.of, ThreadPoolExecutor(1)), python=QuickSwitches(bulk))
