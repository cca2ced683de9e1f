"""A weak signing secret is refused at start: `changeme` was recovered offline from one demo token in 0.19 s,
and a forged admin token then worked."""
import os
import subprocess
import sys

from tests.servers import ROOT, free_port


def test_the_server_refuses_to_start_with_a_short_secret(tmp_path):
    env = {**os.environ, "COPILOT_SECRET": "changeme", "COPILOT_INSTANCE_DIR": str(tmp_path), "HOST": "127.0.0.1",
           "PORT": str(free_port())}
    try:
        done = subprocess.run([sys.executable, "wsgi.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("the server started with an 8-byte secret") from None
    assert done.returncode != 0
    assert "COPILOT_SECRET must be at least 32 bytes" in done.stdout + done.stderr
