"""The analytics store on both engines: the embedded DuckDB file and a real PostgreSQL server of the session's own."""
from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, date, datetime

import pytest

from copilot.analytics import reports
from copilot.analytics.outcomes import Outcome
from copilot.analytics.stats import cqs
from copilot.analytics.store import DuckDBAnalytics, PostgresAnalytics, open_analytics
from copilot.errors import InvalidPayload

DAY1 = datetime(2026, 3, 2, 12, tzinfo=UTC).timestamp()
DAY2 = DAY1 + 86400


@pytest.fixture(params=["duckdb", "postgresql"])
def store(request, tmp_path):
    """An empty store on each engine (on PostgreSQL, a database of the test's own)."""
    if request.param == "duckdb":
        opened = DuckDBAnalytics(tmp_path / "analytics.duckdb")
        yield opened
        opened.close()
        return
    import psycopg

    server = request.getfixturevalue("postgres_url")
    name = f"analytics_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    opened = PostgresAnalytics(server.rsplit("/", 1)[0] + f"/{name}")
    yield opened
    opened.close()
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def ended(cid: str, at: float = DAY1, tenant: str = "acme", agent: str = "ana", queue: str = "billing",
          customer_ref: str | None = None, episodes: int = 1, resolved: int = 1, shown=("p1",), used=("p1",),
          experiment=None, score: float | None = 60.0, **summary) -> dict:
    """A conversation.end event as the server logs it."""
    body = {"conversation_id": cid, "channel": "chat", "queue": queue, "started_at": at - 600, "ended_at": at,
            "customer_turns": 4, "agent_turns": 4, "counts": {"frustration": 2, "gratitude": 1},
            "acknowledged": {"frustration": resolved}, "episodes": {"frustration": episodes},
            "negative_episodes": episodes, "resolved": resolved, "max_triage_level": 2, "behaviours": {},
            "suggestions": {"shown": list(shown), "used": list(used), "dismissed": [], "rated": {}},
            "alerts": [], "experiment": experiment, "handoff_note": "",
            "scorecard": {"score": score, "items": [
                {"item": "open_question", "met": True, "turn": 2, "evidence": "how can I help", "why": "asked"},
                {"item": "naming_emotion", "met": False, "turn": None, "evidence": None, "why": "not named"}]},
            **summary}
    event = {"id": uuid.uuid4().hex, "at": at, "type": "conversation.end", "tenant": tenant, "conversation_id": cid,
             "agent": agent, "channel": "chat", "queue": queue, "summary": body}
    if customer_ref:
        event["customer_ref"] = customer_ref
    return event


def snippet(cid: str, at: float = DAY1, tenant: str = "acme", customer_ref: str | None = None) -> dict:
    event = {"id": uuid.uuid4().hex, "at": at, "type": "transcript.snippet", "tenant": tenant,
             "conversation_id": cid, "agent": "ana", "channel": "chat", "queue": "billing", "speaker": "customer",
             "cues": ["frustration"]}
    if customer_ref:
        event["customer_ref"] = customer_ref
    return event


def count(store, table: str) -> int:
    return store._rows(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]


def test_a_batch_loads_once_and_loading_it_again_inserts_nothing(store):
    batch = [snippet("c1"), ended("c1")]
    assert store.load(batch, "file:events.jsonl", "120") == 2
    assert store.load(batch, "file:events.jsonl", "240") == 0
    assert (count(store, "events"), count(store, "conversations")) == (2, 1)
    assert store.position("file:events.jsonl") == "240"
    assert store.position("stream") is None


def test_an_event_repeated_within_a_batch_is_stored_once(store):
    event = snippet("c1")
    assert store.load([event, dict(event)], "s", "1") == 1


def test_a_batch_that_fails_midway_leaves_no_rows_and_no_position(store):
    with store._cursor(transaction=True) as cur:  # the events insert succeeds, the conversations insert fails
        cur.execute("ALTER TABLE conversations RENAME TO conversations_away")
    with pytest.raises(Exception):  # noqa: B017 - each engine raises its own missing-table error
        store.load([snippet("c2"), ended("c2")], "s", "99")
    with store._cursor(transaction=True) as cur:
        cur.execute("ALTER TABLE conversations_away RENAME TO conversations")
    assert count(store, "events") == 0
    assert store.position("s") is None


