"""The GIL switch interval is short only while bulk Python work runs, and always comes back."""
import sys

import pytest

from copilot.concurrency import QuickSwitches


def test_the_interval_is_short_during_the_work_and_restored_after_even_on_error():
    default = sys.getswitchinterval()
    offload = QuickSwitches(lambda fn, *args: fn(*args))
    assert offload(lambda x: (x, sys.getswitchinterval()), 7) == (7, QuickSwitches.INTERVAL_S)
    assert sys.getswitchinterval() == default
    with pytest.raises(ZeroDivisionError):
        offload(lambda: 1 / 0)
    assert sys.getswitchinterval() == default


def test_overlapping_work_keeps_it_short_until_the_last_one_ends():
    default = sys.getswitchinterval()
    offload = QuickSwitches(lambda fn, *args: fn(*args))
    seen = []

    def outer():
        offload(lambda: seen.append(sys.getswitchinterval()))  # a second bulk job ends first
        seen.append(sys.getswitchinterval())
    offload(outer)
    assert seen == [QuickSwitches.INTERVAL_S, QuickSwitches.INTERVAL_S]
    assert sys.getswitchinterval() == default
