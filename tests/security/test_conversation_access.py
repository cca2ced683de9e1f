"""A hostile agent with a valid token of the same tenant, and long conversations, against a real server on
loopback: a conversation belongs to the agent who started it (plus leads and an explicit transfer), free-text
fields are redacted before they are logged, and per-conversation lists stay bounded."""
import json
import time

import pytest

from copilot.security import Tokens
from tests.conftest import AgentClient, own_server

SECRET = "conversation-access-secret-0123456789abcdef"
PII = ("4111 1111 1111 1111", "jo.bloggs@example.com")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = own_server(tmp_path_factory.mktemp("access"), SECRET)
    yield proc
    proc.stop()


@pytest.fixture
def client(server):
    made = []

    def make(agent="amy", role="agent", tenant="acme"):
        made.append(AgentClient(server.url, Tokens(SECRET).issue(tenant, role, agent)))
        return made[-1]
    yield make
    for c in made:
        c.close()


def unique(prefix):
    return f"{prefix}-{time.time_ns()}"


def test_another_agent_of_the_tenant_cannot_join_read_change_or_end_a_conversation(client):
    amy, bob = client("amy"), client("bob")
    cid = unique("own")
    assert amy.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]
    assert amy.say(cid, "s1", "I'm so worried about my account")["ok"]
    for event, payload in [("conversation.join", {}), ("conversation.mode", {"mode": "verification"}),
                           ("conversation.transfer", {"to_queue": "x"}), ("conversation.end", {}),
                           ("transcript.snippet", {"snippet_id": "b1", "speaker": "agent", "text": "hi",
                                                   "final": True})]:
        reply = bob.call(event, {"conversation_id": cid, **payload})
        assert reply["error"]["code"] == "unknown_conversation", (event, reply)
    assert not bob.of("cue.highlight") and not bob.of("handoff.note")
    joined = amy.call("conversation.join", {"conversation_id": cid})
    assert joined["ok"] and joined["mode"] == "normal" and not joined["ended"]


def test_a_lead_and_an_agent_it_was_transferred_to_may_act_on_it(client):
    amy, bob, lee = client("amy"), client("bob"), client("lee", role="lead")
    cid = unique("handed")
    assert amy.call("conversation.start", {"conversation_id": cid, "channel": "voice"})["ok"]
    assert lee.call("conversation.join", {"conversation_id": cid})["ok"]
    assert amy.call("conversation.transfer", {"conversation_id": cid, "to_queue": "retention",
                                              "to_agent": "bob"})["ok"]
    assert bob.call("conversation.join", {"conversation_id": cid})["ok"]
    assert bob.say(cid, "s2", "thanks, that helps")["ok"]


def test_free_text_fields_are_redacted_before_they_are_logged(client, server):
    amy = client("amy")
    cid = unique("pii")
    assert amy.call("conversation.start", {"conversation_id": cid, "channel": "chat", "queue": f"card {PII[0]}",
                                           "customer_ref": PII[1]})["ok"]
    assert amy.call("conversation.transfer", {"conversation_id": cid, "to_queue": f"email {PII[1]}"})["ok"]
    assert amy.call("conversation.end", {"conversation_id": cid})["ok"]
    log = (server.instance / "events.jsonl").read_text()
    mine = [line for line in log.splitlines() if cid in line]
    assert len(mine) >= 3
    for needle in (*PII, "4111111111111111", "jo.bloggs"):
        assert needle not in "\n".join(mine)


def test_a_conversation_whose_tone_keeps_swinging_keeps_a_bounded_alert_list(client):
    amy = client("amy")
    cid = unique("swing")
    assert amy.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]
    texts = ["This is absolutely disgusting, I am furious and fed up", "Thank you so much, that is wonderful"]
    for i in range(48):
        assert amy.say(cid, f"s{i}", texts[i % 2])["ok"]
    summary = amy.call("conversation.end", {"conversation_id": cid})["summary"]
    assert summary["customer_turns"] == 48
    shifts = [a for a in summary["alerts"] if a == "tone_shift"]
    assert 1 <= len(shifts) <= 10, summary["alerts"]


def test_the_summary_and_log_never_lose_a_crisis_after_many_turns(client, server):
    amy = client("amy")
    cid = unique("late-crisis")
    assert amy.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]
    for i in range(12):
        assert amy.say(cid, f"s{i}", "I'm fed up" if i % 2 else "thanks")["ok"]
    assert amy.say(cid, "crisis", "honestly I want to end it all")["ok"]
    assert amy.wait_for("alert", lambda d: d["conversation_id"] == cid and d["kind"] == "crisis")
    events = [json.loads(line) for line in (server.instance / "events.jsonl").read_text().splitlines()
              if cid in line]
    crisis = [e for e in events if e.get("snippet_id") == "crisis"]
    assert len(crisis) == 1 and crisis[0]["triage_level"] == 3


def test_another_agent_cannot_take_over_an_ended_conversation_kept_for_a_late_join(client):
    amy, amy_sidebar, bob = client("amy"), client("amy"), client("bob")
    cid = unique("ended")
    assert amy.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]
    assert amy_sidebar.call("conversation.join", {"conversation_id": cid})["ok"]
    assert amy.say(cid, "s1", "I'm worried about the bill")["ok"]
    assert amy.call("conversation.end", {"conversation_id": cid})["ok"]
    reply = bob.call("conversation.start", {"conversation_id": cid, "channel": "chat"})
    assert reply["error"]["code"] == "conversation_exists", reply
    assert bob.say(cid, "b1", "my husband passed away")["error"]["code"] == "unknown_conversation"
    time.sleep(0.5)
    assert not [h for h in amy_sidebar.of("cue.highlight") if h["snippet_id"] == "b1"]
    joined = amy.call("conversation.join", {"conversation_id": cid})
    assert joined["ok"] and joined["ended"] and joined["counts"].get("anxiety") == 1
    assert amy.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"], \
        "its own agent may start it again"


def test_events_sent_without_waiting_for_acks_are_handled_in_the_order_sent(client):
    import threading

    amy = client("amy")
    cid = unique("ordered")
    acks, done = {}, threading.Event()

    def ack(name):
        def record(data):
            acks[name] = data
            if len(acks) == 4:
                done.set()
        return record
    amy.sio.emit("conversation.start", {"conversation_id": cid, "channel": "chat"}, namespace="/copilot",
                 callback=ack("start"))
    for n, (text, final) in enumerate([("I'm so fru", False), ("I'm so frustrated", True), ("and worried", True)]):
        amy.sio.emit("transcript.snippet", {"conversation_id": cid, "snippet_id": f"s{min(n, 1) if n < 2 else 2}",
                                            "speaker": "customer", "text": text, "final": final},
                     namespace="/copilot", callback=ack(f"s{n}"))
    assert done.wait(30), acks
    assert all(a["ok"] for a in acks.values()), acks  # before: unknown_conversation for what raced the start
    joined = amy.call("conversation.join", {"conversation_id": cid})
    assert joined["counts"].get("frustration") == 1 and joined["counts"].get("anxiety") == 1
