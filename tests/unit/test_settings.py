"""Settings come from the environment once, with defaults and clear errors."""
import re
from dataclasses import fields
from pathlib import Path

import pytest

from copilot.settings import InvalidSetting, Settings


def test_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings.host == "127.0.0.1" and settings.port == 8000 and settings.max_text_chars == 4000


def test_environment_values_are_converted_to_their_types():
    settings = Settings.from_env({"PORT": "9001", "COPILOT_MODEL_DIR": "/tmp/m", "HOST": "0.0.0.0"})
    assert settings.port == 9001 and settings.model_dir == Path("/tmp/m") and settings.host == "0.0.0.0"


@pytest.mark.parametrize("env", [{"PORT": "eighty"}, {"PORT": "70000"}, {"COPILOT_MODEL_THREADS": "0"},
                                 {"COPILOT_PING_INTERVAL_S": "0"}, {"COPILOT_PING_TIMEOUT_S": "-3"}])
def test_bad_values_are_refused_with_the_variable_named(env):
    with pytest.raises(InvalidSetting, match=next(iter(env))):
        Settings.from_env(env)


@pytest.mark.parametrize("secret", ["changeme", "x" * 31, "s3cret"])
def test_a_secret_shorter_than_32_bytes_is_refused_naming_the_setting(secret):
    with pytest.raises(InvalidSetting, match="COPILOT_SECRET must be at least 32 bytes"):
        Settings.from_env({"COPILOT_SECRET": secret})


def test_a_long_secret_and_no_secret_are_both_accepted():
    assert Settings.from_env({"COPILOT_SECRET": "x" * 32}).secret == "x" * 32
    assert Settings.from_env({}).secret == ""


def test_every_setting_has_an_environment_variable_of_its_own():
    names = [spec.metadata["env"] for spec in fields(Settings)]
    assert len(names) == len(set(names)) and all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in names)


@pytest.mark.parametrize("spec", [s for s in fields(Settings) if s.metadata["at_least"] is not None],
                         ids=lambda spec: spec.name)
def test_a_value_below_a_settings_floor_is_refused_naming_its_variable(spec):
    env, floor = spec.metadata["env"], spec.metadata["at_least"]
    with pytest.raises(InvalidSetting, match=env):
        Settings.from_env({env: str(floor - 1)})
    assert getattr(Settings.from_env({env: str(floor)}), spec.name) == floor, "the floor itself is allowed"


def test_the_async_mode_is_gevent_unless_threading_is_asked_for():
    assert Settings.from_env({}).async_mode == "gevent"
    assert Settings.from_env({"COPILOT_ASYNC_MODE": "threading"}).async_mode == "threading"


@pytest.mark.parametrize("mode", ["eventlet", "asyncio", "Threading"])
def test_an_unknown_async_mode_is_refused_naming_the_variable(mode):
    with pytest.raises(InvalidSetting, match="COPILOT_ASYNC_MODE must be gevent or threading"):
        Settings.from_env({"COPILOT_ASYNC_MODE": mode})


def test_settings_built_in_code_are_checked_as_those_from_the_environment():
    with pytest.raises(InvalidSetting, match="COPILOT_TRANSCRIPT"):
        Settings(transcript="all").validate()
