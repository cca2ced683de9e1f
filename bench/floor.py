"""The live floor under load (issue #15): many live conversations, a few of them talking, with and without team
leads watching:

    python -m bench.floor [--conversations 2000] [--talking 150] [--leads 5] [--duration 30] [--repeats 2]
                          [--per-connection 10] [--idle-turns 2] [--warmup 10] [--redis]

One deployment: embedded (`python wsgi.py`), or with --redis two workers on a real Redis, the leads on worker A and
the conversations split across A and B. An agents process opens every conversation over a pool of agent
connections (each its own agent), gives the idle ones a short history, then replays the corpus in `talking` of
them (one customer and one agent snippet every 3 s each, as bench.load does) while the rest stay live on the
board. Phases alternate, `repeats` times: (a) no lead watching, (b) `leads` leads on /floor after floor.watch.
Per phase: the agents' send -> cue.highlight latency; in (b) the floor update latency (a final customer snippet's
send to the first floor.diff row of its conversation whose customer_turns has reached that turn, per lead), what
one lead receives (Socket.IO messages and bytes a second) and the floor.watch snapshot; the servers' CPU and RSS.
Loopback only, bounded in time. Writes bench/results/floor.json and floor.md.
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import math
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import psutil
import socketio

from bench.__main__ import RESULTS, SECRET, percentile, processes_of, rss_mb, server_seconds
from bench.load import read_corpus
from copilot.security import Tokens
from tests.servers import ROOT, RedisServer, ServerProcess

FLOOR_P99_TARGET_MS = 1000.0
HIGHLIGHT_P99_SLOWDOWN = 1.10  # the agents' p99 with leads watching, at most this times the p99 without
SETTLED_S = 5.0  # the "steady" figures leave out each phase's first seconds, where the leads' snapshots land
TAIL_S = 2.0  # leads listen this long after a phase for the rows of its last snippets; later counts as missed
SETTLE_S = 2.0  # between phases, so that leads connecting or leaving fall in no window
TOKEN_TTL_S = 24 * 3600


# The conversations' side: one asyncio process, python-socketio clients.

def assignment(conversations: int, per_connection: int) -> list[list[int]]:
    """The conversations (by number) each agent connection carries, dealt round robin, so that the talking ones
    (the lowest numbers) fall on different connections and no connection's events wait on another talker's."""
    connections = max(1, math.ceil(conversations / per_connection))
    return [list(range(j, conversations, connections)) for j in range(connections)]


class AgentLog:
    """What the agents saw, in wall-clock time so that the orchestrator can cut it into phases and join it with
    what the leads saw."""

    def __init__(self) -> None:
        self.highlights: list[tuple[float, float]] = []  # (sent at, send -> cue.highlight ms)
        self.sends: list[tuple[str, int, float, int]] = []  # final customer snippets: (conversation, turn, at, worker)
        self.errors: list[tuple[float, str]] = []  # refusals and failures: (at, code)
        self.connect_failures = 0
        self.started = {"idle": 0, "talking": 0}  # conversations started, by kind

    def error(self, code: str) -> None:
        self.errors.append((time.time(), code))

    def ack(self, ack: object) -> None:
        """Count a refused acknowledgment, by its error code."""
        if isinstance(ack, dict) and ack.get("ok"):
            return
        error = ack.get("error") if isinstance(ack, dict) else None
        self.error(error.get("code", "refused") if isinstance(error, dict) else "refused")


class AgentDesk:
    """One agent's connection, carrying several conversations: the idle ones are started (with a short history)
    and left live; each talking one replays corpus scripts back to back until told to stop."""

    def __init__(self, number: int, url: str, worker: int, slots: list[int], spec: dict, corpus: list[dict],
                 log: AgentLog) -> None:
        self.number, self.url, self.worker, self.spec, self.corpus, self.log = number, url, worker, spec, corpus, log
        self.idle = [s for s in slots if s >= spec["talking"]]
        self.talking = [s for s in slots if s < spec["talking"]]
        self.client = socketio.AsyncClient(reconnection=False)
        self.pending: dict[tuple[str, str], tuple[float, float]] = {}  # (conversation, snippet) -> perf, wall
        self.client.on("cue.highlight", self.on_highlight, namespace="/copilot")

    async def on_highlight(self, data: dict) -> None:
        sent = self.pending.pop((data.get("conversation_id"), data.get("snippet_id")), None)
        if sent is not None and data.get("final"):
            self.log.highlights.append((sent[1], (time.perf_counter() - sent[0]) * 1000))

    async def call(self, event: str, payload: dict) -> dict:
        ack = await self.client.call(event, payload, namespace="/copilot", timeout=60)
        self.log.ack(ack)
        return ack

    async def set_up(self) -> bool:
        """Connect as this desk's agent and start the idle conversations, each with `idle_turns` turns of a
        script (sent one after another, each waiting for its ack, so the setup paces itself)."""
        token = Tokens(SECRET).issue("bench", "agent", f"agent-{self.number:04d}", ttl_s=TOKEN_TTL_S)
        try:
            await self.client.connect(self.url, namespaces=["/copilot"], auth={"token": token},
                                      transports=["websocket"], wait_timeout=60)
        except Exception:  # noqa: BLE001 - counted, the run goes on
            self.log.connect_failures += 1
            return False
        try:
            for slot in self.idle:
                script = self.corpus[slot % len(self.corpus)]
                cid = f"idle-{slot}-{time.time_ns()}"
                if (await self.call("conversation.start", {"conversation_id": cid, "channel": script["channel"],
                                                           "queue": script["queue"]})).get("ok"):
                    self.log.started["idle"] += 1
                for number, turn in enumerate(script["turns"][:self.spec["idle_turns"]]):
                    await self.call("transcript.snippet", {"conversation_id": cid, "snippet_id": f"t{number}",
                                                           "speaker": turn["speaker"], "text": turn["text"][:4000],
                                                           "final": True})
        except Exception as error:  # noqa: BLE001 - a timed-out setup is a result; the desk still talks
            self.log.error(type(error).__name__)
        return True

    async def talk(self, slot: int, stop: asyncio.Event) -> None:
        """One talking conversation slot: scripts back to back, one turn every turn_interval, as bench.load."""
        interval = self.spec["turn_interval"]
        rng = random.Random(slot)
        await asyncio.sleep(rng.random() * interval * 2)  # spread the talkers over a pace period
        round_no = 0
        try:
            while not stop.is_set():
                script = self.corpus[(slot + round_no) % len(self.corpus)]
                cid = f"talk-{slot}-{round_no}-{time.time_ns()}"
                if (await self.call("conversation.start", {"conversation_id": cid, "channel": script["channel"],
                                                           "queue": script["queue"]})).get("ok"):
                    self.log.started["talking"] += 1
                customer_turns = 0
                for number, turn in enumerate(script["turns"]):
                    if stop.is_set():
                        break
                    sid = f"t{number}"
                    if turn["speaker"] == "customer":
                        customer_turns += 1
                        wall = time.time()
                        self.pending[(cid, sid)] = (time.perf_counter(), wall)
                        self.log.sends.append((cid, customer_turns, wall, self.worker))
                    await self.client.emit("transcript.snippet", {
                        "conversation_id": cid, "snippet_id": sid, "speaker": turn["speaker"],
                        "text": turn["text"][:4000], "final": True}, namespace="/copilot", callback=self.log.ack)
                    await asyncio.sleep(interval)
                await self.call("conversation.end", {"conversation_id": cid})
                round_no += 1
        except Exception as error:  # noqa: BLE001 - a dropped client is a result, not a crash of the run
            self.log.error(type(error).__name__)


async def watch_for_stop(stop_file: Path, deadline: float, stop: asyncio.Event) -> None:
    while not stop_file.exists() and time.time() < deadline:
        await asyncio.sleep(0.25)
    stop.set()


async def run_agents(spec: dict) -> dict:
    """Set every conversation up, say so in spec["ready"], then talk until spec["stop"] appears (or the deadline)."""
    corpus, log = read_corpus(), AgentLog()
    urls = spec["urls"]
    desks = [AgentDesk(j, urls[j % len(urls)], j % len(urls), slots, spec, corpus, log)
             for j, slots in enumerate(assignment(spec["conversations"], spec["per_connection"]))]
    began = time.time()
    connected = [desk for desk, ok in zip(desks, await asyncio.gather(*(d.set_up() for d in desks))) if ok]
    setup_s = time.time() - began
    write_json(Path(spec["ready"]), {"setup_s": setup_s, "idle": log.started["idle"],
                                     "connections": len(connected), "of": len(desks)})
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_for_stop(Path(spec["stop"]), began + spec["max_seconds"], stop))
    await asyncio.gather(*(desk.talk(slot, stop) for desk in connected for slot in desk.talking))
    await watcher
    await asyncio.gather(*(asyncio.wait_for(d.client.disconnect(), 10) for d in connected), return_exceptions=True)
    return {"connections": len(desks), "connect_failures": log.connect_failures, "setup_s": round(setup_s, 1),
            "started": log.started, "highlights": log.highlights, "sends": log.sends, "errors": log.errors}


# The leads' side: raw Socket.IO over websocket-client, one thread a lead, so every frame and byte is counted.

def socketio_event(frame: str, namespace: str = "/floor") -> tuple[str, object] | None:
    """The (event, payload) of a server's Socket.IO EVENT frame on `namespace`, or None for any other frame."""
    prefix = f"42{namespace},"
    if not frame.startswith(prefix):
        return None
    data = json.loads(frame[len(prefix):])
    return data[0], (data[1] if len(data) > 1 else None)


