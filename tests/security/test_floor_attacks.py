"""The live floor (issue #15) attacked from outside, on a real server over loopback: tokens that must not open
/floor, a lead of one tenant reaching for another's conversations (one server, and two workers sharing Redis),
whispers too long, too many or full of Unicode tricks, an agent raising another agent's hand, and the alert-rule
endpoints with the wrong token or garbage. Every attack is bounded in count and time."""
import json
import time

import pytest
import requests
import socketio

from copilot.security import Tokens
from tests.conftest import own_server
from tests.integration.test_floor_realtime import CRISIS, FRUSTRATED, LeadClient, SidebarClient

SECRET = "floor-attack-secret-0123456789abcdef01234"
JOIN_DEADLINE_S = 2
RATE, BURST = 20, 40  # each connection's events
WHISPER_BURST = 5  # the spec: a lead may send 1 whisper a second on average, bursts of 5
EMAIL, CARD = "jo.bloggs@example.com", "4111 1111 1111 1111"
DEFAULT_RULES = {"triage": {"enabled": True, "threshold": 3}, "abuse": {"enabled": True},
                 "escalation_request": {"enabled": True}, "unacknowledged": {"enabled": True, "threshold": 2},
                 "negative_tone": {"enabled": True, "threshold": 4}}


def token(tenant, role="lead", agent="lee", **kw):
    return Tokens(SECRET).issue(tenant, role, agent, **kw)


def unique(prefix):
    return f"{prefix}-{time.time_ns()}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python wsgi.py` with a short join deadline, so that a lead who never joins /copilot would be seen closed,
    and a connection rate limit that a quick flood passes."""
    proc = own_server(tmp_path_factory.mktemp("floor-attacks"), SECRET, COPILOT_JOIN_DEADLINE_S=str(JOIN_DEADLINE_S),
                      COPILOT_RATE_PER_S=str(RATE), COPILOT_RATE_BURST=str(BURST))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def redis_workers(tmp_path_factory, redis_server):
    """Two `python wsgi.py` workers sharing the session's Redis."""
    workdir = tmp_path_factory.mktemp("floor-attacks-redis")
    procs = [own_server(workdir, SECRET, REDIS_URL=redis_server.url) for _ in range(2)]
    yield procs
    for proc in procs:
        proc.stop()


@pytest.fixture
def people():
    made = []

    def make(kind, url, tenant, name, role=None):
        if kind == "lead":
            client = LeadClient(url, token(tenant, role or "lead", name))
        else:
            client = SidebarClient(url, token(tenant, role or "agent", name))
        made.append(client)
        return client
    yield make
    for client in made:
        client.close()


def conversation(agent, text=FRUSTRATED, **extra) -> str:
    cid = unique("c")
    assert agent.call("conversation.start", {"conversation_id": cid, "channel": "chat", "queue": "billing",
                                             **extra})["ok"]
    assert agent.say(cid, "s1", text)["ok"]
    return cid


def code_of(reply) -> str | None:
    return None if reply.get("ok") else reply["error"]["code"]


def logged(server, cid) -> list[dict]:
    path = server.instance / "events.jsonl"
    return [e for e in map(json.loads, path.read_text().splitlines()) if e.get("conversation_id") == cid]


@pytest.mark.parametrize("who, code", [
    ("none", "auth_required"), ("forged", "invalid_token"), ("agent", "forbidden"), ("expired", "token_expired")])
