"""README's "Connect your transcript source" as a new integrator follows it, against a real `python wsgi.py` on
loopback: the defects that walkthrough found in the code (not the doc), each as the behaviour the doc leads to."""
from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from copilot.security import Tokens
from tests.conftest import ROOT, free_port, own_server

SECRET = "walkthrough-secret-0123456789abcdef01234"
ASSEMBLYAI = "/api/v1/sources/assemblyai"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = own_server(tmp_path_factory.mktemp("walkthrough"), SECRET)
    yield server
    server.stop()


def relay(server, path: str, params: dict, body) -> dict:
    token = Tokens(SECRET).issue("acme", "integration", "stt-relay")
    answer = requests.post(server.url + path, params=params, json=body, timeout=10,
                           headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def turn(order: int, text: str) -> dict:
    return {"type": "Turn", "turn_order": order, "turn_is_formatted": False, "end_of_turn": True,
            "transcript": text, "end_of_turn_confidence": 0.9, "words": []}


def test_one_side_s_assemblyai_stream_terminating_leaves_the_other_side_s_stream_landing(server):
    # README: "One stream per side of the call", and a new session "after a reconnect". A Termination closes
    # one session of one side, not the call: the customer still talking, or the agent's reconnect, must land.
    cid = "walk-aai-1"
    agent = {"conversation_id": cid, "speaker": "agent", "session": "sess-a1"}
    customer = {"conversation_id": cid, "speaker": "customer", "session": "sess-c1"}
    relay(server, ASSEMBLYAI, agent, [{"type": "Begin", "id": "sess-a1"}, turn(0, "hello this is ren")])
    relay(server, ASSEMBLYAI, customer, [{"type": "Begin", "id": "sess-c1"}, turn(0, "my flight was cancelled")])
    relay(server, ASSEMBLYAI, agent, {"type": "Termination", "audio_duration_seconds": 31,
                                      "session_duration_seconds": 33})
    later = relay(server, ASSEMBLYAI, customer, turn(1, "this is the third time i have called"))
    assert later["errors"] == [] and later["accepted"] == 1, later
    back = relay(server, ASSEMBLYAI, {**agent, "session": "sess-a2"},
                 [{"type": "Begin", "id": "sess-a2"}, turn(0, "sorry about that i am back")])
    assert back["errors"] == [] and back["accepted"] == 1, back


def consumer(server_url: str, token_file, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The Kinesis consumer as README runs it, against a Kinesis endpoint nothing listens on."""
    command = [sys.executable, "-m", "copilot.sources.kinesis", "--stream", "contact-lens-acme", "--server",
               server_url, "--token-file", str(token_file), "--region", "eu-west-2", "--endpoint-url",
               f"http://127.0.0.1:{free_port()}", "--max-seconds", "8", "--max-backoff", "1", *extra]
    base = {"PATH": "/usr/bin:/bin", "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
            "AWS_EC2_METADATA_DISABLED": "true"}
    return subprocess.run(command, cwd=ROOT, env={**base, **(env or {})}, capture_output=True, text=True, timeout=60)


def test_the_kinesis_consumer_given_an_agent_token_stops_with_exit_3_before_any_call_arrives(server, tmp_path):
    # README: "A refused token ends it with exit code 3". Told only when the first contact's segments arrive,
    # an integrator who wrote the wrong token sees "consuming stream" and a feed that never lands.
    token_file = tmp_path / "kinesis.token"
    token_file.write_text(Tokens(SECRET).issue("acme", "agent", "amy") + "\n")
    done = consumer(server.url, token_file, "--checkpoints", str(tmp_path / "checkpoints.json"),
                    env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    assert done.returncode == 3, done.stderr[-2000:]


def test_the_kinesis_consumer_without_aws_credentials_stops_instead_of_retrying_forever(server, tmp_path):
    # main(): "3 when the server or AWS refuses it". With no credentials in boto3's chain no call can ever
    # succeed, yet it retries every second and exits 0 as if it had consumed the stream.
    token_file = tmp_path / "kinesis.token"
    token_file.write_text(Tokens(SECRET).issue("acme", "integration", "contact-lens") + "\n")
    done = consumer(server.url, token_file, "--checkpoints", str(tmp_path / "checkpoints.json"))
    assert done.returncode != 0, done.stderr[-2000:]
    assert "credentials" in done.stderr


def test_the_token_command_s_help_says_an_integration_token_sends_transcripts_too():
    # README: "An integration token may send transcripts and outcomes"; the help still says outcomes only.
    done = subprocess.run([sys.executable, "-m", "copilot", "token", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    assert "transcripts" in " ".join(done.stdout.split())
