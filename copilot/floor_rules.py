"""Each tenant's floor alert rules: kept in the library's SQLite file (embedded) or its Redis (scale-out), and read
through a short cache, because every snippet checks them. A change reaches every worker within `fresh_s`."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from copilot.errors import StoreUnavailable
from copilot.floor import check_rules
from copilot.library.store import SqliteFile, redis_client
from copilot.settings import Settings

Rules = dict[str, dict[str, Any]]


class RulesStore(Protocol):
    def get(self, tenant: str) -> Rules | None: ...
    def put(self, tenant: str, rules: Rules) -> None: ...


class SqliteRules:
    """Rules in a table of the library's SQLite file."""

    def __init__(self, file: SqliteFile) -> None:
        self.file = file
        self.file.rows("CREATE TABLE IF NOT EXISTS floor_rules (tenant TEXT PRIMARY KEY, data TEXT NOT NULL)")

    def get(self, tenant: str) -> Rules | None:
        found = self.file.rows("SELECT data FROM floor_rules WHERE tenant = ?", (tenant,))
        return json.loads(found[0][0]) if found else None

    def put(self, tenant: str, rules: Rules) -> None:
        self.file.rows("INSERT INTO floor_rules VALUES (?, ?) ON CONFLICT DO UPDATE SET data = excluded.data",
                       (tenant, json.dumps(rules)))


class RedisRules:
    """Rules as one JSON string per tenant in the shared Redis."""

    def __init__(self, url: str, prefix: str = "copilot") -> None:
        self.redis, self.prefix = redis_client(url), prefix

    def key(self, tenant: str) -> str:
        return f"{self.prefix}:floor-rules:{tenant}"

    def get(self, tenant: str) -> Rules | None:
        data = self.redis.get(self.key(tenant))
        return json.loads(data) if data else None

    def put(self, tenant: str, rules: Rules) -> None:
        self.redis.set(self.key(tenant), json.dumps(rules))


class FloorRules:
    """A tenant's rules (the defaults until a lead changes them), cached for `fresh_s`. A store that cannot be
    read keeps the last rules it gave (or the defaults): alerts must not stop because the store hiccups."""

    def __init__(self, store: RulesStore, fresh_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 store_errors: tuple[type[BaseException], ...] = (OSError,)) -> None:
        self.store, self.fresh_s, self.clock, self.store_errors = store, fresh_s, clock, store_errors
        self.cache: dict[str, tuple[float, Rules]] = {}
        self.lock = threading.Lock()

    def of(self, tenant: str) -> Rules:
        """The tenant's rules, at most fresh_s old."""
        now = self.clock()
        cached = self.cache.get(tenant)
        if cached is not None and now - cached[0] < self.fresh_s:
            return cached[1]
        try:
            stored = self.store.get(tenant)
            rules = check_rules(stored or {})
        except self.store_errors:
            rules = cached[1] if cached else check_rules({})
        with self.lock:
            self.cache[tenant] = (now, rules)
        return rules

    def change(self, tenant: str, change: Any) -> Rules:
        """Merge `change` onto the tenant's rules and store them (InvalidPayload for a bad rule, store_unavailable
        when the store refuses)."""
        try:
            current = self.store.get(tenant)
            rules = check_rules(change, check_rules(current or {}))
            self.store.put(tenant, rules)
        except self.store_errors as error:
            raise StoreUnavailable(f"the rules store cannot be written ({error}); nothing was changed") from None
        with self.lock:
            self.cache[tenant] = (self.clock(), rules)
        return rules


def open_floor_rules(settings: Settings) -> FloorRules:
    """The rules beside the library: its Redis (REDIS_URL) or its SQLite file."""
    if settings.redis_url:
        import redis

        return FloorRules(RedisRules(settings.redis_url), store_errors=(redis.RedisError,))
    import sqlite3

    return FloorRules(SqliteRules(SqliteFile(settings.library_db)), store_errors=(sqlite3.Error,))
