"""Each transcript source's fixture replayed to /api/v1/sources/<name> against a live server (`python wsgi.py`):
an agent joined to that conversation sees the same final highlights as when it sends the same turns itself over
/copilot. Then what must be refused: a wrong Twilio signature, an unknown source, a malformed message among good
ones (which still land)."""
import copy
import json
import time
from pathlib import Path

import pytest
import requests

from copilot.security import Tokens
from copilot.sources.twilio import signature
from tests.conftest import AgentClient, own_server

SECRET = "source-replay-secret-0123456789abcdef0123"
TENANT = "acme"
TWILIO_TOKEN = "acme-twilio-auth-token-0123456789ab"
GLOBEX_TOKEN = "globex-twilio-token-from-a-file-42"
FIXTURES = Path(__file__).resolve().parents[1] / "data" / "sources"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))
SAME = ("conversation_id", "snippet_id")  # what differs between the two paths' highlights


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("source-replay")
    (workdir / "globex-twilio").write_text(GLOBEX_TOKEN + "\n")
    proc = own_server(workdir, SECRET, COPILOT_TWILIO_AUTH_TOKENS=f"acme={TWILIO_TOKEN}, "
                                                                  f"globex=@{workdir / 'globex-twilio'}")
    yield proc
    proc.stop()


@pytest.fixture
def agent(server):
    client = AgentClient(server.url, Tokens(SECRET).issue(TENANT, "agent", "amy"))
    yield client
    client.close()


RELAY = {"Authorization": f"Bearer {Tokens(SECRET).issue(TENANT, 'integration', 'relay')}"}


def twilio_post(server, form: dict, tenant: str = TENANT, token: str = TWILIO_TOKEN, signed: bool = True,
                query: str = ""):
    url = f"{server.url}/api/v1/sources/twilio?tenant={tenant}{query}"
    headers = {"X-Twilio-Signature": signature(url, form, token)} if signed else {}
    return requests.post(url, data=form, headers=headers, timeout=10)


def send(server, doc: dict, request: dict):
    """One request of a fixture, as its source (or its relay) sends it."""
    if "form" in request:
        return twilio_post(server, request["form"])
    return requests.post(f"{server.url}/api/v1/sources/{doc['source']}", params=request["query"],
                         json=request["body"], headers=RELAY, timeout=10)


def start(agent, cid: str) -> None:
    assert agent.call("conversation.start", {"conversation_id": cid, "channel": "voice"})["ok"]


def finals(agent, cid: str) -> list[dict]:
    """The final highlights of a conversation the agent received, without what names the conversation or turn."""
    return [{k: v for k, v in h.items() if k not in SAME} for h in agent.of("cue.highlight")
            if h["conversation_id"] == cid and h["final"]]


def settle(agent, cid: str) -> None:
    """Wait until every emit sent before now for `cid` has reached the agent: an acknowledged event on the same
    connection comes after them."""
    agent.call("conversation.join", {"conversation_id": cid})


@pytest.mark.parametrize("name", NAMES)
def test_replaying_a_source_gives_the_agent_the_highlights_of_the_same_turns_sent_over_socketio(server, agent, name):
    doc = fixture(name)
    cid, twin = doc["conversation_id"], f"twin-{name}"
    start(agent, cid)
    start(agent, twin)
    for n, turn in enumerate(doc["expected"]):
        assert agent.say(twin, f"t{n}", turn["text"], speaker=turn["speaker"])["ok"]
    for request in doc["requests"]:
        answer = send(server, doc, request)
        assert answer.status_code == 200, answer.text
        assert answer.json()["ok"] and answer.json()["errors"] == [], answer.text
    settle(agent, cid)
    direct = finals(agent, twin)
    assert len(direct) == len(doc["expected"])
    assert any(h["cues"] for h in direct)  # the customer lines carry cues, so the comparison means something
    deadline = time.time() + 10
    while len(finals(agent, cid)) < len(direct) and time.time() < deadline:
        time.sleep(0.05)
    assert finals(agent, cid) == direct
    if doc["ended"]:
        agent.wait_for("conversation.summary", lambda s: s.get("conversation_id") == cid)


def test_a_source_starts_a_conversation_it_names_and_a_repeat_of_its_messages_lands_nothing_new(server, agent):
    doc = fixture("deepgram")
    cid = f"relay-started-{time.time_ns()}"
    bodies = [r["body"] for r in doc["requests"]]
    first = requests.post(f"{server.url}/api/v1/sources/deepgram", params={"conversation_id": cid, "agent": "amy"},
                          json=bodies, headers=RELAY, timeout=10).json()
    assert first["ok"] and first["started"] == [cid] and first["ignored"] == 10
    assert first["accepted"] == len(doc["expected"]) + 4  # four interim results, shown and replaced
    again = requests.post(f"{server.url}/api/v1/sources/deepgram", params={"conversation_id": cid}, json=bodies,
                          headers=RELAY, timeout=10).json()
    assert again["started"] == [] and again["duplicates"] >= len(doc["expected"])


