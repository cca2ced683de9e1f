"""The /floor handlers in the test process through Flask-SocketIO's test client: a lead's snapshot, diffs, alerts,
raised hands and whispers, in about a second, without a socket."""
import time

import pytest

from copilot.realtime import NAMESPACE as COPILOT
from copilot.realtime_floor import NAMESPACE as FLOOR
from copilot.security import Tokens
from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.inprocess

CRISIS = "I can't do this anymore, I don't want to be alive"


def issue(role: str, agent: str, tenant: str = "acme") -> str:
    return Tokens(TEST_SECRET).issue(tenant, role, agent)


def client(app, namespace: str, token: str):
    return app.extensions["socketio"].test_client(app, namespace=namespace, auth={"token": token})


def call(c, namespace: str, event: str, payload) -> dict:
    return c.emit(event, payload, namespace=namespace, callback=True)


def events(c, namespace: str, name: str, within_s: float = 3.0, until=lambda found: bool(found)) -> list[dict]:
    """The payloads of `name` the server sent this client, waiting up to within_s for `until` to hold."""
    found: list[dict] = []
    deadline = time.time() + within_s
    while True:
        found += [item["args"][0] for item in c.get_received(namespace) if item["name"] == name]
        if until(found) or time.time() > deadline:
            return found
        time.sleep(0.05)


def started(app, cid: str, agent: str = "amy", queue: str = "billing", **extra):
    agent_client = client(app, COPILOT, issue("agent", agent))
    ack = call(agent_client, COPILOT, "conversation.start", {"conversation_id": cid, "channel": "chat",
                                                             "queue": queue, **extra})
    assert ack["ok"], ack
    return agent_client


def say(c, cid: str, sid: str, text: str, speaker: str = "customer") -> dict:
    ack = call(c, COPILOT, "transcript.snippet", {"conversation_id": cid, "snippet_id": sid, "speaker": speaker,
                                                  "text": text, "final": True})
    assert ack["ok"], ack
    return ack


def test_an_agent_token_is_refused_on_the_floor(app):
    c = client(app, FLOOR, issue("agent", "amy"))
    assert not c.is_connected(FLOOR)


def test_a_crisis_reaches_the_watching_lead_as_a_row_at_the_top_and_one_alert_card(app):
    calm = started(app, "f-calm")
    say(calm, "f-calm", "s1", "Hi, I'd like to change my address please")
    lead = client(app, FLOOR, issue("lead", "lee"))
    ack = call(lead, FLOOR, "floor.watch", {})
    assert ack["ok"] and any(r["conversation_id"] == "f-calm" for r in ack["snapshot"]["rows"])
    agent = started(app, "f-crisis")
    say(agent, "f-crisis", "s1", CRISIS)
    alerts = events(lead, FLOOR, "floor.alert")
    assert [a["rule"] for a in alerts if a["conversation_id"] == "f-crisis"] == ["triage"]
    assert alerts[0]["evidence"] and alerts[0]["history"]
    say(agent, "f-crisis", "s2", CRISIS)
    time.sleep(1.2)
    again = [a for a in events(lead, FLOOR, "floor.alert", within_s=0.3) if a["conversation_id"] == "f-crisis"]
    assert again == []  # one alert per rule per conversation
    board = call(lead, FLOOR, "floor.watch", {})["snapshot"]["rows"]
    assert board[0]["conversation_id"] == "f-crisis" and board[0]["triage_level"] == 3


def test_rows_come_as_batched_diffs_at_most_once_a_second_per_conversation(app):
    lead = client(app, FLOOR, issue("lead", "lee"))
    call(lead, FLOOR, "floor.watch", {})
    agent = started(app, "f-diff")
    for n in range(4):
        say(agent, "f-diff", f"s{n}", "Still waiting on that refund")
    diffs = events(lead, FLOOR, "floor.diff", within_s=3.0, until=lambda found: any(
        r["conversation_id"] == "f-diff" and r["customer_turns"] == 4 for d in found for r in d["rows"]))
    sent = [(d["at"], r["customer_turns"]) for d in diffs for r in d["rows"] if r["conversation_id"] == "f-diff"]
    assert sent[-1][1] == 4
    assert all(later[0] - earlier[0] >= 0.95 for earlier, later in zip(sent, sent[1:]))