class Lead(threading.Thread):
    """One team lead's browser, down to its socket: connect to /floor, floor.watch (timing the snapshot), then
    count what arrives, keeping for each conversation when each new customer_turns first showed in a row."""

    def __init__(self, url: str, name: str, window: dict) -> None:
        super().__init__(daemon=True)
        self.url, self.name, self.window = url, name, window
        self.ready = threading.Event()
        self.result: dict = {"lead": name, "messages": 0, "bytes": 0, "events": {}, "rows": 0, "removed": 0}
        self.seen: dict[str, list[tuple[int, float]]] = {}  # conversation -> [(customer_turns, first seen at)]
        self.turns: dict[str, int] = {}

    def run(self) -> None:
        try:
            self.watch()
        except Exception as error:  # noqa: BLE001 - recorded; the other leads go on
            self.result["failure"] = f"{type(error).__name__}: {error}"[:300]
        finally:
            self.ready.set()
            self.result["seen"] = self.seen

    def recv_until(self, ws, prefix: str) -> str:
        """Frames until one that starts with `prefix` (answering pings meanwhile)."""
        while True:
            frame = ws.recv()
            if frame == "2":
                ws.send("3")
            elif frame.startswith(prefix) or frame.startswith("44/floor,"):
                return frame
            else:
                self.take(frame, time.time(), counted=False)

    def watch(self) -> None:
        from websocket import WebSocketTimeoutException, create_connection

        token = Tokens(SECRET).issue("bench", "lead", self.name, ttl_s=TOKEN_TTL_S)
        # websocket-client checks UTF-8 in pure Python unless told not to: ~0.5 s a megabyte, the client's cost
        # and not the server's, which would swamp a 2,000-row snapshot's time.
        ws = create_connection(self.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket",
                               timeout=60, skip_utf8_validation=True)
        try:
            assert ws.recv().startswith("0{")
            ws.send("40/floor," + json.dumps({"token": token}))
            reply = self.recv_until(ws, "40/floor,")
            if not reply.startswith("40/floor,"):
                self.result["refused"] = reply
                return
            began = time.perf_counter()
            ws.send('42/floor,1["floor.watch",{}]')
            frame = self.recv_until(ws, "43/floor,1")
            ack = json.loads(frame[len("43/floor,1"):])[0]
            first_ms = round((time.perf_counter() - began) * 1000, 1)
            snapshot = ack.get("snapshot", {}) if ack.get("ok") else {}
            rows, size = list(snapshot.get("rows", [])), len(frame.encode())
            for row in rows:
                self.turns[row["conversation_id"]] = row["customer_turns"]
            # A large snapshot's rows past the first SNAPSHOT_ROWS follow as floor.diff messages stamped with its `at`.
            while len(rows) < snapshot.get("total", 0):
                frame = self.recv_until(ws, '42/floor,["floor.diff"')
                event = socketio_event(frame)
                if event and isinstance(event[1], dict) and event[1].get("at") == snapshot["at"]:
                    rows += event[1].get("rows", [])
                    size += len(frame.encode())
                self.take(frame, time.time(), counted=False)
            self.result["snapshot"] = {"ok": bool(ack.get("ok")), "first_ms": first_ms,
                                       "ms": round((time.perf_counter() - began) * 1000, 1),
                                       "bytes": size, "rows": len(rows),
                                       "error": None if ack.get("ok") else ack.get("error")}
            self.ready.set()
            self.window["start"].wait(120)
            ws.settimeout(0.5)
            while time.time() < self.window["end"] + TAIL_S:
                try:
                    frame = ws.recv()
                except WebSocketTimeoutException:
                    continue
                at = time.time()
                if frame == "2":
                    ws.send("3")
                self.take(frame, at, counted=self.window["t0"] <= at < self.window["end"])
        finally:
            ws.close()

    def take(self, frame: str, at: float, counted: bool) -> None:
        """Count one frame received at `at` (when inside the phase) and note the rows of a floor.diff."""
        if not frame:
            return
        if frame == "1" or frame.startswith("41/floor"):
            raise ConnectionError("the server closed the lead's session")
        if counted:
            self.result["messages"] += 1
            self.result["bytes"] += len(frame.encode())
        event = socketio_event(frame)
        if event is None:
            return
        name, payload = event
        if counted:
            self.result["events"][name] = self.result["events"].get(name, 0) + 1
        if name != "floor.diff" or not isinstance(payload, dict):
            return
        if counted:
            self.result["rows"] += len(payload.get("rows", []))
            self.result["removed"] += len(payload.get("removed", []))
        for row in payload.get("rows", []):
            cid, turns = row["conversation_id"], row["customer_turns"]
            if turns > self.turns.get(cid, 0):
                self.turns[cid] = turns
                self.seen.setdefault(cid, []).append((turns, at))


