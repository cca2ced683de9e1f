"""The library's limits against a live server on loopback (issue #11: defects 5, 6, 7 and parts of 12).

Imports: YAML aliases refused, error lists capped, a 5 MB import of bad rows answered small, in bounded memory,
without stalling other tenants. Experiments: a redefinition never costs a snippet, and renaming the variants of
a running one is refused. Caps on library and experiment size. Redis: out of memory and evicted keys are
store_unavailable, never a 500 or a shrunk library; the audit reads only its page. Ids are matched in full.
"""
import json
import threading
import time

import psutil
import pytest
import redis
import requests

from copilot.library.phrasing import parse_phrasing
from copilot.library.store import Change, RedisLibraryStore
from copilot.library.usage import SqliteUsageStore
from copilot.security import Tokens
from tests.conftest import AgentClient, LiveServer
from tests.servers import ServerProcess

SECRET = "library-limits-secret-0123456789abcdef01"
EXPERIMENT = {"id": "guidance-ab", "variants": [{"name": "on"}, {"name": "off", "guidance": False}],
              "assign_by": "queue", "queues": {"billing": "on"}}
RENAMED = {**EXPERIMENT, "variants": [{"name": "alpha"}, {"name": "beta"}], "queues": {"billing": "alpha"}}
BAD_ROW = ("  - id: bad-row-{i:06d}\n    text: \"Is it broken number {i}?\"\n    cues: [frustration, nonsense_{i}]\n"
           "    stage: check-in\n    channels: [chat, fax]\n    use_when: [\"this is broken {i}\", \"fix it\"]\n")
NEW_ROW = ("  - id: new-row-{i:05d}\n    text: \"Which part of bill number {i} would you like to look at first?\"\n"
           "    cues: [confusion]\n    stage: investigate\n    use_when: [\"a question about bill {i}\", \"it looks wrong\"]\n")


def token(tenant, role="agent", agent="amy"):
    return Tokens(SECRET).issue(tenant, role, agent, ttl_s=3600)


