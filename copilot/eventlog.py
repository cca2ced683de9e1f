"""The event log: every conversation event, for joining outcomes such as CSAT later.

A Redis Stream with Redis, a local append-only JSON-lines file otherwise. Texts arrive here already redacted
(or absent); this module never sees raw transcript.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Protocol

STREAM_MAXLEN = 1_000_000


def encode_event(event: dict[str, Any]) -> str:
    """One event as a JSON line, stamped with the time it was logged."""
    return json.dumps({"at": time.time(), **event}, ensure_ascii=False)


class EventLog(Protocol):
    def append(self, event: dict[str, Any]) -> None: ...
    def read(self, limit: int = 1000) -> list[dict[str, Any]]: ...


class FileEventLog:
    """Append-only JSON lines; each write is flushed so an acknowledged event survives a crash of this process."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.handle = self.path.open("a", encoding="utf-8")

    def append(self, event: dict[str, Any]) -> None:
        line = encode_event(event)
        with self.lock:
            self.handle.write(line + "\n")
            self.handle.flush()

    def read(self, limit: int = 1000) -> list[dict[str, Any]]:
        with self.lock:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines[-limit:]]


class RedisEventLog:
    """A capped Redis Stream shared by every worker."""

    def __init__(self, url: str, stream: str = "copilot:events") -> None:
        import redis

        self.redis = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2, retry_on_timeout=True)
        self.stream = stream

    def append(self, event: dict[str, Any]) -> None:
        self.redis.xadd(self.stream, {"event": encode_event(event)}, maxlen=STREAM_MAXLEN, approximate=True)

    def read(self, limit: int = 1000) -> list[dict[str, Any]]:
        entries = self.redis.xrevrange(self.stream, count=limit)
        return [json.loads(fields["event"]) for _, fields in reversed(entries)]
