"""Both conversation stores behind one interface: in memory with the append-only file log (the embedded default),
and a real Redis with its stream. The same tests run against each."""
import json
import os
import time
from pathlib import Path

import pytest

from copilot import conversation as engine
from copilot.conversation import Conversation
from copilot.conversation_store import STATE_TTL_S, MemoryConversationStore, RedisConversationStore, redis_policy
from copilot.errors import ConversationExists, StoreUnavailable, TooManyConversations, UnknownConversation
from copilot.eventlog import FileEventLog
from tests.servers import free_port


@pytest.fixture(params=["memory", "redis"])
def store(request, tmp_path):
    if request.param == "memory":
        return MemoryConversationStore(FileEventLog(tmp_path / "events.jsonl"))
    return RedisConversationStore(request.getfixturevalue("redis_url"))


def conversation(cid="c1", tenant="acme"):
    return Conversation(id=cid, tenant=tenant, agent="amy", channel="chat", queue="billing", started_at=time.time())


def bump(conv):
    conv.counts["frustration"] = conv.counts.get("frustration", 0) + 1
    return conv.counts["frustration"], [{"type": "bump", "conversation_id": conv.id}]


def test_a_change_is_kept_with_its_events(store):
    store.create(conversation(), [{"type": "start", "conversation_id": "c1"}])
    assert store.update("acme", "c1", bump) == 1
    assert store.update("acme", "c1", bump) == 2
    assert store.get("acme", "c1").counts == {"frustration": 2}
    assert [e["type"] for e in store.events()] == ["start", "bump", "bump"]


def test_a_failed_change_leaves_no_trace(store):
    store.create(conversation(), [])
    store.update("acme", "c1", bump)

    def fails(conv):
        conv.counts["frustration"] = 99
        conv.flags.append("half-done")
        raise ValueError("boom")
    with pytest.raises(ValueError):
        store.update("acme", "c1", fails)
    conv = store.get("acme", "c1")
    assert conv.counts == {"frustration": 1} and "half-done" not in conv.flags
    assert [e["type"] for e in store.events()] == ["bump"]


def test_get_returns_a_copy(store):
    store.create(conversation(), [])
    store.get("acme", "c1").counts["frustration"] = 5
    assert store.get("acme", "c1").counts == {}


def test_an_utterance_s_pieces_so_far_are_kept_with_the_state(store):
    store.create(conversation(), [])
    store.update("acme", "c1", lambda c: (engine.take_piece(c, "u1", "a charge", 4000), []))
    assert store.update("acme", "c1", lambda c: (engine.take_piece(c, "u1", "on my bill", 4000), [])) == \
        "a charge on my bill"
    assert store.get("acme", "c1").pieces == {"u1": "a charge on my bill"}


def test_another_tenant_and_unknown_ids_are_unknown(store):
    store.create(conversation(), [])
    for tenant, cid in [("globex", "c1"), ("acme", "nope")]:
        with pytest.raises(UnknownConversation):
            store.get(tenant, cid)
        with pytest.raises(UnknownConversation):
            store.require(tenant, cid)
        with pytest.raises(UnknownConversation):
            store.update(tenant, cid, bump)


def test_a_running_conversation_cannot_be_started_twice_an_ended_one_can(store):
    store.create(conversation(), [])
    with pytest.raises(ConversationExists):
        store.create(conversation(), [])

    def end(conv):
        conv.ended_at = time.time()
        return None, []
    store.update("acme", "c1", end)
    store.create(conversation(), [])
    assert store.get("acme", "c1").ended_at is None


def test_the_embedded_store_forgets_ended_conversations_after_their_retention(tmp_path):
    store = MemoryConversationStore(FileEventLog(tmp_path / "events.jsonl"), keep_ended_s=0.2)
    store.create(conversation("old"), [])

    def end(conv):
        conv.ended_at = time.time()
        return None, []
    store.update("acme", "old", end)
    store.create(conversation("running"), [])
    time.sleep(0.5)
    store.create(conversation("new"), [])  # creating sweeps
    with pytest.raises(UnknownConversation):
        store.require("acme", "old")
    store.require("acme", "running")