def test_a_token_that_is_not_a_live_lead_s_gets_a_coded_refusal_on_floor(server, who, code):
    tok = {"none": None, "forged": Tokens("another-secret-0123456789abcdef0123456").issue("acme", "lead", "lee"),
           "agent": token("acme", "agent", "amy"),
           "expired": token("acme", now=time.time() - 10**6)}[who]
    client = LeadClient(server.url, tok, connect=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect()
    refused, _ = client.wait_for("connect_error")
    assert refused["data"]["code"] == code, refused
    admin = LeadClient(server.url, token("acme", "admin", "ada"))  # the same server lets an admin in
    try:
        assert admin.watch()["snapshot"]["rows"] is not None
    finally:
        admin.close()


def test_a_lead_on_floor_alone_is_not_closed_by_the_copilot_join_deadline(server):
    lead = LeadClient(server.url, token(unique("t")))
    try:
        lead.watch()
        time.sleep(JOIN_DEADLINE_S + 1.5)
        assert lead.sio.connected
        assert lead.watch()["ok"]
    finally:
        lead.close()


@pytest.mark.parametrize("deployment", ["embedded", "redis-2-workers"])
def test_a_lead_of_another_tenant_never_sees_or_touches_a_conversation(request, people, deployment):
    servers = [request.getfixturevalue("server")] if deployment == "embedded" else \
        request.getfixturevalue("redis_workers")
    near, far = servers[0].url, servers[-1].url
    tenant_a, tenant_b = unique("a"), unique("b")
    lead_a, lead_b = people("lead", near, tenant_a, "lee"), people("lead", near, tenant_b, "lee")
    lead_a.watch()
    empty = lead_b.watch()["snapshot"]
    assert empty["rows"] == [] and empty["alerts"] == [], empty
    amy = people("agent", far, tenant_a, "amy")
    cid = conversation(amy, CRISIS)
    assert amy.call("conversation.raise_hand", {"conversation_id": cid})["ok"]
    alert = lead_a.alert(cid, "triage")  # tenant A's own lead sees all of it: the floor is live
    lead_a.row(cid)
    lead_a.wait_for("floor.hand", lambda d: d["conversation_id"] == cid)
    time.sleep(1.2)

    seen = json.dumps([lead_b.of(name) for name in ("floor.diff", "floor.alert", "floor.hand")])
    assert cid not in seen and "want to be here" not in seen, seen
    snapshot = lead_b.watch()["snapshot"]
    assert snapshot["rows"] == [] and snapshot["alerts"] == [], snapshot
    for url in (near, far):
        floor = requests.get(url + "/api/v1/floor", headers={"Authorization": "Bearer " + token(tenant_b)},
                             timeout=10).json()
        assert floor["ok"] and floor["rows"] == [] and floor["alerts"] == [], floor
    for event, payload in [("alert.claim", {"conversation_id": cid, "alert_id": alert["id"]}),
                           ("hand.answer", {"conversation_id": cid, "answer": "on_my_way"}),
                           ("floor.whisper", {"conversation_id": cid, "text": "psst"})]:
        reply = lead_b.call(event, payload)
        assert code_of(reply) == "unknown_conversation", (event, reply)

    bob = people("agent", far, tenant_b, "amy")  # the same agent and conversation ids in tenant B
    assert bob.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]
    assert lead_b.call("floor.whisper", {"conversation_id": cid, "text": "for tenant B only"})["ok"]
    bob.wait_for("lead.whisper", lambda d: d["conversation_id"] == cid)
    time.sleep(0.5)
    assert amy.of("lead.whisper") == [] and amy.of("lead.answer") == []
    assert not [x for x in lead_a.of("floor.alert") if x["taken_by"]], "tenant B's claim took tenant A's alert"


@pytest.fixture
def whispering(server, people):
    """A lead of a tenant of its own, and an agent's live conversation to whisper to."""
    tenant = unique("t")
    lead, agent = people("lead", server.url, tenant, unique("lee")), people("agent", server.url, tenant, "amy")
    return lead, agent, conversation(agent)


def test_an_oversized_whisper_gets_text_too_long_and_the_connection_lives(whispering):
    lead, agent, cid = whispering
    for text in ("x" * 281, "x" * 999_000):  # the second is nearly the most one Socket.IO message may carry
        reply = lead.call("floor.whisper", {"conversation_id": cid, "text": text})
        assert code_of(reply) == "text_too_long", reply
        assert lead.sio.connected
    assert lead.call("floor.whisper", {"conversation_id": cid, "text": "y" * 280})["ok"]
    agent.wait_for("lead.whisper")
    assert [w["text"] for w in agent.of("lead.whisper")] == ["y" * 280]


