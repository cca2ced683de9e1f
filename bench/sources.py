"""What a transcript source's path costs a highlight, against the agent's own Socket.IO path (issue #17):

    python -m bench.sources [--turns 300] [--gap-ms 40]

One server (`python wsgi.py`, the embedded default) and one agent connected over Socket.IO, holding three
conversations. Each of `turns` customer lines of the replay corpus is sent three ways, in a shuffled order per
line, one at a time: (1) by the agent itself, `transcript.snippet` over /copilot; (2) by a relay, POST
/api/v1/transcripts with an integration token (one keep-alive connection); (3) by Twilio, a signed form POST to
/api/v1/sources/twilio. Each time is from the send to the agent's client receiving the final cue.highlight.
Target: the median of (2) and (3) at most 2 ms above (1). Loopback only, bounded in count and time. Writes
bench/results/sources.json and sources.md.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import tempfile
import threading
import time
import uuid
from datetime import date
from pathlib import Path
from urllib.parse import urlencode

import psutil
import requests
import socketio

from bench.__main__ import RESULTS, SECRET, percentile
from bench.load import read_corpus
from copilot.security import Tokens
from copilot.sources.twilio import signature
from tests.servers import ServerProcess

TARGET_EXTRA_MS = 2.0
TWILIO_TOKEN = "bench-twilio-auth-token-0123456789"
TENANT = "bench"
PATHS = ("socketio", "transcripts", "twilio")


class Agent:
    """The agent's sidebar: a Socket.IO client that waits for the next final customer highlight of a conversation."""

    def __init__(self, url: str, token: str) -> None:
        self.client = socketio.Client(reconnection=False)
        self.arrived: dict[str, float] = {}
        self.waiting: dict[str, threading.Event] = {}
        self.client.on("cue.highlight", self._highlight, namespace="/copilot")
        self.client.connect(url, namespaces=["/copilot"], auth={"token": token}, transports=["websocket"],
                            wait_timeout=10)

    def _highlight(self, data: dict) -> None:
        if data.get("final") and data.get("speaker") == "customer":
            cid = data["conversation_id"]
            self.arrived[cid] = now()
            event = self.waiting.get(cid)
            if event is not None:
                event.set()

    def expect(self, cid: str) -> threading.Event:
        event = threading.Event()
        self.waiting[cid] = event
        return event

    def call(self, name: str, payload: dict) -> dict:
        return self.client.call(name, payload, namespace="/copilot", timeout=10)


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def relay(pipe, url: str, token: str, ids: dict[str, str], twilio_url: str) -> None:
    """The source's side, in a process of its own as a relay or Twilio would be (in the agent's process its
    parsing of each answer would compete with the agent's client for the GIL): one keep-alive connection per
    path; for each (path, n, text) it is sent, it posts the turn and answers when it sent it."""
    sessions = {"transcripts": requests.Session(), "twilio": requests.Session()}
    sessions["transcripts"].headers["Authorization"] = f"Bearer {token}"
    while (job := pipe.recv()) is not None:
        path, n, text = job
        cid = ids[path]
        if path == "transcripts":
            body = {"utterances": [{"conversation_id": cid, "utterance_id": f"u{n}", "speaker": "customer",
                                    "text": text, "final": True}]}
            data = json.dumps(body)  # encoded before the clock starts, as a relay's own work
            started = now()
            sessions[path].post(f"{url}/api/v1/transcripts", data=data, timeout=10,
                                headers={"Content-Type": "application/json"}).raise_for_status()
        else:
            params = {"AccountSid": "AC" + "0" * 32, "CallSid": cid, "TranscriptionSid": "GT" + "0" * 32,
                      "TranscriptionEvent": "transcription-content", "LanguageCode": "en-US",
                      "Track": "inbound_track", "Final": "true", "SequenceId": str(n),
                      "Timestamp": "2026-12-02T05:00:00.000000Z",
                      "TranscriptionData": json.dumps({"transcript": text, "confidence": 0.93})}
            headers = {"X-Twilio-Signature": signature(twilio_url, params, TWILIO_TOKEN),
                       "Content-Type": "application/x-www-form-urlencoded"}
            data = urlencode(params)  # Twilio's work, before the clock starts
            started = now()
            sessions[path].post(twilio_url, data=data, timeout=10, headers=headers).raise_for_status()
        pipe.send(started)


