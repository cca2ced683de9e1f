"""The Contact Lens Kinesis consumer (`python -m copilot.sources.kinesis`) as a user runs it, against moto's Kinesis
in server mode on loopback (fake credentials, never the internet) and a real copilot server, with a real Socket.IO
agent: highlights arrive for the agent on that contact, and neither a kill -9 nor a server outage drops or repeats
an utterance. (Resharding is tested in tests/unit/test_kinesis_consumer_core.py: moto's SplitShard puts the parent's
records back into the closed parent, which Kinesis never does.)"""
from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from copilot.security import Tokens
from tests.conftest import ROOT, AgentClient, ServerProcess, free_port, own_server
from tests.servers import stop_process

SECRET = "kinesis-test-secret-0123456789abcdef0123"
REGION = "us-east-1"
# fake credentials, and no profile or instance metadata of the machine's own
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
       "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
       "AWS_EC2_METADATA_DISABLED": "true"}
LOW, HIGH = "0", str(2 ** 127 + 1)  # explicit hash keys that land on the first and the second of two shards
RUNS = itertools.count(1)

# One call about a bill charged twice: the customer's lines carry cues (repeat contact, frustration, escalation).
TURNS = [
    ("CUSTOMER", "Hi, I'm calling about my bill, I was charged twice for March."),
    ("AGENT", "I'm sorry to hear that. Let me pull up your account."),
    ("CUSTOMER", "This is the third time I've called about this and nobody has fixed it."),
    ("AGENT", "I understand, and I'm sorry you've had to call back."),
    ("CUSTOMER", "Honestly I'm really frustrated, this is ridiculous."),
    ("AGENT", "I can see both charges here. I'll refund the second one today."),
    ("CUSTOMER", "If it isn't sorted today I want to speak to a manager."),
    ("AGENT", "It's done: the refund reaches your card within three days."),
    ("CUSTOMER", "I've been waiting for weeks and I'm fed up with being passed around."),
    ("AGENT", "Thank you for your patience. Is there anything else I can help with?"),
]


