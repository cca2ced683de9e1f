"""Settings come from the environment once, with defaults and clear errors."""
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
