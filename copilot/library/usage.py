"""Durable storage of what the library does in conversations: usage counts, experiments, exposures and outcomes.

Kept beside the library (library/store.py), in the same SQLite file or the same Redis, but behind its own small
interface: phrasings are curated, versioned and audited; these are counters and logs written by live conversations.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Protocol

from copilot.library.store import (
    LibraryStore,
    RedisLibraryKeys,
    RedisLibraryStore,
    SqliteFile,
    SqliteLibraryStore,
    unavailable_on_store_errors,
)


class UsageStore(Protocol):
    """What the library service needs to count usage and to run experiments."""

    def count_usage(self, tenant: str, phrasing_id: str, action: str, cue: str, queue: str, channel: str) -> None: ...
    def usage(self, tenant: str) -> list[dict[str, Any]]: ...
    def put_experiment(self, tenant: str, experiment: dict) -> None: ...
    def experiments(self, tenant: str) -> dict[str, dict]: ...
    def experiment(self, tenant: str, experiment_id: str) -> dict | None: ...
    def experiment_count(self, tenant: str) -> int: ...
    def log_exposure(self, tenant: str, experiment: str, variant: str, conversation: str) -> None: ...
    def exposure_count(self, tenant: str, experiment: str) -> int: ...
    def record_outcome(self, tenant: str, experiment: str, variant: str, conversation: str, outcome: dict) -> None: ...
    def outcomes(self, tenant: str, experiment: str) -> list[dict]: ...
    def ping(self) -> bool: ...


def usage_beside(store: LibraryStore) -> UsageStore:
    """The usage store kept where this library store keeps the library: its SQLite file (the same connection)
    or its Redis (the same client)."""
    if isinstance(store, SqliteLibraryStore):
        return SqliteUsageStore(store.file)
    if isinstance(store, RedisLibraryStore):
        return RedisUsageStore(store.redis, store.prefix)
    raise TypeError(f"no usage store beside a {type(store).__name__}; pass one")


class SqliteUsageStore:
    """Usage and experiments in the library's SQLite file."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS usage (tenant TEXT, phrasing_id TEXT, action TEXT, cue TEXT, queue TEXT,
        channel TEXT, count INTEGER NOT NULL, PRIMARY KEY (tenant, phrasing_id, action, cue, queue, channel));
    CREATE TABLE IF NOT EXISTS experiments (tenant TEXT, id TEXT, data TEXT NOT NULL, PRIMARY KEY (tenant, id));
    CREATE TABLE IF NOT EXISTS exposures (seq INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT, experiment TEXT,
        variant TEXT, conversation TEXT, at REAL);
    CREATE TABLE IF NOT EXISTS outcomes (tenant TEXT, experiment TEXT, conversation TEXT, variant TEXT,
        data TEXT NOT NULL, PRIMARY KEY (tenant, experiment, conversation));
    """

    unavailable_errors = (sqlite3.OperationalError,)  # full disk, I/O error, locked past the timeout

    def __init__(self, where: Path | SqliteFile) -> None:
        """A path, or the library store's open file: sharing its connection and lock, a count waits for a bulk
        commit on that lock, never in SQLite's busy wait."""
        self.file = where if isinstance(where, SqliteFile) else SqliteFile(where)
        with self.file.lock:
            self.file.db.executescript(self.SCHEMA)

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self.file.rows(sql, args)

    @unavailable_on_store_errors
    def count_usage(self, tenant: str, phrasing_id: str, action: str, cue: str, queue: str, channel: str) -> None:
        self._rows("INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT DO UPDATE SET count = count + 1",
                   (tenant, phrasing_id, action, cue, queue, channel))

    def usage(self, tenant: str) -> list[dict[str, Any]]:
        rows = self._rows("SELECT phrasing_id, action, cue, queue, channel, count FROM usage WHERE tenant = ?",
                          (tenant,))
        return [dict(zip(("phrasing_id", "action", "cue", "queue", "channel", "count"), r)) for r in rows]

    @unavailable_on_store_errors
    def put_experiment(self, tenant: str, experiment: dict) -> None:
        self._rows("INSERT OR REPLACE INTO experiments VALUES (?, ?, ?)",
                   (tenant, experiment["id"], json.dumps(experiment)))

    def experiments(self, tenant: str) -> dict[str, dict]:
        return {i: json.loads(d) for i, d in self._rows("SELECT id, data FROM experiments WHERE tenant = ?", (tenant,))}

    def experiment(self, tenant: str, experiment_id: str) -> dict | None:
        rows = self._rows("SELECT data FROM experiments WHERE tenant = ? AND id = ?", (tenant, experiment_id))
        return json.loads(rows[0][0]) if rows else None

    def experiment_count(self, tenant: str) -> int:
        return self._rows("SELECT COUNT(*) FROM experiments WHERE tenant = ?", (tenant,))[0][0]

    @unavailable_on_store_errors
    def log_exposure(self, tenant: str, experiment: str, variant: str, conversation: str) -> None:
        self._rows("INSERT INTO exposures (tenant, experiment, variant, conversation, at) VALUES (?, ?, ?, ?, ?)",
                   (tenant, experiment, variant, conversation, time.time()))

    def exposures(self, tenant: str, experiment: str) -> list[dict]:
        rows = self._rows("SELECT variant, conversation, at FROM exposures WHERE tenant = ? AND experiment = ? "
                          "ORDER BY seq", (tenant, experiment))
        return [{"variant": v, "conversation": c, "at": at} for v, c, at in rows]

    def exposure_count(self, tenant: str, experiment: str) -> int:
        return self._rows("SELECT COUNT(*) FROM exposures WHERE tenant = ? AND experiment = ?",
                          (tenant, experiment))[0][0]

    @unavailable_on_store_errors
    def record_outcome(self, tenant: str, experiment: str, variant: str, conversation: str, outcome: dict) -> None:
        self._rows("INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?, ?)",
                   (tenant, experiment, conversation, variant, json.dumps(outcome)))

    def outcomes(self, tenant: str, experiment: str) -> list[dict]:
        rows = self._rows("SELECT variant, conversation, data FROM outcomes WHERE tenant = ? AND experiment = ?",
                          (tenant, experiment))
        return [{"variant": v, "conversation": c, **json.loads(d)} for v, c, d in rows]

    def ping(self) -> bool:
        return bool(self._rows("SELECT 1"))


