"""The analytics store: the event log's events and conversation-grain report tables, on an embedded DuckDB file or
a shared PostgreSQL. Everything above SQL is shared; the two dialects differ only in the `Dialect` hooks of each
subclass (connections, placeholders, staging rows for a bulk insert, integer division)."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from copilot.concurrency import native_lock
from copilot.errors import InvalidPayload

log = logging.getLogger("copilot.analytics")

Batch = list[dict[str, Any]]

# column, portable type; both engines take these names (DuckDB reads DOUBLE PRECISION as DOUBLE)
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "events": (("id", "TEXT"), ("tenant", "TEXT"), ("at", "DOUBLE PRECISION"), ("day", "DATE"), ("type", "TEXT"),
               ("conversation_id", "TEXT"), ("agent", "TEXT"), ("queue", "TEXT"), ("channel", "TEXT"),
               ("customer_ref", "TEXT"), ("body", "TEXT")),
    "conversations": (("tenant", "TEXT"), ("conversation_id", "TEXT"), ("agent", "TEXT"), ("queue", "TEXT"),
                      ("channel", "TEXT"), ("customer_ref", "TEXT"), ("started_at", "DOUBLE PRECISION"),
                      ("ended_at", "DOUBLE PRECISION"), ("day", "DATE"), ("customer_turns", "INTEGER"),
                      ("agent_turns", "INTEGER"), ("negative_episodes", "INTEGER"), ("resolved", "INTEGER"),
                      ("max_triage", "INTEGER"), ("shown", "INTEGER"), ("used", "INTEGER"), ("experiment", "TEXT"),
                      ("variant", "TEXT")),
    "conversation_cues": (("tenant", "TEXT"), ("conversation_id", "TEXT"), ("cue", "TEXT"), ("day", "DATE"),
                          ("queue", "TEXT"), ("agent", "TEXT"), ("mentions", "INTEGER"), ("episodes", "INTEGER"),
                          ("acknowledged", "INTEGER")),
    "conversation_phrasings": (("tenant", "TEXT"), ("conversation_id", "TEXT"), ("phrasing_id", "TEXT"),
                               ("day", "DATE"), ("queue", "TEXT"), ("shown", "BOOLEAN"), ("used", "BOOLEAN"),
                               ("dismissed", "BOOLEAN"), ("rating", "TEXT")),
    "scorecards": (("tenant", "TEXT"), ("conversation_id", "TEXT"), ("day", "DATE"), ("agent", "TEXT"),
                   ("queue", "TEXT"), ("score", "DOUBLE PRECISION"), ("timely_acknowledgment", "BOOLEAN"),
                   ("naming_emotion", "BOOLEAN"), ("open_question", "BOOLEAN"), ("offering_options", "BOOLEAN"),
                   ("closing_the_loop", "BOOLEAN"), ("items", "TEXT")),
    "outcomes": (("tenant", "TEXT"), ("conversation_id", "TEXT"), ("csat", "INTEGER"), ("nps", "INTEGER"),
                 ("felt_understood", "INTEGER"), ("acknowledged_situation", "INTEGER"),
                 ("clear_next_steps", "INTEGER"), ("survey_scale", "INTEGER"), ("resolved", "BOOLEAN"),
                 ("repeat_contact", "BOOLEAN"), ("repeat_within_days", "INTEGER"),
                 ("responded_at", "DOUBLE PRECISION"), ("received_at", "DOUBLE PRECISION")),
    "loader_positions": (("source", "TEXT"), ("position", "TEXT"), ("updated_at", "DOUBLE PRECISION")),
    "erasures": (("id", "TEXT"), ("tenant", "TEXT"), ("at", "DOUBLE PRECISION"), ("actor", "TEXT"),
                 ("kind", "TEXT"), ("target_sha256", "TEXT"), ("counts", "TEXT")),
    # what was erased, as hashes: a batch that a loader read before the erasure is filtered by them at its load
    "tombstones": (("tenant", "TEXT"), ("kind", "TEXT"), ("target_sha256", "TEXT"), ("at", "DOUBLE PRECISION")),
}
KEYS = {"events": ("id",), "conversations": ("tenant", "conversation_id"),
        "conversation_cues": ("tenant", "conversation_id", "cue"),
        "conversation_phrasings": ("tenant", "conversation_id", "phrasing_id"),
        "scorecards": ("tenant", "conversation_id"), "outcomes": ("tenant", "conversation_id"),
        "loader_positions": ("source",), "erasures": ("id",), "tombstones": ("tenant", "kind", "target_sha256")}
# PostgreSQL only: DuckDB answers the reports by scanning columns, and an index there only slows the loads
INDEXES = {"events": (("tenant", "conversation_id"), ("day",)), "conversations": (("tenant", "day"),
           ("tenant", "customer_ref", "started_at")), "conversation_cues": (("tenant", "day"),),
           "conversation_phrasings": (("tenant", "day"),), "scorecards": (("tenant", "day"),)}
RAW_JSON = {("events", "body")}  # text columns that hold a JSON document
DUCKDB_TYPES = {"TEXT": "VARCHAR", "DOUBLE PRECISION": "DOUBLE"}
REPORT_TABLES = ("conversations", "conversation_cues", "conversation_phrasings", "scorecards")
CONVERSATION_TABLES = ("events", *REPORT_TABLES, "outcomes")  # what erasure reaches
EXPORTABLE = ("events", *REPORT_TABLES, "outcomes")
SCORECARD_ITEMS = ("timely_acknowledgment", "naming_emotion", "open_question", "offering_options",
                   "closing_the_loop")
OUTCOME_FIELDS = [c for c, _ in TABLES["outcomes"][2:-1]]  # what an Outcome carries, besides its id
SURVEY_ITEMS = ("felt_understood", "acknowledged_situation", "clear_next_steps")
CHUNK = 1000  # ids in one IN (...) list
MAX_OBJECT_BYTES = 64 << 20  # the largest row DuckDB's read_json takes
MAX_EVENT_CHARS = MAX_OBJECT_BYTES // 8  # an event's body, with room for its columns and 4 bytes a character
INTEGER_LIMIT = 1 << 31
EPOCH = date(1970, 1, 1)
FIRST_DAY_AT, END_OF_CALENDAR_AT = -62135596800.0, 253402300800.0  # 0001-01-01 and 10000-01-01, UTC


class Unstorable(ValueError):
    """A value no column of its type can hold (the message names the column, never the value)."""


@functools.lru_cache(maxsize=4096)
def _day(days: int) -> str:
    return (EPOCH + timedelta(days=days)).isoformat()


def day_of(at: float) -> str:
    """The UTC date of a unix time, as the tables' `day`; Unstorable for a time outside years 1 to 9999."""
    if not FIRST_DAY_AT <= at < END_OF_CALENDAR_AT:  # NaN fails this too
        raise Unstorable("a time outside the calendar")
    return _day(int(at // 86400))


def sha256_of(text: str) -> str:
    """How an erased target is kept (the audit, the tombstones): its SHA-256, never itself."""
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def event_id(event: Mapping[str, Any]) -> str:
    """The event's id; an event logged before ids existed gets one from its content, so a reload still dedupes."""
    given = event.get("id")
    if given:
        return str(given)
    return hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()[:32]


def rows_of(batch: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The rows a batch of events puts into each table (ids deduplicated; only conversation.end feeds the
    report tables). An event the store cannot take is left out with a log line, so it never blocks the batch."""
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in ("events", *REPORT_TABLES)}
    seen: set[str] = set()
    ended: set[tuple[str, str]] = set()
    for event in batch:
        try:
            eid = event_id(event)
            if eid in seen:
                continue
            own = _event_rows(event, eid, ended)
        except (ValueError, TypeError, AttributeError, OverflowError) as error:  # a foreign line's shape
            # the reason only, never the value: a foreign line may hold anything, personal data included
            log.warning("analytics loader: skipped event %r of tenant %r, which the store cannot take (%s: %s)",
                        str(event.get("id"))[:64], str(event.get("tenant"))[:64], type(error).__name__,
                        error if isinstance(error, Unstorable) else "a value of the wrong shape")
            continue
        seen.add(eid)
        for table, table_rows in own.items():
            rows[table].extend(table_rows)
    return rows


def _event_rows(event: Mapping[str, Any], eid: str, ended: set[tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
    body = json.dumps(event, ensure_ascii=False, allow_nan=False)
    try:
        body.encode()
    except UnicodeEncodeError:  # valid JSON can spell a lone surrogate, which no UTF-8 store holds: "?" for it
        body = body.encode(errors="replace").decode()
        event = json.loads(body)
        eid = event_id(event)
    if len(body) > MAX_EVENT_CHARS:
        raise Unstorable("body: longer than the store takes")
    at = _double(event.get("at") or 0.0)
    tenant = str(event.get("tenant") or "")
    rows: dict[str, list[dict[str, Any]]] = {"events": [_fit("events", {
        "id": eid, "tenant": tenant, "at": at, "day": day_of(at), "type": event.get("type"),
        "conversation_id": event.get("conversation_id"), "agent": event.get("agent"),
        "queue": event.get("queue"), "channel": event.get("channel"), "customer_ref": event.get("customer_ref"),
        "body": body})]}
    summary = event.get("summary")
    if event.get("type") != "conversation.end" or not isinstance(summary, Mapping):
        return rows
    cid = str(event.get("conversation_id") or summary.get("conversation_id") or "")
    if (tenant, cid) in ended:
        return rows
    report = {t: [] for t in REPORT_TABLES}
    _report_rows(report, event, summary, tenant, cid, at)
    for table, table_rows in report.items():
        rows[table] = [_fit(table, row) for row in table_rows]
    ended.add((tenant, cid))
    return rows


def _report_rows(rows: dict[str, list[dict[str, Any]]], event: Mapping[str, Any], summary: Mapping[str, Any],
                 tenant: str, cid: str, at: float) -> None:
    ended_at = _double(summary.get("ended_at") or at)
    day, queue, agent = day_of(ended_at), summary.get("queue") or event.get("queue"), event.get("agent")
    suggestions = summary.get("suggestions") or {}
    shown, used = suggestions.get("shown") or [], suggestions.get("used") or []
    dismissed, rated = suggestions.get("dismissed") or [], suggestions.get("rated") or {}
    experiment = summary.get("experiment") or event.get("experiment")
    experiment = experiment if isinstance(experiment, list | tuple) and len(experiment) == 2 else (None, None)
    rows["conversations"].append({
        "tenant": tenant, "conversation_id": cid, "agent": agent, "queue": queue,
        "channel": summary.get("channel") or event.get("channel"), "customer_ref": event.get("customer_ref"),
        "started_at": summary.get("started_at"), "ended_at": ended_at, "day": day,
        "customer_turns": summary.get("customer_turns"), "agent_turns": summary.get("agent_turns"),
        "negative_episodes": summary.get("negative_episodes") or 0, "resolved": summary.get("resolved") or 0,
        "max_triage": summary.get("max_triage_level"), "shown": len(set(shown)), "used": len(set(used)),
        "experiment": experiment[0], "variant": experiment[1]})
    counts, episodes = summary.get("counts") or {}, summary.get("episodes") or {}
    acknowledged = summary.get("acknowledged") or {}
    for cue in sorted(set(counts) | set(episodes) | set(acknowledged)):
        rows["conversation_cues"].append({
            "tenant": tenant, "conversation_id": cid, "cue": cue, "day": day, "queue": queue, "agent": agent,
            "mentions": counts.get(cue, 0), "episodes": episodes.get(cue, 0),
            "acknowledged": acknowledged.get(cue, 0)})
    for pid in sorted(set(shown) | set(used) | set(dismissed) | set(rated)):
        rows["conversation_phrasings"].append({
            "tenant": tenant, "conversation_id": cid, "phrasing_id": pid, "day": day, "queue": queue,
            "shown": pid in shown, "used": pid in used, "dismissed": pid in dismissed, "rating": rated.get(pid)})
    card = summary.get("scorecard")
    if isinstance(card, Mapping):
        met = {i.get("item"): i.get("met") for i in card.get("items") or [] if isinstance(i, Mapping)}
        rows["scorecards"].append({
            "tenant": tenant, "conversation_id": cid, "day": day, "agent": agent, "queue": queue,
            "score": card.get("score"), **{item: met.get(item) for item in SCORECARD_ITEMS},
            "items": json.dumps(card.get("items") or [], ensure_ascii=False)})


# ---- a row's values as its columns' types: what both engines take, or Unstorable ----
def _text(value: Any) -> str | None:
    if value is None or (type(value) is str and "\x00" not in value):  # PostgreSQL's text holds no NUL
        return value
    if type(value) in (int, float):  # as either engine would cast it
        return str(value)
    raise Unstorable("text expected")


def _double(value: Any) -> float | None:
    if value is None:
        return None
    if type(value) in (float, int, bool) and math.isfinite(value):
        return float(value)
    raise Unstorable("a finite number expected")


def _integer(value: Any) -> int | None:
    if value is None:
        return None
    if type(value) in (float, int, bool) and math.isfinite(value) and value == int(value) \
            and -INTEGER_LIMIT <= value < INTEGER_LIMIT:
        return int(value)
    raise Unstorable("a 32-bit integer expected")


def _boolean(value: Any) -> bool | None:
    if value is None or type(value) is bool:
        return value
    raise Unstorable("true, false or null expected")


FITS = {"TEXT": _text, "DOUBLE PRECISION": _double, "INTEGER": _integer, "BOOLEAN": _boolean, "DATE": _text}


def _fit(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    fitted = {}
    for column, kind in TABLES[table]:
        try:
            fitted[column] = FITS[kind](row[column])
        except Unstorable as error:
            raise Unstorable(f"{table}.{column}: {error}") from None
    return fitted


def as_day(value: date | str | None) -> date | None:
    """A filter's day, from a date or an ISO string."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):  # PostgreSQL's exact sums
        return float(value)
    return value.isoformat() if isinstance(value, date) else value


# one response's Connection Quality Score in SQL, the same formula as stats.cqs: the mean over the items present
# of (x - 1) / (scale - 1) x 100
_PRESENT = " + ".join(f"CASE WHEN o.{i} IS NULL THEN 0 ELSE 1 END" for i in SURVEY_ITEMS)
_POINTS = " + ".join(f"COALESCE(o.{i} - 1, 0)" for i in SURVEY_ITEMS)
CQS_SQL = (f"(CASE WHEN ({_PRESENT}) = 0 THEN NULL ELSE ({_POINTS}) * 100.0 / "
           f"((COALESCE(o.survey_scale, 5) - 1) * ({_PRESENT})) END)")
METRICS = {"csat": "o.csat", "nps": "o.nps", "cqs": CQS_SQL,
           # survey items on the CQS's 0-100, so 5- and 7-point surveys add up
           **{i: f"((o.{i} - 1) * 100.0 / (COALESCE(o.survey_scale, 5) - 1))" for i in SURVEY_ITEMS},
           "resolved": "(CASE WHEN o.resolved THEN 1.0 WHEN NOT o.resolved THEN 0.0 END)",
           "repeat_contact": "(CASE WHEN o.repeat_contact THEN 1.0 WHEN NOT o.repeat_contact THEN 0.0 END)"}
# every metric a float in both engines (PostgreSQL would compute 100.0 * x in exact numeric)
METRICS = {name: f"CAST({sql} AS DOUBLE PRECISION)" for name, sql in METRICS.items()}
RATE_METRICS = ("resolved", "repeat_contact")  # 0/1 values: a proportion, not a mean
SPLITS = ("acknowledged", "suggestion", "variant", "queue", "agent", "day", "all")
GROUPS = {"day": "c.day", "queue": "c.queue", "agent": "c.agent", "all": "'all'"}


def _group(by: str, allowed: Sequence[str]) -> str:
    if by not in allowed:
        raise InvalidPayload(f"by must be one of {', '.join(allowed)}")
    return GROUPS[by]


class AnalyticsStore:
    """What the loader, the reports and the service call; a subclass supplies the connection and the dialect."""

    dialect = "portable"
    unkeyed: tuple[str, ...] = ()  # tables kept without their primary key, deduplicated on insert instead

    # ---- dialect hooks (each subclass) ----
    @contextlib.contextmanager
    def _cursor(self, transaction: bool = False) -> Iterator[Any]:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql

    def _stage(self, cur: Any, table: str, rows: list[dict[str, Any]]) -> str:
        """Stage rows shaped like `table` for a bulk INSERT ... SELECT; returns what to select them FROM (valid
        until the cursor closes)."""
        raise NotImplementedError

    def _count(self, cur: Any) -> int:
        """Rows the last INSERT/DELETE on cur touched."""
        raise NotImplementedError

    def _serialize_writes(self, cur: Any) -> None:
        """Hold loads and erasures of every process on this store apart until the transaction ends (DuckDB: one
        process, whose writes take turns already)."""

    def _div(self, a: str, b: str) -> str:
        """Integer division, the same in both engines (DuckDB's `/` on integers gives a fraction, PG's does not)."""
        return f"CAST(floor(CAST({a} AS DOUBLE PRECISION) / {b}) AS BIGINT)"

    def _series(self, start: int, stop: int) -> str:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # ---- shared ----
    def _create_schema(self, indexes: bool) -> None:
        with self._cursor(transaction=True) as cur:
            for table, columns in TABLES.items():
                cols = ", ".join(f'"{name}" {kind}' for name, kind in columns)
                key = "" if table in self.unkeyed else f", PRIMARY KEY ({', '.join(KEYS[table])})"
                cur.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols}{key})")
            for table, keys in INDEXES.items() if indexes else ():
                for key in keys:
                    cur.execute(f"CREATE INDEX IF NOT EXISTS {table}_{'_'.join(key)} ON {table} ({', '.join(key)})")
            if indexes:  # erasure by customer finds the events without a scan
                cur.execute("CREATE INDEX IF NOT EXISTS events_tenant_customer_ref ON events (tenant, customer_ref) "
                            "WHERE customer_ref IS NOT NULL")

    def _execute(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        return cur.execute(self._sql(sql), list(params))

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._cursor() as cur:
            self._execute(cur, sql, params)
            names = [d[0] for d in cur.description]
            return [{n: _plain(v) for n, v in zip(names, row, strict=True)} for row in cur.fetchall()]

    def _insert_staged(self, cur: Any, table: str, rows: list[dict[str, Any]], update: bool = False) -> int:
        if not rows:
            return 0
        return self._insert_from(cur, table, self._stage(cur, table, rows), update)

    def _insert_from(self, cur: Any, table: str, stage: str, update: bool = False) -> int:
        cols = _columns(table)
        if table == "events" and table in self.unkeyed:
            # an event's id fixes its day, so a repeat is looked for among its days' rows only (the zone maps
            # skip the rest): a batch costs tens of ms in a 10-million-event store, not half a second of a key check
            cur.execute(f"CREATE TEMP TABLE staged_events AS SELECT {cols} FROM {stage}")
            cur.execute(f"INSERT INTO events ({cols}) SELECT {cols} FROM staged_events s WHERE NOT EXISTS (SELECT 1 "
                        "FROM events e WHERE e.day IN (SELECT DISTINCT day FROM staged_events) AND e.id = s.id)")
            inserted = self._count(cur)
            cur.execute("DROP TABLE staged_events")
            return inserted
        action = "DO NOTHING"
        if update:
            rest = [c for c, _ in TABLES[table] if c not in KEYS[table]]
            action = "DO UPDATE SET " + ", ".join(f'"{c}" = excluded."{c}"' for c in rest)
        # in key order, so that two transactions writing the same keys take their row locks in the same order
        # (PostgreSQL: two uploads of one survey export at once would otherwise deadlock)
        keys = ", ".join(KEYS[table])
        cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} ORDER BY {keys} "
                    f"ON CONFLICT ({keys}) {action}")
        return self._count(cur)

    def ping(self) -> bool:
        """Whether the store answers."""
        try:
            return self._rows("SELECT 1 AS one")[0]["one"] == 1
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False

    def load(self, batch: Batch, source: str, position: str) -> int:
        """One transaction: the batch's new events, the report rows of its ended conversations, and the source's
        position. Returns the events newly inserted (a repeated event is skipped by id)."""
        with self._cursor(transaction=True) as cur:
            self._serialize_writes(cur)
            rows = rows_of(self._without_erased(cur, batch))
            inserted = self._insert_staged(cur, "events", rows["events"])
            for table in REPORT_TABLES:
                self._insert_staged(cur, table, rows[table])
            self._execute(cur, "INSERT INTO loader_positions (source, position, updated_at) VALUES (?, ?, ?) "
                               "ON CONFLICT (source) DO UPDATE SET position = excluded.position, "
                               "updated_at = excluded.updated_at", (source, position, time.time()))
        return inserted

    def _without_erased(self, cur: Any, batch: Batch) -> Batch:
        """The batch less the events of conversations or customers erased since it was read (another worker's
        loader may hold such a batch while the erasure runs)."""
        tenants = sorted({str(e.get("tenant")) for e in batch})
        if not tenants:
            return batch
        self._execute(cur, f"SELECT tenant, kind, target_sha256 FROM tombstones WHERE tenant IN "
                           f"({', '.join('?' * len(tenants))})", tenants)
        erased = {tuple(row) for row in cur.fetchall()}
        if not erased:
            return batch

        def gone(event: Mapping[str, Any]) -> bool:
            return any((event.get("tenant"), kind, sha256_of(event.get(kind))) in erased
                       for kind in ("conversation_id", "customer_ref") if isinstance(event.get(kind), str))
        return [e for e in batch if not gone(e)]

    def position(self, source: str) -> str | None:
        """Where the loader stopped reading this source (None before its first batch)."""
        rows = self._rows("SELECT position FROM loader_positions WHERE source = ?", (source,))
        return rows[0]["position"] if rows else None

    def put_outcomes(self, tenant: str, outcomes: Sequence[Any], now: float | None = None) -> dict[str, Any]:
        """Upsert survey outcomes (a later one for the same conversation replaces the row); the ids of
        conversations the store has not seen are kept and reported."""
        now = time.time() if now is None else now
        latest = {o.conversation_id: o for o in outcomes}  # the last of a conversation's rows in one upload wins
        rows = [{"tenant": tenant, "conversation_id": cid, **{f: getattr(o, f, None) for f in OUTCOME_FIELDS},
                 "received_at": now} for cid, o in sorted(latest.items())]
        if not rows:
            return {"accepted": 0, "unknown": []}
        with self._cursor(transaction=True) as cur:
            stage = self._stage(cur, "outcomes", rows)
            self._insert_from(cur, "outcomes", stage, update=True)
            self._execute(cur, f"SELECT s.conversation_id FROM {stage} s LEFT JOIN conversations c "
                               "ON c.tenant = s.tenant AND c.conversation_id = s.conversation_id "
                               "WHERE c.conversation_id IS NULL ORDER BY s.conversation_id")
            unknown = [r[0] for r in cur.fetchall()]
        return {"accepted": len(rows), "unknown": unknown}

    # ---- reports: raw aggregates, which reports.py turns into cells ----
    def _filters(self, tenant: str, day_from: Any = None, day_to: Any = None, queue: str | None = None,
                 alias: str = "c") -> tuple[str, list[Any]]:
        where, params = [f"{alias}.tenant = ?"], [tenant]
        for clause, value in ((f"{alias}.day >= ?", as_day(day_from)), (f"{alias}.day <= ?", as_day(day_to)),
                              (f"{alias}.queue = ?", queue)):
            if value is not None:
                where.append(clause)
                params.append(value)
        return " AND ".join(where), params

    def resolution(self, tenant: str, by: str = "day", **filters: Any) -> list[dict[str, Any]]:
        """Negative episodes and those resolved (acknowledged), per day, queue, agent or cue."""
        if by == "cue":
            where, params = self._filters(tenant, **filters)
            return self._rows(
                "SELECT c.cue AS grp, COUNT(*) AS conversations, CAST(SUM(c.episodes) AS BIGINT) AS negative_episodes,"
                " CAST(SUM(LEAST(c.acknowledged, c.episodes)) AS BIGINT) AS resolved FROM conversation_cues c "
                f"WHERE {where} AND c.episodes > 0 GROUP BY c.cue ORDER BY 1", params)
        group = _group(by, ("day", "queue", "agent"))
        where, params = self._filters(tenant, **filters)
        return self._rows(
            f"SELECT {group} AS grp, COUNT(*) AS conversations, CAST(SUM(c.negative_episodes) AS BIGINT) AS "
            f"negative_episodes, CAST(SUM(c.resolved) AS BIGINT) AS resolved FROM conversations c WHERE {where} "
            "GROUP BY 1 ORDER BY 1", params)

    def outcome_moments(self, tenant: str, metric: str = "csat", split: str = "acknowledged",
                        experiment: str | None = None, cue: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        """n, sum and sum of squares of an outcome metric per group of a split: cue acknowledged or not (every
        negative episode, or one cue's), a suggestion used or not, an experiment's variant, queue, agent, day."""
        if metric not in METRICS:
            raise InvalidPayload(f"metric must be one of {', '.join(METRICS)}")
        if split not in SPLITS:
            raise InvalidPayload(f"split must be one of {', '.join(SPLITS)}")
        where, params = self._filters(tenant, **filters)
        join = ""
        if split == "acknowledged" and cue:
            join = " JOIN conversation_cues k ON k.tenant = c.tenant AND k.conversation_id = c.conversation_id"
            group = "CASE WHEN k.acknowledged >= k.episodes THEN 'acknowledged' ELSE 'not_acknowledged' END"
            where += " AND k.cue = ? AND k.episodes > 0"
            params.append(cue)
        elif split == "acknowledged":
            group = "CASE WHEN c.resolved >= c.negative_episodes THEN 'acknowledged' ELSE 'not_acknowledged' END"
            where += " AND c.negative_episodes > 0"
        elif split == "suggestion":
            group = "CASE WHEN c.used > 0 THEN 'used' ELSE 'not_used' END"
            where += " AND c.shown > 0"
        elif split == "variant":
            group = "c.variant"
            where += " AND c.variant IS NOT NULL"
            if experiment:
                where += " AND c.experiment = ?"
                params.append(experiment)
        else:
            group = GROUPS[split]
        value = METRICS[metric]
        return self._rows(
            f"SELECT grp, COUNT(v) AS n, SUM(v) AS total, SUM(v * v) AS total_sq FROM (SELECT {group} AS grp, "
            f"{value} AS v FROM conversations c JOIN outcomes o ON o.tenant = c.tenant AND o.conversation_id = "
            f"c.conversation_id{join} WHERE {where}) s WHERE v IS NOT NULL GROUP BY grp ORDER BY grp", params)

    def cqs_moments(self, tenant: str, by: str = "queue", **filters: Any) -> list[dict[str, Any]]:
        """n, sum and sum of squares of the Connection Quality Score per day, queue or agent (or all)."""
        return self.outcome_moments(tenant, "cqs", _by_split(by), **filters)

    def phrasings(self, tenant: str, metric: str = "csat", **filters: Any) -> list[dict[str, Any]]:
        """Per phrasing: shown, used, dismissed and rated counts, and the outcome metric's moments where it was
        used against where it was shown and not used."""
        if metric not in METRICS:
            raise InvalidPayload(f"metric must be one of {', '.join(METRICS)}")
        where, params = self._filters(tenant, alias="p", **filters)
        flags = ("p.used", "NOT p.used")
        moments = ", ".join(
            f"SUM(CASE WHEN {f} AND v IS NOT NULL THEN 1 ELSE 0 END) AS {name}_n, "
            f"SUM(CASE WHEN {f} THEN v END) AS {name}_total, SUM(CASE WHEN {f} THEN v * v END) AS {name}_total_sq"
            for f, name in zip(flags, ("used", "unused"), strict=True))
        return self._rows(
            "SELECT phrasing_id, SUM(CASE WHEN shown THEN 1 ELSE 0 END) AS shown, "
            "SUM(CASE WHEN used THEN 1 ELSE 0 END) AS used, SUM(CASE WHEN dismissed THEN 1 ELSE 0 END) AS dismissed, "
            "SUM(CASE WHEN rating = 'helpful' THEN 1 ELSE 0 END) AS helpful, "
            f"SUM(CASE WHEN rating = 'not_helpful' THEN 1 ELSE 0 END) AS not_helpful, {moments} FROM (SELECT p.*, "
            f"{METRICS[metric]} AS v FROM conversation_phrasings p LEFT JOIN outcomes o ON o.tenant = p.tenant AND "
            f"o.conversation_id = p.conversation_id WHERE {where}) p GROUP BY phrasing_id ORDER BY phrasing_id",
            params)

    def repeat_contacts(self, tenant: str, by: str = "day", within_days: int = 7,
                        **filters: Any) -> list[dict[str, Any]]:
        """Per group: conversations, those with a customer_ref, those followed by the same customer's next
        conversation within `within_days` (observed), and repeat contacts the outcomes reported."""
        group = _group(by, ("day", "queue", "agent", "all"))
        where, params = self._filters(tenant, **filters)
        return self._rows(
            f"SELECT {group} AS grp, COUNT(*) AS conversations, "
            "SUM(CASE WHEN c.customer_ref IS NOT NULL THEN 1 ELSE 0 END) AS with_customer_ref, "
            "SUM(CASE WHEN c.next_start - c.ended_at <= ? THEN 1 ELSE 0 END) AS observed_repeats, "
            "SUM(CASE WHEN o.repeat_contact IS NOT NULL THEN 1 ELSE 0 END) AS reported, "
            "SUM(CASE WHEN o.repeat_contact THEN 1 ELSE 0 END) AS reported_repeats FROM (SELECT c.*, CASE WHEN "
            "c.customer_ref IS NULL THEN NULL ELSE LEAD(c.started_at) OVER (PARTITION BY c.customer_ref ORDER BY "
            "c.started_at) END AS next_start FROM conversations c WHERE c.tenant = ?) c LEFT JOIN outcomes o ON "
            f"o.tenant = c.tenant AND o.conversation_id = c.conversation_id WHERE {where} GROUP BY 1 ORDER BY 1",
            [float(within_days) * 86400, tenant, *params])

    def scorecard(self, tenant: str, conversation_id: str) -> dict[str, Any] | None:
        """One conversation's scorecard, its items with evidence and turns (None when there is none)."""
        rows = self._rows("SELECT conversation_id, day, agent, queue, score, items FROM scorecards "
                          "WHERE tenant = ? AND conversation_id = ?", (tenant, conversation_id))
        if not rows:
            return None
        return {**rows[0], "items": json.loads(rows[0]["items"] or "[]")}

    def scorecards(self, tenant: str, by: str = "agent", **filters: Any) -> list[dict[str, Any]]:
        """Per agent, queue or day: conversations, scored ones with the score's sum and sum of squares, and each
        rubric item's applicable and met counts."""
        group = _group(by, ("agent", "queue", "day", "all"))
        where, params = self._filters(tenant, **filters)
        items = ", ".join(f"SUM(CASE WHEN c.{i} IS NOT NULL THEN 1 ELSE 0 END) AS {i}_applicable, "
                          f"SUM(CASE WHEN c.{i} THEN 1 ELSE 0 END) AS {i}_met" for i in SCORECARD_ITEMS)
        return self._rows(
            f"SELECT {group} AS grp, COUNT(*) AS conversations, COUNT(c.score) AS n, SUM(c.score) AS total, "
            f"SUM(c.score * c.score) AS total_sq, {items} FROM scorecards c WHERE {where} GROUP BY 1 ORDER BY 1",
            params)

    def scorecard_rows(self, tenant: str, **filters: Any) -> list[dict[str, Any]]:
        """Every scorecard of the range, one row per conversation (the QA tools' CSV export)."""
        where, params = self._filters(tenant, **filters)
        cols = ", ".join(f"c.{i}" for i in SCORECARD_ITEMS)
        return self._rows(f"SELECT c.conversation_id, c.day, c.agent, c.queue, c.score, {cols} FROM scorecards c "
                          f"WHERE {where} ORDER BY c.day, c.conversation_id", params)

    def mentions_by_day(self, tenant: str, **filters: Any) -> list[dict[str, Any]]:
        """Cue mentions per day (of the conversation's end) and cue, for the conversations chart."""
        where, params = self._filters(tenant, **filters)
        return self._rows("SELECT c.day AS day, c.cue AS cue, CAST(SUM(c.mentions) AS BIGINT) AS mentions "
                          f"FROM conversation_cues c WHERE {where} AND c.mentions > 0 GROUP BY 1, 2 ORDER BY 1, 2",
                          params)

    # ---- lifecycle ----
    def erase(self, tenant: str, conversation_id: str | None = None,
              customer_ref: str | None = None) -> dict[str, int]:
        """Delete one conversation, or every conversation of one customer_ref, from every table (outcomes by the
        erased conversations' ids). Returns the rows deleted per table."""
        if (conversation_id is None) == (customer_ref is None):
            raise ValueError("erase takes one of conversation_id or customer_ref")
        counts = dict.fromkeys(CONVERSATION_TABLES, 0)
        kind, target = ("conversation_id", conversation_id) if conversation_id is not None else \
            ("customer_ref", customer_ref)
        with self._cursor(transaction=True) as cur:
            self._serialize_writes(cur)
            self._execute(cur, "INSERT INTO tombstones (tenant, kind, target_sha256, \"at\") VALUES (?, ?, ?, ?) "
                               "ON CONFLICT (tenant, kind, target_sha256) DO NOTHING",
                          (tenant, kind, sha256_of(target), time.time()))
            if conversation_id is not None:
                ids = [conversation_id]
            else:
                self._execute(cur, "SELECT conversation_id FROM conversations WHERE tenant = ? AND customer_ref = ? "
                                   "UNION SELECT conversation_id FROM events WHERE tenant = ? AND customer_ref = ? "
                                   "AND conversation_id IS NOT NULL", (tenant, customer_ref, tenant, customer_ref))
                ids = sorted(r[0] for r in cur.fetchall())
                self._execute(cur, "DELETE FROM events WHERE tenant = ? AND customer_ref = ?", (tenant, customer_ref))
                counts["events"] += self._count(cur)
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start:start + CHUNK]
                marks = ", ".join("?" * len(chunk))
                for table in CONVERSATION_TABLES:
                    self._execute(cur, f"DELETE FROM {table} WHERE tenant = ? AND conversation_id IN ({marks})",
                                  (tenant, *chunk))
                    counts[table] += self._count(cur)
        return counts

    def erase_hashed(self, tenant: str, kind: str, target_sha256: str) -> dict[str, int]:
        """Erase by the target's SHA-256: another worker's erasure, told through Redis to a worker whose DuckDB
        file holds its own copy. The tombstone goes first, so later batches are filtered too."""
        if kind not in ("conversation_id", "customer_ref"):
            raise ValueError("kind is conversation_id or customer_ref")
        with self._cursor(transaction=True) as cur:
            self._serialize_writes(cur)
            self._execute(cur, "INSERT INTO tombstones (tenant, kind, target_sha256, \"at\") VALUES (?, ?, ?, ?) "
                               "ON CONFLICT (tenant, kind, target_sha256) DO NOTHING",
                          (tenant, kind, target_sha256, time.time()))
            self._execute(cur, f"SELECT DISTINCT {kind} FROM events WHERE tenant = ? AND {kind} IS NOT NULL "
                               f"AND {self._sha256(kind)} = ? UNION SELECT DISTINCT {kind} FROM conversations WHERE "
                               f"tenant = ? AND {kind} IS NOT NULL AND {self._sha256(kind)} = ?",
                          (tenant, target_sha256, tenant, target_sha256))
            targets = sorted({r[0] for r in cur.fetchall()})
        counts = dict.fromkeys(CONVERSATION_TABLES, 0)
        for target in targets:
            for table, n in self.erase(tenant, **{kind: target}).items():
                counts[table] += n
        return counts

    def _sha256(self, column: str) -> str:
        """SQL for the hex SHA-256 of a text column's UTF-8 (DuckDB's sha256; PostgreSQL's below)."""
        return f"sha256({column})"

    def record_erasure(self, tenant: str, actor: str, kind: str, target: str, counts: Mapping[str, int],
                       at: float | None = None) -> dict[str, Any]:
        """Audit one erasure: who, when, what kind, the target only as its SHA-256, and the rows deleted."""
        row = {"id": uuid.uuid4().hex, "tenant": tenant, "at": time.time() if at is None else at, "actor": actor,
               "kind": kind, "target_sha256": sha256_of(target),
               "counts": json.dumps(dict(counts), sort_keys=True)}
        with self._cursor(transaction=True) as cur:
            self._execute(cur, f"INSERT INTO erasures ({_columns('erasures')}) VALUES ({', '.join('?' * len(row))})",
                          list(row.values()))
        return {**row, "counts": dict(counts)}

    def erasures(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's erasure audit, newest first."""
        rows = self._rows(f"SELECT {_columns('erasures')} FROM erasures WHERE tenant = ? "
                          'ORDER BY "at" DESC, id', (tenant,))
        return [{**r, "counts": json.loads(r["counts"] or "{}")} for r in rows]

    def purge(self, before_day: date | str) -> dict[str, int]:
        """Retention: delete every row of a day before before_day, the outcomes of those conversations, and
        outcomes of conversations never seen that arrived before it."""
        before = as_day(before_day)
        cutoff = datetime(before.year, before.month, before.day, tzinfo=UTC).timestamp()
        counts: dict[str, int] = {}
        with self._cursor(transaction=True) as cur:
            self._execute(cur, "DELETE FROM outcomes WHERE EXISTS (SELECT 1 FROM conversations c WHERE c.tenant = "
                               "outcomes.tenant AND c.conversation_id = outcomes.conversation_id AND c.day < ?) OR "
                               "(outcomes.received_at < ? AND NOT EXISTS (SELECT 1 FROM conversations c WHERE "
                               "c.tenant = outcomes.tenant AND c.conversation_id = outcomes.conversation_id))",
                          (before, cutoff))
            counts["outcomes"] = self._count(cur)
            for table in ("events", *REPORT_TABLES):
                self._execute(cur, f"DELETE FROM {table} WHERE day < ?", (before,))
                counts[table] = self._count(cur)
        return counts

    def _export_query(self, tenant: str, table: str, day_from: Any, day_to: Any) -> tuple[str, list[Any]]:
        if table not in EXPORTABLE:
            raise InvalidPayload(f"table must be one of {', '.join(EXPORTABLE)}")
        cols = ", ".join(f't."{c}"' for c, _ in TABLES[table])
        source = f"{table} t"
        if table == "outcomes":  # outcomes have no day of their own: the conversation's
            source = "outcomes t JOIN conversations c ON c.tenant = t.tenant AND c.conversation_id = t.conversation_id"
        day = "c.day" if table == "outcomes" else "t.day"
        return (f"SELECT {cols} FROM {source} WHERE t.tenant = ? AND {day} >= ? AND {day} <= ? ORDER BY {day}",
                [tenant, as_day(day_from), as_day(day_to)])

    # ---- the benchmark's data ----
    def bulk_synthesize(self, tenants: int = 5, agents: int = 1000, days: int = 30, events: int = 10_000_000,
                        seed: int = 0, first_day: date = date(2026, 1, 1), chunk: int = 1_000_000) -> dict[str, int]:
        """Fill the tables with synthetic rows shaped like load()'s (20 events per conversation with a short body,
        4 cues and 4 phrasings each, a scorecard, an outcome for 3 in 10) by INSERT ... SELECT inside the engine:
        minutes for 10 million events, not hours. Conversation ids are `syn-<seed>-<n>`; returns rows per table."""
        spec = _Synthetic(self, tenants, agents, days, seed, first_day)
        conversations = max(1, events // 20)
        with self._cursor() as cur:
            self._before_bulk(cur)
            try:
                for start in range(0, conversations, chunk):
                    for sql in spec.report_inserts(start, min(conversations, start + chunk)):
                        cur.execute(sql)
                for start in range(0, events, chunk):
                    cur.execute(spec.events_insert(start, min(events, start + chunk)))
            finally:
                self._after_bulk(cur)
        return {"events": events, "conversations": conversations, "conversation_cues": 4 * conversations,
                "conversation_phrasings": 4 * conversations, "scorecards": conversations}

    def _before_bulk(self, cur: Any) -> None:
        """Make a bulk fill fast (an engine may drop indexes to build them once at the end)."""

    def _after_bulk(self, cur: Any) -> None:
        """Put back what _before_bulk took away, and bring the planner's statistics up to date."""


def _by_split(by: str) -> str:
    if by not in ("day", "queue", "agent", "all"):
        raise InvalidPayload("by must be one of day, queue, agent, all")
    return by


class _Synthetic:
    """SQL expressions of a conversation number `c` that the synthetic tables share, so they agree."""

    CUES = ("frustration", "confusion", "anxiety", "disappointment", "anger", "sadness", "urgency", "gratitude")

    def __init__(self, store: AnalyticsStore, tenants: int, agents: int, days: int, seed: int, first: date) -> None:
        self.store, self.tenants, self.agents, self.days, self.seed = store, tenants, agents, days, seed
        self.epoch = datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp()
        self.first = first.isoformat()

    def h(self, x: str, salt: int, k: int) -> str:
        """A pseudo-random integer in [0, k) from x: a multiplicative hash, the same in both engines."""
        return f"mod(mod(({x}) * 2654435761 + {salt * 40503 + self.seed * 7919}, 4294967296), {k})"

    def columns(self, c: str = "c") -> dict[str, str]:
        start = f"({self.epoch} + {self.h(c, 1, self.days * 86400 - 3600)})"
        return {
            "tenant": f"('tenant-' || CAST(mod({c}, {self.tenants}) AS TEXT))",
            "conversation_id": f"('syn-{self.seed}-' || CAST({c} AS TEXT))",
            "agent": f"('agent-' || CAST({self.h(c, 2, self.agents)} AS TEXT))",
            "queue": f"('queue-' || CAST({self.h(c, 3, 10)} AS TEXT))",
            "channel": f"(CASE WHEN {self.h(c, 4, 2)} = 0 THEN 'chat' ELSE 'voice' END)",
            "customer_ref": f"('cust-' || CAST({self.h(c, 5, 100000)} AS TEXT))",
            "started_at": start, "ended_at": f"({start} + 600)",
            "day": f"(DATE '{self.first}' + CAST({self.store._div(f'({start} + 600 - {self.epoch})', '86400')} "
                   "AS INTEGER))"}

    def report_inserts(self, start: int, stop: int) -> list[str]:
        cols = self.columns()
        base = ", ".join(f"{v} AS {k}" for k, v in cols.items())
        series = self.store._series(start, stop)
        h = self.h
        conv = (f"SELECT c, {base}, {h('c', 6, 4)} AS negative_episodes, {h('c', 7, 3)} AS r, {h('c', 8, 5)} AS "
                f"shown, {h('c', 9, 3)} AS u FROM (SELECT i AS c FROM {series}) n")
        cues = ", ".join(f"({i}, '{cue}')" for i, cue in enumerate(self.CUES))
        phr_flag = f"{h('c + q.k', 12, 4)}"
        item = ", ".join(f"(CASE {h('c', 20 + i, 3)} WHEN 0 THEN NULL WHEN 1 THEN FALSE ELSE TRUE END) AS {name}"
                         for i, name in enumerate(SCORECARD_ITEMS))
        met = " + ".join(f"CASE WHEN {n} THEN 1 ELSE 0 END" for n in SCORECARD_ITEMS)
        applicable = " + ".join(f"CASE WHEN {n} IS NULL THEN 0 ELSE 1 END" for n in SCORECARD_ITEMS)
        return [
            "INSERT INTO conversations SELECT tenant, conversation_id, agent, queue, channel, customer_ref, "
            "started_at, ended_at, day, 9, 9, negative_episodes, CASE WHEN r > negative_episodes THEN "
            "negative_episodes ELSE r END, 1 + mod(c, 3), shown, CASE WHEN u > shown THEN shown ELSE u END, "
            "CASE WHEN mod(c, 2) = 0 THEN 'exp-1' END, CASE WHEN mod(c, 2) = 0 THEN CASE WHEN mod(c, 4) = 0 THEN "
            f"'control' ELSE 'b' END END FROM ({conv}) s",
            "INSERT INTO conversation_cues SELECT tenant, conversation_id, q.cue, day, queue, agent, "
            f"1 + {h('c + q.k', 10, 3)}, e, CASE WHEN {h('c + q.k', 11, 3)} > 0 THEN e ELSE 0 END FROM (SELECT s.*, "
            f"q.k, q.cue, CASE WHEN q.cue = 'gratitude' THEN 0 ELSE {h('c + q.k', 13, 2)} END AS e FROM ({conv}) s "
            f"CROSS JOIN (VALUES {cues}) AS q(k, cue) WHERE mod({h('c', 14, 8)} + q.k, 8) < 4) q",
            "INSERT INTO conversation_phrasings SELECT tenant, conversation_id, 'phrasing-' || CAST(mod("
            f"{h('c', 15, 200)} + q.k, 200) AS TEXT), day, queue, TRUE, {phr_flag} = 0, {phr_flag} = 1, CASE "
            f"{h('c + q.k', 16, 6)} WHEN 0 THEN 'helpful' WHEN 1 THEN 'not_helpful' END FROM ({conv}) s CROSS JOIN "
            "(VALUES (0), (1), (2), (3)) AS q(k)",
            f"INSERT INTO scorecards SELECT tenant, conversation_id, day, agent, queue, CASE WHEN ({applicable}) = 0 "
            f"THEN NULL ELSE 100.0 * ({met}) / ({applicable}) END, {', '.join(SCORECARD_ITEMS)}, '[]' FROM (SELECT "
            f"s.*, {item} FROM ({conv}) s) s",
            f"INSERT INTO outcomes SELECT tenant, conversation_id, 1 + {h('c', 30, 5)}, {h('c', 31, 11)}, "
            f"1 + {h('c', 32, 5)}, 1 + {h('c', 33, 5)}, 1 + {h('c', 34, 5)}, 5, {h('c', 35, 3)} > 0, "
            f"{h('c', 36, 5)} = 0, 7, ended_at + 3600, ended_at + 7200 FROM ({conv}) s WHERE {h('c', 37, 10)} < 3",
        ]

    def events_insert(self, start: int, stop: int) -> str:
        cols = self.columns("c")
        kind = ("CASE WHEN k = 0 THEN 'conversation.start' WHEN k = 19 THEN 'conversation.end' "
                "ELSE 'transcript.snippet' END")
        day = f"DATE '{self.first}' + CAST({self.store._div(f'(e.at_ - {self.epoch})', '86400')} AS INTEGER)"
        body = ("'{\"id\":\"' || id || '\",\"type\":\"' || type || '\",\"conversation_id\":\"' || "
                "conversation_id || '\"}'")
        who = ", ".join(f"{v} AS {k}" for k, v in cols.items() if k not in ("started_at", "ended_at", "day"))
        numbered = f"SELECT i, {self.store._div('i', '20')} AS c, mod(i, 20) AS k FROM {self.store._series(start, stop)}"
        return (f"INSERT INTO events SELECT id, tenant, at_, {day}, type, conversation_id, agent, queue, channel, "
                f"customer_ref, {body} FROM (SELECT md5('syn-{self.seed}-' || CAST(i AS TEXT)) AS id, {kind} AS type, "
                f"({cols['started_at']} + k * 30) AS at_, {who} FROM ({numbered}) s) e")


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean the store itself failed (gone, unreachable, its file unreadable), not the question:
    the service answers them analytics_unavailable."""
    import duckdb

    errors: list[type[BaseException]] = [duckdb.IOException, duckdb.ConnectionException]
    try:
        import psycopg
    except ImportError:  # an embedded-only install
        return tuple(errors)
    return (*errors, psycopg.OperationalError, psycopg.InterfaceError)


class DuckDBAnalytics(AnalyticsStore):
    """The embedded store: one DuckDB file, one connection, a cursor of its own per call (DuckDB's way to be
    used from several threads). A second process cannot open the file."""

    dialect = "duckdb"
    unkeyed = ("events",)  # DuckDB's key check on 10 million ids costs 0.5 s a batch, whatever its size

    def __init__(self, path: Path | str, threads: int = 1) -> None:
        import duckdb

        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # one thread of DuckDB's own per query: a report takes one core at most, never both of a small machine
        self.con = duckdb.connect(str(path), config={"threads": threads})
        self._lock = native_lock()  # taken by the service's native threads only
        self._writing = native_lock()  # one write transaction at a time: two uploads of one row never conflict
        self._scratch = threading.local()  # the staging files of this thread's open cursor
        self._create_schema(indexes=False)

    @contextlib.contextmanager
    def _cursor(self, transaction: bool = False) -> Iterator[Any]:
        with contextlib.ExitStack() as writing:
            if transaction:
                writing.enter_context(self._writing)
            with self._duckdb_cursor(transaction) as cur:
                yield cur

    @contextlib.contextmanager
    def _duckdb_cursor(self, transaction: bool) -> Iterator[Any]:
        with self._lock:
            cur = self.con.cursor()
        self._scratch.files = []
        try:
            if transaction:
                cur.execute("BEGIN TRANSACTION")
            yield cur
            if transaction:
                cur.execute("COMMIT")
        except BaseException:
            if transaction:
                with contextlib.suppress(Exception):
                    cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()
            for name in self._scratch.files:
                Path(name).unlink(missing_ok=True)

    def _execute(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        return cur.execute(sql, list(params)) if params else cur.execute(sql)

    def _stage(self, cur: Any, table: str, rows: list[dict[str, Any]]) -> str:
        # executemany is ~250 rows/s in DuckDB; a newline-delimited JSON file read by read_json is ~100x that
        fd, name = tempfile.mkstemp(prefix=f"copilot-{table}-", suffix=".ndjson")
        self._scratch.files.append(name)
        raw = [c for c, _ in TABLES[table] if (table, c) in RAW_JSON]
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in rows:
                if raw:  # a JSON document goes in as itself, not encoded a second time as a string
                    plain = {k: v for k, v in row.items() if k not in raw}
                    f.write(json.dumps(plain, ensure_ascii=False)[:-1])
                    f.write("".join(f', "{c}": {row[c]}' for c in raw))
                    f.write("}\n")
                else:
                    f.write(json.dumps(row, ensure_ascii=False))
                    f.write("\n")
        return _read_json(name, table)

    def _count(self, cur: Any) -> int:
        row = cur.fetchone()
        return int(row[0]) if row else 0

    def _series(self, start: int, stop: int) -> str:
        return f"range({start}, {stop}) AS t(i)"

    def _after_bulk(self, cur: Any) -> None:
        cur.execute("CHECKPOINT")

    def export_parquet(self, tenant: str, table: str, day_from: Any, day_to: Any, path: Path | str) -> int:
        """Write the tenant's rows of a table in a day range to a Parquet file; returns the rows written."""
        sql, params = self._export_query(tenant, table, day_from, day_to)
        with self._cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE export_rows AS {sql}", params)
            cur.execute(f"COPY export_rows TO '{_quote(str(path))}' (FORMAT parquet)")
            return int(cur.execute("SELECT COUNT(*) FROM export_rows").fetchone()[0])

    def close(self) -> None:
        """Close the file (the next process may open it)."""
        self.con.close()


class PostgresAnalytics(AnalyticsStore):
    """The shared store: PostgreSQL through psycopg 3, a connection per thread; bulk rows go in by COPY into a
    temporary table, then INSERT ... ON CONFLICT."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = native_lock()
        self._create_schema(indexes=True)

    def _serialize_writes(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(16016)")  # the analytics store's writes, every worker's

    def _sha256(self, column: str) -> str:
        return f"encode(sha256(convert_to({column}, 'UTF8')), 'hex')"

    def _connection(self) -> Any:
        import psycopg

        con = getattr(self._local, "con", None)
        if con is None or con.closed or con.broken:
            con = psycopg.connect(self.url, autocommit=True, connect_timeout=5)  # an unreachable host: 503 soon
            self._local.con = con
            with self._lock:
                self._all.append(con)
        return con

    @contextlib.contextmanager
    def _cursor(self, transaction: bool = False) -> Iterator[Any]:
        con = self._connection()
        with contextlib.ExitStack() as stack:
            if transaction:
                stack.enter_context(con.transaction())
            cur = stack.enter_context(con.cursor())
            yield cur

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _stage(self, cur: Any, table: str, rows: list[dict[str, Any]]) -> str:
        stage = f"stage_{table}"
        names = [c for c, _ in TABLES[table]]
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table}) ON COMMIT DELETE ROWS")
        cur.execute(f"TRUNCATE {stage}")
        with cur.copy(f"COPY {stage} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row.get(n) for n in names])
        return stage

    def _count(self, cur: Any) -> int:
        return max(cur.rowcount, 0)

    def _series(self, start: int, stop: int) -> str:
        return f"generate_series(CAST({start} AS BIGINT), CAST({stop - 1} AS BIGINT)) AS t(i)"

    def _before_bulk(self, cur: Any) -> None:
        # into an empty events table, one sort per index at the end beats 10 million index insertions
        cur.execute("SELECT EXISTS (SELECT 1 FROM events)")
        self._local.rebuild = not cur.fetchone()[0]
        if self._local.rebuild:
            cur.execute("ALTER TABLE events DROP CONSTRAINT events_pkey")
            cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'events'")
            for (name,) in cur.fetchall():
                cur.execute(f"DROP INDEX {name}")

    def _after_bulk(self, cur: Any) -> None:
        if getattr(self._local, "rebuild", False):
            cur.execute("SET maintenance_work_mem = '512MB'")
            cur.execute("ALTER TABLE events ADD PRIMARY KEY (id)")
            self._create_schema(indexes=True)
            cur.execute("RESET maintenance_work_mem")
        # statistics, hint bits and the visibility map now, rather than on the first reports (autovacuum would)
        for table in ("events", *REPORT_TABLES, "outcomes"):
            cur.execute(f"VACUUM (ANALYZE) {table}")

    def export_parquet(self, tenant: str, table: str, day_from: Any, day_to: Any, path: Path | str) -> int:
        """Write the tenant's rows of a table in a day range to a Parquet file (through an in-memory DuckDB,
        which writes Parquet without pyarrow); returns the rows written."""
        import duckdb

        sql, params = self._export_query(tenant, table, day_from, day_to)
        fd, name = tempfile.mkstemp(prefix=f"copilot-export-{table}-", suffix=".ndjson")
        rows = 0
        try:
            con = self._connection()
            with os.fdopen(fd, "w", encoding="utf-8") as f, con.transaction(), con.cursor(name="export") as cur:
                cur.execute(self._sql(sql), params)
                names = [c for c, _ in TABLES[table]]
                while batch := cur.fetchmany(10_000):
                    for row in batch:
                        f.write(json.dumps({n: _plain(v) for n, v in zip(names, row, strict=True)}))
                        f.write("\n")
                    rows += len(batch)
            with duckdb.connect() as duck:
                duck.execute(f"COPY (SELECT * FROM {_read_json(name, table)}) TO '{_quote(str(path))}' "
                             "(FORMAT parquet)")
        finally:
            Path(name).unlink(missing_ok=True)
        return rows

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for con in self._all:
                con.close()
            self._all.clear()


def _columns(table: str) -> str:
    """The table's columns, quoted: `at` is a keyword to DuckDB's parser."""
    return ", ".join(f'"{c}"' for c, _ in TABLES[table])


def _read_json(path: str, table: str) -> str:
    """DuckDB's read of a newline-delimited JSON file of rows shaped like `table`, typed by the schema."""
    columns = ", ".join(f"'{c}': '{'JSON' if (table, c) in RAW_JSON else DUCKDB_TYPES.get(t, t)}'"
                        for c, t in TABLES[table])
    return (f"read_json('{_quote(path)}', columns = {{{columns}}}, format = 'newline_delimited', "
            f"maximum_object_size = {MAX_OBJECT_BYTES})")


def _quote(text: str) -> str:
    return text.replace("'", "''")


def open_analytics(settings: Any) -> AnalyticsStore:
    """The store the settings name: PostgreSQL at analytics_url, else the instance folder's DuckDB file."""
    if settings.analytics_url:
        return PostgresAnalytics(settings.analytics_url)
    return DuckDBAnalytics(settings.analytics_db)
