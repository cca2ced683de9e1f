"""Off the loop: the async mode is the setting's and refused where the process cannot serve it; results and
errors of offloaded work come back to the caller; a threading server runs everything in place."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from copilot.concurrency import Outcome, Pools, async_mode, run_here
from copilot.settings import InvalidSetting, Settings


def test_gevent_in_a_process_that_gevent_has_not_patched_is_refused_naming_the_setting_and_the_fix():
    with pytest.raises(InvalidSetting) as refused:
        async_mode(Settings(async_mode="gevent"))
    assert "COPILOT_ASYNC_MODE" in str(refused.value) and "python wsgi.py" in str(refused.value)
    assert "COPILOT_ASYNC_MODE=threading" in str(refused.value)


def test_threading_is_taken_as_set_and_runs_everything_in_place():
    assert async_mode(Settings(async_mode="threading")) == "threading"
    pools = Pools.for_mode("threading", model_workers=4)
    assert (pools.model, pools.bulk, pools.log, pools.python) == (None, None, None, run_here)
    assert pools.python(divmod, 7, 2) == (3, 1)


def test_an_outcome_hands_back_the_value_or_raises_the_error_on_the_caller():
    with ThreadPoolExecutor(1) as pool:
        assert Outcome.of(pool, divmod, 7, 2) == (3, 1)
        with pytest.raises(ZeroDivisionError):
            Outcome.of(pool, divmod, 1, 0)


def test_create_app_refuses_gevent_in_an_unpatched_process_before_building_anything(tmp_path):
    from copilot import create_app

    with pytest.raises(InvalidSetting, match="COPILOT_ASYNC_MODE"):
        create_app(Settings(instance_dir=tmp_path / "instance", async_mode="gevent"))
    assert not (tmp_path / "instance").exists()