def test_a_wrongly_signed_twilio_callback_is_refused_and_lands_nothing(server, agent):
    doc = fixture("twilio")
    cid = "CA00000000000000000000000000000bad"
    start(agent, cid)
    content = next(dict(r["form"], CallSid=cid) for r in doc["requests"] if r["form"].get("Final") == "true")
    tampered = dict(content, TranscriptionData=json.dumps({"transcript": "Refund me now.", "confidence": 0.9}))
    attempts = [twilio_post(server, content, signed=False),
                twilio_post(server, content, token="not-the-auth-token"),
                twilio_post(server, content, tenant="globex"),  # signed with acme's token, sent as globex
                twilio_post(server, content, tenant="initech"),  # a tenant without a token
                requests.post(f"{server.url}/api/v1/sources/twilio?tenant={TENANT}", data=tampered, timeout=10,
                              headers={"X-Twilio-Signature": signature(
                                  f"{server.url}/api/v1/sources/twilio?tenant={TENANT}", content, TWILIO_TOKEN)})]
    for answer in attempts:
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "invalid_signature"
    settle(agent, cid)
    assert [h for h in agent.of("cue.highlight") if h["conversation_id"] == cid] == []
    signed = twilio_post(server, content)
    assert signed.status_code == 200 and signed.json()["accepted"] == 1
    agent.wait_for("cue.highlight", lambda h: h["conversation_id"] == cid and h["final"])


def test_a_tenant_s_twilio_token_is_read_from_its_file_and_options_ride_on_the_query_string(server, agent):
    other = AgentClient(server.url, Tokens(SECRET).issue("globex", "agent", "gil"))
    try:
        cid = "CA0000000000000000000000000000f11e"
        start(other, cid)
        form = {"CallSid": cid, "TranscriptionEvent": "transcription-content", "Track": "inbound_track",
                "Final": "true", "SequenceId": "3", "TranscriptionData": json.dumps({"transcript": "Hello there."})}
        answer = twilio_post(server, form, tenant="globex", token=GLOBEX_TOKEN, query="&channels=agent,customer")
        assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
        assert other.wait_for("cue.highlight", lambda h: h["conversation_id"] == cid)["speaker"] == "agent"
        bad = twilio_post(server, form, tenant="globex", token=GLOBEX_TOKEN, query="&channels=robot")
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_payload"
    finally:
        other.close()


def test_an_unknown_source_is_not_found_with_its_own_code(server):
    answer = requests.post(f"{server.url}/api/v1/sources/genesys-cloud", json={}, headers=RELAY, timeout=10)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "unknown_source"
    assert requests.post(f"{server.url}/api/v1/sources/deepgram", json={}, timeout=10).status_code == 401
    agent_token = {"Authorization": f"Bearer {Tokens(SECRET).issue(TENANT, 'agent', 'amy')}"}
    assert requests.post(f"{server.url}/api/v1/sources/deepgram", json={}, headers=agent_token,
                         timeout=10).status_code == 403


def test_a_malformed_message_among_good_ones_is_a_coded_error_and_the_good_ones_land(server, agent):
    doc = copy.deepcopy(fixture("contact-lens"))
    cid = "5e1d0c9b-8a7f-4e6d-9c5b-4a3f2e1d0c9b"
    start(agent, cid)
    events = [dict(r["body"], ContactId=cid) for r in doc["requests"]]
    broken = events[:3] + [{"EventType": "SEGMENTS", "ContactId": cid, "Segments": "not a list"}] + events[3:]
    answer = requests.post(f"{server.url}/api/v1/sources/contact-lens", json=broken, headers=RELAY, timeout=10)
    assert answer.status_code == 200
    body = answer.json()
    assert not body["ok"] and [(e["index"], e["code"]) for e in body["errors"]] == [(3, "invalid_payload")]
    assert body["ended"] == [cid]
    summary = agent.wait_for("conversation.summary", lambda s: s.get("conversation_id") == cid)
    landed = [h["text"] for h in agent.of("cue.highlight") if h["conversation_id"] == cid and h["final"]]
    assert landed == [t["text"] for t in doc["expected"]] and summary
    not_json = requests.post(f"{server.url}/api/v1/sources/contact-lens", data=b"{nope", headers=RELAY, timeout=10)
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_payload"


def test_behind_a_proxy_the_signed_url_is_the_public_one_the_proxy_was_reached_at(make_settings):
    from copilot import create_app

    app = create_app(make_settings(proxy_hops=1, twilio_auth_tokens=f"{TENANT}={TWILIO_TOKEN}"))
    try:
        form = {"CallSid": "CA0000000000000000000000000000beef", "TranscriptionEvent": "transcription-stopped"}
        public = f"https://copilot.example.com/api/v1/sources/twilio?tenant={TENANT}"
        proxied = {"Host": "copilot.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
        client = app.test_client()
        answer = client.post(f"/api/v1/sources/twilio?tenant={TENANT}", data=form, headers={
            **proxied, "X-Twilio-Signature": signature(public, form, TWILIO_TOKEN)})
        assert answer.status_code == 200 and answer.get_json()["ignored"] == 0, answer.get_json()
        inner = signature(f"http://copilot.example.com/api/v1/sources/twilio?tenant={TENANT}", form, TWILIO_TOKEN)
        refused = client.post(f"/api/v1/sources/twilio?tenant={TENANT}", data=form,
                              headers={**proxied, "X-Twilio-Signature": inner})
        assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "invalid_signature"
    finally:
        app.extensions["copilot.analytics"].stop()
