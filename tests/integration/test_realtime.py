"""The live copilot over a real Socket.IO connection on loopback: the embedded default (one process, no Redis)
and two workers sharing a real Redis, with the same tests."""
import json
import time

import pytest
import requests

from copilot.security import Tokens
from tests.conftest import AgentClient, Deployment

SECRET = "realtime-test-secret-0123456789abcdef01"


def token(tenant="acme", role="agent", agent="amy", **kw):
    return Tokens(SECRET).issue(tenant, role, agent, **kw)


@pytest.fixture(scope="module", params=["embedded", "redis-2-workers"])
def deployment(request, tmp_path_factory):
    """One server (embedded default) or two servers sharing Redis (one run as the Dockerfile runs it)."""
    workdir = tmp_path_factory.mktemp("deploy")
    env = {"COPILOT_SECRET": SECRET, "COPILOT_INSTANCE_DIR": str(workdir / "instance"),
           "COPILOT_SUGGESTION_COOLDOWN_S": "0", "COPILOT_RATE_PER_S": "50", "COPILOT_RATE_BURST": "60",
           "COPILOT_LIBRARY_SYNC_MS": "100"}
    deployment = Deployment.start(request, env, workdir)
    yield deployment
    deployment.stop()


@pytest.fixture
def clients():
    made = []

    def make(url, tok=None, **kw):
        client = AgentClient(url, token() if tok is None else tok, **kw)
        made.append(client)
        return client
    yield make
    for client in made:
        client.close()


def start(client, cid, **extra):
    reply = client.call("conversation.start", {"conversation_id": cid, "channel": "chat", "queue": "billing", **extra})
    assert reply["ok"], reply
    return reply


def say(client, cid, sid, text, speaker="customer", final=True):
    reply = client.say(cid, sid, text, speaker, final)
    assert reply["ok"], reply
    return reply


def unique(prefix):
    return f"{prefix}-{time.time_ns()}"


def test_a_whole_conversation_gets_highlights_counts_suggestions_handoff_and_summary(deployment, clients):
    servers = deployment.servers
    agent = clients(servers[0].url)
    cid = unique("conv")
    start(agent, cid)
    text = "This is the third time I've called and I'm absolutely furious about this bill"
    say(agent, cid, "s1", text)
    first = agent.wait_for("cue.highlight", lambda d: d["snippet_id"] == "s1")
    cues = {c["cue"]: c for c in first["cues"]}
    assert {"frustration", "repeat_contact"} <= set(cues)
    start_, end_ = cues["repeat_contact"]["spans"][0]
    assert text[start_:end_] == "third time"
    assert first["triage_level"] in (1, 2) and first["line"]
    push = agent.wait_for("suggestion.push")
    assert 1 <= len(push["suggestions"]) <= 2
    assert all(s["why"] and s["id"] and s["text"] for s in push["suggestions"])

    say(agent, cid, "s2", "Honestly I'm so angry, this is ridiculous")
    say(agent, cid, "s3", "I'm fed up and furious, I want to speak to a manager")
    third = agent.wait_for("cue.highlight", lambda d: d["snippet_id"] == "s3")
    frustration = next(c for c in third["cues"] if c["cue"] == "frustration")
    assert frustration["count"] == 3 and "3rd mention" in third["line"]
    assert agent.wait_for("alert", lambda d: d["kind"] == "escalation_risk")
    assert "frustration x3" in agent.wait_for("handoff.note")["note"]

    shown = [s["id"] for p in agent.of("suggestion.push") for s in p["suggestions"]]
    assert len(shown) == len(set(shown)), "a phrasing was pushed twice"
    used = agent.call("suggestion.feedback", {"conversation_id": cid, "suggestion_id": shown[0], "action": "used"})
    assert used["ok"]
    say(agent, cid, "a1", "I'm so sorry, that sounds really frustrating. Let me sort this out.", speaker="agent")
    handoff = agent.call("conversation.transfer", {"conversation_id": cid, "to_queue": "retention"})
    assert handoff["ok"] and "acknowledged once" in handoff["note"]
    summary = agent.call("conversation.end", {"conversation_id": cid})["summary"]
    assert summary["counts"]["frustration"] == 3 and summary["emotional_resolution_rate"] == 1.0
    assert shown[0] in summary["suggestions"]["used"] and len(summary["timeline"]) == 3

    lead = {"Authorization": f"Bearer {token(role='lead', agent='lee')}"}
    usage = requests.get(servers[-1].url + "/api/v1/analytics/usage", headers=lead, timeout=10).json()["rows"]
    row = next(r for r in usage if r["phrasing_id"] == shown[0])
    assert row["used"] >= 1 and row["shown"] >= 1