FOREIGN = {  # what a hand-written or foreign line may hold that neither engine's column takes
    "time past the calendar": {"at": 1e300}, "time not a number": {"at": float("nan")},
    "NaN in the body": {"note": float("inf")}, "NUL in a text column": {"queue": "billing\x00"},
    "object as text": {"agent": {"name": "ana"}}, "text as a count": {"summary": {"customer_turns": "many"}},
    "count past 32 bits": {"summary": {"agent_turns": 1 << 40}}, "ended past the calendar": {"summary": {"ended_at": 1e300}},
    "list as a phrasing id": {"summary": {"suggestions": {"shown": [["p1"]]}}},
    "text as a score": {"summary": {"scorecard": {"score": "high", "items": []}}},
    "text as an item met": {"summary": {"scorecard": {"score": 1.0, "items": [{"item": "open_question", "met": "y"}]}}},
}


@pytest.mark.parametrize("change", FOREIGN.values(), ids=FOREIGN.keys())
def test_an_event_the_store_cannot_take_is_left_out_and_the_rest_of_its_batch_loads(store, change, caplog):
    bad = ended("c9")
    bad.update({k: v for k, v in change.items() if k != "summary"})
    bad["summary"].update(change.get("summary", {}))
    assert store.load([snippet("c1"), bad, ended("c1")], "s", "77") == 2
    assert (count(store, "events"), count(store, "conversations"), store.position("s")) == (2, 1, "77")
    assert [r.message for r in caplog.records if bad["id"] in r.message] != []


def test_a_lone_surrogate_in_an_event_is_replaced_and_the_event_kept(store):
    event = {**snippet("c1", customer_ref="ref-\ud800"), "text": "broken \udfff pair"}
    assert store.load([event], "s", "1") == 1
    row = store._rows("SELECT customer_ref, body FROM events")[0]
    assert row["customer_ref"] == "ref-?" and json.loads(row["body"])["text"] == "broken ? pair"


def test_an_ended_conversation_fills_the_four_report_tables(store):
    store.load([ended("c1", customer_ref="cust-9", shown=("p1", "p2", "p1"), used=("p1",),
                      experiment=["exp-1", "b"])], "s", "1")
    row = store._rows("SELECT * FROM conversations")[0]
    assert (row["day"], row["agent"], row["customer_ref"], row["shown"], row["used"]) == \
        ("2026-03-02", "ana", "cust-9", 2, 1)
    assert (row["experiment"], row["variant"], row["negative_episodes"], row["max_triage"]) == ("exp-1", "b", 1, 2)
    cues = {r["cue"]: (r["mentions"], r["episodes"], r["acknowledged"])
            for r in store._rows("SELECT * FROM conversation_cues")}
    assert cues == {"frustration": (2, 1, 1), "gratitude": (1, 0, 0)}
    phrasings = {r["phrasing_id"]: (r["shown"], r["used"]) for r in store._rows("SELECT * FROM conversation_phrasings")}
    assert phrasings == {"p1": (True, True), "p2": (True, False)}
    card = store.scorecard("acme", "c1")
    assert card["score"] == 60.0 and card["items"][0]["evidence"] == "how can I help"
    flags = store._rows("SELECT open_question, naming_emotion, closing_the_loop FROM scorecards")[0]
    assert flags == {"open_question": True, "naming_emotion": False, "closing_the_loop": None}


def test_a_later_outcome_replaces_the_earlier_and_unknown_ids_are_reported(store):
    store.load([ended("c1")], "s", "1")
    first = store.put_outcomes("acme", [Outcome("c1", csat=2), Outcome("ghost", csat=5)], now=100.0)
    assert first == {"accepted": 2, "unknown": ["ghost"]}
    store.put_outcomes("acme", [Outcome("c1", csat=5, felt_understood=4)], now=200.0)
    rows = store._rows("SELECT conversation_id, csat, felt_understood, received_at FROM outcomes ORDER BY 1")
    assert rows[0] == {"conversation_id": "c1", "csat": 5, "felt_understood": 4, "received_at": 200.0}
    assert count(store, "outcomes") == 2


def test_resolution_counts_episodes_by_day_queue_agent_and_cue(store):
    store.load([ended("c1", episodes=2, resolved=1), ended("c2", episodes=1, resolved=1, queue="sales"),
                ended("c3", at=DAY2, episodes=3, resolved=0, agent="ben")], "s", "1")
    by_day = {r["grp"]: (r["conversations"], r["negative_episodes"], r["resolved"])
              for r in store.resolution("acme", by="day")}
    assert by_day == {"2026-03-02": (2, 3, 2), "2026-03-03": (1, 3, 0)}
    assert [r["grp"] for r in store.resolution("acme", by="queue")] == ["billing", "sales"]
    assert [r["grp"] for r in store.resolution("acme", by="agent")] == ["ana", "ben"]
    by_cue = store.resolution("acme", by="cue")
    assert [(r["grp"], r["negative_episodes"], r["resolved"]) for r in by_cue] == [("frustration", 6, 2)]
    with pytest.raises(InvalidPayload):
        store.resolution("acme", by="weather")


