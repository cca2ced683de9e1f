"""One tenant with a valid token fills the embedded store: it is refused at its own cap with a coded error, and
no other tenant's live conversation is evicted to make room (the store used to drop the oldest past 20,000)."""
import time

import pytest

from copilot.security import Tokens
from tests.conftest import AgentClient, own_server

SECRET = "tenant-limits-secret-0123456789abcdef012345"
CAP = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = own_server(tmp_path_factory.mktemp("tenant-limits"), SECRET, COPILOT_MAX_LIVE_CONVERSATIONS=str(CAP))
    yield proc
    proc.stop()


def test_a_tenant_at_its_cap_is_refused_and_another_tenants_live_conversation_is_untouched(server):
    victim = AgentClient(server.url, Tokens(SECRET).issue("victim", "agent", "vic"))
    flooder = AgentClient(server.url, Tokens(SECRET).issue("demo", "agent", "demo-agent"))
    try:
        assert victim.call("conversation.start", {"conversation_id": "theirs", "channel": "voice"})["ok"]
        assert victim.say("theirs", "s1", "I'm really worried about my account")["ok"]
        codes = []
        for n in range(CAP + 15):
            reply = flooder.call("conversation.start", {"conversation_id": f"flood-{n}-{time.time_ns()}",
                                                        "channel": "chat"})
            codes.append("ok" if reply["ok"] else reply["error"]["code"])
        assert codes.count("ok") == CAP and set(codes[CAP:]) == {"too_many_conversations"}, codes
        joined = victim.call("conversation.join", {"conversation_id": "theirs"})
        assert joined["ok"] and joined["counts"].get("anxiety") == 1
        assert victim.say("theirs", "s2", "still worried")["ok"]
    finally:
        victim.close()
        flooder.close()


def test_ending_conversations_makes_room_again(server):
    agent = AgentClient(server.url, Tokens(SECRET).issue("roomy", "agent", "ann"))
    try:
        ids = [f"r-{n}" for n in range(CAP)]
        for cid in ids:
            assert agent.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]
        assert agent.call("conversation.start", {"conversation_id": "one-more", "channel": "chat"})["error"]["code"] \
            == "too_many_conversations"
        assert agent.call("conversation.end", {"conversation_id": ids[0]})["ok"]
        assert agent.call("conversation.start", {"conversation_id": "one-more", "channel": "chat"})["ok"]
    finally:
        agent.close()


def test_another_tenants_analytics_over_a_long_log_do_not_hold_up_live_snippets(tmp_path):
    import json
    import threading

    import requests

    instance = tmp_path / "instance"
    instance.mkdir()
    line = {"type": "transcript.snippet", "tenant": "evil", "conversation_id": "x", "cues": ["frustration"],
            "triage_level": 1, "speaker": "customer", "text": "filler " * 20}
    with (instance / "events.jsonl").open("w") as log:
        for n in range(100_000):
            log.write(json.dumps({"at": 1_764_000_000 + n, **line}) + "\n")
    server = own_server(tmp_path, SECRET)
    lead = {"Authorization": f"Bearer {Tokens(SECRET).issue('evil', 'lead', 'eve')}"}
    probe = AgentClient(server.url, Tokens(SECRET).issue("victim", "agent", "vic"))
    stop, calls = threading.Event(), []

    def analytics():
        while not stop.is_set() and len(calls) < 20:
            calls.append(requests.get(server.url + "/api/v1/analytics/conversations", headers=lead, timeout=60)
                         .status_code)
    worker = threading.Thread(target=analytics)
    try:
        assert probe.call("conversation.start", {"conversation_id": "probe", "channel": "chat"})["ok"]
        assert probe.say("probe", "warm", "I'm fed up with waiting")["ok"]  # the tenant's library is seeded
        worker.start()
        waits = []
        for n in range(25):
            started = time.perf_counter()
            assert probe.say("probe", f"s{n}", "I'm fed up with waiting")["ok"]
            waits.append(time.perf_counter() - started)
            time.sleep(0.1)
        stop.set()
        worker.join(120)
        assert calls and set(calls) == {200}
        assert max(waits) < 1.0, f"a snippet waited {max(waits):.2f} s behind another tenant's analytics"  # old: 3.5 s
    finally:
        stop.set()
        probe.close()
        server.stop()
