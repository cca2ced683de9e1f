"""The Analytics service: the store, its loader thread, every query, erasure and retention, never on the event loop.

Under gevent the loader runs in a native thread (its own Redis client, made there) and each query in one of the
service's own native pool threads, so a report never holds up a live snippet. What runs there touches no gevent
lock or greenlet (copilot.concurrency's rule); the loader's lock is a native one.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from copilot.analytics.loader import FileSource, Loader, StreamSource, event_of
from copilot.analytics.stats import wilson
from copilot.analytics.store import sha256_of
from copilot.concurrency import Outcome, QuickSwitches, native_lock, run_here
from copilot.errors import AnalyticsUnavailable, CopilotError, StoreUnavailable
from copilot.eventlog import shifted, tenant_needle
from copilot.settings import Settings

log = logging.getLogger("copilot.analytics")

REOPEN_S = 30.0  # how often a worker that could not open the store tries again
PURGE_EVERY_S = 3600.0


class Native:
    """Threads, locks and a stop signal of the OS, even under gevent's patching: for the loader's thread and
    what it shares with the pool threads."""

    def __init__(self, gevent: bool) -> None:
        self.allocate_lock = native_lock
        if gevent:
            from gevent.monkey import get_original

            self.start_thread = get_original("_thread", "start_new_thread")
        else:
            import _thread

            self.start_thread = _thread.start_new_thread

    def stop_signal(self) -> Stop:
        return Stop(self.allocate_lock())


class Stop:
    """A threading.Event of one native lock: set() from the loop's thread, wait() in the loader's."""

    def __init__(self, lock: Any) -> None:
        self.lock, self.stopped = lock, False
        self.lock.acquire()

    def set(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.lock.release()

    def is_set(self) -> bool:
        return self.stopped

    def wait(self, timeout_s: float) -> bool:
        if self.lock.acquire(timeout=max(0.0, timeout_s)):
            self.lock.release()
        return self.stopped


def unavailable(settings: Settings, error: BaseException) -> AnalyticsUnavailable:
    if settings.analytics_url:
        return AnalyticsUnavailable(f"the analytics store cannot be reached ({error}); reports are unavailable "
                                    "until it is back")
    return AnalyticsUnavailable(f"the analytics file {settings.analytics_db} cannot be opened ({error}): DuckDB "
                                "allows one process, so with several workers set COPILOT_ANALYTICS_URL="
                                "postgresql://... to share one store")


class Analytics:
    """Owns the analytics store and its loader. Every public method is called from the loop's greenlets (or a
    request thread) and runs its work through `run`, the service's own native pool (in place with threads)."""

    def __init__(self, settings: Settings, metrics: Any = None, event_log: Any = None, gevent: bool = False,
                 opener: Callable[[Settings], Any] | None = None, workers: int = 2, batch: int = 5000) -> None:
        self.settings, self.metrics, self.event_log, self.batch = settings, metrics, event_log, batch
        self.native, self.gevent = Native(gevent), gevent
        self.lock = self.native.allocate_lock()  # the loader's: held around each batch, and by erasure
        self.opening = self.native.allocate_lock()
        self.opener = opener or default_opener
        self.store: Any = None
        self.tried_at = -REOPEN_S
        self.failure: AnalyticsUnavailable | None = None
        self.said = ""
        self.purged_at = 0.0
        self.stop_signal = self.native.stop_signal()
        self.done = self.native.allocate_lock()
        self.loader: Loader | None = None
        self.erasures_client: Any = None  # the loader thread's Redis client for ERASURES
        self.run: Callable[..., Any] = run_here
        if gevent:
            from gevent.threadpool import ThreadPoolExecutor

            # the GIL handed back to the loop every 0.5 ms while a query's Python part runs (building its cells)
            self.run = QuickSwitches(partial(Outcome.of, ThreadPoolExecutor(workers)))

    # -- the store and the loader --------------------------------------------------------------------------------

    def _store(self) -> Any:
        """The open store, opened here if it is not yet (at most every REOPEN_S); else AnalyticsUnavailable."""
        if self.store is not None:
            return self.store
        with self.opening:
            if self.store is None and time.monotonic() - self.tried_at >= REOPEN_S:
                self.tried_at = time.monotonic()
                try:
                    self.store = self.opener(self.settings)
                    self.failure = None
                except CopilotError as error:
                    self.failure = error if isinstance(error, AnalyticsUnavailable) else unavailable(
                        self.settings, error)
                except Exception as error:  # noqa: BLE001 - duckdb's lock error, psycopg's refusal: one answer
                    self.failure = unavailable(self.settings, error)
                if self.failure is not None and str(self.failure) != self.said:
                    self.said = str(self.failure)  # once, not every REOPEN_S
                    log.warning("analytics: %s", self.failure)
        if self.store is None:
            raise self.failure or unavailable(self.settings, RuntimeError("not opened yet"))
        return self.store

    def source(self) -> Any:
        """The event log the loader reads: the Redis stream with REDIS_URL, else the embedded file; made in the
        calling thread (a Redis client belongs to the thread that made it)."""
        if self.settings.redis_url:
            from copilot.conversation_store import EventStream

            return StreamSource(EventStream(self.settings.redis_url, group=loader_group(self.settings),
                                            keep_days=self.settings.event_max_age_days))
        return FileSource(self.settings.event_log)

    def start(self) -> Analytics:
        """Start the loader's native thread (it opens the store if need be, and retries while it cannot), and
        the file log's hourly retention."""
        self.done.acquire()
        self.native.start_thread(self._load_forever, ())
        # at exit, before the interpreter stops its threads: one stopped inside DuckDB aborts the process
        atexit.register(self.stop)
        if self.event_log is not None:
            if self.gevent:  # the log's lock is the loop's: its retention runs in a greenlet, its copy off the loop
                import gevent

                gevent.spawn(self._purge_log_hourly, gevent.sleep)
            else:
                import threading

                threading.Thread(target=self._purge_log_hourly, args=(self.stop_signal.wait,), daemon=True,
                                 name="copilot-log-retention").start()
        return self

    def _purge_log_hourly(self, sleep: Callable[[float], Any]) -> None:
        sleep(60.0)  # not in the way of the start
        while not self.stop_signal.is_set():
            try:
                self.purge_log()
            except Exception:  # noqa: BLE001 - retry next hour; the loader goes on meanwhile
                log.exception("analytics: the event log's retention failed; trying again in an hour")
            sleep(PURGE_EVERY_S)

    def purge_log(self, now: float | None = None) -> int:
        """Cut the file log's lines older than the retention (the oldest come first, so only they are parsed);
        returns how many went. The Redis stream needs none: it is trimmed behind the loader, and by age."""
        cutoff = (time.time() if now is None else now) - self.settings.analytics_retention_days * 86400
        if self.run(first_logged_at, self.settings.event_log) >= cutoff:
            return 0  # the usual hour: nothing old enough, and no copy of the log
        gone = self.event_log.erase(lambda event: float(event.get("at") or 0) < cutoff, (), swap=self._swap_file,
                                    scan=self.run, ordered=True)
        if gone:
            log.info("analytics: cut %d lines older than %d days from the event log", gone,
                     self.settings.analytics_retention_days)
        return gone

    def _load_forever(self) -> None:
        yield_to_serving()
        try:
            self.load_until_stopped()
        finally:
            self.done.release()

    def load_until_stopped(self) -> None:
        """Load in this thread until stop(): the store opened first (retried while it cannot be), then batch
        after batch, pausing COPILOT_ANALYTICS_LOAD_MS when caught up, the retention purge hourly."""
        while not self.stop_signal.is_set():
            try:
                self.loader = self._loader()
            except AnalyticsUnavailable:
                self.stop_signal.wait(REOPEN_S)
                continue
            self.loader.run(self.stop_signal, self.settings.analytics_load_ms / 1000, also=self.between_batches)

    def _loader(self) -> Loader:
        return Loader(self._store(), self.source(), batch=self.batch, metrics=self.metrics, lock=self.lock)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the loader after its batch in progress, and close the store."""
        self.stop_signal.set()
        if self.done.acquire(timeout=timeout_s):
            self.done.release()
        if self.store is not None:
            self.store.close()
            self.store = None

    def load_once(self) -> int:
        """Load in the calling thread until caught up (`analytics load --once`); returns the events new to the
        store."""
        loader, total = self._loader(), 0
        while True:
            read, loaded = loader.batch_once()
            total += loaded
            if read == 0:
                return total

    def between_batches(self) -> None:
        """What the loader's thread does between batches: other workers' erasures, and the hourly purge."""
        self.apply_erasures()
        self.purge_when_due()

    def apply_erasures(self) -> int:
        """With Redis, apply the erasures other workers announced on ERASURES (a DuckDB file per worker holds a copy
        of its own; on a shared PostgreSQL, again, harmlessly) from this store's saved place; how many."""
        if not self.settings.redis_url:
            return 0
        if self.erasures_client is None:  # made in the loader's thread, which alone uses it
            import redis

            self.erasures_client = redis.Redis.from_url(self.settings.redis_url, decode_responses=True,
                                                        socket_timeout=10, socket_connect_timeout=2)
        store, source = self._store(), f"erasures:{ERASURES}"
        after = store.position(source) or "0-0"
        applied = 0
        import redis

        try:
            told = self.erasures_client.xrange(ERASURES, min=f"({after}", max="+", count=100)
        except redis.RedisError as error:  # an outage: the loader logs one line and retries, no traceback
            raise StoreUnavailable(f"the erasures stream cannot be read ({error})") from error
        for entry_id, fields in told:
            with self.lock:
                store.erase_hashed(fields["tenant"], fields["kind"], fields["sha256"])
                store.load([], source, entry_id)
            applied += 1
        return applied

    def purge_when_due(self) -> None:
        """The retention purge, at most hourly (called by the loader between batches)."""
        now = time.time()
        if now - self.purged_at < PURGE_EVERY_S:
            return
        self.purged_at = now
        before = datetime.fromtimestamp(now, UTC).date() - timedelta(days=self.settings.analytics_retention_days)
        with self.lock:
            counts = self._store().purge(before)
        if any(counts.values()):
            log.info("analytics: purged rows before %s (retention %d days): %s", before,
                     self.settings.analytics_retention_days, counts)

    # -- what the REST handlers call -----------------------------------------------------------------------------

    def _query(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(store, *args) on the service's native threads; a store that has failed (PostgreSQL stopped or
        unreachable, the DuckDB file unreadable) answers AnalyticsUnavailable, never a server error."""
        from copilot.analytics.store import unreachable_errors

        def query() -> Any:
            yield_to_serving()
            try:
                return fn(self._store(), *args)
            except unreachable_errors() as error:
                raise unavailable(self.settings, error) from error
        return self.run(query)

    def report(self, tenant: str, name: str, params: dict[str, Any]) -> Any:
        """One report (resolution, outcomes, cqs, phrasings, repeat_contacts) as cells, for the tenant."""
        from copilot.analytics import reports

        return self._query(lambda store: reports.report(store, tenant, name, params,
                                                        min_n=self.settings.report_min_n))

    def put_outcomes(self, tenant: str, outcomes: list[Any]) -> dict[str, Any]:
        """Upsert outcomes: {"accepted": n, "unknown": [ids of no known conversation]}."""
        return self._query(lambda store: store.put_outcomes(tenant, outcomes, time.time()))

    def scorecard(self, tenant: str, conversation_id: str) -> dict[str, Any] | None:
        return self._query(lambda store: store.scorecard(tenant, conversation_id))

    def scorecards(self, tenant: str, params: dict[str, Any]) -> Any:
        from copilot.analytics import reports

        return self._query(lambda store: reports.scorecards(store, tenant, params,
                                                            min_n=self.settings.report_min_n))

    def scorecard_rows(self, tenant: str, filters: dict[str, Any]) -> list[dict[str, Any]]:
        """Every scorecard of the range, one row per conversation."""
        return self._query(lambda store: store.scorecard_rows(tenant, **filters))

    def conversation_trends(self, tenant: str) -> dict[str, Any]:
        """Cue mentions and emotional resolution per day of the tenant's ended conversations (the console's
        first chart, /analytics/conversations)."""
        return self._query(lambda store: trends(store.mentions_by_day(tenant), store.resolution(tenant, by="day")))

    def erasures(self, tenant: str) -> list[dict[str, Any]]:
        return self._query(lambda store: store.erasures(tenant))

    def export(self, tenant: str, table: str, day_from: date, day_to: date, path: Path | None = None) -> Path:
        """One table's rows of the tenant for those days as a Parquet file: at `path`, or in a temporary file of
        the instance folder that the caller removes."""
        if path is not None:
            self._query(lambda store: store.export_parquet(tenant, table, day_from, day_to, path))
            return path
        handle, name = tempfile.mkstemp(suffix=".parquet", dir=self.settings.instance_dir)
        os.close(handle)
        spare = Path(name)
        try:
            self._query(lambda store: store.export_parquet(tenant, table, day_from, day_to, spare))
        except BaseException:
            spare.unlink(missing_ok=True)
            raise
        return spare

    def erase(self, who: Any, conversation_id: str | None = None, customer_ref: str | None = None) -> dict[str, int]:
        """Erase one conversation, or every conversation of one customer_ref, of the caller's tenant: from the
        event log first (so the loader cannot bring it back), then the store and its outcomes; audited."""
        tenant = who.tenant
        if (conversation_id is None) == (customer_ref is None):
            raise ValueError("erase one conversation_id or one customer_ref")
        key, value = ("conversation_id", conversation_id) if conversation_id else ("customer_ref", customer_ref)
        if not self._query(lambda store: store.ping()):  # refuse before touching anything if the store is down
            raise unavailable(self.settings, RuntimeError("it does not answer"))

        def match(event: dict[str, Any]) -> bool:
            return event.get("tenant") == tenant and event.get(key) == value
        needles = (tenant_needle(tenant), json.dumps(value, ensure_ascii=False))
        if self.settings.redis_url:
            counts = self._query(lambda store: self._erase_stream(tenant, key, value, match, needles))
        else:
            lines = self.event_log.erase(match, needles, swap=self._swap_file, scan=self.run) \
                if self.event_log is not None else 0
            counts = {"event_log": lines, **self._query(
                lambda store: store.erase(tenant, conversation_id=conversation_id, customer_ref=customer_ref))}
        kind = "conversation" if conversation_id else "customer_ref"
        self._query(lambda store: store.record_erasure(tenant, getattr(who, "agent", ""), kind, value, counts,
                                                       time.time()))
        return counts

    def _erase_stream(self, tenant: str, key: str, value: str, match: Callable[[dict], bool],
                      needles: tuple[str, ...]) -> dict[str, int]:
        """On a pool thread: XDEL the entries and erase the store, the loader paused so that a batch it holds
        cannot bring rows back."""
        from copilot.conversation_store import EventStream

        events = EventStream(self.settings.redis_url)
        try:
            with self.lock:
                # told first, so that every other worker's store applies it even if this one stops midway
                events.redis.xadd(ERASURES, {"tenant": tenant, "kind": key, "sha256": sha256_of(value)})
                entries = events.erase(match, needles)
                counts = self._store().erase(tenant, **{key: value})
        finally:
            events.close()
        return {"event_log": entries, **counts}

    def _swap_file(self, replace: Callable[[], None], removed: list[tuple[int, int]]) -> None:
        """Replace the file log by its erased copy with the loader paused, its offset moved first: a crash
        between the two leaves it before where it was, so it rereads (ids dedupe) and never skips."""
        with self.lock:
            store, name = self._store(), FileSource(self.settings.event_log).name
            position = store.position(name)
            if position is not None and removed:
                store.load([], name, str(shifted(int(position), removed)))
            replace()


def trends(mentions: list[dict[str, Any]], resolution: list[dict[str, Any]]) -> dict[str, Any]:
    """The /analytics/conversations answer from the store's rows: days, cue mentions and resolution per day."""
    cues: dict[str, dict[str, int]] = {}
    for row in mentions:
        cues.setdefault(str(row["day"]), {})[row["cue"]] = int(row["mentions"])
    per_day = {str(row["grp"]): row for row in resolution}
    days = sorted(set(cues) | set(per_day))
    rows = []
    for day in days:
        row = per_day.get(day, {})
        negative, resolved = int(row.get("negative_episodes") or 0), int(row.get("resolved") or 0)
        rows.append({"day": day, "conversations": int(row.get("conversations") or 0), "negative_episodes": negative,
                     "resolved": resolved, "rate": round(resolved / negative, 4) if negative else None,
                     "ci95": [round(x, 4) for x in wilson(resolved, negative)]})
    return {"days": days, "cues": [{"day": d, "counts": cues.get(d, {})} for d in days], "resolution": rows}