def run_leads(spec: dict) -> dict:
    """Connect the leads, write the phase's start to spec["watching"] once every snapshot is in, and listen for
    spec["duration"] seconds (and the tail)."""
    window = {"start": threading.Event(), "t0": math.inf, "end": math.inf}
    leads = [Lead(spec["url"], f"lead-{n + 1}", window) for n in range(spec["leads"])]
    for lead in leads:
        lead.start()
    for lead in leads:
        lead.ready.wait(180)
    window["t0"] = time.time()
    window["end"] = window["t0"] + spec["duration"]
    window["start"].set()
    write_json(Path(spec["watching"]), {"t0": window["t0"]})
    for lead in leads:
        lead.join(spec["duration"] + TAIL_S + 60)
    return {"t0": window["t0"], "duration_s": spec["duration"], "leads": [lead.result for lead in leads]}


# Joining the two sides, pure.

def floor_latencies(sends: list, seen: dict[str, list], t0: float, t1: float) -> tuple[list[float], int]:
    """For one lead: ms from each final customer snippet sent in [t0, t1) to the first floor.diff row of its
    conversation whose customer_turns reached that turn, and how many such snippets no row showed."""
    latencies, missed = [], 0
    turns = {cid: [k for k, _ in rows] for cid, rows in seen.items()}
    for cid, turn, sent, *_ in sends:
        if not t0 <= sent < t1:
            continue
        i = bisect.bisect_left(turns.get(cid, []), turn)
        if i == len(turns.get(cid, [])):
            missed += 1
        else:
            latencies.append((seen[cid][i][1] - sent) * 1000)
    return latencies, missed


