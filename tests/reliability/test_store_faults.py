"""The stores on a bad day: one tenant filling the embedded store, a full disk under the event log, a Redis out of
memory, and an event stream that only ever grew. Real servers, a real Redis and a real Socket.IO client on
loopback; every loop is bounded in count.

Regressions for issue #11: defect 3 (one tenant evicts the others), 7 (Redis full) and 10 (disk full breaks
"acknowledged means logged").
"""
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests

from copilot.conversation import Conversation
from copilot.conversation_store import MemoryConversationStore, RedisConversationStore
from copilot.errors import CopilotError
from copilot.eventlog import FileEventLog
from copilot.security import Tokens
from tests.conftest import AgentClient
from tests.servers import ServerProcess

SECRET = "store-faults-secret-0123456789abcdef0123"
FRUSTRATED = "I'm so frustrated, this is ridiculous"
IGNORE_SIGXFSZ = ("import runpy, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                  "runpy.run_path('wsgi.py', run_name='__main__')")


def env(instance: Path, **extra) -> dict:
    fast = {name: "1000" for name in ("COPILOT_RATE_PER_S", "COPILOT_RATE_BURST", "COPILOT_AGENT_RATE_PER_S",
                                      "COPILOT_AGENT_RATE_BURST")}
    return {"COPILOT_SECRET": SECRET, "COPILOT_INSTANCE_DIR": str(instance), "COPILOT_SUGGESTION_COOLDOWN_S": "3600",
            **fast, **extra}


def agent(server: ServerProcess) -> AgentClient:
    return AgentClient(server.url, Tokens(SECRET).issue("acme", "agent", "amy"))


def logged_snippets(events: list[dict], cid: str) -> list[str]:
    return [e["snippet_id"] for e in events if e.get("type") == "transcript.snippet" and e["conversation_id"] == cid]


def read_lines(path: Path) -> list[dict]:
    """Every whole JSON line of the file (a torn one is skipped, as the log's own reader does)."""
    events = []
    for line in path.read_bytes().split(b"\n"):
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def conversation(cid: str, tenant: str) -> Conversation:
    return Conversation(id=cid, tenant=tenant, agent="amy", channel="chat", started_at=time.time())


# -- defect 3: one tenant evicts the others ---------------------------------------------------------------------
def test_one_tenant_filling_the_embedded_store_never_evicts_another_tenants_live_conversation(tmp_path):
    store = MemoryConversationStore(FileEventLog(tmp_path / "events.jsonl"))
    store.create(conversation("theirs", "acme"), [])
    refused, started = [], time.perf_counter()
    for n in range(20_100):  # what the demo client made in 43 s
        try:
            store.create(conversation(f"d{n}", "demo"), [])
        except CopilotError as error:
            refused.append(error.code)
    elapsed = time.perf_counter() - started
    store.require("acme", "theirs")
    assert refused == ["too_many_conversations"] * (20_100 - 5000)
    assert len(store.items) == 5001, "the store holds each tenant's live conversations up to the cap, no more"
    assert elapsed < 20


# -- defect 10: a full disk under the event log -----------------------------------------------------------------
class TmpfsDisk:
    """The instance folder on a small tmpfs of its own; full means a filler file took the rest (real ENOSPC)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(root)], check=True,
                       capture_output=True)
        self.filler = root / "filler"

    def fill(self, server: ServerProcess) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for size in (1 << 16, 1 << 12, 1):  # bounded: 2 MB in all
                while True:
                    try:
                        os.write(fd, b"x" * size)
                    except OSError:
                        break
        finally:
            os.close(fd)

    def free(self, server: ServerProcess) -> None:
        self.filler.unlink()

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.root)], check=False, capture_output=True)


class FileSizeLimit:
    """A file size limit set on the running server (RLIMIT_FSIZE through prlimit, SIGXFSZ ignored: EFBIG), just
    above the event log's size; the log is padded first so that it is the largest file the server writes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        instance = root / "instance"
        instance.mkdir(parents=True)
        padding = json.dumps({"type": "padding", "text": "x" * 1000}) + "\n"
        (instance / "events.jsonl").write_text(padding * 1024, encoding="utf-8")  # 1 MB

    def fill(self, server: ServerProcess) -> None:
        size = (self.root / "instance" / "events.jsonl").stat().st_size
        resource.prlimit(server.pid, resource.RLIMIT_FSIZE, (size + 1000, resource.RLIM_INFINITY))

    def free(self, server: ServerProcess) -> None:
        resource.prlimit(server.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    def close(self) -> None:
        pass


def can_mount_tmpfs() -> bool:
    return sys.platform == "linux" and os.geteuid() == 0 and os.path.exists("/proc/filesystems") and \
        "tmpfs" in Path("/proc/filesystems").read_text()


@pytest.fixture(params=["tmpfs", "file-size-limit"])
def disk(request, tmp_path):
    if request.param == "tmpfs":
        if not can_mount_tmpfs():
            pytest.skip("mounting a tmpfs needs root on Linux")
        try:
            made = TmpfsDisk(tmp_path / "disk")
        except subprocess.CalledProcessError as error:
            pytest.skip(f"tmpfs mount refused: {error.stderr.decode().strip()}")
    else:
        made = FileSizeLimit(tmp_path / "disk")
    yield made
    made.close()


def test_a_full_disk_never_acknowledges_a_snippet_it_did_not_log_and_a_retry_counts_once(disk, tmp_path):
    instance = disk.root / "instance"
    server = ServerProcess(env(instance), tmp_path, command=[sys.executable, "-c", IGNORE_SIGXFSZ])
    client = agent(server)
    try:
        assert client.call("conversation.start", {"conversation_id": "c1", "channel": "chat"})["ok"]
        sids = [f"s{n}" for n in range(36)]
        acks = {sid: client.say("c1", sid, FRUSTRATED) for sid in sids[:3]}
        disk.fill(server)
        acks.update({sid: client.say("c1", sid, FRUSTRATED) for sid in sids[3:33]})
        failed = [sid for sid, ack in acks.items() if not ack["ok"]]
        assert len(failed) >= 20, "the disk never filled up"
        assert {acks[sid]["error"]["code"] for sid in failed} == {"store_unavailable"}
        disk.free(server)
        for sid in failed:
            retried = client.say("c1", sid, FRUSTRATED)
            assert retried["ok"] and not retried["duplicate"], f"{sid} was applied although refused: {retried}"
        for sid in sids[33:]:
            assert client.say("c1", sid, FRUSTRATED)["ok"]
        joined = client.call("conversation.join", {"conversation_id": "c1"})
        assert joined["counts"]["frustration"] == len(sids)
    finally:
        client.close()
        server.stop()
    logged = logged_snippets(read_lines(instance / "events.jsonl"), "c1")
    assert sorted(logged) == sorted(sids), "every acknowledged snippet is in the log exactly once"


def test_a_full_disk_answers_library_edits_with_store_unavailable_and_applies_them_once_it_has_room(disk, tmp_path):
    if isinstance(disk, FileSizeLimit):
        pytest.skip("the library's SQLite files are not the largest the server writes: needs the tmpfs")
    instance = disk.root / "instance"
    server = ServerProcess(env(instance), tmp_path, command=[sys.executable, "-c", IGNORE_SIGXFSZ])
    lead = {"Authorization": f"Bearer {Tokens(SECRET).issue('acme', 'lead', 'lee')}"}
    phrasing = {"id": "disk-full-01", "text": "What would help most right now?", "cues": ["frustration"],
                "stage": "check-in", "channels": ["chat"], "use_when": ["this is a joke", "I am fed up"]}
    try:
        assert requests.get(server.url + "/api/v1/phrasings", headers=lead, timeout=30).status_code == 200  # seeded
        disk.fill(server)
        refused = requests.post(server.url + "/api/v1/phrasings", json=phrasing, headers=lead, timeout=30)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "store_unavailable", refused.text
        disk.free(server)
        created = requests.post(server.url + "/api/v1/phrasings", json=phrasing, headers=lead, timeout=30)
        assert created.status_code == 201, created.text
        got = requests.get(server.url + "/api/v1/phrasings/disk-full-01", headers=lead, timeout=30)
        assert got.json()["phrasing"]["version"] == 1
    finally:
        server.stop()


# -- defect 7: Redis out of memory ------------------------------------------------------------------------------
def fill_redis(client: redis.Redis) -> list[str]:
    """Fill Redis with 2 MB of filler keys, then cap it (noeviction) 1 MB below what it holds: every write is
    refused until the filler goes. (A cap just at the edge flickers as buffers come and go.)"""
    keys = [f"filler:{n}" for n in range(32)]
    for key in keys:
        client.set(key, "x" * 65536)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", client.info("memory")["used_memory"] - 1_000_000)
    with pytest.raises(redis.exceptions.ResponseError, match="maxmemory"):
        client.set("probe", "x")
    return keys


def test_a_full_redis_answers_store_unavailable_keeps_the_connection_and_recovers_counting_once(own_redis, tmp_path):
    server = ServerProcess(env(tmp_path / "instance", REDIS_URL=own_redis.url), tmp_path)
    client = agent(server)
    data = redis.Redis.from_url(own_redis.url, decode_responses=True)
    try:
        assert client.call("conversation.start", {"conversation_id": "c1", "channel": "chat"})["ok"]
        sids = [f"s{n}" for n in range(10)]
        for sid in sids[:3]:
            assert client.say("c1", sid, FRUSTRATED)["ok"]
        filler = fill_redis(data)
        for sid in sids[3:8]:
            ack = client.say("c1", sid, FRUSTRATED)
            assert not ack["ok"] and ack["error"]["code"] == "store_unavailable", ack
        started = client.call("conversation.start", {"conversation_id": "c2", "channel": "chat"})
        assert not started["ok"] and started["error"]["code"] == "store_unavailable", started
        data.delete(*filler)
        for sid in sids[3:]:  # the same connection, the same snippets
            ack = client.say("c1", sid, FRUSTRATED)
            assert ack["ok"] and not ack["duplicate"], ack
        assert client.call("conversation.start", {"conversation_id": "c2", "channel": "chat"})["ok"]
        assert client.call("conversation.join", {"conversation_id": "c1"})["counts"]["frustration"] == len(sids)
        events = [json.loads(fields["event"]) for _, fields in data.xrange("copilot:events")]
        assert sorted(logged_snippets(events, "c1")) == sorted(sids)
    finally:
        client.close()
        server.stop()
        data.close()


def test_the_event_stream_is_trimmed_by_age_only_behind_the_analytics_loader(redis_url, tmp_path):
    from copilot.analytics.loader import Loader, StreamSource
    from copilot.analytics.store import DuckDBAnalytics
    from copilot.conversation_store import EventStream

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    old_ms = int((time.time() - 40 * 86400) * 1000)  # older than the 30 days kept by default
    for n in range(300):
        client.xadd("copilot:events", {"event": json.dumps({"id": f"{n:032x}", "type": "old", "n": n})},
                    id=f"{old_ms + n}-0")
    store = RedisConversationStore(redis_url)
    store.create(conversation("c1", "acme"), [{"type": "conversation.start", "conversation_id": "c1"}])
    kept = [json.loads(fields["event"])["type"] for _, fields in client.xrange("copilot:events")]
    assert kept.count("old") == 300 and kept[-1] == "conversation.start", "an append trims nothing unread"
    loader = Loader(DuckDBAnalytics(tmp_path / "analytics.duckdb"),
                    StreamSource(EventStream(redis_url, group="analytics")), batch=1000)
    loader.run_once()
    kept = [json.loads(fields["event"])["type"] for _, fields in client.xrange("copilot:events")]
    assert kept == ["conversation.start"], "once loaded, what is past the age limit goes; recent history stays"
    client.close()


def test_readyz_warns_of_an_eviction_policy_that_could_drop_the_library(own_redis, tmp_path):
    client = redis.Redis.from_url(own_redis.url)
    client.config_set("maxmemory-policy", "allkeys-lru")
    server = ServerProcess(env(tmp_path / "instance", REDIS_URL=own_redis.url), tmp_path)
    try:
        body = requests.get(server.url + "/readyz", timeout=30).json()
        assert body["redis"]["maxmemory_policy"] == "allkeys-lru" and body["redis"]["ok"] is False
        assert any("noeviction" in w for w in body["redis"]["warnings"])
        client.config_set("maxmemory-policy", "noeviction")
        assert requests.get(server.url + "/readyz", timeout=30).json()["redis"]["ok"] is True
    finally:
        server.stop()
        client.close()