def measure(turns: int, gap_ms: float, workdir: Path) -> dict:
    env = {"COPILOT_SECRET": SECRET, "COPILOT_DEMO": "false", "COPILOT_INSTANCE_DIR": str(workdir / "instance"),
           "COPILOT_RATE_PER_S": "1000", "COPILOT_RATE_BURST": "1000", "COPILOT_AGENT_RATE_PER_S": "1000",
           "COPILOT_AGENT_RATE_BURST": "1000", "COPILOT_SUGGESTION_COOLDOWN_S": "0",
           "COPILOT_TWILIO_AUTH_TOKENS": f"{TENANT}={TWILIO_TOKEN}"}
    server = ServerProcess(env, workdir)
    tokens = Tokens(SECRET)
    try:
        agent = Agent(server.url, tokens.issue(TENANT, "agent", "amy"))
        call_sid = "CA" + uuid.uuid4().hex
        ids = {"socketio": f"sio-{uuid.uuid4().hex[:8]}", "transcripts": f"rest-{uuid.uuid4().hex[:8]}",
               "twilio": call_sid}
        for cid in ids.values():
            assert agent.call("conversation.start", {"conversation_id": cid, "channel": "voice"})["ok"]
        twilio_url = f"{server.url}/api/v1/sources/twilio?tenant={TENANT}"
        lines = [t["text"] for c in read_corpus() for t in c["turns"] if t["speaker"] == "customer"]
        rng = random.Random(17)
        times: dict[str, list[float]] = {p: [] for p in PATHS}
        lost = {p: 0 for p in PATHS}

        relay_end, here = multiprocessing.Pipe()
        sender = multiprocessing.Process(target=relay, args=(relay_end, server.url, tokens.issue(
            TENANT, "integration", "relay"), ids, twilio_url), daemon=True)
        sender.start()

        def send(path: str, n: int, text: str) -> float:
            """Send one turn by `path`; when it was sent (CLOCK_MONOTONIC, which every process here shares)."""
            if path == "socketio":
                started = now()
                agent.client.emit("transcript.snippet", {"conversation_id": ids[path], "snippet_id": f"s{n}",
                                                         "speaker": "customer", "text": text, "final": True},
                                  namespace="/copilot")
                return started
            here.send((path, n, text))
            if not here.poll(10):
                raise RuntimeError("the relay process did not answer")
            return here.recv()

        warm = 10
        for n in range(turns + warm):
            text = lines[n % len(lines)]
            order = list(PATHS)
            rng.shuffle(order)
            for path in order:
                done = agent.expect(ids[path])
                started = send(path, n, text)
                if not done.wait(10):
                    lost[path] += n >= warm
                elif n >= warm:
                    times[path].append((agent.arrived[ids[path]] - started) * 1000)
                time.sleep(gap_ms / 1000)
        agent.client.disconnect()
        here.send(None)
        sender.join(10)
    finally:
        server.stop()
    summary = {p: {"n": len(v), "p50_ms": percentile(v, 50), "p90_ms": percentile(v, 90),
                   "p99_ms": percentile(v, 99), "lost": lost[p]} for p, v in times.items()}
    base = summary["socketio"]["p50_ms"]
    for path in ("transcripts", "twilio"):
        summary[path]["extra_p50_ms"] = round(summary[path]["p50_ms"] - base, 2)
        summary[path]["met"] = summary[path]["extra_p50_ms"] <= TARGET_EXTRA_MS and not lost[path]
    return summary


def table(report: dict) -> str:
    rows = ["| path | n | p50 ms | p90 ms | p99 ms | p50 over Socket.IO | target (<= +2 ms) |",
            "|---|---|---|---|---|---|---|"]
    names = {"socketio": "agent's own Socket.IO `transcript.snippet`", "transcripts": "POST /api/v1/transcripts",
             "twilio": "Twilio webhook, signed (`/api/v1/sources/twilio`)"}
    for path in PATHS:
        r = report["paths"][path]
        extra = "" if path == "socketio" else f"{r['extra_p50_ms']:+.2f} ms"
        met = "" if path == "socketio" else ("met" if r["met"] else "NOT met")
        rows.append(f"| {names[path]} | {r['n']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | {extra} | {met} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--gap-ms", type=float, default=40.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        paths = measure(args.turns, args.gap_ms, Path(tmp))
    report = {"date": date.today().isoformat(), "command": f"python -m bench.sources --turns {args.turns} "
                                                          f"--gap-ms {args.gap_ms:g}",
              "machine": f"{psutil.cpu_count()} CPUs, {round(psutil.virtual_memory().total / 2**30)} GB, "
                         f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
              "paths": paths}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sources.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "sources.md").write_text(f"{report['date']}, {report['machine']}, `{report['command']}`\n\n"
                                        + table(report))
    print(table(report))
    return 0 if all(paths[p]["met"] for p in ("transcripts", "twilio")) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
