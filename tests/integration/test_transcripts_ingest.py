"""Transcript sources over the ingest contract against live servers: POST /api/v1/transcripts and the /ingest
Socket.IO namespace, with the agent's sidebar a real Socket.IO client on /copilot. The embedded default, and two
workers sharing Redis, where the source talks to one worker and the sidebar to the other."""
import collections
import time

import pytest
import requests
import socketio

from copilot.security import Tokens
from tests.conftest import AgentClient, Deployment

SECRET = "ingest-test-secret-0123456789abcdef0123"
TURNS = [("t1", "customer", "This is the third time I've called and I'm absolutely furious about this bill"),
         ("t2", "agent", "I'm so sorry, that sounds really frustrating. Let me look into it for you."),
         ("t3", "customer", "Honestly I'm so angry, I want to speak to a manager right now"),
         ("t4", "agent", "I understand. What would help most right now?"),
         ("t5", "customer", "Thank you, that's a real relief")]


def token(role="integration", agent="crm", tenant="acme"):
    return Tokens(SECRET).issue(tenant, role, agent)


def bearer(role="integration", agent="crm"):
    return {"Authorization": f"Bearer {token(role, agent)}"}


@pytest.fixture(scope="module", params=["embedded", "redis-2-workers"])
def deployment(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ingest")
    env = {"COPILOT_SECRET": SECRET, "COPILOT_INSTANCE_DIR": str(workdir / "instance"),
           "COPILOT_SUGGESTION_COOLDOWN_S": "0", "COPILOT_RATE_PER_S": "50", "COPILOT_RATE_BURST": "60"}
    deployment = Deployment.start(request, env, workdir)
    yield deployment
    deployment.stop()


@pytest.fixture
def source_url(deployment):
    """Where the source sends: the last worker (the other one than the sidebar's when there are two)."""
    return deployment.servers[-1].url


@pytest.fixture
def clients():
    made = []

    def make(url, kind="agent", tok=None, **kw):
        client = (AgentClient if kind == "agent" else IngestClient)(url, token("agent", "amy") if tok is None
                                                                    else tok, **kw)
        made.append(client)
        return client
    yield make
    for client in made:
        client.close()


class IngestClient:
    """A transcript source's stream: a python-socketio client on /ingest."""

    def __init__(self, url: str, tok: str | None, connect: bool = True) -> None:
        self.url, self.token = url, tok
        self.sio = socketio.Client(reconnection=False)
        self.refusals: list = []
        self.sio.on("connect_error", self.refusals.append, namespace="/ingest")
        if connect:
            self.connect()

    def connect(self) -> None:
        self.sio.connect(self.url, namespaces=["/ingest"], auth={"token": self.token} if self.token else None,
                         transports=["websocket"], wait_timeout=10)

    def send(self, body) -> dict:
        return self.sio.call("transcripts", body, namespace="/ingest", timeout=30)

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


def post(url, body, headers=None):
    return requests.post(f"{url}/api/v1/transcripts", json=body, headers=bearer() if headers is None else headers,
                         timeout=30)


def sent(body, url):
    answer = post(url, body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def utterance(cid, uid, speaker, text, final=True, **extra):
    return {"conversation_id": cid, "utterance_id": uid, "speaker": speaker, "text": text, "final": final, **extra}


def unique(prefix):
    return f"{prefix}-{time.time_ns()}"


def start(agent, cid):
    reply = agent.call("conversation.start", {"conversation_id": cid, "channel": "voice", "queue": "billing"})
    assert reply["ok"], reply
    return reply


def shown(agent, cid, name="cue.highlight"):
    """What the sidebar was sent about one conversation, without its id (the same turns under another id)."""
    return [{k: v for k, v in data.items() if k != "conversation_id"} for data in agent.of(name)
            if data["conversation_id"] == cid]


def settled(agent, cid, count, name="cue.highlight", timeout=15):
    """The sidebar's `name` events of a conversation once `count` of them arrived."""
    deadline = time.time() + timeout
    while len(shown(agent, cid, name)) < count:
        assert time.time() < deadline, f"{len(shown(agent, cid, name))} of {count} {name} for {cid}"
        time.sleep(0.05)
    time.sleep(0.2)  # nothing more is due: a late extra would show up here
    return shown(agent, cid, name)


def logged(deployment, cid, kind="transcript.snippet"):
    return [e for e in deployment.events() if e.get("conversation_id") == cid and e["type"] == kind]


def test_turns_from_rest_and_from_the_ingest_stream_show_the_sidebar_what_its_own_snippets_do(deployment, clients,
                                                                                              source_url):
    agent = clients(deployment.servers[0].url)
    stream = clients(source_url, "ingest", token())
    by_sidebar, by_rest, by_stream = unique("sio"), unique("rest"), unique("ws")
    for cid in (by_sidebar, by_rest, by_stream):
        start(agent, cid)
    for uid, speaker, text in TURNS:
        assert agent.say(by_sidebar, uid, text, speaker)["ok"]
    answer = sent({"utterances": [utterance(by_rest, uid, speaker, text) for uid, speaker, text in TURNS]}, source_url)
    assert answer == {"ok": True, "accepted": 5, "duplicates": 0, "started": [], "ended": [], "ignored": 0,
                      "errors": []}
    for uid, speaker, text in TURNS:
        assert stream.send([utterance(by_stream, uid, speaker, text)])["accepted"] == 1

    expected = settled(agent, by_sidebar, len(TURNS))
    assert any(h["cues"] for h in expected) and {h["triage_level"] for h in expected} >= {2}
    for cid in (by_rest, by_stream):
        assert settled(agent, cid, len(TURNS)) == expected
        assert shown(agent, cid, "alert") == shown(agent, by_sidebar, "alert")
        assert shown(agent, cid, "suggestion.push") == shown(agent, by_sidebar, "suggestion.push")
        assert agent.call("conversation.join", {"conversation_id": cid})["counts"] == \
            agent.call("conversation.join", {"conversation_id": by_sidebar})["counts"]


def test_interim_results_replace_each_other_and_repeats_and_late_or_reversed_deliveries_count_once(
        deployment, clients, source_url):
    agent = clients(deployment.servers[0].url)
    stream = clients(source_url, "ingest", token())
    reference, cid = unique("ref"), unique("order")
    start(agent, reference)
    start(agent, cid)
    first = TURNS[0][2]
    for uid, speaker, text in TURNS[:3]:
        assert agent.say(reference, uid, text, speaker)["ok"]

    interims = [utterance(cid, "t1", "customer", first[:n], final=False) for n in (12, 30, 50)]
    assert sent(interims + [utterance(cid, "t1", "customer", first)], source_url)["accepted"] == 4
    assert settled(agent, cid, 1)[0]["final"] is True  # the interim results were replaced within the batch
    late = sent([interims[0]], source_url)  # an interim result delivered after its final one
    assert (late["accepted"], late["duplicates"]) == (0, 1)
    again = stream.send([utterance(cid, "t1", "customer", first)])  # the whole final again
    assert (again["ok"], again["accepted"], again["duplicates"]) == (True, 0, 1)
    # the final before its interim in one batch, then a batch in reverse offset order
    agent_turn = TURNS[1]
    flipped = stream.send([utterance(cid, "t2", "agent", agent_turn[2], start_ms=5000),
                           utterance(cid, "t2", "agent", agent_turn[2][:10], final=False, start_ms=5000)])
    assert (flipped["accepted"], flipped["duplicates"]) == (1, 1)
    reversed_batch = [utterance(cid, "t3b", "customer", "and I want it fixed today", start_ms=9000),
                      utterance(cid, "t3", "customer", TURNS[2][2], start_ms=7000)]
    assert sent(reversed_batch, source_url)["accepted"] == 2
    assert agent.say(reference, "t3b", "and I want it fixed today")["ok"]

    highlights = settled(agent, cid, 4)
    assert [h["snippet_id"] for h in highlights] == ["t1", "t2", "t3", "t3b"]
    assert all(h["final"] for h in highlights)
    assert highlights == settled(agent, reference, 4)
    counts = agent.call("conversation.join", {"conversation_id": cid})["counts"]
    assert counts and counts == agent.call("conversation.join", {"conversation_id": reference})["counts"]
    assert collections.Counter(e["snippet_id"] for e in logged(deployment, cid)) == {
        "t1": 1, "t2": 1, "t3": 1, "t3b": 1}


def test_a_batch_with_bad_utterances_lands_every_good_one_and_codes_each_bad_one_by_index(deployment, clients,
                                                                                          source_url):
    agent = clients(deployment.servers[0].url)
    stream = clients(source_url, "ingest", token())
    for send in (lambda body: sent(body, source_url), stream.send):
        cid = unique("bad")
        start(agent, cid)
        body = [utterance(cid, "g1", "customer", TURNS[0][2]),
                utterance(cid, "b1", "customer", "x" * 4001),
                utterance(cid, "b2", "supervisor", "hello"),
                utterance(cid, "bad id", "customer", "hello"),
                utterance(cid, "g2", "agent", TURNS[1][2])]
        answer = send(body)
        assert (answer["ok"], answer["accepted"]) == (False, 2)
        assert [(e["index"], e["code"]) for e in answer["errors"]] == [
            (1, "text_too_long"), (2, "invalid_payload"), (3, "invalid_payload")]
        assert answer["errors"][0]["utterance_id"] == "b1" and "utterance_id" not in answer["errors"][2]
        assert [h["snippet_id"] for h in settled(agent, cid, 2)] == ["g1", "g2"]


def test_an_unknown_conversation_without_start_is_unknown_conversation_and_the_others_still_land(
        deployment, clients, source_url):
    agent = clients(deployment.servers[0].url)
    known = unique("known")
    start(agent, known)
    answer = sent([utterance(unique("nobody"), "u1", "customer", "hello"), utterance(known, "u1", "customer", "hi")],
                  source_url)
    assert (answer["accepted"], [(e["index"], e["code"]) for e in answer["errors"]]) == (
        1, [(0, "unknown_conversation")])


def test_a_body_that_cannot_be_read_is_refused_whole_with_its_code(source_url):
    not_json = requests.post(f"{source_url}/api/v1/transcripts", data="{utterances", headers=bearer(), timeout=10)
    assert (not_json.status_code, not_json.json()["error"]["code"]) == (400, "invalid_payload")
    too_many = post(source_url, [utterance("c-1", f"u{i}", "customer", "hi") for i in range(501)])
    assert (too_many.status_code, too_many.json()["error"]["code"]) == (400, "invalid_payload")


def test_an_agent_token_is_forbidden_and_no_token_is_auth_required_on_rest_and_on_the_stream(source_url, clients):
    body = [utterance("c-1", "u1", "customer", "hi")]
    forbidden = post(source_url, body, bearer("agent", "amy"))
    assert (forbidden.status_code, forbidden.json()["error"]["code"]) == (403, "forbidden")
    missing = post(source_url, body, {})
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "auth_required")
    for tok, code in [(token("agent", "amy"), "forbidden"), (None, "auth_required")]:
        stream = IngestClient(source_url, tok, connect=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            stream.connect()
        deadline = time.time() + 5
        while not stream.refusals and time.time() < deadline:
            time.sleep(0.05)
        assert stream.refusals[-1]["data"]["code"] == code
    lead = post(source_url, {"end": [unique("gone")]}, bearer("lead", "lee"))
    assert lead.status_code == 200 and lead.json()["ok"]


def test_a_stream_error_is_acked_with_its_code_and_the_connection_stays(source_url, clients):
    stream = clients(source_url, "ingest", token())
    assert stream.send("no")["error"]["code"] == "invalid_payload"
    assert stream.sio.call("no.such.event", {}, namespace="/ingest", timeout=10)["error"]["code"] == "unknown_event"
    assert stream.send({"end": []})["ok"] and stream.sio.connected


def test_a_source_started_conversation_is_unclaimed_until_an_agents_join_claims_it_with_the_counts_so_far(
        deployment, clients, source_url):
    cid = unique("unclaimed")
    answer = sent({"start": {"agent": "", "queue": "billing"},
                   "utterances": [utterance(cid, uid, speaker, text) for uid, speaker, text in TURNS[:3]]}, source_url)
    assert (answer["started"], answer["accepted"]) == ([cid], 3)
    amy = clients(deployment.servers[0].url)
    bob = clients(deployment.servers[0].url, tok=token("agent", "bob"))
    joined = amy.call("conversation.join", {"conversation_id": cid})
    assert joined["ok"] and joined["claimed"] is True and joined["counts"]
    assert joined["counts"].get("frustration", 0) >= 1 and joined["triage_level"] >= 2
    assert bob.call("conversation.join", {"conversation_id": cid})["error"]["code"] == "unknown_conversation"
    again = amy.call("conversation.join", {"conversation_id": cid})
    assert again["ok"] and "claimed" not in again and again["counts"] == joined["counts"]
    assert [e["agent"] for e in logged(deployment, cid, "conversation.claim")] == ["amy"]
    sent([utterance(cid, "t4", *TURNS[3][1:])], source_url)
    assert [h["snippet_id"] for h in settled(amy, cid, 1)] == ["t4"]  # she is in its room now
    assert bob.of("cue.highlight") == []


def test_an_agents_start_of_an_unclaimed_conversation_claims_it_and_another_agents_start_is_refused(
        deployment, clients, source_url):
    cid = unique("claim-by-start")
    assert sent({"start": True, "utterances": [utterance(cid, "t1", *TURNS[0][1:])]}, source_url)["started"] == [cid]
    amy = clients(deployment.servers[0].url)
    bob = clients(deployment.servers[0].url, tok=token("agent", "bob"))
    claimed = start(amy, cid)
    assert claimed["claimed"] is True and claimed["counts"] and claimed["conversation_id"] == cid
    assert {"experiment", "guidance", "tone", "triage_level", "on_screen"} <= set(claimed)
    refused = bob.call("conversation.start", {"conversation_id": cid, "channel": "voice"})
    assert refused["error"]["code"] == "conversation_exists"
    assert bob.call("conversation.join", {"conversation_id": cid})["error"]["code"] == "unknown_conversation"


def test_a_source_that_names_the_agent_starts_the_conversation_as_theirs(deployment, clients, source_url):
    cid = unique("named")
    assert sent({"start": {"agent": "amy"}, "utterances": [utterance(cid, "t1", *TURNS[0][1:])]},
                source_url)["started"] == [cid]
    amy = clients(deployment.servers[0].url)
    joined = amy.call("conversation.join", {"conversation_id": cid})
    assert joined["ok"] and "claimed" not in joined and joined["counts"]
    bob = clients(deployment.servers[0].url, tok=token("agent", "bob"))
    assert bob.call("conversation.join", {"conversation_id": cid})["error"]["code"] == "unknown_conversation"


def test_end_ends_the_conversation_and_the_sidebar_gets_its_summary_once_even_when_the_end_repeats(
        deployment, clients, source_url):
    agent = clients(deployment.servers[0].url)
    stream = clients(source_url, "ingest", token())
    cid = unique("end")
    start(agent, cid)
    answer = stream.send({"utterances": [utterance(cid, uid, speaker, text) for uid, speaker, text in TURNS],
                          "end": [cid]})
    assert (answer["ok"], answer["accepted"], answer["ended"]) == (True, 5, [cid])
    summary = settled(agent, cid, 1, "conversation.summary")[0]
    assert summary["customer_turns"] == 3 and summary["agent_turns"] == 2 and summary["counts"]
    repeat = sent({"end": [cid, unique("never-started")]}, source_url)
    assert (repeat["ok"], repeat["ended"]) == (True, [])
    late = sent([utterance(cid, "t9", "customer", "one more thing")], source_url)
    assert [e["code"] for e in late["errors"]] == ["conversation_ended"]
    assert len(settled(agent, cid, 1, "conversation.summary")) == 1
    assert len(logged(deployment, cid, "conversation.end")) == 1


def ingest_counts(url):
    """copilot_ingest_utterances_total of one worker, by (source, result)."""
    counts = {}
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("copilot_ingest_utterances_total{"):
            labels, value = line[len("copilot_ingest_utterances_total{"):].split("} ")
            fields = dict(part.split("=") for part in labels.split(","))
            counts[fields["source"].strip('"'), fields["result"].strip('"')] = float(value)
    return counts


def test_metrics_count_each_source_s_utterances_by_result(deployment, clients, source_url):
    agent = clients(deployment.servers[0].url)
    cid = unique("metered")
    start(agent, cid)
    before = ingest_counts(source_url)
    sent([utterance(cid, "m1", "customer", TURNS[0][2]), utterance(cid, "m1", "customer", TURNS[0][2]),
          utterance(cid, "m2", "customer", "x" * 4001)], source_url)
    sent([utterance(cid, "m1", "customer", TURNS[0][2])], source_url)
    after = ingest_counts(source_url)
    delta = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    assert delta == {("transcripts", "accepted"): 1, ("transcripts", "duplicate"): 2,
                     ("transcripts", "text_too_long"): 1}


def lens_segment(cid, segment):
    """One Contact Lens SEGMENTS event with one segment, as its own request (one Kinesis batch, one webhook)."""
    return {"Version": "1.0.0", "Channel": "VOICE", "ContactId": cid, "EventType": "SEGMENTS", "Segments": [segment]}


def test_a_turn_s_pieces_posted_in_separate_requests_show_the_sidebar_the_turn_so_far_on_any_worker(
        deployment, clients):
    agent = clients(deployment.servers[0].url)
    cid = unique("pieces")
    start(agent, cid)
    words = ["This is the third time I've called", "and I'm absolutely furious about this bill"]
    pieces = [{"Utterance": {"Id": f"p{n}", "TranscriptId": "turn-1", "ParticipantRole": "CUSTOMER",
                             "PartialContent": text, "BeginOffsetMillis": 1000 * n, "EndOffsetMillis": 1000 * n + 900}}
              for n, text in enumerate(words)]
    final = {"Transcript": {"Id": "turn-1", "ParticipantRole": "CUSTOMER", "Content": " ".join(words) + ".",
                            "BeginOffsetMillis": 0, "EndOffsetMillis": 1900}}
    for server, segment in zip(deployment.servers * 3, pieces + [final]):  # with two workers, each takes some
        answer = requests.post(f"{server.url}/api/v1/sources/contact-lens", json=lens_segment(cid, segment),
                               headers=bearer(), timeout=30).json()
        assert answer["ok"] and answer["accepted"] == 1, answer
    highlights = settled(agent, cid, 2)
    interim = [h["text"] for h in highlights if not h["final"]]
    assert interim[-1] == " ".join(words)  # the turn so far, not the second piece alone
    assert [h["text"] for h in highlights if h["final"]] == [" ".join(words) + "."]
    late = requests.post(f"{deployment.servers[-1].url}/api/v1/sources/contact-lens",
                         json=lens_segment(cid, pieces[1]), headers=bearer(), timeout=30).json()
    assert (late["accepted"], late["duplicates"]) == (0, 1)  # a piece after its final shows nothing