@pytest.fixture(scope="module")
def kinesis_url():
    """moto's Kinesis in server mode, in a thread of the test process, on a free loopback port."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="module")
def kinesis(kinesis_url):
    import boto3

    return boto3.client("kinesis", region_name=REGION, endpoint_url=kinesis_url, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = own_server(tmp_path_factory.mktemp("kinesis"), SECRET)
    yield server
    server.stop()


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(Tokens(SECRET).issue("acme", "integration", "contact-lens") + "\n")
    return path


@pytest.fixture
def agent(server):
    client = AgentClient(server.url, Tokens(SECRET).issue("acme", "agent", "amy"))
    yield client
    client.close()


class ContactLensCall:
    """The segment-stream events Contact Lens writes for one voice contact (Amazon Connect Administrator Guide,
    "Data model for conversational analytics segment streams to analyze voice contacts"): STARTED, per turn a
    SEGMENTS event of Utterance pieces (partial) and one of its Transcript (final), then COMPLETED."""

    def __init__(self) -> None:
        self.contact_id = str(uuid.uuid4())
        self.offset_ms = 0
        self.finals = 0

    def _event(self, kind: str, **more) -> dict:
        return {"Version": "1.0.0", "Channel": "VOICE", "AccountId": "123456789012",
                "InstanceId": "4a1c5e2b-6f0d-4c3a-9b8e-2d7f1a0c9e35", "ContactId": self.contact_id,
                "LanguageCode": "en-US", "EventType": kind, **more}

    def started(self) -> dict:
        return self._event("STARTED")

    def completed(self) -> dict:
        return self._event("COMPLETED")

    def turn(self, role: str, text: str) -> list[dict]:
        """A turn as two events: its partial pieces while it is spoken, then its final transcript."""
        transcript_id, words = str(uuid.uuid4()), text.split()
        begin, end = self.offset_ms, self.offset_ms + 300 * len(words)
        middle = len(words) // 2
        pieces = [{"Utterance": {"ParticipantId": role, "ParticipantRole": role, "PartialContent": " ".join(part),
                                 "BeginOffsetMillis": b, "EndOffsetMillis": e, "Id": str(uuid.uuid4()),
                                 "TranscriptId": transcript_id}}
                  for part, b, e in ((words[:middle], begin, begin + 300 * middle),
                                     (words[middle:], begin + 300 * middle, end))]
        final = {"Transcript": {"ParticipantId": role, "ParticipantRole": role, "Content": text, "Id": transcript_id,
                                "BeginOffsetMillis": begin, "EndOffsetMillis": end,
                                "Sentiment": "NEGATIVE" if role == "CUSTOMER" else "NEUTRAL"}}
        segments = [final]
        if role == "CUSTOMER" and "manager" in text:
            segments.append({"Categories": {"MatchedCategories": ["Escalation"], "MatchedDetails": {
                "Escalation": {"PointsOfInterest": [{"BeginOffsetMillis": begin, "EndOffsetMillis": end}]}}}})
        self.offset_ms, self.finals = end + 500, self.finals + 1
        return [self._event("SEGMENTS", Segments=pieces), self._event("SEGMENTS", Segments=segments)]

    def turns(self, turns) -> list[dict]:
        return [event for role, text in turns for event in self.turn(role, text)]


class Stream:
    """A Kinesis stream on moto, and the last sequence number put on each shard."""

    def __init__(self, kinesis, shards: int) -> None:
        self.kinesis, self.name = kinesis, f"contact-lens-{uuid.uuid4().hex[:8]}"
        kinesis.create_stream(StreamName=self.name, ShardCount=shards)
        kinesis.get_waiter("stream_exists").wait(StreamName=self.name, WaiterConfig={"Delay": 0.1})
        self.last: dict[str, str] = {}

    def put(self, events: list, hash_key: str = LOW) -> None:
        """Put events in order, one record each, as Contact Lens does (the contact id as partition key)."""
        for event in events:
            data = event if isinstance(event, bytes) else json.dumps(event).encode()
            key = event["ContactId"] if isinstance(event, dict) else "garbage"
            put = self.kinesis.put_record(StreamName=self.name, Data=data, PartitionKey=key, ExplicitHashKey=hash_key)
            self.last[put["ShardId"]] = put["SequenceNumber"]


class Consumer:
    """`python -m copilot.sources.kinesis` as a user starts it, its log in the test's folder."""

    def __init__(self, workdir: Path, stream: Stream, kinesis_url: str, server_url: str, token_file: Path,
                 *extra: str) -> None:
        self.checkpoints = workdir / "checkpoints.json"
        self.log_path = workdir / f"consumer-{next(RUNS)}.log"
        command = [sys.executable, "-m", "copilot.sources.kinesis", "--stream", stream.name, "--server", server_url,
                   "--token-file", str(token_file), "--region", REGION, "--endpoint-url", kinesis_url,
                   "--checkpoints", str(self.checkpoints), "--limit", "3", "--poll-interval", "0.1",
                   "--list-interval", "0.5", "--max-backoff", "0.5", "--max-seconds", "50",
                   *(extra or ("--from", "trim_horizon"))]
        env = {**os.environ, **AWS, "PYTHONUNBUFFERED": "1"}
        env.pop("COPILOT_TOKEN", None)
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text()

    def sequences(self) -> dict[str, str]:
        if not self.checkpoints.exists():
            return {}
        shards = json.loads(self.checkpoints.read_text())["shards"]
        return {s: v["sequence"] for s, v in shards.items() if v["sequence"]}

    def wait_for_checkpoints(self, last: dict[str, str], timeout: float = 30) -> None:
        """Until every shard's checkpoint has reached the last sequence number put on it."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.process.poll() is None, f"the consumer exited ({self.process.returncode}):\n{self.log()}"
            done = self.sequences()
            if all(int(done.get(s, 0)) >= int(n) for s, n in last.items()):
                return
            time.sleep(0.05)
        raise AssertionError(f"checkpoints {self.sequences()} never reached {last}:\n{self.log()}")

    def wait_for_progress(self, beyond: dict[str, str], timeout: float = 20) -> None:
        """Until some shard's checkpoint has moved past `beyond` (the consumer is running, mid-stream)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.process.poll() is None, f"the consumer exited ({self.process.returncode}):\n{self.log()}"
            if any(int(n) > int(beyond.get(s, 0)) for s, n in self.sequences().items()):
                return
            time.sleep(0.02)
        raise AssertionError(f"checkpoints never moved past {beyond}:\n{self.log()}")

    def wait_for_log(self, text: str, count: int = 1, timeout: float = 20) -> None:
        deadline = time.time() + timeout
        while self.log().count(text) < count:
            assert time.time() < deadline, f"{text!r} not logged {count} times:\n{self.log()}"
            time.sleep(0.05)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> int:
        stop_process(self.process)
        return self.process.returncode


def events(instance: Path, contact_id: str) -> list[dict]:
    """The server's event log about one contact."""
    lines = (instance / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("conversation_id") == contact_id]


