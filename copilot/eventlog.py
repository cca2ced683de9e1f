"""The event log: every conversation event, for joining outcomes such as CSAT later.

A Redis Stream with Redis, a local append-only JSON-lines file otherwise. Texts arrive here already redacted
(or absent); this module never sees raw transcript. An append is all of its lines or none of them: the stores
append before they publish a change, so a change is acknowledged only once its events are logged.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from copilot.concurrency import run_here

READ_BLOCK = 1 << 16
sync_data = getattr(os, "fdatasync", os.fsync)  # the data and the size; not the mtime, which nobody reads


def tenant_needle(tenant: str) -> str:
    """What every logged line of this tenant holds (encode_event's separators; a quote inside a text is escaped,
    so no text can fake it): a cheap test before a line is parsed."""
    return f'"tenant": {json.dumps(tenant)}'


def encode_event(event: dict[str, Any]) -> str:
    """One event as a JSON line, stamped with the time it was logged."""
    return json.dumps({"at": time.time(), **event}, ensure_ascii=False)


def stream_append(pipe: Any, stream: str, events: list[dict[str, Any]], max_entries: int,
                  max_age_days: float) -> None:
    """Queue the events on a Redis pipeline, the stream bounded by count and by age (each trim approximate, so
    cheap). XADD takes one trim strategy, so the age goes in an XTRIM MINID of its own, once per append."""
    if not events:
        return
    for event in events:
        pipe.xadd(stream, {"event": encode_event(event)}, maxlen=max_entries, approximate=True)
    pipe.xtrim(stream, minid=int((time.time() - max_age_days * 86400) * 1000), approximate=True)


class EventLog(Protocol):
    def append(self, event: dict[str, Any]) -> None: ...
    def append_all(self, events: list[dict[str, Any]]) -> None: ...
    def read(self, limit: int = 1000, tenant: str | None = None) -> list[dict[str, Any]]: ...


class FileEventLog:
    """Append-only JSON lines. Each append is one write, synced to disk (fdatasync) before it returns; if the
    disk refuses part of it (ENOSPC, EFBIG, EIO) the part is cut off again and the OSError raised, so the file
    holds every line of an append or none. Should the cut fail too, the next append starts on a fresh line and
    read() skips the torn one. `offload(fn, *args)` runs the write and sync (create_app: a native thread, so a
    sync never holds up the event loop)."""

    def __init__(self, path: Path, offload: Callable[..., Any] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.offload = offload or run_here
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)  # no other user reads the log
        self.torn = self._ends_mid_line()  # a crash mid-write leaves a line without its newline

    def _ends_mid_line(self) -> bool:
        size = os.fstat(self.fd).st_size
        if size == 0:
            return False
        with self.path.open("rb") as handle:
            handle.seek(size - 1)
            return handle.read(1) != b"\n"

    def append(self, event: dict[str, Any]) -> None:
        self.append_all([event])

    def append_all(self, events: list[dict[str, Any]]) -> None:
        """Write these events' lines, all or none, and return once they are on disk."""
        if not events:
            return
        data = "".join(encode_event(event) + "\n" for event in events).encode()
        with self.lock:
            self.offload(self._write, b"\n" + data if self.torn else data)
            self.torn = False

    def _write(self, data: bytes) -> None:
        start = os.fstat(self.fd).st_size
        try:
            view = memoryview(data)
            while view:
                written = os.write(self.fd, view)
                if written == 0:
                    raise OSError("the event log accepted no bytes")
                view = view[written:]
            sync_data(self.fd)
        except OSError:
            try:
                os.ftruncate(self.fd, start)  # shrinking needs no space, so this works on a full disk
            except OSError:
                self.torn = True
            raise

    def read(self, limit: int = 1000, tenant: str | None = None) -> list[dict[str, Any]]:
        """The newest `limit` events, oldest first, read from the end of the file; torn lines are skipped. With
        `tenant`, only that tenant's events of those, the others never parsed."""
        size = os.fstat(self.fd).st_size
        chunks, newlines, end = [], 0, size
        with self.path.open("rb") as handle:
            while end > 0 and newlines <= limit:
                start = max(0, end - READ_BLOCK)
                handle.seek(start)
                chunks.append(handle.read(end - start))
                newlines += chunks[-1].count(b"\n")
                end = start
        lines = b"".join(reversed(chunks)).split(b"\n")
        if end > 0:
            lines = lines[1:]  # cut by the block's edge
        events = []
        needle = tenant_needle(tenant).encode() if tenant else None
        for line in lines:
            if needle is not None and needle not in line:
                continue
            try:
                event = json.loads(line)
            except ValueError:  # a torn line (or the empty one after the last newline)
                continue
            if isinstance(event, dict):
                events.append(event)
        return events[-limit:]

    def close(self) -> None:
        os.close(self.fd)