def test_reports_keep_to_the_tenant_the_days_and_the_queue(store):
    store.load([ended("c1"), ended("c2", at=DAY2), ended("c3", queue="sales"), ended("c4", tenant="other")], "s",
               "1")
    assert sum(r["conversations"] for r in store.resolution("acme")) == 3
    assert [r["grp"] for r in store.resolution("acme", day_from="2026-03-03")] == ["2026-03-03"]
    assert [r["grp"] for r in store.resolution("acme", day_to=date(2026, 3, 2))] == ["2026-03-02"]
    assert store.resolution("acme", queue="sales")[0]["conversations"] == 1
    assert store.resolution("nobody") == []


def test_outcome_moments_split_by_acknowledgment_are_the_sums_of_the_scores(store):
    store.load([ended("a1", episodes=1, resolved=1), ended("a2", episodes=2, resolved=2),
                ended("n1", episodes=2, resolved=1), ended("z", episodes=0, resolved=0)], "s", "1")
    store.put_outcomes("acme", [Outcome("a1", csat=5), Outcome("a2", csat=4), Outcome("n1", csat=2),
                                Outcome("z", csat=1)])
    rows = {r["grp"]: (r["n"], r["total"], r["total_sq"]) for r in store.outcome_moments("acme", "csat")}
    assert rows == {"acknowledged": (2, 9.0, 41.0), "not_acknowledged": (1, 2.0, 4.0)}
    used = {r["grp"]: r["n"] for r in store.outcome_moments("acme", "csat", split="suggestion")}
    assert used == {"used": 4}


def test_the_sql_connection_quality_score_is_the_one_stats_computes(store):
    answers = [(5, 4, None, 5), (7, 1, 3, 7), (None, None, 2, 5), (3, 3, 3, 7)]
    store.load([ended(f"c{i}") for i in range(len(answers))], "s", "1")
    store.put_outcomes("acme", [Outcome(f"c{i}", felt_understood=f, acknowledged_situation=a, clear_next_steps=c,
                                        survey_scale=s) for i, (f, a, c, s) in enumerate(answers)])
    expected = [cqs(f, a, c, s) for f, a, c, s in answers]
    row = store.cqs_moments("acme", by="all")[0]
    assert row["n"] == 4
    assert row["total"] == pytest.approx(sum(expected))
    assert row["total_sq"] == pytest.approx(sum(x * x for x in expected))


def test_phrasing_counts_and_outcomes_with_and_without_it(store):
    store.load([ended("c1", shown=("p1",), used=("p1",)), ended("c2", shown=("p1",), used=()),
                ended("c3", shown=("p1", "p2"), used=("p2",))], "s", "1")
    store.put_outcomes("acme", [Outcome("c1", csat=5), Outcome("c2", csat=2), Outcome("c3", csat=3)])
    p1 = store.phrasings("acme")[0]
    assert (p1["phrasing_id"], p1["shown"], p1["used"]) == ("p1", 3, 1)
    assert (p1["used_n"], p1["used_total"], p1["unused_n"], p1["unused_total"]) == (1, 5.0, 2, 5.0)


def test_repeat_contacts_observe_the_same_customer_back_within_the_window(store):
    store.load([ended("c1", customer_ref="r1"), ended("c2", at=DAY1 + 3 * 86400, customer_ref="r1"),
                ended("c3", at=DAY1 + 30 * 86400, customer_ref="r1"), ended("c4")], "s", "1")
    store.put_outcomes("acme", [Outcome("c4", repeat_contact=True)])
    row = store.repeat_contacts("acme", by="all", within_days=7)[0]
    assert (row["conversations"], row["with_customer_ref"], row["observed_repeats"]) == (4, 3, 1)
    assert (row["reported"], row["reported_repeats"]) == (1, 1)