def spread(values: list[float]) -> dict:
    """p50, p95, p99 and max of some milliseconds, and how many."""
    return {"count": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "p99": percentile(values, 99), "max": round(max(values), 1) if values else None}


def in_window(highlights: list, t0: float, t1: float) -> list[float]:
    return [ms for sent, ms in highlights if t0 <= sent < t1]


def mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def over_leads(sends: list, leads: list[dict], t0: float, t1: float) -> tuple[list[float], int]:
    """floor_latencies of every lead, pooled."""
    every, missed = [], 0
    for lead in leads:
        latencies, miss = floor_latencies(sends, lead.get("seen", {}), t0, t1)
        every += latencies
        missed += miss
    return every, missed


def lead_summary(phase: dict, agents: dict, leads: dict) -> None:
    """Add to a (b) phase the floor update latency over all leads (and split by the conversation's worker and by
    turn), what one lead received, and the snapshot."""
    t0, t1, duration = phase["t0"], phase["t1"], phase["t1"] - phase["t0"]
    sends, got = agents["sends"], [lead for lead in leads["leads"] if "snapshot" in lead]
    every, missed = over_leads(sends, got, t0, t1)
    phase["floor_ms"] = {**spread(every), "missed": missed}
    phase["floor_all"] = every  # for the pooled p99 over every (b) phase; not written out
    # A conversation's first customer turn comes right after its start, whose row went out just before: the
    # once-a-second gap per conversation holds it back, where later turns, 3 s apart, wait for nothing.
    phase["floor_ms_by_turn"] = {
        "first customer turn": spread(over_leads([s for s in sends if s[1] == 1], got, t0, t1)[0]),
        "later turns": spread(over_leads([s for s in sends if s[1] > 1], got, t0, t1)[0])}
    workers = sorted({s[3] for s in sends})
    if len(workers) > 1:
        phase["floor_ms_by_worker"] = {f"worker {'AB'[w]}": spread(over_leads([s for s in sends if s[3] == w], got,
                                                                               t0, t1)[0]) for w in workers}
    phase["lead"] = {"messages_per_s": mean([lead["messages"] / duration for lead in got]),
                     "bytes_per_s": mean([lead["bytes"] / duration for lead in got]),
                     "rows_per_s": mean([lead["rows"] / duration for lead in got]),
                     "events": got[0]["events"] if got else {}}
    phase["snapshot"] = {"first_ms_mean": mean([lead["snapshot"]["first_ms"] for lead in got]),
                         "ms_mean": mean([lead["snapshot"]["ms"] for lead in got]),
                         "ms_max": max((lead["snapshot"]["ms"] for lead in got), default=None),
                         "bytes": max((lead["snapshot"]["bytes"] for lead in got), default=None),
                         "rows": max((lead["snapshot"]["rows"] for lead in got), default=None)}
    phase["lead_failures"] = [{k: lead[k] for k in ("lead", "failure", "refused") if k in lead}
                              for lead in leads["leads"] if "failure" in lead or "refused" in lead
                              or not lead.get("snapshot", {}).get("ok")]


