"""A short GIL switch interval while pure-Python bulk work runs beside the event loop (QuickSwitches).

Upstream gap: CPython's GIL gives a thread that comes back from I/O no precedence over one that computes (the
convoy effect, python/cpython bpo-7946): the event loop's thread waits up to the whole switch interval, 5 ms,
each time it wants the GIL back, and at 5 ms a 3,000-phrasing import held highlights up for over a second
(bench.bulk_edit). The interval is process-wide, so it is changed only while such work runs and always put back.
Drop this when bulk parsing moves out of the process, or on a build without the GIL (nothing to hand over).
"""
from __future__ import annotations

import sys

from copilot.compat.seam import log

original: list[float] = []  # the interval to put back, while a short one is installed
users = [0]  # how many installs are in force: apps in one process share the interpreter's one interval


def has_gil() -> bool:
    """Whether this interpreter is CPython with its GIL on: the only place a switch interval means anything."""
    return sys.implementation.name == "cpython" and getattr(sys, "_is_gil_enabled", lambda: True)()


def install_short_switches(interval_s: float, gil: bool | None = None) -> bool:
    """Set the switch interval to interval_s, keeping the one in force; False (and one log line) without a GIL.
    Each install needs its uninstall; the last one out puts the original back."""
    if not (has_gil() if gil is None else gil):
        log.warning("copilot.compat: %s %s has no GIL to hand over, so the short switch interval is not "
                    "installed: bulk work keeps the default", sys.implementation.name, sys.version.split()[0])
        return False
    if not original:
        original.append(sys.getswitchinterval())
    users[0] += 1
    sys.setswitchinterval(interval_s)
    return True


def uninstall_short_switches() -> None:
    """Undo one install_short_switches; the last one puts back the interval that was in force before the first."""
    if not original:
        return
    users[0] = max(0, users[0] - 1)
    if users[0] == 0:
        sys.setswitchinterval(original.pop())