def assert_each_final_once(instance: Path, call: ContactLensCall) -> None:
    snippets = Counter(e["snippet_id"] for e in events(instance, call.contact_id) if e["type"] == "transcript.snippet")
    assert len(snippets) == call.finals, f"{len(snippets)} of {call.finals} final utterances logged"
    assert set(snippets.values()) == {1}, f"repeated: {[s for s, n in snippets.items() if n > 1]}"


def join_when_started(agent: AgentClient, contact_id: str, timeout: float = 20) -> dict:
    """The sidebar's conversation.join of the contact, once the source has started it."""
    deadline = time.time() + timeout
    while True:
        joined = agent.call("conversation.join", {"conversation_id": contact_id})
        if joined["ok"] or time.time() > deadline:
            return joined
        time.sleep(0.1)


def counts_over_socketio(agent: AgentClient, turns) -> dict:
    """The counts the same turns give when a sidebar sends them over Socket.IO, in a conversation of its own."""
    cid = f"socketio-{uuid.uuid4().hex[:8]}"
    assert agent.call("conversation.start", {"conversation_id": cid, "channel": "voice"})["ok"]
    for number, (role, text) in enumerate(turns):
        assert agent.say(cid, f"s-{number}", text, speaker=role.lower())["ok"]
    return agent.call("conversation.join", {"conversation_id": cid})["counts"]