def call(url, method, path, tenant, role="lead", **kwargs):
    headers = {"Authorization": f"Bearer {token(tenant, role, 'lee')}"}
    return requests.request(method, url + path, headers=headers, timeout=60, **kwargs)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The embedded server as `python wsgi.py` runs it (gevent, the bulk thread, SQLite)."""
    workdir = tmp_path_factory.mktemp("limits")
    live = ServerProcess({"COPILOT_SECRET": SECRET, "COPILOT_INSTANCE_DIR": str(workdir / "instance"),
                          "COPILOT_SUGGESTION_COOLDOWN_S": "0", "COPILOT_LIBRARY_SYNC_MS": "100"}, workdir)
    live.instance = workdir / "instance"
    yield live
    live.stop()


class PeakRss:
    """The peak resident memory of a process while the block runs, sampled every 20 ms."""

    def __init__(self, pid):
        self.process, self.peak, self.done = psutil.Process(pid), 0, threading.Event()

    def __enter__(self):
        self.before = self.process.memory_info().rss
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(5)
        self.grown_mb = (max(self.peak, self.process.memory_info().rss) - self.before) / 2**20


def laughs(rows=200, fanout=100):
    """A 'billion laughs' import: one bad row, whose cues alias one long text `fanout` times, aliased `rows`
    times. On the old code each alias became its own listed problem: megabytes of error from 2 KB."""
    return (f"long: &s {'x' * 280}\nmany: &c [{', '.join(['*s'] * fanout)}]\n"
            "row: &r {id: bad-laughs, text: \"Is it?\", stage: check-in, cues: *c}\n"
            f"phrasings: [{', '.join(['*r'] * rows)}]\n")


def test_yaml_aliases_are_refused_with_a_short_400_in_flat_memory(server):
    body = laughs()
    assert len(body) < 4096
    with PeakRss(server.pid) as rss:
        reply = call(server.url, "POST", "/api/v1/phrasings/import?format=yaml", "acme", data=body.encode())
    assert reply.status_code == 400 and len(reply.content) < 4096, (reply.status_code, len(reply.content))
    assert reply.json()["error"]["code"] == "invalid_payload" and "aliases" in reply.json()["error"]["message"]
    assert rss.grown_mb < 50, f"the server grew {rss.grown_mb:.0f} MB"


def bad_import_body():
    body = "phrasings:\n" + "".join(BAD_ROW.format(i=i) for i in range(26_000))
    assert 4.5e6 < len(body) < 5 * 2**20  # just under the default COPILOT_MAX_BODY_BYTES
    return body.encode()


def test_a_5mb_import_of_bad_rows_gets_a_bounded_reply_in_bounded_memory(server):
    body = bad_import_body()
    with PeakRss(server.pid) as rss:
        reply = call(server.url, "POST", "/api/v1/phrasings/import?format=yaml", "acme", data=body)
    assert reply.status_code == 422 and len(reply.content) < 300_000, (reply.status_code, len(reply.content))
    error = reply.json()["error"]
    assert error["code"] == "import_rejected" and len(error["details"]) == 100
    assert error["message"].startswith("26000 of 26000 rows rejected") and "first 100" in error["message"]
    assert rss.grown_mb < 150, f"the server grew {rss.grown_mb:.0f} MB for a 5 MB import"


def test_another_tenant_is_served_while_a_5mb_import_of_bad_rows_is_parsed(server):
    body = bad_import_body()
    agent = AgentClient(server.url, token("globex"))
    try:
        assert agent.call("conversation.start", {"conversation_id": "c-stall", "channel": "chat"})["ok"]
        assert agent.say("c-stall", "warm", "I've been waiting for weeks and I'm fed up")["ok"]  # seeds its library
        latencies, importing = [], threading.Thread(target=call, args=(
            server.url, "POST", "/api/v1/phrasings/import?format=yaml", "acme"), kwargs={"data": body})
        importing.start()
        deadline = time.monotonic() + 60
        while importing.is_alive() and time.monotonic() < deadline and len(latencies) < 400:
            started = time.perf_counter()
            ack = agent.say("c-stall", f"s{len(latencies)}", "I've been waiting for weeks and I'm fed up")
            latencies.append(time.perf_counter() - started)
            assert ack["ok"], ack
            time.sleep(0.05)
        importing.join(60)
    finally:
        agent.close()
    assert len(latencies) >= 5, "the import was over before the other tenant could be measured"
    assert max(latencies) < 0.75, f"another tenant waited {max(latencies):.2f} s for a snippet during the import"


def test_a_crisis_snippet_is_counted_logged_and_alerted_after_its_experiment_is_redefined(server):
    tenant, cid = "initech", "c-exp-1"
    assert call(server.url, "POST", "/api/v1/experiments", tenant, json=EXPERIMENT).status_code == 201
    agent = AgentClient(server.url, token(tenant))
    try:
        started = agent.call("conversation.start", {"conversation_id": cid, "channel": "chat", "queue": "billing"})
        assert started["experiment"] == ["guidance-ab", "on"]
        call(server.url, "POST", "/api/v1/experiments", tenant, json=RENAMED)  # refused now; it used to be taken
        # However the API answers, a definition can change under a running conversation (two leads, a restore):
        SqliteUsageStore(server.instance / "library.sqlite3").put_experiment(tenant, RENAMED)
        time.sleep(0.3)  # past COPILOT_LIBRARY_SYNC_MS
        disclosures = [("s1", "I just want to kill myself"), ("s2", "You are a useless idiot and I hate you"),
                       ("s3", "I am going to end it all tonight"), ("s4", "you stupid cow")]
        for sid, text in disclosures:
            ack = agent.say(cid, sid, text)
            assert ack == {"ok": True, "snippet_id": sid, "duplicate": False}, ack
        assert agent.wait_for("alert", lambda a: a["conversation_id"] == cid and a["kind"] == "crisis")
        counts = agent.call("conversation.join", {"conversation_id": cid})["counts"]
        assert counts.get("crisis") == 2 and counts.get("abuse") == 2, counts
    finally:
        agent.close()
    logged = [json.loads(line) for line in (server.instance / "events.jsonl").read_text().splitlines()]
    snippets = {e["snippet_id"] for e in logged if e.get("conversation_id") == cid and e["type"] == "transcript.snippet"}
    assert snippets == {"s1", "s2", "s3", "s4"}


def test_renaming_the_variants_of_a_running_experiment_is_refused(server):
    tenant = "running"
    assert call(server.url, "POST", "/api/v1/experiments", tenant, json=EXPERIMENT).status_code == 201
    agent = AgentClient(server.url, token(tenant))
    try:
        assert agent.call("conversation.start", {"conversation_id": "c-run", "channel": "chat",
                                                 "queue": "billing"})["experiment"] == ["guidance-ab", "on"]
    finally:
        agent.close()
    reply = call(server.url, "POST", "/api/v1/experiments", tenant, json=RENAMED)
    assert reply.status_code == 409 and reply.json()["error"]["code"] == "experiment_running", reply.text
    moved = {**EXPERIMENT, "queues": {"billing": "off"}}  # same variants, other assignment: allowed
    assert call(server.url, "POST", "/api/v1/experiments", tenant, json=moved).status_code == 201


def test_a_library_cannot_grow_past_its_cap_by_import(server):
    before = call(server.url, "GET", "/api/v1/phrasings", "hooli").json()["count"]
    body = ("phrasings:\n" + "".join(NEW_ROW.format(i=i) for i in range(10_000))).encode()
    reply = call(server.url, "POST", "/api/v1/phrasings/import?format=yaml", "hooli", data=body)
    assert reply.status_code == 409 and reply.json()["error"]["code"] == "library_full", reply.text[:300]
    assert call(server.url, "GET", "/api/v1/phrasings", "hooli").json()["count"] == before


def test_experiments_are_capped_in_size_and_count(server):
    tenant = "umbrella"
    huge = {**EXPERIMENT, "id": "huge", "variants": [
        {"name": "on", "phrasings": [f"frustration-checkin-{i:05d}" for i in range(3000)]}, {"name": "off"}]}
    reply = call(server.url, "POST", "/api/v1/experiments", tenant, json=huge)
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "payload_too_large", reply.status_code
    for i in range(50):
        assert call(server.url, "POST", "/api/v1/experiments", tenant, json={**EXPERIMENT, "id": f"e-{i:02d}"}).ok
    reply = call(server.url, "POST", "/api/v1/experiments", tenant, json={**EXPERIMENT, "id": "e-50"})
    assert reply.status_code == 409 and reply.json()["error"]["code"] == "too_many_experiments"
    assert len(call(server.url, "GET", "/api/v1/experiments", tenant).json()["experiments"]) == 50


def test_ids_ending_in_a_newline_are_refused(server):
    phrasing = {"id": "frustration-investigate-78\n", "text": "What would a good outcome look like for you today?",
                "cues": ["frustration"], "stage": "investigate", "use_when": ["I've had enough", "sort it out"]}
    reply = call(server.url, "POST", "/api/v1/phrasings", "acme", json=phrasing)
    assert reply.status_code == 422 and reply.json()["error"]["code"] == "invalid_phrasing"
    reply = call(server.url, "POST", "/api/v1/experiments", "acme", json={**EXPERIMENT, "id": "newline-exp\n"})
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "invalid_payload"


def redis_app(tmp_path, url, name):
    from copilot import create_app
    from copilot.settings import Settings

    return LiveServer(create_app(Settings(instance_dir=tmp_path / name, secret=SECRET, redis_url=url,
                                          library_sync_ms=50, async_mode="threading")))


def test_a_full_redis_answers_edits_with_store_unavailable_and_reads_go_on(tmp_path, own_redis):
    live = redis_app(tmp_path, own_redis.url, "a")
    try:
        count = call(live.url, "GET", "/api/v1/phrasings", "acme").json()["count"]
        pid = call(live.url, "GET", "/api/v1/phrasings", "acme").json()["phrasings"][0]["id"]
        redis.Redis.from_url(own_redis.url).config_set("maxmemory", 1)  # noeviction, and already over
        for method, path, kwargs in (("PATCH", f"/api/v1/phrasings/{pid}", {"json": {"notes": "full"}}),
                                     ("POST", f"/api/v1/phrasings/{pid}/retire", {}),
                                     ("POST", "/api/v1/experiments", {"json": EXPERIMENT})):
            reply = call(live.url, method, path, "acme", **kwargs)
            assert reply.status_code == 503 and reply.json()["error"]["code"] == "store_unavailable", reply.text
        assert call(live.url, "GET", "/api/v1/phrasings", "acme").json()["count"] == count
    finally:
        live.stop()


def test_a_library_whose_keys_were_evicted_is_not_served_shrunk(tmp_path, own_redis):
    first = redis_app(tmp_path, own_redis.url, "a")
    try:
        count = call(first.url, "GET", "/api/v1/phrasings", "acme").json()["count"]
        assert count >= 200
        redis.Redis.from_url(own_redis.url).delete("copilot:lib:acme:current")  # what allkeys-lru evicts
        new = {"id": "after-eviction-01", "text": "What would a good outcome look like for you today?",
               "cues": ["frustration"], "stage": "investigate", "use_when": ["I've had enough", "sort it out"]}
        reply = call(first.url, "POST", "/api/v1/phrasings", "acme", json=new)
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "store_unavailable", reply.text
        assert call(first.url, "GET", "/api/v1/phrasings", "acme").json()["count"] == count  # its own view
    finally:
        first.stop()
    fresh = redis_app(tmp_path, own_redis.url, "b")
    try:
        reply = call(fresh.url, "GET", "/api/v1/phrasings", "acme")
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "store_unavailable", reply.text[:200]
    finally:
        fresh.stop()


def test_the_redis_audit_reads_only_the_page_it_returns(redis_url):
    store = RedisLibraryStore(redis_url)
    base = parse_phrasing({"id": "audit-base-01", "text": "Which part of the bill looks different?",
                           "cues": ["confusion"], "stage": "investigate", "use_when": ["why is it higher", "what"]})
    store.commit("acme", [Change(None, base.with_changes(id=f"audit-{i:05d}"), "lee", "import") for i in range(10_000)])
    client = redis.Redis.from_url(redis_url)
    for after in (0, 9_000):
        sent = client.info("stats")["total_net_output_bytes"]
        started = time.perf_counter()
        page = store.audit("acme", after, 100)
        took = time.perf_counter() - started
        read = client.info("stats")["total_net_output_bytes"] - sent
        assert len(page) == 100 and page[0].phrasing_id == f"audit-{after:05d}"
        assert read < 1_000_000, f"one page of the audit read {read / 1e6:.1f} MB from Redis"
        assert took < 0.5, f"one page of the audit took {took:.2f} s"
