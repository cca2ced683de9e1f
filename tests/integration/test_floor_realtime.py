"""The live floor (issue #15) over real servers on loopback, as a team lead and an agent see it: the embedded
default, and two workers (`python wsgi.py` and gunicorn) sharing a real Redis, where the lead is on one worker and
the agent on the other. Each test has a tenant of its own, so its floor holds only its own conversations."""
import json
import threading
import time

import pytest
import requests
import socketio

from copilot.security import Tokens
from tests.conftest import AgentClient, Deployment, own_server

SECRET = "floor-test-secret-0123456789abcdef012345"
FLOOR = "/floor"
DIFF_WITHIN_S = 1.0  # the issue's target: a change reaches the board within 1 s of the snippet that caused it
THROTTLE_SLACK_S = 0.3  # a row sent a moment ago holds the next one back for up to a second, plus the feed's tick
CRISIS = "I honestly don't want to be here anymore"
FRUSTRATED = "I'm so frustrated, this is ridiculous"
NEGATIVE_LINES = [FRUSTRATED, "This is really disappointing and I'm annoyed",
                  "I'm really unhappy with how this has gone", "I'm so angry about this whole thing"]
NEUTRAL_AGENT = ["ok, let me pull up the account", "one moment while the system loads"]  # no acknowledgment


def token(tenant, role="agent", agent="amy", **kw):
    return Tokens(SECRET).issue(tenant, role, agent, **kw)


def unique(prefix):
    return f"{prefix}-{time.time_ns()}"


class LeadClient:
    """A real python-socketio client on /floor that records what the floor sends a lead, with arrival times."""

    EVENTS = ("floor.diff", "floor.alert", "floor.hand", "connect_error")

    def __init__(self, url: str, tok: str | None, connect: bool = True, headers: dict | None = None) -> None:
        self.url, self.token, self.headers = url, tok, headers or {}
        self.sio = socketio.Client(reconnection=False)
        self.events: list[tuple[str, dict, float]] = []
        self.cond = threading.Condition()
        for name in self.EVENTS:
            self.sio.on(name, self._recorder(name), namespace=FLOOR)
        if connect:
            self.connect()

    def _recorder(self, name):
        def record(data=None):
            with self.cond:
                self.events.append((name, data, time.monotonic()))
                self.cond.notify_all()
        return record

    def connect(self) -> None:
        self.sio.connect(self.url, namespaces=[FLOOR], auth={"token": self.token} if self.token else None,
                         transports=["websocket"], headers=self.headers, wait_timeout=10)

    def call(self, event: str, payload=None, timeout: float = 15):
        return self.sio.call(event, payload, namespace=FLOOR, timeout=timeout)

    def watch(self, queue: str | None = None) -> dict:
        """floor.watch (every queue, or one) and its acknowledgment, which must be ok."""
        ack = self.call("floor.watch", {} if queue is None else {"queue": queue})
        assert ack["ok"], ack
        return ack

    def wait_for(self, name: str, predicate=lambda d: True, timeout: float = 10) -> tuple[dict, float]:
        """The first `name` event that satisfies `predicate`, and when it arrived (time.monotonic)."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for event, data, at in self.events:
                    if event == name and predicate(data):
                        return data, at
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(f"no matching {name} arrived in {timeout} s; got "
                                         f"{json.dumps([(e, d) for e, d, _ in self.events])[:3000]}")
                self.cond.wait(left)

    def alert(self, cid: str, rule: str, timeout: float = 10) -> dict:
        return self.wait_for("floor.alert", lambda d: d["conversation_id"] == cid and d["rule"] == rule, timeout)[0]

    def row(self, cid: str, predicate=lambda r: True, timeout: float = 10) -> tuple[dict, float]:
        """The first row of conversation `cid` in a floor.diff that satisfies `predicate`, and when it came."""
        data, at = self.wait_for("floor.diff", lambda d: any(r["conversation_id"] == cid and predicate(r)
                                                               for r in d["rows"]), timeout)
        return next(r for r in data["rows"] if r["conversation_id"] == cid and predicate(r)), at

    def of(self, name: str, since: float = 0.0) -> list[dict]:
        with self.cond:
            return [d for e, d, at in self.events if e == name and at >= since]

    def rows_of(self, since: float = 0.0) -> list[dict]:
        """Every row the diffs brought since `since`."""
        return [r for d in self.of("floor.diff", since) for r in d["rows"]]

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


class SidebarClient(AgentClient):
    """An agent's /copilot client that also records what a team lead sends the sidebar."""

    def __init__(self, url: str, tok: str | None) -> None:
        super().__init__(url, tok, connect=False)
        for name in ("lead.answer", "lead.whisper"):
            self.sio.on(name, self._recorder(name), namespace="/copilot")
        self.connect()