def test_a_whisper_over_the_transport_s_message_cap_closes_only_its_own_connection(server, whispering, people):
    lead, agent, cid = whispering
    lead.sio.emit("floor.whisper", {"conversation_id": cid, "text": "x" * 2**20}, namespace="/floor")
    deadline = time.time() + 5
    while lead.sio.connected and time.time() < deadline:
        time.sleep(0.1)
    assert not lead.sio.connected  # 1 MiB is past the 1,000,000 bytes a Socket.IO message may carry, as on /copilot
    assert agent.sio.connected and agent.of("lead.whisper") == []
    other = people("lead", server.url, unique("t"), "lou")
    assert other.watch()["ok"]


def test_a_whisper_flood_is_rate_limited_and_the_agent_gets_at_most_the_burst(whispering):
    lead, agent, cid = whispering
    began = time.monotonic()
    codes = [code_of(lead.call("floor.whisper", {"conversation_id": cid, "text": f"note {n}"})) for n in range(20)]
    elapsed = time.monotonic() - began
    assert "rate_limited" in codes and set(codes) <= {None, "rate_limited"}, codes
    assert lead.sio.connected
    allowed = WHISPER_BURST + int(elapsed)  # a full bucket, plus what it refilled while the flood lasted
    assert codes.count(None) <= allowed, (codes, elapsed)
    time.sleep(1.0)
    received = agent.of("lead.whisper")
    assert len(received) == codes.count(None) <= allowed, received
    time.sleep(1.2)
    assert lead.call("floor.whisper", {"conversation_id": cid, "text": "after the flood"})["ok"]


TRICKS = {
    "a lone surrogate": "note \ud800 here, write to " + EMAIL,
    "a NUL": "note\x00here, write to " + EMAIL,
    "an RTL override": "refund \u202e0001 GBP, write to " + EMAIL,
    "a zero-width space inside the address": "write to jo.bl\u200boggs@exa\u200bmple.com",
    "zero-width joiners around the card": "card \u200d4111\u200d 1111 1111 1111",
}


@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_a_whisper_with_unicode_tricks_is_refused_with_a_code_or_delivered_verbatim_and_logged_redacted(
        server, whispering, trick):
    lead, agent, cid = whispering
    text = TRICKS[trick]
    reply = lead.call("floor.whisper", {"conversation_id": cid, "text": text})
    if reply["ok"]:
        assert agent.wait_for("lead.whisper")["text"] == text
        time.sleep(0.3)
        entries = [e for e in logged(server, cid) if "whisper" in e.get("type", "")]
        assert len(entries) == 1, entries
        kept = entries[0]["text"].replace("\u200b", "").replace("\u200d", "")
        for secret in ("bloggs", "example.com", "4111", "1111 1111"):
            assert secret not in kept, entries[0]
    else:
        assert code_of(reply) == "invalid_payload", reply
    assert lead.sio.connected
    assert lead.call("floor.whisper", {"conversation_id": cid, "text": "plain words"})["ok"]


BAD_FLOOR_PAYLOADS = [
    ("floor.whisper", {"conversation_id": "{cid}", "text": ""}, "invalid_payload"),
    ("floor.whisper", {"conversation_id": "{cid}", "text": 42}, "invalid_payload"),
    ("floor.whisper", {"text": "hello"}, "invalid_payload"),
    ("floor.whisper", "just a string", "invalid_payload"),
    ("floor.whisper", {"conversation_id": "no-such-conversation", "text": "hi"}, "unknown_conversation"),
    ("hand.answer", {"conversation_id": "{cid}", "answer": "maybe later"}, "invalid_payload"),
    ("alert.claim", {"conversation_id": "{cid}", "alert_id": "{cid}:triage"}, "not_found"),
    ("alert.claim", {"conversation_id": "{cid}", "alert_id": ["x"]}, "invalid_payload"),
    ("floor.watch", {"queue": 7}, "invalid_payload"),
    ("transcript.snippet", {"conversation_id": "{cid}", "snippet_id": "x", "speaker": "customer", "text": "hi",
                            "final": True}, "unknown_event"),
    ("no.such.event", {}, "unknown_event"),
]