@pytest.fixture(params=["memory", "redis"])
def make_store(request, tmp_path):
    """Build a store of either kind with the given caps."""
    def build(**caps):
        if request.param == "memory":
            return MemoryConversationStore(FileEventLog(tmp_path / "events.jsonl"), **caps)
        return RedisConversationStore(request.getfixturevalue("redis_url"), **caps)
    return build


def end(conv):
    conv.ended_at = time.time()
    return None, [{"type": "end", "conversation_id": conv.id}]


def test_a_tenant_at_its_live_cap_is_refused_and_other_tenants_are_not(make_store):
    store = make_store(max_live=3)
    for n in range(3):
        store.create(conversation(f"c{n}"), [])
    with pytest.raises(TooManyConversations) as refused:
        store.create(conversation("c3"), [{"type": "start", "conversation_id": "c3"}])
    assert (refused.value.code, refused.value.status) == ("too_many_conversations", 429)
    store.create(conversation("c0", tenant="globex"), [])
    for n in range(3):
        store.require("acme", f"c{n}")
    with pytest.raises(UnknownConversation):
        store.require("acme", "c3")
    assert store.events() == []


def test_ending_a_conversation_frees_its_place_under_the_cap(make_store):
    store = make_store(max_live=2)
    store.create(conversation("c0"), [])
    store.create(conversation("c1"), [])
    store.update("acme", "c0", end)
    store.create(conversation("c2"), [])
    with pytest.raises(TooManyConversations):
        store.create(conversation("c3"), [])
    with pytest.raises(TooManyConversations):  # restarting an ended one takes a place too
        store.create(conversation("c0"), [])


def test_the_embedded_store_drops_ended_conversations_past_its_limit_never_live_ones(tmp_path):
    store = MemoryConversationStore(FileEventLog(tmp_path / "events.jsonl"), max_ended=2)
    store.create(conversation("live"), [])
    for n in range(4):
        store.create(conversation(f"e{n}"), [])
        store.update("acme", f"e{n}", end)
    store.require("acme", "live")
    for gone in ("e0", "e1"):
        with pytest.raises(UnknownConversation):
            store.require("acme", gone)
    for kept in ("e2", "e3"):
        store.require("acme", kept)


def test_the_embedded_store_lets_live_conversations_idle_past_the_ttl_expire(tmp_path):
    store = MemoryConversationStore(FileEventLog(tmp_path / "events.jsonl"), max_live=2, idle_s=0.2)
    store.create(conversation("idle"), [])
    time.sleep(0.3)
    store.create(conversation("busy"), [])
    store.create(conversation("new"), [])  # the idle one no longer takes a place
    with pytest.raises(UnknownConversation):
        store.require("acme", "idle")


def test_the_redis_index_forgets_conversations_idle_past_the_ttl(redis_url):
    import redis

    store = RedisConversationStore(redis_url, max_live=1)
    store.create(conversation("idle"), [])
    with pytest.raises(TooManyConversations):
        store.create(conversation("new"), [])
    client = redis.Redis.from_url(redis_url)
    client.zadd(store.index("acme"), {"idle": time.time() - STATE_TTL_S - 1})  # as if untouched for a day
    store.create(conversation("new"), [])
    assert client.zrange(store.index("acme"), 0, -1) == [b"new"]


