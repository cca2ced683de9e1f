"""Analytics over REST against a real server on loopback: conversations held over Socket.IO, loaded into the
embedded DuckDB store, then outcomes posted (JSON, CSV, multipart), reports and scorecards read (JSON and CSV),
a customer erased, and a day exported to Parquet; then two workers sharing Redis and one PostgreSQL store."""
import csv
import io
import json
import random
import string
import time

import duckdb
import pytest
import requests

from copilot.security import Tokens
from tests.conftest import AgentClient, own_server

SECRET = "analytics-api-secret-0123456789abcdef0123"
TENANT = "acme"
FRUSTRATED = "This is the third time I've called and I'm absolutely furious about this bill"
ACKNOWLEDGING = "I'm so sorry, that sounds really frustrating. What would help most right now?"
PLAIN_REPLY = "Your account number please."
CLOSING = "Is there anything else I can help you with today?"


def headers(role="lead", tenant=TENANT, agent=None):
    return {"Authorization": f"Bearer {Tokens(SECRET).issue(tenant, role, agent or role)}"}


LEAD, ADMIN, INTEGRATION = headers("lead"), headers("admin"), headers("integration", agent="crm")


def letters() -> str:
    """A customer_ref of letters only: a run of digits could be a card or phone number, and is logged redacted."""
    return "".join(random.choices(string.ascii_lowercase, k=12))


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def hold(url, cid, acknowledged, customer_ref=None, tenant=TENANT, queue="billing", text=FRUSTRATED):
    """One conversation over Socket.IO: a frustrated customer, an agent who acknowledges it or not, then the end."""
    agent = AgentClient(url, Tokens(SECRET).issue(tenant, "agent", "amy"))
    try:
        start = {"conversation_id": cid, "channel": "chat", "queue": queue,
                 **({"customer_ref": customer_ref} if customer_ref else {})}
        assert agent.call("conversation.start", start)["ok"]
        assert agent.say(cid, "s1", text)["ok"]
        assert agent.say(cid, "a1", ACKNOWLEDGING if acknowledged else PLAIN_REPLY, speaker="agent")["ok"]
        assert agent.say(cid, "a2", CLOSING, speaker="agent")["ok"]
        return agent.call("conversation.end", {"conversation_id": cid})["summary"]
    finally:
        agent.close()