class RedisUsageStore(RedisLibraryKeys):
    """Usage and experiments in Redis, under the library's keys (`{prefix}:lib:{tenant}:usage`, ...); built from a
    URL or from the library store's client."""

    @unavailable_on_store_errors
    def count_usage(self, tenant: str, phrasing_id: str, action: str, cue: str, queue: str, channel: str) -> None:
        self.redis.hincrby(self.key(tenant, "usage"), "\t".join((phrasing_id, action, cue, queue, channel)), 1)

    @unavailable_on_store_errors
    def usage(self, tenant: str) -> list[dict[str, Any]]:
        out = []
        for field, count in self.redis.hgetall(self.key(tenant, "usage")).items():
            values = field.split("\t")
            out.append({**dict(zip(("phrasing_id", "action", "cue", "queue", "channel"), values)), "count": int(count)})
        return out

    @unavailable_on_store_errors
    def put_experiment(self, tenant: str, experiment: dict) -> None:
        self.redis.hset(self.key(tenant, "experiments"), experiment["id"], json.dumps(experiment))

    @unavailable_on_store_errors
    def experiments(self, tenant: str) -> dict[str, dict]:
        return {i: json.loads(d) for i, d in self.redis.hgetall(self.key(tenant, "experiments")).items()}

    @unavailable_on_store_errors
    def experiment(self, tenant: str, experiment_id: str) -> dict | None:
        data = self.redis.hget(self.key(tenant, "experiments"), experiment_id)
        return json.loads(data) if data else None

    @unavailable_on_store_errors
    def experiment_count(self, tenant: str) -> int:
        return int(self.redis.hlen(self.key(tenant, "experiments")))

    @unavailable_on_store_errors
    def log_exposure(self, tenant: str, experiment: str, variant: str, conversation: str) -> None:
        self.redis.xadd(self.key(tenant, "exposures", experiment),
                        {"variant": variant, "conversation": conversation, "at": time.time()})

    @unavailable_on_store_errors
    def exposures(self, tenant: str, experiment: str) -> list[dict]:
        return [{"variant": f["variant"], "conversation": f["conversation"], "at": float(f["at"])}
                for _, f in self.redis.xrange(self.key(tenant, "exposures", experiment))]

    @unavailable_on_store_errors
    def exposure_count(self, tenant: str, experiment: str) -> int:
        return int(self.redis.xlen(self.key(tenant, "exposures", experiment)))

    @unavailable_on_store_errors
    def record_outcome(self, tenant: str, experiment: str, variant: str, conversation: str, outcome: dict) -> None:
        self.redis.hset(self.key(tenant, "outcomes", experiment), conversation,
                        json.dumps({"variant": variant, **outcome}))

    @unavailable_on_store_errors
    def outcomes(self, tenant: str, experiment: str) -> list[dict]:
        return [{"conversation": c, **json.loads(d)}
                for c, d in self.redis.hgetall(self.key(tenant, "outcomes", experiment)).items()]