def test_redis_updates_keep_the_live_index_and_the_state_in_step(redis_url):
    import redis

    store = RedisConversationStore(redis_url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store.create(conversation("c1"), [])
    client.delete(store.index("acme"))  # as a conversation stored before the index existed
    client.set(store.key("acme", "c1"), json.dumps(conversation("c1").as_dict()))
    store.update("acme", "c1", bump)
    assert client.zrange(store.index("acme"), 0, -1) == ["c1"]
    assert store.get("acme", "c1").counts == {"frustration": 1}
    store.update("acme", "c1", end)
    assert client.zcard(store.index("acme")) == 0


def test_a_log_the_disk_refuses_applies_nothing_and_a_retry_applies_once(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    log = FileEventLog(tmp_path / "events.jsonl")
    store = MemoryConversationStore(log)
    store.create(conversation(), [{"type": "start", "conversation_id": "c1"}])
    store.log = FileEventLog(Path("/dev/full"))  # every write: ENOSPC
    with pytest.raises(StoreUnavailable):
        store.update("acme", "c1", bump)
    with pytest.raises(StoreUnavailable):
        store.create(conversation("c2"), [{"type": "start", "conversation_id": "c2"}])
    assert store.get("acme", "c1").counts == {}
    with pytest.raises(UnknownConversation):
        store.require("acme", "c2")
    store.log = log
    assert store.update("acme", "c1", bump) == 1
    assert [e["type"] for e in store.events()] == ["start", "bump"]


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_a_fresh_line(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "one"}\n{"type": "tw', encoding="utf-8")  # a crash mid-write
    log = FileEventLog(path)
    assert [e["type"] for e in log.read()] == ["one"]
    log.append_all([{"type": "three"}, {"type": "four"}])
    assert [e["type"] for e in log.read()] == ["one", "three", "four"]
    assert [e["type"] for e in log.read(2)] == ["three", "four"]
    assert path.read_text(encoding="utf-8").endswith("\n")


def test_the_file_log_reads_its_newest_lines_from_the_end(tmp_path):
    log = FileEventLog(tmp_path / "events.jsonl")
    for n in range(3000):  # several read blocks
        log.append({"type": "e", "n": n, "pad": "x" * 40})
    assert [e["n"] for e in log.read(2500)] == list(range(500, 3000))
    assert len(log.read(100_000)) == 3000


def test_redis_policy_warns_about_any_policy_but_noeviction(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    before = client.config_get("maxmemory-policy")["maxmemory-policy"]
    try:
        client.config_set("maxmemory-policy", "noeviction")
        assert redis_policy(redis_url)["ok"] and redis_policy(client)["maxmemory_policy"] == "noeviction"
        for risky in ("allkeys-lru", "volatile-lru", "volatile-ttl"):
            client.config_set("maxmemory-policy", risky)
            policy = redis_policy(client)
            assert not policy["ok"] and policy["can_evict"] and risky in policy["warnings"][0]
    finally:
        client.config_set("maxmemory-policy", before)
    unreachable = redis_policy(f"redis://127.0.0.1:{free_port()}/0")
    assert not unreachable["ok"] and not unreachable["reachable"]


def test_an_ended_conversation_may_be_started_again_by_its_agent_but_not_taken_over_by_another(store):
    store.create(conversation("c9"), [])

    def end(conv):
        conv.ended_at = time.time()
        return None, []
    store.update("acme", "c9", end)
    other = Conversation(id="c9", tenant="acme", agent="bob", channel="chat", started_at=time.time())
    with pytest.raises(ConversationExists, match="another agent"):
        store.create(other, [])
    assert store.get("acme", "c9").agent == "amy"
    store.create(conversation("c9"), [])
    assert store.get("acme", "c9").ended_at is None


def test_a_tenants_events_are_read_without_the_others(tmp_path):
    log = FileEventLog(tmp_path / "events.jsonl")
    for n in range(30):
        log.append({"type": "x", "tenant": "acme" if n % 3 == 0 else "other", "n": n,
                    "text": '"tenant": "acme" inside a text does not count'})
    mine = MemoryConversationStore(log).events(tenant="acme")
    assert [e["n"] for e in mine] == list(range(0, 30, 3)) and all(e["tenant"] == "acme" for e in mine)
    assert (tmp_path / "events.jsonl").stat().st_mode & 0o077 in (0, 0o040)  # no other user reads it


def test_the_floor_reads_a_tenants_live_conversations_and_no_ended_or_other_tenants_ones(store):
    for cid, tenant in (("c1", "acme"), ("c2", "acme"), ("c3", "acme"), ("c1", "globex")):
        store.create(conversation(cid, tenant), [])

    def end(conv):
        conv.ended_at = 5.0
        return None, []
    store.update("acme", "c3", end)
    store.update("acme", "c2", bump)
    offloaded = []

    def off_loop(work, *args):
        offloaded.append(work)
        return work(*args)
    live = store.live_conversations("acme", off_loop)
    assert sorted(c.id for c in live) == ["c1", "c2"] and {c.tenant for c in live} == {"acme"}
    assert offloaded  # the decoding went through off_loop