def test_a_two_shard_stream_reaches_the_agent_and_a_kill_9_neither_drops_nor_repeats_an_utterance(
        tmp_path, kinesis, kinesis_url, server, token_file, agent):
    stream = Stream(kinesis, shards=2)
    watched, other = ContactLensCall(), ContactLensCall()  # one contact on each shard
    stream.put([watched.started(), *watched.turns(TURNS[:2])], LOW)
    stream.put([other.started(), *other.turns(TURNS[:4]), b"not a Contact Lens event"], HIGH)
    consumer = Consumer(tmp_path, stream, kinesis_url, server.url, token_file)
    joined = join_when_started(agent, watched.contact_id)
    assert joined["ok"], joined  # the source started it unclaimed; the agent's sidebar joining claims it

    stream.put(watched.turns(TURNS[2:] + TURNS), LOW)  # long enough to be mid-call when the consumer is killed
    stream.put([*other.turns(TURNS[4:]), other.completed()], HIGH)
    agent.wait_for("cue.highlight", lambda d: d["conversation_id"] == watched.contact_id and any(
        c["cue"] == "frustration" for c in d["cues"]), timeout=20)
    consumer.kill()  # mid-stream: three records a batch, and the watched call is still being relayed
    assert int(consumer.sequences().get("shardId-000000000000", 0)) < int(stream.last["shardId-000000000000"])

    consumer = Consumer(tmp_path, stream, kinesis_url, server.url, token_file)
    consumer.wait_for_progress(consumer.sequences())
    consumer.kill()  # again, wherever it is: between an answer and its checkpoint is as good as anywhere
    before = consumer.sequences()
    consumer = Consumer(tmp_path, stream, kinesis_url, server.url, token_file)
    consumer.wait_for_checkpoints(stream.last)
    assert consumer.stop() == 0  # SIGTERM: the batch in hand is finished and checkpointed
    for shard, sequence in before.items():  # each shard not yet done resumed just after its checkpoint
        if int(sequence) == int(stream.last[shard]):
            continue
        first = re.search(rf"shard={shard} records=\d+ sequences=(\d+)\.\.", consumer.log())
        assert first and int(first.group(1)) == int(sequence) + 1, consumer.log()
    # a crash between the server's answer and the checkpoint's write, made certain: the checkpoint moved back to
    # mid-call, so that the batches since are sent again; the server counts them as duplicates
    saved = json.loads(consumer.checkpoints.read_text())
    saved["shards"]["shardId-000000000000"]["sequence"] = str(int(stream.last["shardId-000000000000"]) // 2)
    consumer.checkpoints.write_text(json.dumps(saved))
    consumer = Consumer(tmp_path, stream, kinesis_url, server.url, token_file)
    consumer.wait_for_checkpoints(stream.last)
    assert consumer.stop() == 0
    assert re.search(r"duplicates=[1-9]", consumer.log()), consumer.log()

    for call in (watched, other):
        assert_each_final_once(server.instance, call)
    assert [e["type"] for e in events(server.instance, other.contact_id)].count("conversation.end") == 1
    rejoined = agent.call("conversation.join", {"conversation_id": watched.contact_id})
    assert rejoined["counts"] == counts_over_socketio(agent, TURNS + TURNS), rejoined
    assert rejoined["counts"].get("frustration", 0) >= 1
    logs = "".join(p.read_text() for p in tmp_path.glob("consumer-*.log"))
    assert "shard=shardId-000000000001 sequence=" in logs and "invalid_payload" in logs  # the garbage record


class ServerOnPort(ServerProcess):
    """A server on a port chosen before it starts, so that a consumer already pointed at it finds it there."""

    def __init__(self, env: dict, workdir: Path, port: int) -> None:
        self.fixed = port
        super().__init__({**env, "PORT": str(port)}, workdir)

    def wait_ready(self, path: str, timeout: float = 120) -> None:
        self.port, self.url = self.fixed, f"http://127.0.0.1:{self.fixed}"
        super().wait_ready(path, timeout)


def test_a_server_outage_is_retried_until_it_answers_and_nothing_is_skipped(
        tmp_path, kinesis, kinesis_url, redis_url, token_file):
    stream, call, port = Stream(kinesis, shards=1), ContactLensCall(), free_port()
    stream.put([call.started(), *call.turns(TURNS[:4])])
    # Redis holds the conversations, so a restarted server carries on where it was
    env = {"COPILOT_SECRET": SECRET, "REDIS_URL": redis_url, "COPILOT_SUGGESTION_COOLDOWN_S": "0",
           "COPILOT_RATE_PER_S": "200", "COPILOT_RATE_BURST": "400", "COPILOT_INSTANCE_DIR": str(tmp_path / "instance")}
    consumer = Consumer(tmp_path, stream, kinesis_url, f"http://127.0.0.1:{port}", token_file)
    consumer.wait_for_log("cannot reach the server", 3)  # nothing listens on the port yet
    assert consumer.sequences() == {}

    server = ServerOnPort(env, tmp_path, port)
    consumer.wait_for_checkpoints(stream.last)
    server.stop()
    stream.put(call.turns(TURNS[4:]))
    retries = consumer.log().count("cannot reach the server")
    consumer.wait_for_log("cannot reach the server", retries + 3)
    assert int(consumer.sequences()["shardId-000000000000"]) < int(stream.last["shardId-000000000000"])
    server = ServerOnPort(env, tmp_path, port)  # the same port, the same Redis
    try:
        consumer.wait_for_checkpoints(stream.last)
        assert consumer.stop() == 0
        logged = redis_events(redis_url, call.contact_id)
        snippets = Counter(e["snippet_id"] for e in logged if e["type"] == "transcript.snippet")
        assert len(snippets) == call.finals and set(snippets.values()) == {1}, snippets
    finally:
        server.stop()


def redis_events(url: str, contact_id: str) -> list[dict]:
    import redis

    with redis.Redis.from_url(url, decode_responses=True) as client:
        logged = [json.loads(f["event"]) for _, f in client.xrange("copilot:events")]
    return [e for e in logged if e.get("conversation_id") == contact_id]


def test_a_refused_token_stops_the_consumer_with_a_clear_message_and_no_checkpoint(
        tmp_path, kinesis, kinesis_url, server):
    stream, call = Stream(kinesis, shards=1), ContactLensCall()
    stream.put([call.started(), *call.turns(TURNS[:2])])
    agent_token = tmp_path / "agent-token"
    agent_token.write_text(Tokens(SECRET).issue("acme", "agent", "amy"))
    consumer = Consumer(tmp_path, stream, kinesis_url, server.url, agent_token)
    assert consumer.process.wait(30) == 3
    assert "the server refused the token" in consumer.log()
    assert consumer.sequences() == {}


def test_from_latest_skips_the_calls_before_the_first_start_and_loses_none_after_it_even_after_a_kill_9(
        tmp_path, kinesis, kinesis_url, server, token_file):
    stream, before, after = Stream(kinesis, shards=1), ContactLensCall(), ContactLensCall()
    stream.put([before.started(), *before.turns(TURNS[:2])])
    consumer = Consumer(tmp_path, stream, kinesis_url, server.url, token_file, "--from", "latest")
    consumer.wait_for_log("reading from when the consumer first started")
    consumer.kill()  # before its first batch: no sequence checkpointed, only when it first started
    assert consumer.sequences() == {} and json.loads(consumer.checkpoints.read_text())["since"]
    stream.put([after.started(), *after.turns(TURNS[:4])])
    consumer = Consumer(tmp_path, stream, kinesis_url, server.url, token_file, "--from", "latest")
    consumer.wait_for_checkpoints(stream.last)
    assert consumer.stop() == 0
    assert events(server.instance, before.contact_id) == []
    assert_each_final_once(server.instance, after)