def summarise(phases: list[dict], agents: dict) -> dict:
    """Each phase's highlight latency and errors, and the issue's two targets over all phases of each kind."""
    for phase in phases:
        phase["highlight_ms"] = spread(in_window(agents["highlights"], phase["t0"], phase["t1"]))
        codes: dict[str, int] = {}
        for at, code in agents["errors"]:
            if phase["t0"] <= at < phase["t1"]:
                codes[code] = codes.get(code, 0) + 1
        phase["errors"] = codes
    setup: dict[str, int] = {}
    for at, code in agents["errors"]:
        if phases and at < phases[0]["t0"]:
            setup[code] = setup.get(code, 0) + 1
    alone = spread([ms for p in phases if not p["leads"] for ms in in_window(agents["highlights"], p["t0"], p["t1"])])
    watched = spread([ms for p in phases if p["leads"] for ms in in_window(agents["highlights"], p["t0"], p["t1"])])
    floor_p99 = percentile([ms for p in phases if p["leads"] for ms in p.get("floor_all", [])], 99)
    ratio = round(watched["p99"] / alone["p99"], 3) if alone["p99"] and watched["p99"] else None
    steady = {kind: spread([ms for p in phases if bool(p["leads"]) == kind
                            for ms in in_window(agents["highlights"], p["t0"] + SETTLED_S, p["t1"])])
              for kind in (False, True)}
    steady_ratio = (round(steady[True]["p99"] / steady[False]["p99"], 3)
                    if steady[False]["p99"] and steady[True]["p99"] else None)
    return {"setup_errors": setup, "highlight_ms_no_lead": alone, "highlight_ms_leads": watched, "highlight_p99_ratio": ratio,
            "steady_highlight_ms_no_lead": steady[False], "steady_highlight_ms_leads": steady[True],
            "steady_highlight_p99_ratio": steady_ratio,
            "highlight_target_met": ratio is not None and ratio <= HIGHLIGHT_P99_SLOWDOWN,
            "floor_p99_ms": floor_p99, "floor_missed": sum(p.get("floor_ms", {}).get("missed", 0) for p in phases),
            "floor_target_met": floor_p99 is not None and floor_p99 <= FLOOR_P99_TARGET_MS}