def test_crisis_sets_triage_three_and_alerts(deployment, clients):
    agent = clients(deployment.servers[0].url)
    cid = unique("crisis")
    start(agent, cid, channel="voice")
    say(agent, cid, "s1", "my husband passed away last week and I can't afford the rent")
    highlight = agent.wait_for("cue.highlight")
    assert highlight["triage_level"] == 3 and "crisis" in [c["cue"] for c in highlight["cues"]]
    assert agent.wait_for("alert", lambda d: d["kind"] == "crisis")
    push = agent.wait_for("suggestion.push")
    assert all("crisis" in s["cues"] or "sadness" in s["cues"] for s in push["suggestions"])


def test_abuse_switches_to_agent_protection(deployment, clients):
    agent = clients(deployment.servers[0].url)
    cid = unique("abuse")
    start(agent, cid)
    say(agent, cid, "s1", "you're a useless idiot, put me through to someone competent")
    assert agent.wait_for("alert", lambda d: d["kind"] == "agent_protection")
    push = agent.wait_for("suggestion.push")
    assert {s["stage"] for s in push["suggestions"]} == {"agent-protection"}
    assert agent.wait_for("cue.highlight")["mode"] == "agent-protection"


def test_verification_holds_suggestions_until_identity_is_confirmed(deployment, clients):
    agent = clients(deployment.servers[0].url)
    cid = unique("verify")
    start(agent, cid)
    assert agent.call("conversation.mode", {"conversation_id": cid, "mode": "verification"})["ok"]
    say(agent, cid, "s1", "I'm really worried someone has been using my card")
    agent.wait_for("cue.highlight")
    time.sleep(0.3)
    assert agent.of("suggestion.push") == []
    assert agent.call("conversation.mode", {"conversation_id": cid, "mode": "normal"})["ok"]
    push = agent.wait_for("suggestion.push")
    assert {s["stage"] for s in push["suggestions"]} == {"after-verification"}


def test_partial_snippets_highlight_without_counting(deployment, clients):
    agent = clients(deployment.servers[0].url)
    cid = unique("partial")
    start(agent, cid)
    say(agent, cid, "s1", "I want to cancel my contract", final=False)
    partial = agent.wait_for("cue.highlight", lambda d: d["final"] is False)
    assert partial["snippet_id"] == "s1"
    say(agent, cid, "s1", "I want to cancel my contract today")
    final = agent.wait_for("cue.highlight", lambda d: d["final"] is True)
    assert next(c for c in final["cues"] if c["cue"] == "churn_risk")["count"] == 1


def test_a_client_reconnecting_to_another_worker_resumes_with_its_history(deployment, clients):
    servers = deployment.servers
    first = clients(servers[0].url)
    cid = unique("resume")
    start(first, cid)
    say(first, cid, "s1", "I'm so frustrated, this is ridiculous")
    first.wait_for("cue.highlight")
    first.close()
    second = clients(servers[-1].url)
    joined = second.call("conversation.join", {"conversation_id": cid})
    assert joined["ok"] and joined["counts"].get("frustration") == 1
    say(second, cid, "s2", "honestly this is so annoying, I'm furious")
    highlight = second.wait_for("cue.highlight", lambda d: d["snippet_id"] == "s2")
    assert next(c for c in highlight["cues"] if c["cue"] == "frustration")["count"] == 2


def test_another_tenant_cannot_touch_a_conversation(deployment, clients):
    servers = deployment.servers
    owner = clients(servers[0].url)
    cid = unique("private")
    start(owner, cid)
    intruder = clients(servers[-1].url, token(tenant="globex"))
    for event, payload in [("conversation.join", {"conversation_id": cid}),
                           ("transcript.snippet", {"conversation_id": cid, "snippet_id": "x", "speaker": "customer",
                                                   "text": "hi", "final": True}),
                           ("conversation.end", {"conversation_id": cid})]:
        reply = intruder.call(event, payload)
        assert reply["error"]["code"] == "unknown_conversation"
    assert intruder.of("cue.highlight") == []