@pytest.mark.parametrize("event, payload, code", BAD_FLOOR_PAYLOADS)
def test_bad_floor_input_gets_its_code_and_the_connection_lives(whispering, event, payload, code):
    lead, _, cid = whispering
    if isinstance(payload, dict):
        payload = json.loads(json.dumps(payload).replace("{cid}", cid))
    reply = lead.call(event, payload)
    assert code_of(reply) == code, reply
    assert lead.sio.connected and lead.watch()["ok"]


def test_an_event_flood_on_floor_gets_rate_limited_acks_not_a_disconnect(server):
    lead = LeadClient(server.url, token(unique("t")))
    try:
        codes = [code_of(lead.call("floor.watch", {})) for _ in range(2 * BURST)]
        assert "rate_limited" in codes and lead.sio.connected, codes
        time.sleep(1.5)
        assert lead.watch()["ok"]
    finally:
        lead.close()


def test_an_agent_cannot_raise_a_hand_for_another_agent_s_conversation(server, people):
    tenant = unique("t")
    lead = people("lead", server.url, tenant, "lee")
    lead.watch()
    amy, bob = people("agent", server.url, tenant, "amy"), people("agent", server.url, tenant, "bob")
    cid = conversation(amy)
    for target in (cid, "no-such-conversation"):
        reply = bob.call("conversation.raise_hand", {"conversation_id": target})
        assert code_of(reply) == "unknown_conversation", reply
    assert code_of(bob.call("conversation.raise_hand", {})) == "invalid_payload"
    for event, payload in [("floor.whisper", {"conversation_id": cid, "text": "psst"}),
                           ("hand.answer", {"conversation_id": cid, "answer": "on_my_way"})]:
        assert code_of(bob.call(event, payload)) == "unknown_event"  # a lead's events are not on /copilot
    assert amy.of("lead.whisper") == [] and amy.of("lead.answer") == []
    time.sleep(0.5)
    assert lead.of("floor.hand") == []


def test_an_ended_conversation_takes_no_hand_answer_or_whisper(server, people):
    tenant = unique("t")
    lead, amy = people("lead", server.url, tenant, "lee"), people("agent", server.url, tenant, "amy")
    cid = conversation(amy)
    assert amy.call("conversation.raise_hand", {"conversation_id": cid})["ok"]
    assert amy.call("conversation.end", {"conversation_id": cid})["ok"]
    assert code_of(amy.call("conversation.raise_hand", {"conversation_id": cid})) == "conversation_ended"
    assert code_of(lead.call("hand.answer", {"conversation_id": cid, "answer": "on_my_way"})) == "conversation_ended"
    assert code_of(lead.call("floor.whisper", {"conversation_id": cid, "text": "hi"})) == "conversation_ended"
    assert amy.of("lead.answer") == [] and amy.of("lead.whisper") == []


def test_a_lead_whose_token_expires_on_an_open_connection_may_not_whisper(server, people):
    tenant = unique("t")
    amy = people("agent", server.url, tenant, "amy")
    cid = conversation(amy)
    lead = LeadClient(server.url, token(tenant, ttl_s=2))
    try:
        assert lead.call("floor.whisper", {"conversation_id": cid, "text": "before"})["ok"]
        time.sleep(3)
        assert code_of(lead.call("floor.whisper", {"conversation_id": cid, "text": "after"})) == "token_expired"
        assert lead.call("token.refresh", {"token": token(tenant)})["ok"]
        assert lead.call("floor.whisper", {"conversation_id": cid, "text": "refreshed"})["ok"]
    finally:
        lead.close()