def test_scorecards_aggregate_the_score_and_each_item_per_agent(store):
    store.load([ended("c1", score=60.0), ended("c2", score=100.0), ended("c3", agent="ben", score=None)], "s", "1")
    rows = {r["grp"]: r for r in store.scorecards("acme", by="agent")}
    assert (rows["ana"]["conversations"], rows["ana"]["n"], rows["ana"]["total"]) == (2, 2, 160.0)
    assert (rows["ana"]["open_question_met"], rows["ana"]["naming_emotion_applicable"]) == (2, 2)
    assert rows["ben"]["n"] == 0
    assert store.scorecard("acme", "nope") is None


def test_erasing_a_customer_ref_removes_its_conversations_from_every_table(store):
    store.load([snippet("c1", customer_ref="r1"), ended("c1", customer_ref="r1"), snippet("c2"), ended("c2")], "s",
               "1")
    store.put_outcomes("acme", [Outcome("c1", csat=1), Outcome("c2", csat=5)])
    counts = store.erase("acme", customer_ref="r1")
    assert counts == {"events": 2, "conversations": 1, "conversation_cues": 2, "conversation_phrasings": 1,
                      "scorecards": 1, "outcomes": 1}
    assert store._rows("SELECT conversation_id FROM conversations") == [{"conversation_id": "c2"}]
    assert count(store, "events") == 2
    assert store.erase("acme", conversation_id="c2")["events"] == 2
    assert count(store, "outcomes") == 0


def test_a_batch_read_before_an_erasure_and_loaded_after_it_brings_nothing_back(store):
    held = [snippet("c1", customer_ref="r1"), ended("c1", customer_ref="r1"), snippet("c3", customer_ref="r3"),
            ended("c2")]  # what another worker's loader read before the erasures
    store.erase("acme", customer_ref="r1")
    store.erase("acme", conversation_id="c2")
    assert store.load(held, "s", "1") == 1  # c3's snippet only
    assert store._rows("SELECT conversation_id FROM events") == [{"conversation_id": "c3"}]
    assert count(store, "conversations") == 0 and "r1" not in str(store._rows("SELECT * FROM tombstones"))
    assert store.load([snippet("c1", tenant="other")], "s", "2") == 1, "another tenant's c1 is not erased"


def test_an_erasure_told_by_its_hash_erases_the_same_rows_on_another_store(store):
    from copilot.analytics.store import sha256_of

    store.load([snippet("c1", customer_ref="r1"), ended("c1", customer_ref="r1"), snippet("c2")], "s", "1")
    counts = store.erase_hashed("acme", "customer_ref", sha256_of("r1"))
    assert counts["events"] == 2 and counts["conversations"] == 1
    assert store._rows("SELECT conversation_id FROM events") == [{"conversation_id": "c2"}]
    assert store.load([snippet("c1", customer_ref="r1")], "s", "2") == 0  # and it stays erased


def test_an_erasure_is_audited_with_its_target_only_as_a_hash(store):
    store.record_erasure("acme", "admin-1", "customer_ref", "r1", {"events": 2}, at=10.0)
    store.record_erasure("acme", "admin-1", "conversation", "c9", {"events": 1}, at=20.0)
    audit = store.erasures("acme")
    assert [a["kind"] for a in audit] == ["conversation", "customer_ref"]
    assert audit[1]["counts"] == {"events": 2} and "r1" not in str(audit)
    assert store.erasures("other") == []


def test_purge_drops_the_days_before_the_cutoff_and_their_outcomes(store):
    store.load([ended("old"), snippet("old"), ended("new", at=DAY2)], "s", "1")
    store.put_outcomes("acme", [Outcome("old", csat=1), Outcome("new", csat=5)], now=DAY2)
    counts = store.purge(date(2026, 3, 3))
    assert counts["events"] == 2 and counts["conversations"] == 1 and counts["outcomes"] == 1
    assert store._rows("SELECT conversation_id FROM outcomes") == [{"conversation_id": "new"}]


def test_export_writes_the_days_of_a_table_to_parquet(store, tmp_path):
    import duckdb

    store.load([ended("c1"), ended("c2", at=DAY2), ended("c3", tenant="other")], "s", "1")
    path = tmp_path / "conversations.parquet"
    assert store.export_parquet("acme", "conversations", date(2026, 3, 1), date(2026, 3, 2), path) == 1
    back = duckdb.sql(f"SELECT conversation_id, day, shown FROM '{path}'").fetchall()
    assert back == [("c1", date(2026, 3, 2), 1)]
    with pytest.raises(InvalidPayload):
        store.export_parquet("acme", "loader_positions", date(2026, 3, 1), date(2026, 3, 2), path)


