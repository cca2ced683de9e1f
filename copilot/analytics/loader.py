"""The loader: moves logged events into the analytics store, at least once and idempotent by event id.

A source hands out a batch and the position after it; the store commits both in one transaction, so a loader
killed mid-batch resumes where the last commit left it and a repeated event is ignored by its id. Sources: the
embedded file log (position = byte offset) and the Redis stream (a consumer group; acknowledged, then trimmed
behind, once committed).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from copilot.errors import CopilotError

log = logging.getLogger("copilot.analytics")

READ_CHUNK = 1 << 20
EXACT_LAG_BYTES = 8 << 20  # beyond this much unread log the lag in events is estimated from the line length


def event_of(line: bytes | str, where: str) -> dict[str, Any] | None:
    """One logged event, or None for a torn or foreign line. A line logged before events had ids gets one made
    from where it lies, so a reload finds the same id."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("tenant"), str) or "type" not in event:
        return None
    if not isinstance(event.get("id"), str):
        event["id"] = hashlib.md5(f"{where}:".encode() + (line if isinstance(line, bytes) else line.encode()),
                                  usedforsecurity=False).hexdigest()
    if not isinstance(event.get("at"), (int, float)):
        event["at"] = 0.0
    return event


class Source(Protocol):
    name: str  # the key of its position in the store

    def read(self, position: str | None, limit: int) -> tuple[list[dict[str, Any]], str]: ...
    def committed(self) -> None: ...
    def backlog(self, position: str) -> tuple[int, float | None]: ...


