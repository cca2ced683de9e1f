"""The analytics loader over both event logs (the file with its offset, the Redis stream with its consumer group),
killed mid-batch and restarted, its lag in a real server's /metrics, and erasure from the logs themselves."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from copilot.analytics.loader import FileSource, Loader, StreamSource
from copilot.analytics.service import Analytics
from copilot.analytics.store import DuckDBAnalytics
from copilot.conversation_store import EventStream
from copilot.eventlog import FileEventLog, encode_event, stream_append
from copilot.metrics import Metrics
from copilot.security import Identity, Tokens
from tests.conftest import TEST_SECRET, AgentClient, own_server
from tests.servers import ROOT

STREAM = "copilot:events"
ADMIN = Identity("acme", "admin", "ada")


def snippet(cid: str, n: int, tenant: str = "acme", **extra) -> dict:
    return {"type": "transcript.snippet", "tenant": tenant, "conversation_id": cid, "agent": "amy",
            "channel": "chat", "queue": "billing", "snippet_id": f"s{n}", "speaker": "customer",
            "cues": ["frustration"], **extra}


def write_log(path, events) -> None:
    with path.open("a") as log:
        for event in events:
            log.write(encode_event(event) + "\n")


def append_stream(client, events, max_entries: int = 10_000_000) -> None:
    pipe = client.pipeline()
    stream_append(pipe, STREAM, events, max_entries)
    pipe.execute()


def counted(store) -> tuple[int, int]:
    row = store._rows("SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM events")[0]
    return row["n"], row["d"]


@pytest.fixture
def client(redis_url):
    import redis

    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        yield client


def test_the_file_log_loads_each_line_once_and_a_torn_last_line_waits(tmp_path):
    log = tmp_path / "events.jsonl"
    write_log(log, [snippet("c-1", n) for n in range(7)])
    with log.open("a") as out:
        out.write(json.dumps({"at": 1.0, **snippet("old", 0)}) + "\n")  # logged before events had ids
        out.write(encode_event(snippet("c-2", 0))[:30])  # an append under way
    store, metrics = DuckDBAnalytics(tmp_path / "analytics.duckdb"), Metrics()
    loader = Loader(store, FileSource(log), batch=3, metrics=metrics)
    assert loader.run_once() == 3 and metrics.analytics_lag_events._value.get() == 5
    assert [loader.run_once() for _ in range(3)] == [3, 2, 0]
    assert metrics.analytics_lag_events._value.get() == 0  # a torn line is no event yet
    assert counted(store) == (8, 8)
    with log.open("a") as out:
        out.write(encode_event(snippet("c-2", 0))[30:] + "\n")
    assert loader.run_once() == 1  # whole now
    write_log(log, [snippet("c-2", 1)])
    assert loader.run_once() == 1 and counted(store) == (10, 10)
    store.load([], FileSource(log).name, "0")  # read it all again: every id is already there
    assert sum(loader.run_once() for _ in range(5)) == 0 and counted(store) == (10, 10)


def test_the_stream_is_trimmed_only_behind_what_the_store_committed(tmp_path, client, redis_url):
    append_stream(client, [snippet("c-1", n) for n in range(10)])
    store, metrics = DuckDBAnalytics(tmp_path / "analytics.duckdb"), Metrics()
    loader = Loader(store, StreamSource(EventStream(redis_url, keep_days=0), consumer="worker-1"), batch=4, metrics=metrics)
    assert loader.run_once() == 4 and client.xlen(STREAM) == 6  # loaded, acknowledged, trimmed
    assert metrics.analytics_lag_events._value.get() == 6 and metrics.analytics_lag_seconds._value.get() > 0
    crashed = StreamSource(EventStream(redis_url, keep_days=0), consumer="worker-1")
    assert len(crashed.read(None, 4)[0]) == 4  # delivered, then the loader dies before its commit
    assert EventStream(redis_url, keep_days=0).trim_behind() == 0 and client.xlen(STREAM) == 6, "uncommitted entries trimmed"
    again = Loader(store, StreamSource(EventStream(redis_url, keep_days=0), consumer="worker-1"), batch=4)
    assert sum(again.run_once() for _ in range(4)) == 6  # the delivered batch comes back from the pending list
    assert counted(store) == (10, 10) and client.xlen(STREAM) == 0


def test_a_foreign_stream_entry_the_store_cannot_take_is_skipped_and_the_loader_goes_on(tmp_path, client, redis_url):
    foreign = [{"tenant": "acme", "type": "note", "id": "far-future", "at": 1e300},
               {"tenant": "acme", "type": "note", "id": "surrogate", "note": "\ud800"}]
    append_stream(client, [snippet("c-1", 0)])
    for event in foreign:  # as another writer might add them: valid JSON the server never logs
        client.xadd(STREAM, {"event": json.dumps(event)})
    append_stream(client, [snippet("c-1", 1)])
    store = DuckDBAnalytics(tmp_path / "analytics.duckdb")
    loader = Loader(store, StreamSource(EventStream(redis_url, keep_days=0), consumer="worker-1"), batch=10)
    assert loader.run_once() == 3 and client.xlen(STREAM) == 0  # the far-future one left out, the batch committed
    assert json.loads(store._rows("SELECT body FROM events WHERE id = 'surrogate'")[0]["body"])["note"] == "?"


def test_the_stream_keeps_recent_history_and_waits_for_the_slowest_store_s_loader(tmp_path, client, redis_url):
    append_stream(client, [snippet("c-1", n) for n in range(10)])
    one = Loader(DuckDBAnalytics(tmp_path / "one.duckdb"), StreamSource(EventStream(redis_url, group="one")), batch=10)
    assert one.run_once() == 10
    assert client.xlen(STREAM) == 10, "loaded entries younger than COPILOT_EVENT_MAX_AGE_DAYS stay as history"
    two = StreamSource(EventStream(redis_url, group="two", keep_days=0), consumer="w2")
    assert len(two.read(None, 4)[0]) == 4  # a second store's loader (another worker's DuckDB file) is behind
    assert EventStream(redis_url, group="one", keep_days=0).trim_behind() == 0 and client.xlen(STREAM) == 10, \
        "trimmed past what the second store has loaded"
    two.committed()
    assert client.xlen(STREAM) == 6  # behind both groups now
    two_loader = Loader(DuckDBAnalytics(tmp_path / "two.duckdb"), two, batch=10)
    assert two_loader.run_once() == 6 and client.xlen(STREAM) == 0
    assert counted(two_loader.store) == (6, 6), "each store's group gets every event it has not had"


def test_entries_trimmed_before_the_loader_read_them_are_counted_as_lost(tmp_path, client, redis_url, caplog):
    metrics = Metrics()
    store = DuckDBAnalytics(tmp_path / "analytics.duckdb")
    loader = Loader(store, StreamSource(EventStream(redis_url), consumer="worker-1"), batch=100, metrics=metrics)
    append_stream(client, [snippet("c-1", n) for n in range(10)])
    assert loader.run_once() == 10
    append_stream(client, [snippet("c-2", n) for n in range(500)], max_entries=100)  # the guard's MAXLEN bites
    kept = client.xlen(STREAM)
    assert kept < 500
    assert sum(loader.run_once() for _ in range(10)) == kept
    assert metrics.analytics_lost._value.get() == 500 - kept
    assert "trimmed past entries it had not read" in caplog.text


def loader_process(instance, env: dict, batch: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "copilot", "analytics", "load", "--batch", str(batch)], cwd=ROOT,
                            env={**os.environ, "COPILOT_INSTANCE_DIR": str(instance), "COPILOT_SECRET": TEST_SECRET,
                                 "COPILOT_ANALYTICS_LOAD_MS": "50", **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize("source", ["file", "stream"])
def test_a_loader_killed_mid_batch_and_restarted_leaves_every_event_in_the_store_exactly_once(
        source, tmp_path, request):
    instance, total = tmp_path / "instance", 60_000
    instance.mkdir()
    env, name = {}, FileSource(instance / "events.jsonl").name
    events = [snippet(f"c-{n // 20}", n, text="filler words " * 10) for n in range(total)]
    if source == "file":
        write_log(instance / "events.jsonl", events)
    else:
        import redis

        url = request.getfixturevalue("redis_url")
        env, name = {"REDIS_URL": url}, f"stream:{STREAM}"
        with redis.Redis.from_url(url) as client:
            for at in range(0, total, 10_000):
                append_stream(client, events[at:at + 10_000])
    killed_at = []
    for wait_s in (1.5, 3.0, 1.0, 4.0, 0.5):  # until a kill lands between the first and the last commit
        process = loader_process(instance, env, batch=200)
        started = time.time()
        while not (instance / "analytics.duckdb").exists() and time.time() - started < 60:
            time.sleep(0.05)
        time.sleep(wait_s)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        store = DuckDBAnalytics(instance / "analytics.duckdb")
        loaded = counted(store)
        killed_at.append((store.position(name), loaded))
        store.close()
        if 0 < loaded[0] < total:
            break
    assert 0 < killed_at[-1][1][0] < total, f"no kill landed mid-load: {killed_at}"
    done = subprocess.run([sys.executable, "-m", "copilot", "analytics", "load", "--once"], cwd=ROOT, timeout=300,
                          env={**os.environ, "COPILOT_INSTANCE_DIR": str(instance), "COPILOT_SECRET": TEST_SECRET,
                               **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    store = DuckDBAnalytics(instance / "analytics.duckdb")
    assert counted(store) == (total, total)
    ids = {e["snippet_id"] for e in (json.loads(r["body"]) for r in store._rows("SELECT body FROM events"))}
    assert len(ids) == total
    if source == "stream":
        import redis

        with redis.Redis.from_url(env["REDIS_URL"]) as client:
            (group,) = client.xinfo_groups(STREAM)  # all acknowledged, the killed consumer's too
            assert group["pending"] == 0 and group["lag"] == 0, group
            assert client.xlen(STREAM) == total, "recent history stays (COPILOT_EVENT_MAX_AGE_DAYS)"


def metric(text: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


@pytest.mark.parametrize("source", ["file", "stream"])
def test_a_served_server_shows_its_loader_s_lag_in_metrics_and_charts_from_the_store(source, tmp_path, request):
    """As served (gevent): the loader in a native thread, with a Redis client of its own on the stream."""
    instance, env = tmp_path / "instance", {}
    instance.mkdir()
    old = [snippet(f"old-{n // 10}", n) for n in range(20_000)]
    if source == "file":
        write_log(instance / "events.jsonl", old)
    else:
        import redis

        env["REDIS_URL"] = request.getfixturevalue("redis_url")
        with redis.Redis.from_url(env["REDIS_URL"]) as client:
            append_stream(client, old)
    server = own_server(tmp_path, TEST_SECRET, COPILOT_ANALYTICS_LOAD_MS="50", **env)
    agent = AgentClient(server.url, Tokens(TEST_SECRET).issue("acme", "agent", "amy"))
    lead = {"Authorization": f"Bearer {Tokens(TEST_SECRET).issue('acme', 'lead', 'lee')}"}
    try:
        deadline, text = time.time() + 60, ""
        while time.time() < deadline:
            text = requests.get(server.url + "/metrics", timeout=5).text
            if metric(text, "copilot_analytics_loaded_total") >= 20_000:
                break
            time.sleep(0.1)
        assert metric(text, "copilot_analytics_loaded_total") == 20_000, text
        assert metric(text, "copilot_analytics_lag_events") == 0
        assert agent.call("conversation.start", {"conversation_id": "c-live", "channel": "chat"})["ok"]
        assert agent.say("c-live", "s1", "This is the third time I've called and I'm furious about this bill")["ok"]
        assert agent.call("conversation.end", {"conversation_id": "c-live"})["ok"]
        deadline, answer = time.time() + 30, {}
        while time.time() < deadline:
            answer = requests.get(server.url + "/api/v1/analytics/conversations", headers=lead, timeout=10).json()
            if answer.get("resolution"):
                break
            time.sleep(0.1)
        assert answer["ok"] and answer["resolution"][-1]["conversations"] == 1, answer
        assert answer["cues"][-1]["counts"].get("frustration", 0) >= 1
        admin = {"Authorization": f"Bearer {Tokens(TEST_SECRET).issue('acme', 'admin', 'ada')}"}
        erased = requests.post(server.url + "/api/v1/erasure", json={"conversation_id": "c-live"}, headers=admin,
                               timeout=30)
        assert erased.status_code == 200 and erased.json()["erased"]["events"] == 3, erased.text
        # the file and the stream (its recent history, kept behind the loader) both lose the three
        assert erased.json()["erased"]["event_log"] == 3
        if source == "file":
            logged = (instance / "events.jsonl").read_text()
        else:
            import redis

            with redis.Redis.from_url(env["REDIS_URL"], decode_responses=True) as client:
                logged = json.dumps(client.xrange(STREAM))
        assert "c-live" not in logged
        answer = requests.get(server.url + "/api/v1/analytics/conversations", headers=lead, timeout=10).json()
        assert answer["resolution"] == [], answer
    finally:
        agent.close()
        server.stop()


def test_erasure_takes_the_lines_out_of_the_file_log_and_the_loader_keeps_its_place(tmp_path, make_settings):
    settings = make_settings()
    log = FileEventLog(settings.event_log)
    log.append_all([snippet("c-keep", 0), snippet("c-gone", 1), snippet("c-ref", 2, customer_ref="cust-9"),
                    snippet("c-keep", 3), snippet("c-gone", 4), snippet("c-gone", 0, tenant="other")])
    analytics = Analytics(settings, event_log=log)
    assert analytics.load_once() == 6
    erased = analytics.erase(ADMIN, conversation_id="c-gone")
    assert erased["event_log"] == 2 and erased["events"] == 2
    log.append_all([snippet("c-keep", 5)])  # after the rewrite, at the shifted offset
    assert analytics.load_once() == 1
    assert analytics.erase(ADMIN, customer_ref="cust-9")["event_log"] == 1
    lines = [json.loads(line) for line in settings.event_log.read_text().splitlines()]
    assert [(e["tenant"], e["conversation_id"]) for e in lines] == [
        ("acme", "c-keep"), ("acme", "c-keep"), ("other", "c-gone"), ("acme", "c-keep")]
    store = analytics._store()
    assert sorted(r["conversation_id"] for r in store._rows("SELECT conversation_id FROM events")) == [
        "c-gone", "c-keep", "c-keep", "c-keep"]
    assert store.load([], FileSource(settings.event_log).name, "0") == 0 and analytics.load_once() == 0  # nothing came back
    assert [e["kind"] for e in analytics.erasures("acme")] == ["customer_ref", "conversation"]
    analytics.stop()


def test_retention_cuts_the_old_lines_off_the_file_log_and_the_loader_keeps_its_place(tmp_path, make_settings):
    settings = make_settings(analytics_retention_days=30)
    settings.instance_dir.mkdir(parents=True)
    with settings.event_log.open("w") as out:  # the oldest first, as the log is written
        for n, age_days in enumerate((90, 60, 31, 29, 1)):
            out.write(json.dumps({"id": f"{n:032x}", "at": time.time() - age_days * 86400, **snippet("c", n)}) + "\n")
    log = FileEventLog(settings.event_log)
    analytics = Analytics(settings, event_log=log)
    assert analytics.load_once() == 5
    assert analytics.purge_log() == 3 and analytics.purge_log() == 0
    assert [json.loads(line)["snippet_id"] for line in settings.event_log.read_text().splitlines()] == ["s3", "s4"]
    log.append_all([snippet("c", 5)])
    assert analytics.load_once() == 1  # from the shifted offset: the new line, nothing again, nothing skipped
    analytics.stop()


def test_erasure_takes_the_entries_out_of_the_redis_stream(tmp_path, make_settings, client, redis_url):
    append_stream(client, [snippet("c-keep", 0), snippet("c-gone", 1)])
    analytics = Analytics(make_settings(redis_url=redis_url))
    assert analytics.load_once() == 2
    append_stream(client, [snippet("c-gone", 2), snippet("c-keep", 3)])  # logged, not loaded yet
    erased = analytics.erase(ADMIN, conversation_id="c-gone")
    assert erased["event_log"] == 2 and erased["events"] == 1  # the loaded one (kept as history) and the new one
    assert [json.loads(f["event"])["conversation_id"] for _, f in client.xrange(STREAM)] == ["c-keep", "c-keep"]
    assert analytics.load_once() == 1
    assert sorted(r["conversation_id"] for r in analytics._store()._rows("SELECT conversation_id FROM events")) \
        == ["c-keep", "c-keep"]
    analytics.stop()


def test_a_second_process_on_the_duckdb_file_answers_analytics_unavailable(tmp_path, make_settings):
    from copilot.errors import AnalyticsUnavailable

    settings = make_settings()
    settings.instance_dir.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; held = duckdb.connect(sys.argv[1]); "
                               "print('open', flush=True); time.sleep(60)", str(settings.analytics_db)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(AnalyticsUnavailable, match="COPILOT_ANALYTICS_URL"):
            Analytics(settings).conversation_trends("acme")
    finally:
        holder.kill()
        holder.wait()