def table(report: dict) -> str:
    """The report as Markdown."""
    s, a = report["summary"], report["settings"]
    lines = [f"**Floor** ({report['deployment']}; {a['conversations']} live conversations, {a['talking']} talking, "
             f"{a['leads']} leads, {a['duration']:.0f} s phases x {a['repeats']}; {report['agents']['connections']} agent "
             f"connections, setup {report['agents']['setup_s']} s; conversations started: {report['agents']['started']})",
             "",
             "| phase | leads | highlights | highlight p50 / p95 / p99 ms | floor updates | floor p50 / p95 / p99 ms "
             "| missed | one lead: messages/s | KB/s | rows/s | snapshot first / all ms / KB / rows | server CPU | peak RSS MB "
             "| errors |", "|" + "---|" * 14]
    for p in report["phases"]:
        h, f, lead, snap = p["highlight_ms"], p.get("floor_ms"), p.get("lead"), p.get("snapshot")
        floor_cells = (f"{f['count']} | {f['p50']} / {f['p95']} / {f['p99']} | {f['missed']}" if f else "- | - | -")
        lead_cells = (f"{lead['messages_per_s']} | {round(lead['bytes_per_s'] / 1024, 1) if lead['bytes_per_s'] else None}"
                      f" | {lead['rows_per_s']}" if lead else "- | - | -")
        size = round(snap["bytes"] / 1024, 1) if snap and snap["bytes"] else None
        snap_cells = f"{snap['first_ms_mean']} / {snap['ms_mean']} / {size} / {snap['rows']}" if snap else "-"
        lines.append(f"| {p['name']} | {p['leads']} | {h['count']} | {h['p50']} / {h['p95']} / {h['p99']} | "
                     f"{floor_cells} | {lead_cells} | {snap_cells} | {p['server_cpu_cores']} | "
                     f"{p['server_rss_peak_mb']} | {sum(p['errors'].values())} |")
    lines += ["", f"Agents' highlight p99: {s['highlight_ms_no_lead']['p99']} ms with no lead watching, "
                  f"{s['highlight_ms_leads']['p99']} ms with {a['leads']} leads: x{s['highlight_p99_ratio']} "
                  f"(target <= x{HIGHLIGHT_P99_SLOWDOWN}: {'met' if s['highlight_target_met'] else 'NOT met'}).",
              f"The same past each phase's first {SETTLED_S:.0f} s (the snapshots' moment left out): "
              f"{s['steady_highlight_ms_no_lead']['p99']} ms and {s['steady_highlight_ms_leads']['p99']} ms: "
              f"x{s['steady_highlight_p99_ratio']}.",
              f"Floor update p99 over all leads: {s['floor_p99_ms']} ms, {s['floor_missed']} updates never shown "
              f"within {TAIL_S:.0f} s (target <= {FLOOR_P99_TARGET_MS:.0f} ms: "
              f"{'met' if s['floor_target_met'] else 'NOT met'})."]
    if report["server_log_errors"]["lines"]:
        lines.append(f"The servers logged {report['server_log_errors']['lines']} error lines "
                     f"(see floor.json): {report['server_log_errors']['first'][:2]}")
    for p in report["phases"]:
        if p.get("floor_ms_by_turn"):
            lines.append(f"{p['name']} floor update latency by turn: " + "; ".join(
                f"{k} {v['count']} p50 {v['p50']} / p99 {v['p99']} ms" for k, v in p["floor_ms_by_turn"].items()))
        if p.get("floor_ms_by_worker"):
            lines.append(f"{p['name']} floor update latency by the conversation's worker: {p['floor_ms_by_worker']}")
        if p.get("lead_failures"):
            lines.append(f"{p['name']} lead failures: {p['lead_failures']}")
    return "\n".join(lines) + "\n"


# The orchestrator.

def spawn(role: str, spec: dict, workdir: Path) -> subprocess.Popen:
    """This module in a process of its own, in one of its roles, with its spec in a file."""
    path = workdir / f"{role}-{time.time_ns()}.json"
    path.write_text(json.dumps(spec))
    return subprocess.Popen([sys.executable, "-m", "bench.floor", role, str(path)], cwd=ROOT)


def wait_for(path: Path, process: subprocess.Popen, timeout: float) -> dict:
    """The JSON a child writes to `path`, once it does; RuntimeError if it exits or takes longer than timeout."""
    deadline = time.time() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise RuntimeError(f"{path.name} never came: the child exited ({process.returncode})")
        if time.time() > deadline:
            raise RuntimeError(f"{path.name} never came within {timeout:.0f} s")
        time.sleep(0.1)
    return json.loads(path.read_text())