def loaded(url, cid, tenant=TENANT, timeout=30):
    """The conversation's scorecard once the loader has moved its end into the store."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        answer = requests.get(f"{url}/api/v1/scorecards/{cid}", headers=headers("lead", tenant), timeout=10)
        if answer.status_code == 200:
            return answer.json()
        assert answer.status_code == 404, answer.text
        time.sleep(0.1)
    raise AssertionError(f"{cid} never reached the analytics store")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("analytics-api")
    proc = own_server(workdir, SECRET, COPILOT_ANALYTICS_LOAD_MS="50", COPILOT_REPORT_MIN_N="2")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def held(server):
    """Four conversations (two acknowledged, two not) and their summaries, in the store."""
    run = time.time_ns()
    summaries = {}
    for n, acknowledged in enumerate([True, True, False, False]):
        cid = f"held-{run}-{n}"
        summaries[cid] = hold(server.url, cid, acknowledged, customer_ref=f"cust-{letters()}")
    for cid in summaries:
        loaded(server.url, cid)
    return summaries


def post(url, body=None, csv_text=None, who=INTEGRATION, files=None):
    if csv_text is not None:
        return requests.post(f"{url}/api/v1/outcomes", data=csv_text.encode(), timeout=30,
                             headers={**who, "Content-Type": "text/csv"})
    if files is not None:
        return requests.post(f"{url}/api/v1/outcomes", files=files, headers=who, timeout=30)
    return requests.post(f"{url}/api/v1/outcomes", json=body, headers=who, timeout=30)


def report(url, name, **params):
    answer = requests.get(f"{url}/api/v1/reports/{name}", params=params, headers=LEAD, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer


def test_outcomes_posted_as_json_land_and_unknown_conversation_ids_are_reported(server, held):
    ids = list(held)
    body = {"outcomes": [{"conversation_id": ids[0], "csat": 5, "felt_understood": 5},
                         {"conversation_id": "never-held-1", "csat": 2}]}
    answer = post(server.url, body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["ok"] and result["accepted"] == 2 and result["errors"] == []
    assert result["unknown_conversations"] == {"count": 1, "ids": ["never-held-1"]}


def test_a_csv_upload_reports_a_malformed_row_by_line_and_the_other_rows_land(server, held):
    ids = list(held)
    text = ("conversation_id,CSAT,felt understood,resolved\n"
            f"{ids[0]},5,5,yes\n"
            f"{ids[1]},9,4,yes\n"  # line 3: a CSAT of 9 is not on the 1-5 scale
            f"{ids[2]},2,1,no\n"
            f"{ids[3]},1,2,no\n")
    result = post(server.url, csv_text=text).json()
    assert result["ok"] and result["accepted"] == 3
    assert [(e["line"], e["code"]) for e in result["errors"]] == [(3, "invalid_outcome")]
    assert "csat" in result["errors"][0]["message"].lower()


def test_a_multipart_file_upload_is_read_as_csv(server, held):
    ids = list(held)
    text = f"conversation_id,csat\n{ids[1]},4\n"
    result = post(server.url, files={"file": ("survey.csv", text, "text/csv")}).json()
    assert result["ok"] and result["accepted"] == 1 and result["errors"] == []


def test_posting_the_same_outcomes_again_replaces_them_and_counts_nothing_twice(server, held):
    ids = list(held)
    body = [{"conversation_id": cid, "csat": score, "felt_understood": score}
            for cid, score in zip(ids, [5, 4, 2, 1])]
    first = post(server.url, body).json()
    before = report(server.url, "outcomes", metric="csat", split="acknowledged").json()
    again = post(server.url, body).json()
    after = report(server.url, "outcomes", metric="csat", split="acknowledged").json()
    assert first["accepted"] == again["accepted"] == 4
    assert before == after


def test_a_body_that_cannot_be_read_at_all_is_invalid_payload_and_a_code_never_a_500(server):
    for data, kind in [(b"{not json", "application/json"), (b"\xff\xfe\x00bad", "text/csv"),
                       (b"csat=5", "application/x-www-form-urlencoded")]:
        answer = requests.post(f"{server.url}/api/v1/outcomes", data=data, timeout=10,
                               headers={**INTEGRATION, "Content-Type": kind})
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_payload", (kind, answer.text)


def test_the_resolution_report_counts_the_conversations_held_over_socketio(server, held):
    rows = report(server.url, "resolution", by="day").json()["rows"]
    day = next(row for row in rows if row["day"] == today())
    assert day["conversations"] >= len(held) and day["negative_episodes"] >= len(held)
    assert 0 < day["rate"] < 1 and day["ci95"][0] <= day["rate"] <= day["ci95"][1]
    by_queue = report(server.url, "resolution", by="queue", queue="billing").json()["rows"]
    assert [row["queue"] for row in by_queue] == ["billing"]


def test_below_the_minimum_n_a_cell_says_too_few(server, held):
    lone = f"lone-{time.time_ns()}"
    hold(server.url, lone, True, queue="lone-queue", text="I'm absolutely furious about this bill")
    loaded(server.url, lone)
    rows = report(server.url, "resolution", by="queue", **{"from": today(), "to": today()}).json()["rows"]
    few = next(row for row in rows if row["queue"] == "lone-queue")
    assert (few["rate"], few["ci95"], few["negative_episodes"]) == ("too few", None, 1)
    assert all(isinstance(row["rate"], float) for row in rows if row["queue"] == "billing")


def test_the_outcomes_report_splits_csat_by_acknowledgment_with_a_difference_test(server, held):
    ids = list(held)
    post(server.url, [{"conversation_id": cid, "csat": score} for cid, score in zip(ids, [5, 4, 2, 1])])
    answer = report(server.url, "outcomes", metric="csat", split="acknowledged").json()
    groups = {row["group"]: row for row in answer["rows"]}
    assert (groups["acknowledged"]["n"], groups["acknowledged"]["mean"]) == (2, 4.5)
    assert (groups["not_acknowledged"]["n"], groups["not_acknowledged"]["mean"]) == (2, 1.5)
    versus = groups["acknowledged"]["versus"]
    assert versus["group"] == "not_acknowledged" and versus["difference"] == 3.0 and versus["test"] == "welch_t"
    assert versus["ci95"][0] < 3.0 < versus["ci95"][1] and 0 < versus["p_value"] < 1


def test_a_customer_back_within_the_window_is_a_repeat_contact(server):
    ref, run = f"repeat-ref-{letters()}", time.time_ns()
    for n in range(2):
        hold(server.url, f"repeat-{run}-{n}", True, customer_ref=ref, queue="repeats")
    loaded(server.url, f"repeat-{run}-1")
    rows = report(server.url, "repeat_contacts", by="queue", queue="repeats", within_days="7").json()["rows"]
    assert [(row["queue"], row["conversations"]) for row in rows] == [("repeats", 2)]
    assert (rows[0]["observed"]["n"], rows[0]["observed"]["successes"], rows[0]["observed"]["rate"]) == (2, 1, 0.5)
    refused = requests.get(f"{server.url}/api/v1/reports/repeat_contacts", params={"within_days": "0"},
                           headers=LEAD, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_payload"


def test_a_report_exports_as_csv(server, held):
    answer = report(server.url, "resolution", by="day", format="csv")
    assert answer.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert any(row["day"] == today() and int(row["conversations"]) >= len(held) for row in rows)
    assert {"ci95_lo", "ci95_hi"} <= set(rows[0])
    nested = report(server.url, "phrasings", format="csv")
    header = next(csv.reader(io.StringIO(nested.text)))
    assert {"phrasing_id", "acceptance.n", "acceptance.rate", "lift.difference"} <= set(header)


def test_a_conversation_s_scorecard_names_each_item_with_its_turn_and_evidence(server, held):
    cid = next(iter(held))  # acknowledged, with an open question
    card = loaded(server.url, cid)["scorecard"]
    items = {item["item"]: item for item in card["items"]}
    assert set(items) == {"timely_acknowledgment", "naming_emotion", "open_question", "offering_options",
                          "closing_the_loop"}
    assert items["timely_acknowledgment"]["met"] is True
    assert items["naming_emotion"]["met"] is True and items["naming_emotion"]["turn"] == 1
    assert "frustrating" in items["naming_emotion"]["evidence"]
    assert card["score"] is not None and 0 <= card["score"] <= 100
    as_csv = requests.get(f"{server.url}/api/v1/scorecards/{cid}", params={"format": "csv"}, headers=LEAD,
                          timeout=10)
    assert {row["item"] for row in csv.DictReader(io.StringIO(as_csv.text))} == set(items)


def test_scorecards_aggregate_by_agent_and_by_queue(server, held):
    by_agent = requests.get(f"{server.url}/api/v1/scorecards", params={"by": "agent"}, headers=LEAD, timeout=10)
    assert by_agent.status_code == 200, by_agent.text
    assert "amy" in json.dumps(by_agent.json()["rows"])
    by_queue = requests.get(f"{server.url}/api/v1/scorecards", params={"by": "queue", "format": "csv"},
                            headers=LEAD, timeout=10)
    assert any(row.get("queue") == "billing" for row in csv.DictReader(io.StringIO(by_queue.text)))


def test_qa_tools_get_one_scorecard_row_per_conversation_as_csv(server, held):
    cid = next(iter(held))
    loaded(server.url, cid)
    reply = requests.get(f"{server.url}/api/v1/scorecards", params={"by": "conversation", "format": "csv"},
                         headers=LEAD, timeout=10)
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/csv"), reply.text
    rows = {row["conversation_id"]: row for row in csv.DictReader(io.StringIO(reply.text))}
    assert rows[cid]["timely_acknowledgment"] == "True" and rows[cid]["agent"] == "amy", rows[cid]
    assert rows[cid]["day"][:4].isdigit() and float(rows[cid]["score"]) > 0
    as_json = requests.get(f"{server.url}/api/v1/scorecards", params={"by": "conversation"}, headers=LEAD,
                           timeout=10).json()
    assert cid in {row["conversation_id"] for row in as_json["rows"]}


def test_erasing_a_customer_ref_removes_its_conversation_everywhere_and_is_audited(server, tmp_path):
    cid, ref = f"erase-{time.time_ns()}", f"erase-ref-{letters()}"
    hold(server.url, cid, True, customer_ref=ref)
    loaded(server.url, cid)
    assert post(server.url, [{"conversation_id": cid, "csat": 3}]).json()["accepted"] == 1
    answer = requests.post(f"{server.url}/api/v1/erasure", json={"customer_ref": ref}, headers=ADMIN, timeout=30)
    assert answer.status_code == 200, answer.text
    erased = answer.json()["erased"]
    assert erased["conversations"] == 1 and erased["outcomes"] == 1 and erased["events"] >= 4
    assert requests.get(f"{server.url}/api/v1/scorecards/{cid}", headers=LEAD, timeout=10).status_code == 404
    log = (server.instance / "events.jsonl").read_text()
    assert cid not in log and ref not in log
    audit = requests.get(f"{server.url}/api/v1/erasures", headers=ADMIN, timeout=10).json()["erasures"]
    entry = audit[-1] if audit[-1].get("kind") == "customer_ref" else next(e for e in audit
                                                                           if e["kind"] == "customer_ref")
    assert entry["actor"] == "admin" and ref not in json.dumps(audit)
    again = post(server.url, [{"conversation_id": cid, "csat": 3}]).json()
    assert again["unknown_conversations"]["ids"] == [cid]


def test_erasure_and_export_are_for_admins_only(server):
    for method, path, kwargs in [("post", "/api/v1/erasure", {"json": {"conversation_id": "x-1"}}),
                                 ("get", "/api/v1/erasures", {}),
                                 ("get", "/api/v1/export", {"params": {"table": "events", "from": today(),
                                                                      "to": today()}})]:
        answer = getattr(requests, method)(server.url + path, headers=LEAD, timeout=10, **kwargs)
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "forbidden", path


def test_a_day_exported_to_parquet_reads_back_in_duckdb(server, held, tmp_path):
    answer = requests.get(f"{server.url}/api/v1/export", params={"table": "conversations", "from": today(),
                                                                 "to": today()}, headers=ADMIN, timeout=60)
    assert answer.status_code == 200, answer.text[:500]
    path = tmp_path / "conversations.parquet"
    path.write_bytes(answer.content)
    rows = duckdb.sql(f"SELECT conversation_id, tenant FROM read_parquet('{path}')").fetchall()
    assert set(held) <= {cid for cid, _ in rows} and {tenant for _, tenant in rows} == {TENANT}
    events = requests.get(f"{server.url}/api/v1/export", params={"table": "events", "from": today(),
                                                                 "to": today()}, headers=ADMIN, timeout=60)
    path.write_bytes(events.content)
    types = {t for (t,) in duckdb.sql(f"SELECT DISTINCT type FROM read_parquet('{path}')").fetchall()}
    assert {"conversation.start", "transcript.snippet", "conversation.end"} <= types


@pytest.fixture(scope="module")
def shared(tmp_path_factory, redis_server, postgres_url):
    """Two workers sharing Redis and one PostgreSQL analytics store."""
    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    workdir = tmp_path_factory.mktemp("analytics-shared")
    env = {"REDIS_URL": redis_server.url, "COPILOT_ANALYTICS_URL": postgres_url, "COPILOT_ANALYTICS_LOAD_MS": "50",
           "COPILOT_REPORT_MIN_N": "1"}
    workers = [own_server(workdir / f"w{n}", SECRET, **env) for n in range(2)]
    yield workers
    for worker in workers:
        worker.stop()


def test_two_workers_share_one_postgresql_store_and_erasure_reaches_the_redis_stream(shared, redis_server):
    import redis

    tenant, cid = f"pg{time.time_ns() % 10**9}", f"shared-{time.time_ns()}"
    hold(shared[0].url, cid, True, customer_ref=f"ref-{letters()}", tenant=tenant)
    assert loaded(shared[1].url, cid, tenant=tenant)["scorecard"]["items"]
    sent = requests.post(f"{shared[1].url}/api/v1/outcomes", json=[{"conversation_id": cid, "csat": 4}], timeout=30,
                         headers=headers("integration", tenant)).json()
    assert (sent["accepted"], sent["unknown_conversations"]["count"]) == (1, 0)
    rows = requests.get(f"{shared[0].url}/api/v1/reports/outcomes", params={"split": "all"},
                        headers=headers("lead", tenant), timeout=10).json()["rows"]
    assert [(row["n"], row["mean"]) for row in rows] == [(1, 4.0)]
    erased = requests.post(f"{shared[0].url}/api/v1/erasure", json={"conversation_id": cid},
                           headers=headers("admin", tenant), timeout=30).json()["erased"]
    # the loader trims the stream behind itself, so what is left of the conversation there may already be nothing
    assert "event_log" in erased and erased["events"] >= 4 and (erased["conversations"], erased["outcomes"]) == (1, 1)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    assert not [e for _, e in client.xrange("copilot:events") if cid in e["event"]]
    for worker in shared:
        gone = requests.get(f"{worker.url}/api/v1/scorecards/{cid}", headers=headers("lead", tenant), timeout=10)
        assert gone.status_code == 404


def test_the_readme_csv_example_answers_what_the_readme_says(server):
    from tests.conftest import ROOT

    section = (ROOT / "README.md").read_text().split("## Analytics and outcomes\n", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```\n")[1::2]
    example = next(block for block in blocks if block.startswith("conversation_id,"))
    said = json.loads(next(block for block in blocks if block.startswith('{"ok": true')))
    hold(server.url, "c-1001", True, tenant="readme")
    loaded(server.url, "c-1001", tenant="readme")
    answer = post(server.url, csv_text=example, who=headers("integration", "readme"))
    assert answer.json() == said