def test_a_raised_hand_pages_the_lead_and_the_answer_and_a_whisper_reach_the_agent(app):
    lead = client(app, FLOOR, issue("lead", "lee"))
    call(lead, FLOOR, "floor.watch", {"queue": "billing"})
    agent = started(app, "f-hand")
    assert call(agent, COPILOT, "conversation.raise_hand", {"conversation_id": "f-hand"})["ok"]
    hands = events(lead, FLOOR, "floor.hand")
    assert hands and hands[0]["conversation_id"] == "f-hand" and hands[0]["agent"] == "amy"
    ack = call(lead, FLOOR, "hand.answer", {"conversation_id": "f-hand", "answer": "on_my_way"})
    assert ack["ok"] and ack["hand"]["lead"] == "lee"
    ack = call(lead, FLOOR, "floor.whisper", {"conversation_id": "f-hand", "text": "Offer the goodwill credit"})
    assert ack["ok"], ack
    got = {item["name"]: item["args"][0] for item in agent.get_received(COPILOT)}
    assert got["lead.answer"]["message"] == "On my way"
    assert got["lead.whisper"]["text"] == "Offer the goodwill credit"


def test_a_lead_of_another_tenant_sees_nothing_and_cannot_act(app):
    started(app, "f-private")
    other = client(app, FLOOR, issue("lead", "lee", tenant="globex"))
    rows = call(other, FLOOR, "floor.watch", {})["snapshot"]["rows"]
    assert all(r["conversation_id"] != "f-private" for r in rows)
    for event, payload in (("floor.whisper", {"conversation_id": "f-private", "text": "hi"}),
                           ("hand.answer", {"conversation_id": "f-private", "answer": "on_my_way"}),
                           ("alert.claim", {"conversation_id": "f-private", "alert_id": "f-private:triage"})):
        assert call(other, FLOOR, event, payload)["error"]["code"] == "unknown_conversation"


def test_an_oversized_whisper_and_a_flood_get_coded_errors_and_the_connection_stays(app):
    started(app, "f-flood")
    lead = client(app, FLOOR, issue("lead", "lou"))
    too_long = call(lead, FLOOR, "floor.whisper", {"conversation_id": "f-flood", "text": "x" * 281})
    assert too_long["error"]["code"] == "text_too_long"
    codes = [call(lead, FLOOR, "floor.whisper", {"conversation_id": "f-flood", "text": f"note {n}"})
             for n in range(8)]
    assert [c["ok"] for c in codes[:5]] == [True] * 5
    assert any(not c["ok"] and c["error"]["code"] == "rate_limited" for c in codes[5:])
    assert lead.is_connected(FLOOR)


def test_a_large_snapshot_answers_the_riskiest_rows_and_sends_the_rest_as_diffs_stamped_with_its_time(app):
    from copilot.realtime_floor import SNAPSHOT_ROWS

    started_ids = []
    for n in range(8):  # each connection stays inside its burst
        agent = client(app, COPILOT, issue("agent", f"bulk{n}", tenant="big"))
        for m in range(38):
            cid = f"big-{n}-{m}"
            assert call(agent, COPILOT, "conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]
            started_ids.append(cid)
    say(agent, "big-7-37", "s1", CRISIS)
    lead = client(app, FLOOR, issue("lead", "lee", tenant="big"))
    snapshot = call(lead, FLOOR, "floor.watch", {})["snapshot"]
    assert snapshot["total"] == len(started_ids) and len(snapshot["rows"]) == SNAPSHOT_ROWS
    assert snapshot["rows"][0]["conversation_id"] == "big-7-37"  # the riskiest first, though started last
    rest = events(lead, FLOOR, "floor.diff", until=lambda found: sum(
        len(d["rows"]) for d in found if d["at"] == snapshot["at"]) >= len(started_ids) - SNAPSHOT_ROWS)
    sent = [r["conversation_id"] for d in rest if d["at"] == snapshot["at"] for r in d["rows"]]
    assert sorted(sent + [r["conversation_id"] for r in snapshot["rows"]]) == sorted(started_ids)
