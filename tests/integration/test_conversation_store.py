"""Both conversation stores behind one interface: in memory with the append-only file log (the embedded default),
and a real Redis with its stream. The same tests run against each."""
import time

import pytest

from copilot.conversation import Conversation
from copilot.eventlog import FileEventLog
from copilot.store import ConversationExists, MemoryConversationStore, RedisConversationStore, UnknownConversation


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
