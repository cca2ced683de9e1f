"""Starting and stopping the server as a user does, in real subprocesses: `python wsgi.py`, `python -m copilot
serve` and `python -m copilot token`, with good settings, bad ones and an unreachable Redis."""
from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import socketio
import websocket

from copilot.security import Tokens
from tests.conftest import TEST_SECRET, AgentClient, own_server
from tests.servers import ROOT, ServerProcess, free_port

SERVE_COMMANDS = {"wsgi": [sys.executable, "wsgi.py"], "module": [sys.executable, "-m", "copilot", "serve"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = own_server(tmp_path_factory.mktemp("startup"), TEST_SECRET)
    yield proc
    proc.stop()


def log_of(proc: ServerProcess) -> str:
    """What the server wrote to stdout and stderr so far."""
    return Path(proc.log.name).read_text()


def cut_connection(url: str, token: str, conversation_id: str) -> None:
    """A /copilot connection that starts a conversation and is then cut as a dropped network does: a TCP reset,
    no close frame."""
    ws = websocket.create_connection(url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket",
                                     timeout=10)
    assert ws.recv().startswith("0")  # Engine.IO open
    ws.send('40/copilot,' + json.dumps({"token": token}))
    assert ws.recv().startswith("40/copilot,")
    ws.send('42/copilot,1' + json.dumps(["conversation.start", {"conversation_id": conversation_id,
                                                                  "channel": "chat"}]))
    assert ws.recv().startswith("43/copilot,1")
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.sock.close()


def test_python_m_copilot_serve_runs_on_gevent_as_wsgi_py_does(tmp_path):
    proc = ServerProcess({"COPILOT_SECRET": TEST_SECRET, "COPILOT_INSTANCE_DIR": str(tmp_path / "instance")},
                         tmp_path, command=SERVE_COMMANDS["module"])
    try:
        assert requests.get(proc.url + "/readyz", timeout=10).json()["server"] == "gevent"
        assert "development server" not in log_of(proc)
    finally:
        proc.stop()


@pytest.mark.parametrize("how", ["wsgi", "module"])
def test_the_server_prints_one_listening_line_and_ctrl_c_ends_it_without_a_traceback(tmp_path, how):
    proc = ServerProcess({"COPILOT_SECRET": TEST_SECRET, "COPILOT_INSTANCE_DIR": str(tmp_path / "instance")},
                         tmp_path, command=SERVE_COMMANDS[how])
    proc.process.send_signal(signal.SIGINT)
    code = proc.process.wait(20)
    proc.stop()
    log = log_of(proc)
    assert [line for line in log.splitlines() if "listening on" in line] == [f"listening on {proc.url}"]
    assert code == 0
    assert "Traceback" not in log and "KeyboardInterrupt" not in log


def test_the_front_door_sends_a_local_browser_to_the_demo(server):
    answer = requests.get(server.url + "/", allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith("/demo")


def test_the_front_door_lists_the_pages_when_the_demo_is_off(make_settings):
    from copilot import create_app

    answer = create_app(make_settings(demo=False)).test_client().get("/")
    assert answer.status_code == 200
    assert answer.get_json()["links"] == {"console": "/console", "floor": "/floor", "sidebar": "/sidebar",
                                          "api": "/api/v1/openapi.json", "health": "/healthz", "ready": "/readyz"}


def test_the_favicon_is_an_empty_answer_not_a_404(server):
    answer = requests.get(server.url + "/favicon.ico", timeout=5)
    assert answer.status_code == 204
    assert answer.content == b""


def test_answers_on_a_kept_alive_connection_are_not_held_back_for_the_client_s_delayed_ack(server):
    # Without TCP_NODELAY each JSON answer's last write waited for the client's delayed ACK: 40 ms a request, so
    # twenty took 0.88 s. Twenty take a few milliseconds now; the bound leaves a loaded machine 20 times that.
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        for _ in range(2):
            connection.request("GET", "/healthz")
            assert connection.getresponse().read() == b'{"ok":true}\n'
        started = time.monotonic()
        for _ in range(20):
            connection.request("GET", "/healthz")
            connection.getresponse().read()
        assert time.monotonic() - started < 0.4
    finally:
        connection.close()


@pytest.mark.parametrize("how", ["wsgi", "module"])
@pytest.mark.parametrize("env, names", [({"PORT": "abc"}, "PORT"), ({"COPILOT_SECRET": "short"}, "COPILOT_SECRET"),
                                        ({"COPILOT_TRANSCRIPT": "all"}, "COPILOT_TRANSCRIPT")])
def test_a_bad_setting_exits_with_one_line_that_names_it(tmp_path, how, env, names):
    result = subprocess.run(SERVE_COMMANDS[how], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "COPILOT_INSTANCE_DIR": str(tmp_path), **env})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_lead_token_needs_no_agent_id():
    result = subprocess.run([sys.executable, "-m", "copilot", "token", "--tenant", "acme", "--role", "lead"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "COPILOT_SECRET": TEST_SECRET})
    assert result.returncode == 0, result.stderr
    identity = Tokens(TEST_SECRET).verify(result.stdout.strip())
    assert (identity.tenant, identity.role, identity.agent) == ("acme", "lead", "lead")


def test_an_unreachable_redis_is_one_warning_at_start_and_store_unavailable_everywhere(tmp_path):
    proc = ServerProcess({"COPILOT_SECRET": TEST_SECRET, "COPILOT_INSTANCE_DIR": str(tmp_path / "instance"),
                          "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, tmp_path, ready_path="/healthz")
    try:
        tokens = Tokens(TEST_SECRET)
        lead = {"Authorization": "Bearer " + tokens.issue("acme", "lead", "lee")}
        admin = {"Authorization": "Bearer " + tokens.issue("acme", "admin", "ada")}
        for path, headers in [("/api/v1/phrasings", lead), ("/api/v1/phrasings?q=sorry", lead),
                              ("/api/v1/phrasings/export", lead), ("/api/v1/audit", lead),
                              ("/api/v1/analytics/usage", lead),  # analytics/conversations: the DuckDB store
                              ("/api/v1/experiments", lead), ("/api/v1/tenants", admin)]:
            answer = requests.get(proc.url + path, headers=headers, timeout=30)
            assert (answer.status_code, answer.json()["error"]["code"]) == (503, "store_unavailable"), path
        agent = AgentClient(proc.url, tokens.issue("acme", "agent", "amy"))
        try:
            started = agent.call("conversation.start", {"conversation_id": "c-1", "channel": "chat"})
            assert started["error"]["code"] == "store_unavailable"
        finally:
            agent.close()
        time.sleep(0.5)  # the log lines of the last answers
        log = log_of(proc)
        assert len([line for line in log.splitlines() if "unreachable" in line and "Redis" in line]) == 1, log
        assert "Traceback" not in log, log
    finally:
        proc.stop()


def test_thirty_ordinary_disconnects_leave_no_traceback_in_the_log(server):
    token = Tokens(TEST_SECRET).issue("acme", "agent", "amy")
    for n in range(30):
        if n % 2:
            cut_connection(server.url, token, f"d-{n}")
            continue
        client = socketio.Client(reconnection=False)
        client.connect(server.url, namespaces=["/copilot"], auth={"token": token}, transports=["websocket"],
                       wait_timeout=10)
        client.call("conversation.start", {"conversation_id": f"d-{n}", "channel": "chat"}, namespace="/copilot",
                    timeout=10)
        client.disconnect()
    time.sleep(1)  # gevent logs a bad request once it has parsed it
    log = log_of(server)
    assert "Traceback" not in log and "Invalid HTTP method" not in log and "BrokenPipe" not in log, log
