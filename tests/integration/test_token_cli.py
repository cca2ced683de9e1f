"""`python -m copilot token` prints a token that the server's secret verifies."""
import subprocess
import sys

import pytest

from copilot.security import Tokens, load_secret
from tests.conftest import ROOT

LONG_SECRET = "s3cret-0123456789abcdef0123456789abcdef"


def token_cli(*args, env):
    import os

    return subprocess.run([sys.executable, "-m", "copilot", "token", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=60)


def test_token_uses_the_configured_secret():
    out = token_cli("--tenant", "acme", "--role", "lead", "--agent", "lee", env={"COPILOT_SECRET": LONG_SECRET})
    identity = Tokens(LONG_SECRET).verify(out.stdout.strip())
    assert (identity.tenant, identity.role, identity.agent) == ("acme", "lead", "lee")


def test_without_a_secret_the_command_and_the_server_share_the_instance_secret(tmp_path):
    out = token_cli("--tenant", "acme", "--agent", "amy",
                    env={"COPILOT_SECRET": "", "COPILOT_INSTANCE_DIR": str(tmp_path)})
    server_secret = load_secret("", tmp_path)
    assert Tokens(server_secret).verify(out.stdout.strip()).role == "agent"
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("args", [["--tenant", "Bad Tenant", "--agent", "a"], ["--tenant", "acme", "--agent", "a b"],
                                  ["--tenant", "acme", "--role", "king", "--agent", "a"]])
def test_bad_names_are_refused(args):
    out = token_cli(*args, env={"COPILOT_SECRET": LONG_SECRET})
    assert out.returncode != 0 and out.stdout == ""


def test_the_command_issues_an_integration_token_for_the_systems_that_send_outcomes():
    out = token_cli("--tenant", "acme", "--role", "integration", env={"COPILOT_SECRET": LONG_SECRET})
    identity = Tokens(LONG_SECRET).verify(out.stdout.strip())
    assert (identity.tenant, identity.role, identity.agent) == ("acme", "integration", "integration")