def write_json(path: Path, data: object) -> None:
    """Write JSON where another process polls for it: all of it appears at once (a rename)."""
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(data))
    part.replace(path)


def measure(name: str, leads: int, t0: float, t1: float, procs: list, cpu_procs: list, urls: list[str]) -> dict:
    """Watch the servers until t1: their peak RSS, the CPU they used, and their own ms per snippet."""
    sum_before, count_before = server_seconds(urls)
    cpu_before, began = sum(sum(p.cpu_times()[:2]) for p in cpu_procs), time.time()
    peak = 0.0
    while time.time() < t1:
        peak = max(peak, rss_mb(procs))
        time.sleep(min(0.5, max(0.0, t1 - time.time())))
    cpu = (sum(sum(p.cpu_times()[:2]) for p in cpu_procs) - cpu_before) / max(time.time() - began, 1e-9)
    sum_after, count_after = server_seconds(urls)
    served = (sum_after - sum_before) * 1000 / (count_after - count_before) if count_after > count_before else None
    return {"name": name, "leads": leads, "t0": t0, "t1": t1, "server_cpu_cores": round(cpu, 2),
            "server_rss_peak_mb": round(peak, 1), "server_ms_per_snippet": round(served, 2) if served else None}


def server_env(args: argparse.Namespace, workdir: Path) -> dict:
    """The servers' settings: limits lifted where one machine plays a whole floor (every agent from one address,
    all of them connecting at once) so that the run measures the floor, not the limits."""
    return {"COPILOT_SECRET": SECRET, "COPILOT_MODEL_THREADS": "1", "COPILOT_INSTANCE_DIR": str(workdir / "instance"),
            "COPILOT_RATE_PER_S": "200", "COPILOT_RATE_BURST": "400", "COPILOT_AGENT_RATE_PER_S": "400",
            "COPILOT_AGENT_RATE_BURST": "800", "COPILOT_TENANT_RATE_PER_S": "20000",
            "COPILOT_TENANT_RATE_BURST": "40000", "COPILOT_MAX_PENDING_PER_ADDRESS": "4000",
            "COPILOT_MAX_LIVE_CONVERSATIONS": str(max(5000, 2 * args.conversations))}


def start_deployment(args: argparse.Namespace, workdir: Path) -> tuple[list, list[int], list[int], list]:
    """The servers (urls, RSS pids, CPU pids) and what to stop afterwards."""
    env = server_env(args, workdir)
    if not args.redis:
        server = ServerProcess(env, workdir)
        return [server.url], [server.pid], [server.pid], [server]
    redis_server = RedisServer(workdir / "redis")
    redis_server.start()
    env["REDIS_URL"] = redis_server.url
    started = [redis_server]
    try:  # worker A as python wsgi.py, worker B as the Dockerfile runs gunicorn
        started.append(ServerProcess(env, workdir))
        started.append(ServerProcess(env, workdir, gunicorn=True))
    except Exception:
        for thing in reversed(started):
            thing.stop()
        raise
    a, b = started[1], started[2]
    return [a.url, b.url], [a.pid, b.pid], [a.pid, b.pid, redis_server.process.pid], started


def log_trouble(servers: list) -> dict:
    """The lines of the servers' logs that say something went wrong (errors and tracebacks), the first few."""
    lines = []
    for server in servers:
        log = getattr(server, "log", None)
        if log is not None and Path(log.name).exists():
            lines += [line.rstrip() for line in Path(log.name).read_text(errors="replace").splitlines()
                      if "Traceback" in line or "ERROR" in line or "Error:" in line]
    return {"lines": len(lines), "first": lines[:10]}