BAD = [
    ("transcript.snippet", None, "invalid_payload"),
    ("transcript.snippet", "just a string", "invalid_payload"),
    ("transcript.snippet", [1, 2], "invalid_payload"),
    ("transcript.snippet", {"conversation_id": "nope-404", "snippet_id": "1", "speaker": "customer", "text": "hi",
                            "final": True}, "unknown_conversation"),
    ("transcript.snippet", {"conversation_id": "{cid}", "snippet_id": "1", "speaker": "robot", "text": "hi",
                            "final": True}, "invalid_payload"),
    ("transcript.snippet", {"conversation_id": "{cid}", "snippet_id": "1", "speaker": "customer", "text": 42,
                            "final": True}, "invalid_payload"),
    ("transcript.snippet", {"conversation_id": "{cid}", "snippet_id": "1", "speaker": "customer",
                            "text": "x" * 4001, "final": True}, "text_too_long"),
    ("transcript.snippet", {"conversation_id": "{cid}", "snippet_id": "1", "speaker": "customer", "text": "hi",
                            "final": "yes"}, "invalid_payload"),
    ("transcript.snippet", {"conversation_id": "{cid}", "snippet_id": "1", "speaker": "customer", "text": "hi",
                            "final": True, "extra": 1}, "invalid_payload"),
    ("conversation.start", {"conversation_id": "{cid}", "channel": "chat"}, "conversation_exists"),
    ("conversation.start", {"conversation_id": "bad id with spaces", "channel": "chat"}, "invalid_payload"),
    ("conversation.start", {"conversation_id": "ok-1", "channel": "fax"}, "invalid_payload"),
    ("conversation.mode", {"conversation_id": "{cid}", "mode": "sleepy"}, "invalid_payload"),
    ("suggestion.feedback", {"conversation_id": "{cid}", "suggestion_id": "never-shown", "action": "used"},
     "not_found"),
    ("suggestion.feedback", {"conversation_id": "{cid}", "suggestion_id": "x", "action": "loved"}, "invalid_payload"),
    ("no.such.event", {}, "unknown_event"),
]


@pytest.mark.parametrize("event, payload, code", BAD)
def test_bad_input_gets_an_error_code_and_the_connection_survives(deployment, clients, event, payload, code):
    agent = clients(deployment.servers[0].url)
    cid = unique("bad")
    start(agent, cid)
    if isinstance(payload, dict):
        payload = json.loads(json.dumps(payload).replace("{cid}", cid))
    reply = agent.call(event, payload)
    assert reply["ok"] is False and reply["error"]["code"] == code, reply
    assert agent.sio.connected
    say(agent, cid, "after", "thanks, that helps")


def test_duplicate_snippet_is_acknowledged_once_and_not_recounted(deployment, clients):
    agent = clients(deployment.servers[0].url)
    cid = unique("dup")
    start(agent, cid)
    say(agent, cid, "s1", "I'm furious about this")
    assert say(agent, cid, "s1", "I'm furious about this")["duplicate"] is True
    assert agent.call("conversation.join", {"conversation_id": cid})["counts"]["frustration"] == 1