def test_bulk_synthesis_fills_every_table_and_the_reports_answer(store):
    made = store.bulk_synthesize(tenants=2, agents=20, days=5, events=4000, seed=3, chunk=70)
    assert (count(store, "events"), count(store, "conversations")) == (4000, 200)
    assert count(store, "conversation_cues") == made["conversation_cues"] == 800
    days = [r["grp"] for r in store.resolution("tenant-1", by="day")]
    assert len(days) == 5 and days[0] == "2026-01-01"
    assert store.outcome_moments("tenant-0", "csat", split="variant")
    assert store.phrasings("tenant-0")[0]["shown"] > 0
    assert store._rows("SELECT COUNT(*) AS n FROM events WHERE day <> CAST('2026-01-01' AS DATE) + "
                       "CAST(floor((\"at\" - 1767225600) / 86400) AS INTEGER)")[0]["n"] == 0
    event = snippet("after")  # the keys are back after the fill: a repeated event is still refused
    assert (store.load([event], "s", "1"), store.load([event], "s", "2")) == (1, 0)


def test_the_store_serves_loads_and_reports_from_several_threads_at_once(store):
    errors: list[BaseException] = []

    def load(worker: int) -> None:
        try:
            for n in range(5):
                store.load([ended(f"w{worker}-{n}"), snippet(f"w{worker}-{n}")], f"source-{worker}", str(n))
                store.resolution("acme", by="agent")
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=load, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count(store, "conversations") == 15
    assert [store.position(f"source-{w}") for w in range(3)] == ["4", "4", "4"]


def test_a_cell_below_the_minimum_n_says_too_few(store):
    store.load([ended(f"c{i}", episodes=1, resolved=i % 2) for i in range(12)] + [ended("s1", queue="sales")], "s",
               "1")
    rows = reports.report(store, "acme", "resolution", {"by": "queue"}, min_n=10)["rows"]
    billing, sales = rows
    assert (billing["queue"], billing["negative_episodes"], billing["rate"]) == ("billing", 12, 0.5)
    assert sales["rate"] == "too few" and sales["ci95"] is None


def test_the_outcomes_report_compares_each_group_with_its_reference(store):
    events = [ended(f"a{i}", episodes=1, resolved=1) for i in range(10)]
    events += [ended(f"n{i}", episodes=1, resolved=0) for i in range(10)]
    store.load(events, "s", "1")
    store.put_outcomes("acme", [Outcome(f"a{i}", csat=4 + i % 2) for i in range(10)] +
                       [Outcome(f"n{i}", csat=2 + i % 2) for i in range(10)])
    answer = reports.report(store, "acme", "outcomes", {"metric": "csat", "split": "acknowledged"}, min_n=5)
    assert answer["reference"] == "not_acknowledged"
    acknowledged = next(r for r in answer["rows"] if r["group"] == "acknowledged")
    assert acknowledged["n"] == 10 and acknowledged["mean"] == 4.5
    assert acknowledged["versus"]["difference"] == 2.0 and acknowledged["versus"]["p_value"] < 0.001
    few = reports.report(store, "acme", "outcomes", {"metric": "csat", "split": "acknowledged"}, min_n=11)
    assert all(r["mean"] == "too few" for r in few["rows"])


def test_every_report_answers_on_synthetic_data(store):
    store.bulk_synthesize(tenants=1, agents=10, days=3, events=2000)
    for name, params in [("resolution", {"by": "cue"}), ("outcomes", {"metric": "cqs", "split": "variant"}),
                         ("outcomes", {"metric": "resolved", "split": "suggestion"}), ("cqs", {"by": "agent"}),
                         ("phrasings", {"metric": "felt_understood"}), ("repeat_contacts", {"by": "queue"})]:
        assert reports.report(store, "tenant-0", name, params, min_n=5)["rows"], name
    assert reports.scorecards(store, "tenant-0", {"by": "queue"}, min_n=5)["rows"]


def test_open_analytics_takes_postgresql_for_a_url_and_the_instance_file_otherwise(make_settings, postgres_url):
    embedded = open_analytics(make_settings())
    try:
        assert isinstance(embedded, DuckDBAnalytics) and embedded.path.name == "analytics.duckdb"
    finally:
        embedded.close()
    shared = open_analytics(make_settings(analytics_url=postgres_url))
    try:
        assert isinstance(shared, PostgresAnalytics) and shared.ping()
    finally:
        shared.close()