class People:
    """Leads and agents of one test, all closed at its end."""

    def __init__(self) -> None:
        self.made: list = []

    def lead(self, url, tenant, name="lee", role="lead") -> LeadClient:
        self.made.append(LeadClient(url, token(tenant, role, name)))
        return self.made[-1]

    def agent(self, url, tenant, name="amy") -> SidebarClient:
        self.made.append(SidebarClient(url, token(tenant, "agent", name)))
        return self.made[-1]

    def close(self) -> None:
        for client in self.made:
            client.close()


@pytest.fixture
def people():
    made = People()
    yield made
    made.close()


def server_env(workdir) -> dict:
    return {"COPILOT_SECRET": SECRET, "COPILOT_INSTANCE_DIR": str(workdir / "instance"),
            "COPILOT_SUGGESTION_COOLDOWN_S": "0", "COPILOT_RATE_PER_S": "200", "COPILOT_RATE_BURST": "400",
            "COPILOT_AGENT_RATE_PER_S": "500", "COPILOT_AGENT_RATE_BURST": "500"}


@pytest.fixture(scope="module", params=["embedded", "redis-2-workers"])
def deployment(request, tmp_path_factory):
    """One server (embedded default), or two sharing Redis: servers[0] runs `python wsgi.py` (the lead's worker
    A), servers[-1] runs as the Dockerfile does (the agent's worker B)."""
    workdir = tmp_path_factory.mktemp("floor")
    env = server_env(workdir)
    deployment = Deployment.start(request, env, workdir)
    yield deployment
    deployment.stop()


def rest(server, method, path, tenant, role="lead", agent="lee", **kw) -> requests.Response:
    headers = {"Authorization": "Bearer " + token(tenant, role, agent)}
    return requests.request(method, server.url + path, headers=headers, timeout=10, **kw)


