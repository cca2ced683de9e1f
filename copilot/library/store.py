"""Durable storage of each tenant's library: its phrasings, their versions and the audit log.

Two implementations behind one interface:
- SqliteLibraryStore, the embedded default: one file, WAL, synchronous=FULL; every write is one transaction, so a
  crash mid-import leaves the library as it was.
- RedisLibraryStore, for scale-out: every write is one Lua script checked against the tenant's revision, so
  workers never interleave half-writes.
Workers learn of changes by comparing the tenant's revision and reading the ids changed since theirs. Usage counts
and experiments live beside the library, in the same file or Redis, behind their own interface (library/usage.py).
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from copilot.concurrency import run_here
from copilot.errors import LibraryDamaged, StoreUnavailable
from copilot.library.phrasing import Phrasing, parse_phrasing

T = TypeVar("T")
log = logging.getLogger(__name__)


class StaleRevision(RuntimeError):
    """Another writer changed the library between read and write; the caller may retry."""


@dataclass(frozen=True)
class Change:
    """One phrasing written: before (None when new) and after, by whom, doing what."""

    before: Phrasing | None
    after: Phrasing
    actor: str
    action: str


@dataclass(frozen=True)
class AuditEntry:
    """One line of the append-only audit log."""

    seq: int
    revision: int
    at: float
    actor: str
    action: str
    phrasing_id: str
    before: dict | None
    after: dict | None

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "revision": self.revision, "at": self.at, "actor": self.actor,
                "action": self.action, "phrasing_id": self.phrasing_id, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class Version:
    """One stored version of a phrasing."""

    phrasing: Phrasing
    at: float
    actor: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.phrasing.as_dict(), "at": self.at, "actor": self.actor}


class LibraryStore(Protocol):
    """What the library service needs to keep phrasings, their versions and their audit."""

    def tenants(self) -> list[str]: ...
    def seeded(self, tenant: str) -> bool: ...
    def revision(self, tenant: str) -> int: ...
    def current(self, tenant: str) -> dict[str, Phrasing]: ...
    def get(self, tenant: str, phrasing_id: str) -> Phrasing | None: ...
    def history(self, tenant: str, phrasing_id: str) -> list[Version]: ...
    def commit(self, tenant: str, changes: list[Change], expected_revision: int | None = None) -> int: ...
    def changes_since(self, tenant: str, revision: int) -> set[str]: ...
    def audit(self, tenant: str, after: int = 0, limit: int = 100,
              phrasing_id: str | None = None) -> list[AuditEntry]: ...
    def ping(self) -> bool: ...


def pausing(items: Iterable[T], every: int = 200) -> Iterator[T]:
    """The items, with a pause (time.sleep(0)) after every `every` of them: on the event loop, live
    conversations go on while a large bulk edit is worked through."""
    for number, item in enumerate(items, 1):
        yield item
        if number % every == 0:
            time.sleep(0)


def serialized(changes: list[Change]) -> list[tuple[Phrasing, str, str | None]]:
    """Each change as (after, its JSON, the before's JSON or None), made before any lock is taken, pausing
    between chunks."""
    return [(change.after, json.dumps(change.after.as_dict()),
             json.dumps(change.before.as_dict()) if change.before else None) for change in pausing(changes)]


def _phrasing(data: str | bytes) -> Phrasing:
    return parse_phrasing(json.loads(data))


def unavailable_on_store_errors(method: Callable[..., T]) -> Callable[..., T]:
    """The store's own failures (its `unavailable_errors`: a full disk or an I/O error in SQLite; out of memory,
    a read-only replica or a lost connection in Redis): the request was not applied (store_unavailable), never
    a 500."""
    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except self.unavailable_errors as error:
            raise StoreUnavailable(f"library store unavailable: {error}; nothing was applied, retry later") from None
    return guarded


class SqliteFile:
    """One SQLite file (WAL, synchronous=FULL) and its one connection, shared by the stores kept in it. `lock`
    lets one thread at a time use the connection: a write waits on it (a yield under gevent) rather than in
    SQLite's busy wait, which would hold the event loop while a bulk commit is written."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        os.chmod(self.path, 0o640)  # SQLite gives its -wal and -shm files the same mode
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")

    def rows(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        """The rows a statement returns, run under the lock."""
        with self.lock:
            return self.db.execute(sql, tuple(args)).fetchall()


class SqliteLibraryStore:
    """The embedded default: a single SQLite file, safe across threads and processes."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS tenants (tenant TEXT PRIMARY KEY, revision INTEGER NOT NULL, created REAL NOT NULL);
    CREATE TABLE IF NOT EXISTS versions (tenant TEXT, id TEXT, version INTEGER, data TEXT NOT NULL, at REAL,
        actor TEXT, PRIMARY KEY (tenant, id, version));
    CREATE TABLE IF NOT EXISTS current (tenant TEXT, id TEXT, version INTEGER NOT NULL, revision INTEGER NOT NULL,
        PRIMARY KEY (tenant, id));
    CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT, revision INTEGER,
        at REAL, actor TEXT, action TEXT, id TEXT, before TEXT, after TEXT);
    CREATE INDEX IF NOT EXISTS audit_tenant ON audit (tenant, seq);
    CREATE INDEX IF NOT EXISTS audit_phrasing ON audit (tenant, id, seq);
    """

    BULK = 200  # a commit of at least this many changes is written through `offload`
    unavailable_errors = (sqlite3.OperationalError,)  # full disk, I/O error, locked past the timeout

    def __init__(self, path: Path, offload: Callable[..., Any] | None = None) -> None:
        """`offload(fn, *args)` runs a large commit's write off the caller's thread: on the event loop, a
        3,000-phrasing transaction and its fsync would hold every conversation up for a few hundred ms. The
        caller holds self.lock meanwhile, so the connection is never used by two threads at once."""
        self.file = SqliteFile(path)
        self.path, self.lock, self.db = self.file.path, self.file.lock, self.file.db
        self.offload = offload or run_here
        self.db.executescript(self.SCHEMA)

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        return self.file.rows(sql, args)

    def tenants(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT tenant FROM tenants ORDER BY tenant")]

    def seeded(self, tenant: str) -> bool:
        return bool(self._rows("SELECT 1 FROM tenants WHERE tenant = ?", (tenant,)))

    def revision(self, tenant: str) -> int:
        rows = self._rows("SELECT revision FROM tenants WHERE tenant = ?", (tenant,))
        return rows[0][0] if rows else 0

    def current(self, tenant: str) -> dict[str, Phrasing]:
        rows = self._rows("SELECT v.data FROM current c JOIN versions v ON v.tenant = c.tenant AND v.id = c.id "
                          "AND v.version = c.version WHERE c.tenant = ?", (tenant,))
        phrasings = [_phrasing(r[0]) for r in rows]
        return {p.id: p for p in phrasings}

    def get(self, tenant: str, phrasing_id: str) -> Phrasing | None:
        rows = self._rows("SELECT v.data FROM current c JOIN versions v ON v.tenant = c.tenant AND v.id = c.id "
                          "AND v.version = c.version WHERE c.tenant = ? AND c.id = ?", (tenant, phrasing_id))
        return _phrasing(rows[0][0]) if rows else None

    def history(self, tenant: str, phrasing_id: str) -> list[Version]:
        rows = self._rows("SELECT data, at, actor FROM versions WHERE tenant = ? AND id = ? ORDER BY version",
                          (tenant, phrasing_id))
        return [Version(_phrasing(d), at, actor) for d, at, actor in rows]

    @unavailable_on_store_errors
    def commit(self, tenant: str, changes: list[Change], expected_revision: int | None = None) -> int:
        rows = serialized(changes)
        with self.lock:
            if len(changes) >= self.BULK:
                return self.offload(self._write, tenant, changes, rows, expected_revision)
            return self._write(tenant, changes, rows, expected_revision)

    def _write(self, tenant: str, changes: list[Change], rows: list[tuple[Phrasing, str, str | None]],
               expected_revision: int | None) -> int:
        """One all-or-nothing transaction; the caller holds self.lock."""
        now = time.time()
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT revision FROM tenants WHERE tenant = ?", (tenant,)).fetchone()
            revision = row[0] if row else 0
            if expected_revision is not None and revision != expected_revision:
                raise StaleRevision(f"library changed (revision {revision}, expected {expected_revision})")
            revision += 1
            if row:
                db.execute("UPDATE tenants SET revision = ? WHERE tenant = ?", (revision, tenant))
            else:
                db.execute("INSERT INTO tenants VALUES (?, ?, ?)", (tenant, revision, now))
            for change, (p, after, before) in zip(changes, rows):
                db.execute("INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?)",
                           (tenant, p.id, p.version, after, now, change.actor))
                db.execute("INSERT OR REPLACE INTO current VALUES (?, ?, ?, ?)", (tenant, p.id, p.version, revision))
                db.execute("INSERT INTO audit (tenant, revision, at, actor, action, id, before, after) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (tenant, revision, now, change.actor, change.action, p.id, before, after))
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # after a disk I/O error SQLite may have rolled back already
                db.execute("ROLLBACK")
            raise
        return revision

    def changes_since(self, tenant: str, revision: int) -> set[str]:
        return {r[0] for r in self._rows("SELECT id FROM current WHERE tenant = ? AND revision > ?", (tenant, revision))}

    def audit(self, tenant: str, after: int = 0, limit: int = 100,
              phrasing_id: str | None = None) -> list[AuditEntry]:
        one = "" if phrasing_id is None else " AND id = ?"
        rows = self._rows("SELECT seq, revision, at, actor, action, id, before, after FROM audit "
                          f"WHERE tenant = ? AND seq > ?{one} ORDER BY seq LIMIT ?",
                          (tenant, after, *(() if phrasing_id is None else (phrasing_id,)), limit))
        return [AuditEntry(s, r, at, actor, action, pid, json.loads(b) if b else None, json.loads(a) if a else None)
                for s, r, at, actor, action, pid, b, a in rows]

    def ping(self) -> bool:
        return bool(self._rows("SELECT 1"))


COMMIT_SCRIPT = """
local rev = tonumber(redis.call('GET', KEYS[1]) or '0')
local stored = redis.call('HLEN', KEYS[3])
local count = redis.call('GET', KEYS[6])
local commits = redis.call('LLEN', KEYS[5])
if commits ~= rev or (rev > 0 and stored == 0) or (count and tonumber(count) ~= stored) then
  return {2, rev, stored, commits}
end
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= rev then return {1, rev, stored, commits} end
rev = rev + 1
redis.call('SET', KEYS[1], rev)
redis.call('SADD', KEYS[2], ARGV[2])
local numbered, seq = true, 0
local last = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)
if #last > 0 then
  local ms, n = string.match(last[1][1], '^(%d+)-(%d+)$')
  if ms == '0' then seq = tonumber(n) else numbered, seq = false, redis.call('XLEN', KEYS[4]) end
else
  redis.call('SET', KEYS[7], 'all')
end
for _, row in ipairs(cjson.decode(ARGV[5])) do
  redis.call('RPUSH', ARGV[4] .. row[1], row[6])
  redis.call('HSET', KEYS[3], row[1], row[2])
  seq = seq + 1
  local id = redis.call('XADD', KEYS[4], numbered and ('0-' .. seq) or '*', 'revision', rev, 'at', ARGV[3],
                        'actor', row[4], 'action', row[5], 'id', row[1], 'before', row[3], 'after', row[2])
  redis.call('ZADD', ARGV[7] .. row[1], seq, id)
end
redis.call('RPUSH', KEYS[5], ARGV[6])
redis.call('SET', KEYS[6], redis.call('HLEN', KEYS[3]))
return {0, rev, 0, 0}
"""  # KEYS: revision, tenants, current, audit, changes, count, audit-indexed; ARGV: expected revision or '', tenant,
#      time, the versions key prefix, rows [id, after, before or '', actor, action, version entry] as JSON, the
#      changed ids, the audit-of key prefix.
# The checks first: a library whose keys were evicted (one commit per revision in `changes`, `count` phrasings in
# `current`) is refused rather than written to, which would make it look whole again. Audit entries are numbered
# 0-1, 0-2, ... so that a page of the audit is one XRANGE; a stream written before that keeps its own ids, and its
# entries are numbered by position (it is never trimmed). Each entry's id goes into its phrasing's index
# (`audit-of:{id}`, scored by number); a log that starts here is indexed whole (`audit-indexed` = all).

INDEX_SCRIPT = """
local mark = redis.call('GET', KEYS[2])
if mark == 'all' then return 'all' end
local start, seq = '-', 0
if mark then
  local id, n = string.match(mark, '^(%S+) (%d+)$')
  start, seq = '(' .. id, tonumber(n)
end
local chunk = tonumber(ARGV[2])
local entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', chunk)
for _, entry in ipairs(entries) do
  local ms, n = string.match(entry[1], '^(%d+)-(%d+)$')
  if ms == '0' then seq = tonumber(n) else seq = seq + 1 end
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'id' then redis.call('ZADD', ARGV[1] .. fields[i + 1], seq, entry[1]); break end
  end
end
if #entries < chunk then
  redis.call('SET', KEYS[2], 'all')
  return 'all'
end
local reached = entries[#entries][1] .. ' ' .. seq
redis.call('SET', KEYS[2], reached)
return reached
"""  # KEYS: audit, audit-indexed; ARGV: the audit-of key prefix, entries per run.
# Indexes one chunk of a log written before entries were indexed by phrasing, on the server: the entries' JSON
# never crosses the wire. `audit-indexed` holds where it reached ("{stream id} {number}") until it reaches the end
# ("all"). Entries a commit indexes meanwhile are indexed again with the same number: ZADD leaves them as they are.


def redis_client(url: str) -> Any:
    """A Redis client as the library's stores use it: text replies, a 5 s timeout, health checks."""
    import redis

    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=5, health_check_interval=30)


class RedisLibraryKeys:
    """What the Redis library and usage stores share: one client, and keys under `{prefix}:lib:{tenant}:...`."""

    def __init__(self, where: str | Any, prefix: str = "copilot") -> None:
        """A URL, or another store's client (its connections are shared)."""
        import redis

        self.redis = redis_client(where) if isinstance(where, str) else where
        self.unavailable_errors = (redis.RedisError,)
        self.prefix = prefix

    def key(self, tenant: str, *parts: str) -> str:
        return ":".join((self.prefix, "lib", tenant, *parts))

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except self.unavailable_errors:
            return False


class RedisLibraryStore(RedisLibraryKeys):
    """The shared store for scale-out. Keys live under `{prefix}:lib:{tenant}:...`."""

    INDEX_CHUNK = 1000  # audit entries one run of INDEX_SCRIPT indexes: a few ms of Redis
    INDEX_RUNS = 50  # runs one audit request may make: a longer log is indexed over several requests

    @unavailable_on_store_errors
    def tenants(self) -> list[str]:
        return sorted(self.redis.smembers(f"{self.prefix}:tenants"))

    @unavailable_on_store_errors
    def seeded(self, tenant: str) -> bool:
        return bool(self.redis.sismember(f"{self.prefix}:tenants", tenant))

    @unavailable_on_store_errors
    def revision(self, tenant: str) -> int:
        return int(self.redis.get(self.key(tenant, "rev")) or 0)

    @unavailable_on_store_errors
    def current(self, tenant: str) -> dict[str, Phrasing]:
        """Every current phrasing, read with the revision, commit count and phrasing count that vouch for it.
        One round trip, between two reads of the revision (a commit bumps it), and no MULTI: that is refused
        when Redis is out of memory, and reads should go on then."""
        rev_key = self.key(tenant, "rev")
        for _ in range(5):
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(rev_key)
                pipe.get(self.key(tenant, "count"))
                pipe.llen(self.key(tenant, "changes"))
                pipe.hgetall(self.key(tenant, "current"))
                pipe.get(rev_key)
                rev, count, commits, rows, rev_after = pipe.execute()
            if rev == rev_after:
                break
        rev = int(rev or 0)
        if commits != rev or (rev and not rows) or (count is not None and int(count) != len(rows)):
            self._damaged(tenant, f"revision {rev}, {commits} commits, {len(rows)} phrasings of {count or '?'}")
        return {pid: _phrasing(data) for pid, data in rows.items()}

    def _damaged(self, tenant: str, detail: str) -> None:
        log.error("library of tenant %r is damaged in Redis (%s): keys were evicted or lost", tenant, detail)
        raise LibraryDamaged(tenant, detail)

    @unavailable_on_store_errors
    def get(self, tenant: str, phrasing_id: str) -> Phrasing | None:
        data = self.redis.hget(self.key(tenant, "current"), phrasing_id)
        return _phrasing(data) if data else None

    @unavailable_on_store_errors
    def history(self, tenant: str, phrasing_id: str) -> list[Version]:
        items = [json.loads(x) for x in self.redis.lrange(self.key(tenant, "versions", phrasing_id), 0, -1)]
        return [Version(parse_phrasing(i["phrasing"]), i["at"], i["actor"]) for i in items]

    @unavailable_on_store_errors
    def commit(self, tenant: str, changes: list[Change], expected_revision: int | None = None) -> int:
        """All changes in one Lua script: all or nothing, like a MULTI, but sent as one command. A bulk edit of
        3,000 phrasings was a MULTI of 9,000 commands, which redis-py packed and parsed in Python on the event
        loop while live highlights waited."""
        now = time.time()
        at = json.dumps(now)
        rows = [(p.id, after, before or "", change.actor, change.action,
                 f'{{"phrasing": {after}, "at": {at}, "actor": {json.dumps(change.actor)}}}')
                for change, (p, after, before) in zip(changes, serialized(changes))]
        keys = [self.key(tenant, "rev"), f"{self.prefix}:tenants", self.key(tenant, "current"),
                self.key(tenant, "audit"), self.key(tenant, "changes"), self.key(tenant, "count"),
                self.key(tenant, "audit-indexed")]
        args = ["" if expected_revision is None else expected_revision, tenant, repr(now),
                self.key(tenant, "versions", ""), json.dumps(rows), json.dumps([row[0] for row in rows]),
                self.key(tenant, "audit-of", "")]
        outcome, revision, stored, commits = self.redis.eval(COMMIT_SCRIPT, len(keys), *keys, *args)
        if outcome == 2:
            self._damaged(tenant, f"revision {revision}, {commits} commits, {stored} phrasings")
        if outcome == 1:
            raise StaleRevision(f"library changed (revision {revision}, expected {expected_revision})")
        return int(revision)

    @unavailable_on_store_errors
    def changes_since(self, tenant: str, revision: int) -> set[str]:
        batches = self.redis.lrange(self.key(tenant, "changes"), revision, -1)
        return {pid for batch in batches for pid in json.loads(batch)}

    @unavailable_on_store_errors
    def audit(self, tenant: str, after: int = 0, limit: int = 100,
              phrasing_id: str | None = None) -> list[AuditEntry]:
        """One page of the audit log: the entries numbered after `after`, read with one bounded XRANGE; one
        phrasing's entries through its index, so that they cost what its own history costs."""
        if phrasing_id is not None:
            return self._audit_of(tenant, after, limit, phrasing_id)
        key = self.key(tenant, "audit")
        page = self.redis.xrange(key, min=f"(0-{after}" if after else "-", max="+", count=limit)
        if page and not page[0][0].startswith("0-"):
            return self._audit_by_position(key, after, limit)
        return [self._audit_entry(int(entry_id.split("-")[1]), fields) for entry_id, fields in page]

    def _audit_of(self, tenant: str, after: int, limit: int, phrasing_id: str) -> list[AuditEntry]:
        """One phrasing's entries numbered after `after`: their ids from its index, then those entries alone."""
        if self.redis.get(self.key(tenant, "audit-indexed")) != "all":
            self._index_audit(tenant)
        listed = self.redis.zrangebyscore(self.key(tenant, "audit-of", phrasing_id), f"({after}", "+inf",
                                          start=0, num=limit, withscores=True)
        key = self.key(tenant, "audit")
        with self.redis.pipeline(transaction=False) as pipe:  # no MULTI: refused when Redis is out of memory
            for entry_id, _ in listed:
                pipe.xrange(key, min=entry_id, max=entry_id)
            pages = pipe.execute()
        return [self._audit_entry(int(seq), page[0][1]) for (_, seq), page in zip(listed, pages) if page]

    def _index_audit(self, tenant: str) -> None:
        """Index by phrasing the entries written before commits did (once per tenant, resumed where it stopped),
        at most INDEX_RUNS chunks now; StoreUnavailable (retry) if the log is longer still."""
        keys = (self.key(tenant, "audit"), self.key(tenant, "audit-indexed"))
        for _ in range(self.INDEX_RUNS):
            if self.redis.eval(INDEX_SCRIPT, 2, *keys, self.key(tenant, "audit-of", ""), self.INDEX_CHUNK) == "all":
                return
        log.info("audit log of tenant %r indexed by phrasing up to %s so far", tenant, self.redis.get(keys[1]))
        raise StoreUnavailable(f"the audit log of tenant {tenant!r} is still being indexed by phrasing "
                               f"({self.INDEX_RUNS * self.INDEX_CHUNK} more entries by this request); retry")

    def _audit_by_position(self, key: str, after: int, limit: int, chunk: int = 1000) -> list[AuditEntry]:
        """A stream written before entries were numbered: counted from its start, but only up to the page."""
        out, seq, start = [], 0, "-"
        while len(out) < limit:
            entries = self.redis.xrange(key, min=start, max="+", count=chunk)
            for _, fields in entries:
                seq += 1
                if seq > after:
                    out.append(self._audit_entry(seq, fields))
                    if len(out) >= limit:
                        break
            if len(entries) < chunk:
                break
            start = f"({entries[-1][0]}"
        return out

    @staticmethod
    def _audit_entry(seq: int, fields: dict[str, str]) -> AuditEntry:
        return AuditEntry(seq, int(fields["revision"]), float(fields["at"]), fields["actor"], fields["action"],
                          fields["id"], json.loads(fields["before"]) if fields["before"] else None,
                          json.loads(fields["after"]) if fields["after"] else None)