def run_phases(args: argparse.Namespace, workdir: Path, urls: list[str], pids: list[int],
               cpu_pids: list[int]) -> tuple[list[dict], dict]:
    """Start the agents, then the phases in turn; the phases with the leads' data joined in, and the agents'."""
    ready, stop = workdir / "agents-ready.json", workdir / "agents-stop"
    out = workdir / "agents-out.json"
    budget = 600 + args.warmup + args.repeats * 2 * (args.duration + SETTLE_S + TAIL_S + 60)
    agents = spawn("agents", {"urls": urls, "conversations": args.conversations, "talking": args.talking,
                              "per_connection": args.per_connection, "idle_turns": args.idle_turns,
                              "turn_interval": args.turn_interval, "ready": str(ready), "stop": str(stop),
                              "max_seconds": budget, "out": str(out)}, workdir)
    phases, lead_runs = [], []
    try:
        setup = wait_for(ready, agents, 600)
        print(f"set up {setup['idle']} idle conversations on {setup['connections']} of {setup['of']} agent "
              f"connections in {setup['setup_s']:.1f} s; {args.talking} start talking", flush=True)
        time.sleep(args.warmup)
        procs, cpu_procs = processes_of(pids), processes_of(cpu_pids)
        for repeat in range(1, args.repeats + 1):
            t0 = time.time()
            phases.append(measure(f"{repeat}a", 0, t0, t0 + args.duration, procs, cpu_procs, urls))
            print_phase(phases[-1])
            time.sleep(SETTLE_S)
            watching = workdir / f"leads-watching-{repeat}.json"
            lead_out = workdir / f"leads-out-{repeat}.json"
            leads = spawn("leads", {"url": urls[0], "leads": args.leads, "duration": args.duration,
                                    "watching": str(watching), "out": str(lead_out)}, workdir)
            try:
                t0 = wait_for(watching, leads, 240)["t0"]
                phases.append(measure(f"{repeat}b", args.leads, t0, t0 + args.duration, procs, cpu_procs, urls))
                leads.wait(TAIL_S + 90)
            finally:
                if leads.poll() is None:
                    leads.kill()
            lead_runs.append((phases[-1], json.loads(lead_out.read_text())))
            print_phase(phases[-1])
            time.sleep(SETTLE_S)
        stop.touch()
        agents.wait(120)
    finally:
        stop.touch()
        if agents.poll() is None:
            try:
                agents.wait(30)
            except subprocess.TimeoutExpired:
                agents.kill()
    data = json.loads(out.read_text())
    for phase, leads_data in lead_runs:
        lead_summary(phase, data, leads_data)
    return phases, data


def print_phase(phase: dict) -> None:
    print(f"phase {phase['name']} ({phase['leads']} leads): server cpu {phase['server_cpu_cores']}, "
          f"rss {phase['server_rss_peak_mb']} MB, {phase['server_ms_per_snippet']} ms/snippet", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["agents"], ["leads"]):  # a role of this benchmark, spawned by the orchestrator
        spec = json.loads(Path(argv[1]).read_text())
        result = asyncio.run(run_agents(spec)) if argv[0] == "agents" else run_leads(spec)
        write_json(Path(spec["out"]), result)
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=2000, help="live conversations on the board")
    parser.add_argument("--talking", type=int, default=150, help="of them, how many replay the corpus")
    parser.add_argument("--leads", type=int, default=5)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of each phase")
    parser.add_argument("--repeats", type=int, default=2, help="pairs of phases (no lead, leads)")
    parser.add_argument("--per-connection", type=int, default=10, help="conversations per agent connection")
    parser.add_argument("--idle-turns", type=int, default=2, help="turns each idle conversation gets at setup")
    parser.add_argument("--turn-interval", type=float, default=1.5,
                        help="seconds between a talker's turns: one customer and one agent snippet every 3 s")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of talking before the first phase")
    parser.add_argument("--redis", action="store_true", help="two workers on a real Redis instead of embedded")
    args = parser.parse_args(argv)
    if not 0 <= args.talking <= args.conversations:
        parser.error("--talking must be between 0 and --conversations")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        urls, pids, cpu_pids, started = start_deployment(args, workdir)
        try:
            phases, agents = run_phases(args, workdir, urls, pids, cpu_pids)
        finally:
            for thing in reversed(started):
                thing.stop()
            trouble = log_trouble(started)
            if trouble["lines"]:
                print(f"the servers logged {trouble['lines']} error lines, the first: {trouble['first']}", flush=True)
    summary = summarise(phases, agents)
    for phase in phases:
        phase.pop("floor_all", None)
    report = {"date": date.today().isoformat(), "command": " ".join(["python -m bench.floor", *argv]),
              "machine": {"cpus": psutil.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                          "processor": platform.processor() or platform.machine(), "python": platform.python_version()},
              "deployment": "redis-2w" if args.redis else "embedded", "settings": vars(args),
              "agents": {k: agents[k] for k in ("connections", "connect_failures", "setup_s", "started")},
              "phases": phases, "summary": summary, "server_log_errors": trouble}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "floor.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / "floor.md").write_text(table(report))
    print(table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