class FileSource:
    """The embedded event log, read as complete lines from the byte offset the store holds; a last line without
    its newline (an append under way) waits for the next read."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path.resolve()}"  # one store may serve several instances' logs (PostgreSQL)
        self.line_bytes = 500.0  # the running mean length of a line, for the lag past EXACT_LAG_BYTES

    def read(self, position: str | None, limit: int) -> tuple[list[dict[str, Any]], str]:
        offset = int(position or 0)
        events: list[dict[str, Any]] = []
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return events, str(offset)
        with handle:
            handle.seek(offset)
            rest = b""
            while len(events) < limit:
                chunk = handle.read(READ_CHUNK)
                if not chunk:
                    break
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    if len(events) >= limit:
                        break
                    event = event_of(line, str(offset)) if line else None
                    offset += len(line) + 1
                    if event is not None:
                        events.append(event)
                else:
                    continue
                break
        return events, str(offset)

    def committed(self) -> None:
        """Nothing to do: the offset is committed with the batch."""

    def backlog(self, position: str) -> tuple[int, float | None]:
        """Unread lines after `position`, and when the first of them was logged."""
        offset = int(position or 0)
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return 0, None
        if size <= offset:
            return 0, None
        with self.path.open("rb") as handle:
            handle.seek(offset)
            first = handle.readline()
            if size - offset > EXACT_LAG_BYTES:
                count = max(1, round((size - offset) / self.line_bytes))
            else:
                rest = handle.read()
                count = first.endswith(b"\n") + rest.count(b"\n")
                if count:
                    self.line_bytes = (size - offset) / count
        event = event_of(first, str(offset))
        return count, (event or {}).get("at")


class StreamSource:
    """The Redis stream through a consumer group. An entry is acknowledged once the store has committed it, then
    the stream is trimmed behind the group; entries a dead consumer was delivered are claimed (at once for a
    dead process of this host, after claim_idle_ms for another host's)."""

    def __init__(self, events: Any, consumer: str | None = None, claim_idle_ms: int = 60_000) -> None:
        self.events = events  # conversation_store.EventStream, made in the loader's thread
        self.name = f"stream:{events.stream}"
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.claim_idle_ms = claim_idle_ms
        self.delivered: list[str] = []
        self.recovered = False
        self.unknown_gap: str | None = None
        self.lost: Callable[[int], None] = lambda count: None

    def read(self, position: str | None, limit: int) -> tuple[list[dict[str, Any]], str]:
        if not self.recovered:
            self.events.join()
            self._claim_from_the_dead()
            self.recovered = True
        self._count_lost()
        entries = self.events.read(self.consumer, limit, pending=True)  # ours from an earlier, failed batch
        if not entries:
            entries = self.events.claim(self.consumer, self.claim_idle_ms, limit)
        if not entries:
            entries = self.events.read(self.consumer, limit)
        self.delivered = [entry_id for entry_id, _ in entries]
        events = [e for e in (event_of(data, entry_id) for entry_id, data in entries if data) if e is not None]
        return events, (self.delivered[-1] if self.delivered else position or "0-0")

    def committed(self) -> None:
        """Acknowledge what the store now holds, and trim the stream behind the group."""
        self.events.ack(self.delivered)
        self.delivered = []
        self.events.trim_behind()

    def backlog(self, position: str) -> tuple[int, float | None]:
        return self.events.backlog()

    def _claim_from_the_dead(self) -> None:
        host = socket.gethostname()
        for consumer in self.events.consumers():
            name = consumer["name"]
            pid = name[len(host) + 1:] if name.startswith(f"{host}-") else ""
            if name != self.consumer and pid.isdigit() and not alive(int(pid)):
                taken = self.events.claim_from(name, self.consumer)
                log.info("analytics loader: took over %d unacknowledged entries of %s, which is gone", taken, name)

    def _count_lost(self) -> None:
        gap = self.events.lost()
        if gap is None or (gap[1] is None and gap[0] == self.unknown_gap):
            return  # a gap of unknown size is told once
        if gap[1] is None:
            self.unknown_gap = gap[0]
        count = gap[1]
        log.error("analytics loader: the event stream was trimmed past entries it had not read (%s of them); "
                  "they are not in the analytics store. Raise COPILOT_EVENT_MAX_ENTRIES or keep the loader running",
                  "an unknown number" if count is None else count)
        if count:
            self.lost(count)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Loader:
    """Moves batches from a source into the store. `lock` (a native lock) is held around each batch: whoever
    moves the source's positions (the file log's erasure) takes it too."""

    def __init__(self, store: Any, source: Source, batch: int = 5000, metrics: Any = None,
                 lock: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.store, self.source, self.batch, self.metrics, self.clock = store, source, batch, metrics, clock
        self.lock = lock or threading.Lock()
        if metrics is not None and isinstance(source, StreamSource):
            source.lost = metrics.analytics_lost.inc

    def run_once(self) -> int:
        """Load one batch; returns how many of its events were new to the store (0 when caught up)."""
        return self.batch_once()[1]

    def run(self, stop: threading.Event, interval_s: float, also: Callable[[], None] | None = None) -> None:
        """Load until `stop` is set, pausing interval_s whenever caught up; a failing batch is counted, logged and
        retried after a longer pause. `also()` runs between batches (the hourly retention purge)."""
        failures = 0
        while not stop.is_set():
            try:
                if also is not None:
                    also()
                full = self.batch_once()[0] >= self.batch
                failures = 0
            except Exception as error:  # noqa: BLE001 - the loader must outlive a store or Redis outage
                if stop.is_set():  # the stop interrupted it (DuckDB's "Interrupted!"): redone at the next start
                    return
                failures += 1
                if self.metrics is not None:
                    self.metrics.analytics_errors.inc()
                if failures == 1 or failures % 60 == 0:  # an outage is one line; anything else, its traceback
                    log.warning("analytics loader: a batch failed (%d in a row; %s); retrying", failures, error,
                                exc_info=not isinstance(error, CopilotError))
                full = False
            if not full:
                stop.wait(interval_s * min(failures + 1, 30))

    def batch_once(self) -> tuple[int, int]:
        """Read, load and commit one batch under the lock: (events read, at least 1 if it moved on; events new
        to the store)."""
        with self.lock:
            position = self.store.position(self.source.name)
            events, after = self.source.read(position, self.batch)
            loaded = 0
            moved = bool(events) or after != position  # a batch of only torn or foreign entries moves on too
            if moved:
                loaded = self.store.load(dedupe(events), self.source.name, after)
                self.source.committed()
                if self.metrics is not None:
                    self.metrics.analytics_loaded.inc(loaded)
            self._gauge(after)
            return max(len(events), int(moved)), loaded

    def _gauge(self, position: str) -> None:
        if self.metrics is None:
            return
        waiting, oldest = self.source.backlog(position)
        self.metrics.analytics_lag_events.set(waiting)
        self.metrics.analytics_lag_seconds.set(max(0.0, self.clock() - oldest) if waiting and oldest else 0.0)


def dedupe(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The batch with each id once (a stream entry claimed twice, a line copied by hand)."""
    seen: dict[str, dict[str, Any]] = {}
    for event in events:
        seen.setdefault(event["id"], event)
    return list(seen.values())
