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
import uuid
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
    """One event as a JSON line, stamped with a unique id (what makes the analytics loader idempotent) and the
    time it was logged."""
    return json.dumps({"id": uuid.uuid4().hex, "at": time.time(), **event}, ensure_ascii=False)


def stream_append(pipe: Any, stream: str, events: list[dict[str, Any]], max_entries: int) -> None:
    """Queue the events on a Redis pipeline. MAXLEN (approximate, so cheap) is only a guard for Redis's memory
    should the analytics loader stop: the loader trims the stream behind itself (EventStream.trim_behind), and
    counts what a guard's trim took before it was read."""
    for event in events:
        pipe.xadd(stream, {"event": encode_event(event)}, maxlen=max_entries, approximate=True)


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
        self.erasing = threading.Lock()
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

    def erase(self, match: Callable[[dict[str, Any]], bool], needles: tuple[str, ...],
              swap: Callable[[Callable[[], None], list[tuple[int, int]]], None] | None = None,
              scan: Callable[..., Any] = run_here, ordered: bool = False) -> int:
        """Rewrite the log without the lines whose event `match`es (each line holding every one of `needles`
        first, so others are never parsed; with `ordered` only the leading run of them, as retention cuts by
        time, and the rest is copied unparsed); returns how many went. Most of the copy runs through `scan` while
        appends go on; the lines appended meanwhile are copied under the lock, then the new file replaces the old.
        `swap(replace, removed)` calls replace() (a reader of offsets, the analytics loader, shifts its own by
        the removed (offset, length) spans around it)."""
        spare = self.path.with_name(self.path.name + ".erasing")
        with self.erasing:  # one erasure at a time: they share the spare file
            os.close(os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640))
            copied, removed, kept = scan(copy_without, self.path, spare, 0, match, needles, True, ordered)
            if ordered and kept:
                match = keep_all  # the run of old lines has ended: what is appended meanwhile is new
            with self.lock:
                self.offload(self._replace, spare, copied, removed, match, needles, swap)
        return len(removed)

    def _replace(self, spare: Path, copied: int, removed: list[tuple[int, int]],
                 match: Callable[[dict[str, Any]], bool], needles: tuple[str, ...],
                 swap: Callable[[Callable[[], None], list[tuple[int, int]]], None] | None) -> None:
        removed.extend(copy_without(self.path, spare, copied, match, needles, False)[1])  # appended since the scan
        if not removed:  # nothing to take out: the log stays as it is
            spare.unlink()
            return

        def replace() -> None:
            os.replace(spare, self.path)
            old, self.fd = self.fd, os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            os.close(old)
        (swap or (lambda replace, removed: replace()))(replace, removed)


def copy_without(path: Path, spare: Path, start: int, match: Callable[[dict[str, Any]], bool],
                 needles: tuple[str, ...], whole_lines: bool,
                 ordered: bool = False) -> tuple[int, list[tuple[int, int]], bool]:
    """Append to `spare` the lines of `path` from byte `start` on, less those whose event matches; synced. With
    `whole_lines` a last line without its newline (an append under way) is left for later; with `ordered`
    matching stops at the first line kept. Returns the offset copied up to, the (offset, length) of each line
    left out, and whether a line was kept."""
    marks = tuple(n.encode() for n in needles)
    removed, offset, kept = [], start, False
    with path.open("rb") as source, spare.open("ab") as out:
        source.seek(start)
        for line in source:
            if whole_lines and not line.endswith(b"\n"):
                break
            if not (ordered and kept) and all(m in line for m in marks) and line.endswith(b"\n") \
                    and matches(line, match):
                removed.append((offset, len(line)))
            else:
                out.write(line)
                kept = True
            offset += len(line)
        out.flush()
        sync_data(out.fileno())
    return offset, removed, kept


def keep_all(event: dict[str, Any]) -> bool:
    return False


def matches(line: bytes, match: Callable[[dict[str, Any]], bool]) -> bool:
    try:
        event = json.loads(line)
    except ValueError:
        return False
    return isinstance(event, dict) and match(event)


def shifted(position: int, removed: list[tuple[int, int]]) -> int:
    """A byte offset of the log once the removed (offset, length) lines are gone."""
    return position - sum(length for offset, length in removed if offset < position)
