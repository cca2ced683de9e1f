"""Socket.IO transport, namespace /floor: a team lead's live board. Leads and admins only, their tenant's
conversations only. Thin handlers as on /copilot (the same rate limits, error answers and session guard), and the
FloorFeed that turns every worker's board changes into a few batched diffs a second.

Scale-out: every emit goes through Socket.IO's message queue (Redis pub/sub with REDIS_URL), so a lead on one worker
sees the changes of conversations served by every other; a snapshot is read from the shared conversation state.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from flask import Flask, request
from flask_socketio import SocketIO, join_room, leave_room

from copilot.floor import BoardChange
from copilot.floor_service import FloorReply, FloorService
from copilot.metrics import Metrics
from copilot.protocol import FLOOR_EVENTS
from copilot.realtime import NAMESPACE as COPILOT
from copilot.realtime import (
    Connections,
    admit_connection,
    answer_errors,
    event_handler,
    joined,
    refresher,
    refuse_unknown_events,
)
from copilot.security import Identity, Tokens
from copilot.settings import Settings

NAMESPACE = "/floor"
MIN_GAP_S = 1.0  # a conversation's row goes to the leads at most once a second
TICK_S = 0.25  # how often the feed looks for rows due: a few messages a second to each lead, not one per snippet
SNAPSHOT_ROWS = 250  # rows in a floor.watch answer; the rest of a snapshot follows in floor.diff messages this size
log = logging.getLogger("copilot.floor")


def floor_room(tenant: str, queue: str = "") -> str:
    """The room of a tenant's leads watching every queue, or watching one queue."""
    return f"floor/{tenant}" if not queue else f"floor/{tenant}/q/{queue}"


def urgency(row: dict[str, Any]) -> tuple[int, int, int, int]:
    """What makes a row skip the once-a-second wait when any of it rises: crisis, abuse, an escalation request,
    the triage level."""
    return (row["risk"][0], row["risk"][1], row["risk"][2], row["triage_level"])