ERASURES = "copilot:erasures"  # each erasure as (tenant, kind, SHA-256 of its target), for every worker's store
BACKGROUND_NICE = 10
_lowered: set[int] = set()  # native threads already lowered (set.add is atomic under the GIL)


def yield_to_serving() -> None:
    """Lower this native thread's CPU priority (nice +10) once: the loader and the report queries share the
    machine with the serving loop, and take only what it leaves (a lead's reports in a loop cost the agents'
    highlights nothing much). Where the system refuses, the thread runs as it is."""
    import threading

    tid = threading.get_native_id()
    if tid in _lowered:
        return
    _lowered.add(tid)
    try:
        os.setpriority(os.PRIO_PROCESS, tid, BACKGROUND_NICE)
    except (AttributeError, OSError):
        pass


def loader_group(settings: Settings) -> str:
    """The stream's consumer group of this analytics store: workers sharing one PostgreSQL share one group and
    split the stream; each worker's own DuckDB file has a group of its own, so that each file gets every event."""
    if settings.analytics_url:
        where = settings.analytics_url
    else:
        where = f"{socket.gethostname()}:{settings.analytics_db.resolve()}"
    return f"copilot-analytics-{hashlib.sha256(where.encode()).hexdigest()[:16]}"


def first_logged_at(path: Path) -> float:
    """When the file log's first line was logged (infinity for an empty or missing log)."""
    try:
        with path.open("rb") as handle:
            event = event_of(handle.readline(), "0")
    except FileNotFoundError:
        return float("inf")
    return float(event["at"]) if event is not None else float("-inf")


def default_opener(settings: Settings) -> Any:
    from copilot.analytics.store import open_analytics

    return open_analytics(settings)


def open_service(settings: Settings, metrics: Any, event_log: Any, gevent: bool) -> Analytics:
    """The app's Analytics service with its loader started (create_app)."""
    return Analytics(settings, metrics, event_log, gevent=gevent).start()