def test_missing_forged_and_expired_tokens_cannot_connect(deployment):
    import socketio

    url = deployment.servers[0].url
    for tok, code in [(None, "auth_required"), (Tokens("wrong").issue("acme", "agent", "a"), "invalid_token"),
                      (token(now=time.time() - 10**6), "token_expired")]:
        client = AgentClient(url, tok, connect=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect()
        assert client.wait_for("connect_error")["data"]["code"] == code


def test_a_disallowed_origin_is_refused(deployment):
    import socketio

    client = AgentClient(deployment.servers[0].url, token(), headers={"Origin": "https://evil.example"}, connect=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect()


def test_a_flood_beyond_the_rate_limit_gets_rate_limited_acks_not_a_disconnect(deployment, clients):
    agent = clients(deployment.servers[0].url)
    cid = unique("flood")
    start(agent, cid)
    codes = [agent.call("conversation.join", {"conversation_id": cid}).get("error", {}).get("code")
             for _ in range(120)]
    assert "rate_limited" in codes and agent.sio.connected
    time.sleep(1.5)
    assert agent.call("conversation.join", {"conversation_id": cid})["ok"]


def test_health_readiness_and_metrics(deployment):
    url = deployment.servers[0].url
    assert requests.get(url + "/healthz", timeout=5).json()["ok"]
    for server in deployment.servers:  # python wsgi.py and gunicorn -k gevent both serve on the event loop
        ready = requests.get(server.url + "/readyz", timeout=5).json()
        assert ready["ok"] and all(ready["checks"].values()) and ready["server"] == "gevent"
    text = requests.get(url + "/metrics", timeout=5).text
    assert "copilot_snippets_total" in text and "copilot_snippet_seconds_bucket" in text


def test_the_event_log_has_every_acknowledged_snippet_with_text_redacted(deployment, clients):
    agent = clients(deployment.servers[0].url)
    cid = unique("privacy")
    start(agent, cid)
    say(agent, cid, "s1", "my card 4111 1111 1111 1111 was charged twice, email jo@example.com")
    say(agent, cid, "s2", "I'm worried", final=False)
    say(agent, cid, "a1", "I can see that, call me on +44 7700 900123", speaker="agent")
    mine = [e for e in deployment.events() if e.get("conversation_id") == cid]
    snippets = [e for e in mine if e["type"] == "transcript.snippet"]
    assert [e["snippet_id"] for e in snippets] == ["s1", "a1"]
    assert "[CARD]" in snippets[0]["text"] and "[EMAIL]" in snippets[0]["text"] and "[PHONE]" in snippets[1]["text"]
    dump = json.dumps(mine)
    # whole groups, not "4111" or "7700": a timestamp such as 1764624111.77 holds those digits too
    assert "4111 1111" not in dump and "jo@example.com" not in dump and "7700 900123" not in dump
    assert {"conversation_id", "agent", "channel", "queue", "cues", "triage_level", "at"} <= set(snippets[0])


def test_without_consent_nothing_but_counts_is_stored(deployment, clients):
    agent = clients(deployment.servers[0].url)
    cid = unique("noconsent")
    start(agent, cid, consent=False)
    say(agent, cid, "s1", "I'm furious, my account number is 99887766 and this is ridiculous")
    agent.wait_for("cue.highlight")
    mine = [e for e in deployment.events() if e.get("conversation_id") == cid]
    assert mine and all("text" not in e for e in mine)
    assert "99887766" not in json.dumps(mine) and "ridiculous" not in json.dumps(mine)
    if deployment.redis_url:
        import redis

        client = redis.Redis.from_url(deployment.redis_url, decode_responses=True)
        state = client.get(f"copilot:conv:acme:{cid}")
        assert "ridiculous" not in state and "99887766" not in state


def test_a_lead_reads_the_day_s_cue_mentions_from_either_deployment(deployment, clients):
    """The trends come from the analytics store once the loader has the ended conversation, on any worker."""
    tenant = unique("trends")
    agent = clients(deployment.servers[0].url, token(tenant=tenant))
    cid = unique("conv")
    start(agent, cid)
    say(agent, cid, "s1", "This is the third time I've called and I'm absolutely furious about this bill")
    agent.wait_for("cue.highlight", lambda d: d["snippet_id"] == "s1")
    assert agent.call("conversation.end", {"conversation_id": cid})["ok"]
    lead = {"Authorization": "Bearer " + token(tenant=tenant, role="lead", agent="lee")}
    for server in deployment.servers:
        deadline, counts = time.time() + 30, []
        while time.time() < deadline:  # the loader's lag: a batch at most every COPILOT_ANALYTICS_LOAD_MS
            answer = requests.get(server.url + "/api/v1/analytics/conversations", headers=lead, timeout=30)
            assert answer.status_code == 200, answer.text
            counts = [day["counts"] for day in answer.json()["cues"]]
            if counts:
                break
            time.sleep(0.2)
        assert counts and counts[-1].get("frustration", 0) >= 1, answer.json()