def floor_of(server, tenant, **params) -> dict:
    answer = rest(server, "GET", "/api/v1/floor", tenant, params=params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ok"], body
    return body


def start(agent, cid, queue="billing", **extra) -> None:
    reply = agent.call("conversation.start", {"conversation_id": cid, "channel": "chat", "queue": queue, **extra})
    assert reply["ok"], reply


def say(agent, cid, sid, text, speaker="customer") -> dict:
    reply = agent.say(cid, sid, text, speaker)
    assert reply["ok"], reply
    return reply


def workers(deployment):
    """The lead's worker and the agent's worker (the same one when embedded)."""
    return deployment.servers[0], deployment.servers[-1]


def test_a_crisis_on_one_worker_reaches_a_lead_on_the_other_within_a_second_with_its_alert(deployment, people):
    a, b = workers(deployment)
    tenant = unique("t")
    lead = people.lead(a.url, tenant)
    lead.watch()
    agent = people.agent(b.url, tenant)
    calm, cid = unique("calm"), unique("crisis")
    start(agent, calm)
    say(agent, calm, "s1", FRUSTRATED)
    start(agent, cid)
    say(agent, cid, "s1", CRISIS)
    acked = time.monotonic()
    row, arrived = lead.row(cid, lambda r: r["triage_level"] == 3)
    assert arrived - acked <= DIFF_WITHIN_S, f"the crisis row came {arrived - acked:.2f} s after the ack"
    assert row["counts"].get("crisis") == 1 and row["consent"] is True
    assert (row["agent"], row["queue"], row["channel"], row["customer_turns"]) == ("amy", "billing", "chat", 1)

    alert = lead.alert(cid, "triage")
    assert alert["id"] and alert["agent"] == "amy" and alert["queue"] == "billing" and alert["taken_by"] is None
    assert alert["reason"] and alert["history"]
    words = [w for e in alert["evidence"] if e["cue"] == "crisis" for w in e["words"]]
    assert any("want to be here" in w for w in words), alert
    for server in deployment.servers:  # the REST snapshot from either worker: the shared state, sorted by risk
        floor = floor_of(server, tenant)
        assert [r["conversation_id"] for r in floor["rows"]] == [cid, calm], floor["rows"]
        assert alert["id"] in [x["id"] for x in floor["alerts"]]

    say(agent, cid, "s2", "my husband passed away last week and I can't afford the rent")
    acked = time.monotonic()
    _, arrived = lead.row(cid, lambda r: r["counts"].get("crisis") == 2)
    assert arrived - acked <= DIFF_WITHIN_S + THROTTLE_SLACK_S, f"the next row came {arrived - acked:.2f} s after"
    time.sleep(0.3)
    triage = [x for x in lead.of("floor.alert") if x["conversation_id"] == cid and x["rule"] == "triage"]
    assert len(triage) == 1, triage


def test_the_floor_shows_the_customer_s_cues_and_never_the_agent_s_emotions(deployment, people):
    a, b = workers(deployment)
    tenant = unique("t")
    lead = people.lead(a.url, tenant)
    lead.watch()
    agent = people.agent(b.url, tenant)
    cid = unique("law")
    start(agent, cid)
    say(agent, cid, "s1", FRUSTRATED)
    before, _ = lead.row(cid, lambda r: r["customer_turns"] == 1)
    say(agent, cid, "a1", "I'm sorry, I'm furious and fed up with this system myself", speaker="agent")
    after, _ = lead.row(cid, lambda r: r["agent_turns"] == 1)
    assert after["counts"] == before["counts"] and after["tone"] == before["tone"]
    assert after["behaviours"].get("acknowledging") == 1
    assert "anger" not in json.dumps(after) and "furious" not in json.dumps(after)


def test_a_lead_s_claim_shows_on_another_lead_s_board_on_the_other_worker(deployment, people):
    a, b = workers(deployment)
    tenant = unique("t")
    lee, lou = people.lead(a.url, tenant, "lee"), people.lead(b.url, tenant, "lou")
    lee.watch()
    lou.watch()
    agent = people.agent(b.url, tenant)
    cid = unique("claim")
    start(agent, cid)
    say(agent, cid, "s1", CRISIS)
    alert = lee.alert(cid, "triage")
    lou.alert(cid, "triage")
    claimed = lee.call("alert.claim", {"conversation_id": cid, "alert_id": alert["id"]})
    assert claimed["ok"] and claimed["alert"]["taken_by"]["lead"] == "lee", claimed
    taken, _ = lou.wait_for("floor.alert", lambda d: d["id"] == alert["id"] and d["taken_by"] is not None)
    assert taken["taken_by"]["lead"] == "lee" and taken["taken_by"]["at"] >= alert["at"]
    snapshot = lou.watch()["snapshot"]
    assert next(x for x in snapshot["alerts"] if x["id"] == alert["id"])["taken_by"]["lead"] == "lee"
    missing = lou.call("alert.claim", {"conversation_id": cid, "alert_id": cid + ":no-such-rule"})
    assert missing["ok"] is False and missing["error"]["code"] == "not_found", missing


def logged(deployment, cid, kind, timeout=5.0) -> list[dict]:
    """The conversation's events once one of type containing `kind` is in the log (it may be written just after
    the acknowledgment)."""
    deadline = time.time() + timeout
    while True:
        mine = [e for e in deployment.events() if e.get("conversation_id") == cid]
        if any(kind in e.get("type", "") for e in mine) or time.time() > deadline:
            return mine
        time.sleep(0.1)


def test_a_raised_hand_pages_the_lead_whose_answer_and_whisper_reach_the_agent_and_the_log_is_redacted(
        deployment, people):
    a, b = workers(deployment)
    tenant = unique("t")
    lead = people.lead(a.url, tenant)
    lead.watch()
    agent = people.agent(b.url, tenant)
    cid = unique("hand")
    start(agent, cid)
    say(agent, cid, "s1", FRUSTRATED)
    raised = agent.call("conversation.raise_hand", {"conversation_id": cid})
    assert raised["ok"] and raised["raised_at"] > 0, raised
    hand, _ = lead.wait_for("floor.hand", lambda d: d["conversation_id"] == cid)
    assert (hand["agent"], hand["queue"], hand["raised_at"]) == ("amy", "billing", raised["raised_at"])
    assert hand["summary"] and hand["row"]["conversation_id"] == cid
    again = agent.call("conversation.raise_hand", {"conversation_id": cid})
    assert again["ok"] and again["raised_at"] == raised["raised_at"], again

    answered = lead.call("hand.answer", {"conversation_id": cid, "answer": "on_my_way"})
    assert answered["ok"] and answered["hand"]["answer"] == "on_my_way", answered
    answer = agent.wait_for("lead.answer", lambda d: d["conversation_id"] == cid)
    assert (answer["answer"], answer["message"], answer["lead"]) == ("on_my_way", "On my way", "lee")
    row, _ = lead.row(cid, lambda r: (r["hand"] or {}).get("answer") == "on_my_way")
    assert row["hand"]["lead"] == "lee" and row["hand"]["raised_at"] == raised["raised_at"]

    text = "Offer the refund. She wrote to jo.bloggs@example.com, card 4111 1111 1111 1111"
    whispered = lead.call("floor.whisper", {"conversation_id": cid, "text": text})
    assert whispered["ok"] and whispered["at"] > 0, whispered
    whisper = agent.wait_for("lead.whisper", lambda d: d["conversation_id"] == cid)
    assert whisper["lead"] == "lee" and whisper["text"].startswith("Offer the refund.")
    mine = logged(deployment, cid, "whisper")
    entries = [e for e in mine if "whisper" in e.get("type", "")]
    assert len(entries) == 1, mine
    assert "[EMAIL]" in entries[0]["text"] and "[CARD]" in entries[0]["text"], entries
    dump = json.dumps(mine)
    assert "jo.bloggs@example.com" not in dump and "4111 1111" not in dump


RULE_SCRIPTS = {  # each rule's conversation; the alert is due on the last line and not before
    "abuse": [("customer", "you're a useless idiot, put me through to someone competent")],
    "escalation_request": [("customer", "I want to speak to a manager right now")],
    "unacknowledged": [("customer", FRUSTRATED), ("agent", NEUTRAL_AGENT[0]), ("agent", NEUTRAL_AGENT[1])],
    "negative_tone": [("customer", line) for line in NEGATIVE_LINES],
}


@pytest.mark.parametrize("rule", sorted(RULE_SCRIPTS))
def test_each_default_rule_raises_its_alert_on_the_turn_that_meets_it(deployment, people, rule):
    a, b = workers(deployment)
    tenant = unique("t")
    lead = people.lead(a.url, tenant)
    lead.watch()
    agent = people.agent(b.url, tenant)
    cid = unique(rule.replace("_", "-"))
    start(agent, cid)
    *before, last = RULE_SCRIPTS[rule]
    for n, (speaker, text) in enumerate(before):
        say(agent, cid, f"t{n}", text, speaker)
    if before:
        lead.row(cid, lambda r: r["customer_turns"] + r["agent_turns"] == len(before))
        time.sleep(0.3)
        early = [x for x in lead.of("floor.alert") if x["conversation_id"] == cid and x["rule"] == rule]
        assert early == [], f"{rule} alerted before its threshold: {early}"
    say(agent, cid, "last", last[1], last[0])
    alert = lead.alert(cid, rule)
    assert alert["reason"] and alert["taken_by"] is None and alert["id"]
    row, _ = lead.row(cid, lambda r: (r["last_alert"] or {}).get("rule") == rule)
    if rule == "abuse":
        assert row["abuse"] is True and row["mode"] == "agent-protection"
    if rule == "escalation_request":
        assert row["escalation"] is True
    if rule == "unacknowledged":
        assert any(u["cue"] == "frustration" and u["agent_turns"] >= 2 for u in row["unacknowledged"]), row
    if rule == "negative_tone":
        assert row["tone"]["label"] == "negative"


def test_rules_changed_over_rest_on_one_worker_apply_to_a_new_conversation_on_the_other(deployment, people):
    a, b = workers(deployment)
    tenant = unique("t")
    changed = rest(a, "PUT", "/api/v1/floor/rules", tenant, json={"rules": {"abuse": {"enabled": False}}})
    assert changed.status_code == 200, changed.text
    rules = changed.json()["rules"]
    assert rules["abuse"]["enabled"] is False and rules["triage"] == {"enabled": True, "threshold": 3}
    merged = rest(a, "PUT", "/api/v1/floor/rules", tenant, json={"rules": {"negative_tone": {"threshold": 2}}})
    assert merged.status_code == 200, merged.text
    assert merged.json()["rules"]["abuse"]["enabled"] is False
    assert merged.json()["rules"]["negative_tone"] == {"enabled": True, "threshold": 2}
    time.sleep(1.5)
    assert rest(b, "GET", "/api/v1/floor/rules", tenant).json()["rules"] == merged.json()["rules"]

    lead = people.lead(a.url, tenant)
    lead.watch()
    agent = people.agent(b.url, tenant)
    cid = unique("rules")
    start(agent, cid)
    say(agent, cid, "s1", "you're a useless idiot, put me through to someone competent")
    say(agent, cid, "s2", FRUSTRATED)
    lead.alert(cid, "negative_tone")  # the new threshold, two negative turns
    lead.row(cid, lambda r: r["abuse"] is True and r["customer_turns"] == 2)
    time.sleep(0.5)
    assert [x for x in lead.of("floor.alert") if x["conversation_id"] == cid and x["rule"] == "abuse"] == []


def test_a_conversation_without_consent_shows_counts_only(deployment, people):
    a, b = workers(deployment)
    tenant = unique("t")
    lead = people.lead(a.url, tenant)
    lead.watch()
    agent = people.agent(b.url, tenant)
    cid = unique("noconsent")
    start(agent, cid, consent=False)
    say(agent, cid, "s1", CRISIS)
    alert = lead.alert(cid, "triage")
    assert alert["history"] == "" and alert["evidence"] == [], alert
    row, _ = lead.row(cid, lambda r: r["triage_level"] == 3)
    assert row["consent"] is False and row["counts"].get("crisis") == 1
    rest_alert = next(x for x in floor_of(a, tenant)["alerts"] if x["id"] == alert["id"])
    assert rest_alert["history"] == "" and rest_alert["evidence"] == []
    assert "want to be here" not in json.dumps([alert, row, rest_alert])
    assert lead.call("floor.whisper", {"conversation_id": cid, "text": "Slow down and check on her"})["ok"]
    entries = [e for e in logged(deployment, cid, "whisper") if "whisper" in e.get("type", "")]
    assert len(entries) == 1 and "text" not in entries[0], entries


@pytest.fixture(scope="module")
def textless_server(tmp_path_factory):
    """A server of its own with COPILOT_TRANSCRIPT=none."""
    proc = own_server(tmp_path_factory.mktemp("textless"), SECRET, COPILOT_TRANSCRIPT="none")
    yield proc
    proc.stop()


def test_with_no_transcript_kept_the_floor_shows_no_evidence_words(textless_server, people):
    tenant = unique("t")
    lead = people.lead(textless_server.url, tenant)
    lead.watch()
    agent = people.agent(textless_server.url, tenant)
    cid = unique("notext")
    start(agent, cid)
    say(agent, cid, "s1", CRISIS)
    alert = lead.alert(cid, "triage")
    assert alert["evidence"] == [], alert
    row, _ = lead.row(cid, lambda r: r["triage_level"] == 3)
    snapshot = lead.watch()["snapshot"]
    assert "want to be here" not in json.dumps([alert, row, snapshot, floor_of(textless_server, tenant)])


def test_a_reconnecting_lead_gets_a_snapshot_then_diffs_and_an_ended_conversation_is_removed(deployment, people):
    a, b = workers(deployment)
    tenant = unique("t")
    first = people.lead(a.url, tenant)
    first.watch()
    agent = people.agent(b.url, tenant)
    cid, crisis = unique("back"), unique("crisis")
    start(agent, cid)
    say(agent, cid, "s1", FRUSTRATED)
    first.row(cid)
    first.close()
    say(agent, cid, "s2", "This is really disappointing and I'm annoyed")
    start(agent, crisis)
    say(agent, crisis, "s1", CRISIS)

    again = people.lead(b.url, tenant)
    watched = again.watch()
    rows = watched["snapshot"]["rows"]
    assert [r["conversation_id"] for r in rows] == [crisis, cid], rows
    assert [r["risk"] for r in rows] == sorted((r["risk"] for r in rows), reverse=True)
    assert rows[1]["counts"].get("frustration") == 2 and rows[1]["customer_turns"] == 2
    assert "triage" in [x["rule"] for x in watched["snapshot"]["alerts"] if x["conversation_id"] == crisis]
    say(agent, cid, "s3", "I'm so angry about this whole thing")
    again.row(cid, lambda r: r["customer_turns"] == 3)
    assert agent.call("conversation.end", {"conversation_id": cid})["ok"]
    again.wait_for("floor.diff", lambda d: cid in d["removed"])
    assert [r["conversation_id"] for r in floor_of(a, tenant)["rows"]] == [crisis]
    assert [r["conversation_id"] for r in again.watch()["snapshot"]["rows"]] == [crisis]


def test_a_lead_gets_no_diffs_before_floor_watch(deployment, people):
    a, b = workers(deployment)
    tenant = unique("t")
    lead = people.lead(a.url, tenant)
    agent = people.agent(b.url, tenant)
    cid = unique("unwatched")
    start(agent, cid)
    say(agent, cid, "s1", FRUSTRATED)
    time.sleep(1.5)
    assert lead.of("floor.diff") == []
    assert [r["conversation_id"] for r in lead.watch()["snapshot"]["rows"]] == [cid]


def test_a_lead_watching_one_queue_gets_no_rows_of_another(deployment, people):
    a, b = workers(deployment)
    tenant = unique("t")
    lead = people.lead(a.url, tenant)
    assert lead.watch("billing")["queue"] == "billing"
    agent = people.agent(b.url, tenant)
    billing, sales = unique("billing"), unique("sales")
    start(agent, sales, queue="sales")
    start(agent, billing, queue="billing")
    say(agent, sales, "s1", FRUSTRATED)
    say(agent, billing, "s1", FRUSTRATED)
    lead.row(billing, lambda r: r["customer_turns"] == 1)
    time.sleep(1.2)  # past the next batch, where a sales row would come if the filter leaked
    assert {r["queue"] for r in lead.rows_of()} == {"billing"}

    rewatched = time.monotonic()
    snapshot = lead.watch("sales")["snapshot"]
    assert [r["conversation_id"] for r in snapshot["rows"]] == [sales]
    say(agent, billing, "s2", "This is really disappointing and I'm annoyed")
    say(agent, sales, "s2", "This is really disappointing and I'm annoyed")
    lead.row(sales, lambda r: r["customer_turns"] == 2)
    time.sleep(1.2)
    assert {r["queue"] for r in lead.rows_of(since=rewatched)} == {"sales"}
    assert [r["conversation_id"] for r in floor_of(a, tenant, queue="sales")["rows"]] == [sales]
    assert {r["conversation_id"] for r in floor_of(a, tenant)["rows"]} == {sales, billing}