@pytest.mark.parametrize("watching", [True, False], ids=["watching-before", "watch-after"])
def test_a_lead_refreshing_with_an_agent_token_loses_the_floor(server, people, watching):
    tenant = unique("t")
    amy = people("agent", server.url, tenant, "amy")
    lead = people("lead", server.url, tenant, "lee")
    if watching:
        lead.watch()
    refreshed = lead.call("token.refresh", {"token": token(tenant, role="agent", agent="lee")})
    if refreshed["ok"]:  # taken: then the connection is an agent's, and the floor's events refuse it
        assert refreshed["role"] == "agent"
        assert code_of(lead.call("floor.watch", {})) == "forbidden"
    else:
        assert code_of(refreshed) == "forbidden", refreshed
    since = time.monotonic()
    cid = conversation(amy, CRISIS)
    assert amy.call("conversation.raise_hand", {"conversation_id": cid})["ok"]
    if refreshed["ok"]:
        assert code_of(lead.call("floor.whisper", {"conversation_id": cid, "text": "hi"})) == "forbidden"
    time.sleep(1.5)
    seen = {name: lead.of(name, since) for name in ("floor.diff", "floor.alert", "floor.hand")}
    assert not refreshed["ok"] or seen == {"floor.diff": [], "floor.alert": [], "floor.hand": []}, seen
    assert amy.of("lead.whisper") == []


def rules(server, tenant, method="GET", role="lead", raw=None, **kw) -> requests.Response:
    headers = {"Authorization": "Bearer " + token(tenant, role, "lee" if role != "agent" else "amy")}
    if raw is not None:
        headers["Content-Type"] = "application/json"
        kw["data"] = raw
    return requests.request(method, server.url + "/api/v1/floor/rules", headers=headers, timeout=10, **kw)


GARBAGE_RULES = [
    b"{not json", b"[]", b'{"rules": []}', b'{"rules": {"bogus": {"enabled": true}}}',
    b'{"rules": {"triage": {"threshold": -1}}}', b'{"rules": {"triage": {"threshold": "3"}}}',
    b'{"rules": {"triage": {"enabled": "yes"}}}', b'{"rules": {"negative_tone": {"threshold": 0}}}',
    b'{"rules": {"unacknowledged": {"threshold": 2.5}}}', b'{"rules": {"triage": {"threshold": 3, "extra": 1}}}',
]


def test_the_alert_rules_refuse_agents_and_garbage_and_tenants_stay_apart(server):
    mine, theirs = unique("t"), unique("t")
    for method in ("GET", "PUT"):
        refused = rules(server, mine, method, role="agent", json={"rules": {"abuse": {"enabled": False}}})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden", refused.text
        anonymous = requests.request(method, server.url + "/api/v1/floor/rules", timeout=10, json={})
        assert anonymous.status_code == 401, anonymous.text
    for body in GARBAGE_RULES:
        answer = rules(server, mine, "PUT", raw=body)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_payload", (body, answer.text)
    assert rules(server, mine).json()["rules"] == DEFAULT_RULES
    changed = rules(server, mine, "PUT", json={"rules": {"triage": {"enabled": False}}})
    assert changed.status_code == 200 and changed.json()["rules"]["triage"]["enabled"] is False, changed.text
    assert rules(server, theirs).json()["rules"] == DEFAULT_RULES
    by_admin = rules(server, theirs, "PUT", role="admin", json={"rules": {"unacknowledged": {"threshold": 3}}})
    assert by_admin.status_code == 200 and by_admin.json()["rules"]["unacknowledged"]["threshold"] == 3
    assert rules(server, mine).json()["rules"]["unacknowledged"]["threshold"] == 2
    board = requests.get(server.url + "/api/v1/floor", timeout=10,
                         headers={"Authorization": "Bearer " + token(mine, "agent", "amy")})
    assert board.status_code == 403, board.text