class Batches:
    """The rows waiting to go to the leads (pure, with its clock): the latest row of each conversation that
    changed, sent at most once every `min_gap_s`, unless its urgency rose since the row last sent (a crisis goes
    at once); a just-started conversation's row does not hold back its first turn, and an ended conversation's
    removal goes at once."""

    def __init__(self, min_gap_s: float = MIN_GAP_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_gap_s, self.clock = min_gap_s, clock
        self.waiting: dict[tuple[str, str], tuple[str, dict[str, Any] | None]] = {}  # (tenant, id) -> (queue, row)
        self.sent: dict[tuple[str, str], tuple[float, tuple[int, ...]]] = {}  # -> (when, urgency) last sent
        self.lock = threading.Lock()

    def add(self, change: BoardChange) -> None:
        """Keep the change's row (or removal) as the one to send for its conversation."""
        with self.lock:
            self.waiting[change.tenant, change.conversation_id] = (change.queue,
                                                                   None if change.removed else change.row)

    def _may_go(self, key: tuple[str, str], row: dict[str, Any], now: float) -> bool:
        last = self.sent.get(key)
        if last is None or now - last[0] >= self.min_gap_s:
            return True
        return any(new > old for new, old in zip(urgency(row), last[1]))

    def due(self) -> dict[str, dict[str, tuple[list[dict[str, Any]], list[str]]]]:
        """Take what may go now: tenant -> queue -> (rows, removed conversation ids)."""
        now = self.clock()
        out: dict[str, dict[str, tuple[list[dict[str, Any]], list[str]]]] = {}
        with self.lock:
            for key, (queue, row) in list(self.waiting.items()):
                if row is not None and not self._may_go(key, row, now):
                    continue
                del self.waiting[key]
                rows, removed = out.setdefault(key[0], {}).setdefault(queue, ([], []))
                if row is None:
                    removed.append(key[1])
                    self.sent.pop(key, None)
                else:
                    rows.append(row)
                    if row["customer_turns"] or row["agent_turns"]:  # a start's row leaves the first turn free
                        self.sent[key] = (now, urgency(row))
            if len(self.sent) > 20_000:  # conversations that went idle and expired without an end
                self.sent = {k: v for k, v in self.sent.items() if now - v[0] < self.min_gap_s}
        return out

    def __len__(self) -> int:
        return len(self.waiting)


class FloorFeed:
    """Shares board changes with the leads: alerts and raised hands at once, rows batched (Batches) into one
    `floor.diff` per room every TICK_S. Without a message queue, a tenant with no lead watching on this worker is
    skipped; with one, every change is published, because a lead may be watching on another worker."""

    def __init__(self, metrics: Metrics | None = None, min_gap_s: float = MIN_GAP_S, tick_s: float = TICK_S) -> None:
        self.metrics = metrics or Metrics()
        self.batches = Batches(min_gap_s)
        self.tick_s = tick_s
        self.socketio: SocketIO | None = None
        self.shared = False
        self.watchers: Counter[str] = Counter()  # tenant -> leads watching on this worker
        self.rooms: Counter[str] = Counter()  # room -> leads watching it on this worker
        self.watching: dict[str, tuple[str, str]] = {}  # lead's sid -> (tenant, room)
        self.task = None
        self.lock = threading.Lock()

    def attach(self, socketio: SocketIO, shared: bool) -> None:
        """Start sending through this server (its message queue when `shared`)."""
        self.socketio, self.shared = socketio, shared

    def watch(self, sid: str, tenant: str, room: str) -> None:
        """A lead's connection now watches this room (it leaves any room it watched before)."""
        with self.lock:
            before = self.watching.pop(sid, None)
            if before is not None:
                self._forget(*before)
                leave_room(before[1])
            join_room(room)
            self.watching[sid] = (tenant, room)
            self.watchers[tenant] += 1
            self.rooms[room] += 1

    def unwatch(self, sid: str) -> None:
        with self.lock:
            before = self.watching.pop(sid, None)
            if before is not None:
                self._forget(*before)

    def _forget(self, tenant: str, room: str) -> None:
        for counts, key in ((self.watchers, tenant), (self.rooms, room)):
            counts[key] -= 1
            if counts[key] <= 0:
                del counts[key]

    def publish(self, change: BoardChange) -> None:
        """Take one event's board change (called on the event's own task, after its emits)."""
        if self.socketio is None or not (self.shared or change.tenant in self.watchers):
            return
        self.batches.add(change)
        for alert in change.alerts:
            self._emit("floor.alert", alert, change.tenant, change.queue)
        if change.hand is not None:
            self._emit("floor.hand", change.hand, change.tenant, change.queue)
        with self.lock:
            if self.task is None:
                self.task = self.socketio.start_background_task(self._run)

    def _emit(self, event: str, payload: dict[str, Any], tenant: str, queue: str) -> None:
        """To every lead of the tenant: those watching all queues, and those watching this one."""
        rooms = [floor_room(tenant)] + ([floor_room(tenant, queue)] if queue else [])
        self.socketio.emit(event, payload, to=rooms if len(rooms) > 1 else rooms[0], namespace=NAMESPACE)
        self.metrics.floor.labels(event.removeprefix("floor.")).inc()

    def watched(self, room: str) -> bool:
        """Whether a floor.diff to `room` may reach anyone: a lead of this worker watches it, or another worker's
        lead may (with a message queue, this worker cannot know)."""
        return self.shared or room in self.rooms

    def flush(self) -> int:
        """Send every row that is due, one floor.diff per room that may be watched; the number of rows sent."""
        sent, now = 0, time.time()
        for tenant, queues in self.batches.due().items():
            every_row, every_removed, diffs = [], [], 0
            for queue, (rows, removed) in queues.items():
                every_row.extend(rows)
                every_removed.extend(removed)
                if queue and self.watched(floor_room(tenant, queue)):
                    self.socketio.emit("floor.diff", {"rows": rows, "removed": removed, "at": now},
                                       to=floor_room(tenant, queue), namespace=NAMESPACE)
                    diffs += 1
            if self.watched(floor_room(tenant)):
                self.socketio.emit("floor.diff", {"rows": every_row, "removed": every_removed, "at": now},
                                   to=floor_room(tenant), namespace=NAMESPACE)
                diffs += 1
            sent += len(every_row) + len(every_removed)
            self.metrics.floor.labels("diff").inc(diffs)
            self.metrics.floor.labels("row").inc(len(every_row))
        return sent

    def _run(self) -> None:
        """The feed's one task: flush every tick while anything waits; it ends when nothing has for a while, and
        publish starts it again."""
        idle = 0
        while True:
            self.socketio.sleep(self.tick_s)
            try:
                sent = self.flush()
            except Exception:  # noqa: BLE001 - a failed send must not stop the floor for good
                log.exception("sending the floor's diffs failed; the next tick tries again")
                sent = 0
            idle = 0 if sent or len(self.batches) else idle + 1
            if idle >= 50:
                with self.lock:
                    if not len(self.batches):
                        self.task = None
                        return


class SnapshotRest:
    """Sends the rows of a large snapshot past the first SNAPSHOT_ROWS as floor.diff messages of that size, with a
    pause between them: 2,000 rows in one message held every agent's highlights for a quarter of a second per
    lead. Leads who got the same snapshot (one build, shared) get each message from one emit, encoded once."""

    GATHER_S = 0.05  # how long a send waits for other leads of the same build to join it
    PAUSE_S = 0.02  # between messages, so that snippets are handled in between

    def __init__(self, socketio: SocketIO) -> None:
        self.socketio = socketio
        self.open: dict[int, list[str]] = {}  # id of a snapshot -> the leads' sids its send will reach
        self.lock = threading.Lock()

    def send(self, sid: str, snapshot: dict[str, Any]) -> None:
        """Send the rest of `snapshot` to this lead, with any other lead of the same build."""
        with self.lock:
            sids = self.open.get(id(snapshot))
            if sids is not None:
                sids.append(sid)
                return
            self.open[id(snapshot)] = [sid]
        self.socketio.start_background_task(self._run, snapshot)

    def _run(self, snapshot: dict[str, Any]) -> None:
        self.socketio.sleep(self.GATHER_S)
        with self.lock:
            sids = self.open.pop(id(snapshot))
        rows = snapshot["rows"][SNAPSHOT_ROWS:]
        for start in range(0, len(rows), SNAPSHOT_ROWS):
            self.socketio.emit("floor.diff", {"rows": rows[start:start + SNAPSHOT_ROWS], "removed": [],
                                              "at": snapshot["at"]}, to=sids, namespace=NAMESPACE)
            self.socketio.sleep(self.PAUSE_S)


def register(socketio: SocketIO, service: FloorService, tokens: Tokens, metrics: Metrics,
             connections: Connections, feed: FloorFeed) -> None:
    """Attach the /floor handlers to a SocketIO server."""

    @socketio.on("connect", namespace=NAMESPACE)
    def connect(auth: Any = None) -> None:
        admit_connection(socketio, tokens, connections, metrics, NAMESPACE, auth, "lead")  # an agent's: forbidden

    @socketio.on("disconnect", namespace=NAMESPACE)
    def disconnect(*_: Any) -> None:
        feed.unwatch(request.sid)
        connections.remove(request.sid)
        joined(socketio, request.sid, False, NAMESPACE)

    def watch(who: Identity, payload: Any) -> dict:
        """floor.watch: join the room first, then read the snapshot, so that no change falls between the two."""
        queue = service.watching(who, payload)  # the role first: nothing joins the room without it
        feed.watch(request.sid, who.tenant, floor_room(who.tenant, queue))
        snapshot = service.snapshot(who, queue, since=service.clock())
        rows = snapshot["rows"]
        if len(rows) > SNAPSHOT_ROWS:
            rest.send(request.sid, snapshot)
        return {"ok": True, "queue": queue, "snapshot": {**snapshot, "rows": rows[:SNAPSHOT_ROWS]}}

    rest = SnapshotRest(socketio)

    def deliver(reply: FloorReply | dict) -> dict:
        if isinstance(reply, dict):
            return reply
        for event, payload in reply.to_agent:
            socketio.emit(event, payload, to=reply.agent_room, namespace=COPILOT)
        if reply.board is not None:
            feed.publish(reply.board)
        return reply.ack

    answer_errors(socketio, NAMESPACE, connections, metrics)
    refresh = refresher(tokens, connections, role="lead")
    methods: dict[str, Callable[[Identity, Any], Any] | None] = {
        "floor.watch": watch, "alert.claim": service.claim, "hand.answer": service.answer,
        "floor.whisper": service.whisper, "token.refresh": None}
    assert set(methods) == set(FLOOR_EVENTS)
    for name, method in methods.items():
        socketio.on_event(name, event_handler(connections, method, deliver, refresh), namespace=NAMESPACE)

    refuse_unknown_events(socketio, NAMESPACE, connections, deliver, refresh, "see the protocol in the README")


def init_app(app: Flask, socketio: SocketIO, settings: Settings, service: FloorService, tokens: Tokens,
             metrics: Metrics, feed: FloorFeed) -> None:
    """The /floor handlers on the app's Socket.IO server, with their own connections' rate limits, and the feed
    sending through it (app.extensions["copilot.floor"] is the service)."""
    connections = Connections.from_settings(settings)
    feed.attach(socketio, shared=bool(settings.redis_url))
    register(socketio, service, tokens, metrics, connections, feed)
    app.extensions["copilot.floor"] = service
