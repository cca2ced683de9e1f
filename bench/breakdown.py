"""Where the end-to-end time of one highlight goes, at low load:

    python -m bench.breakdown [--rounds 2]

Starts the embedded server (`python wsgi.py` plus timers around four internal steps), replays the corpus with one
Socket.IO client, one turn at a time with a 10 ms pause, and prints medians of each nested step: the forward pass
on its worker thread, the detector, the service, the server from packet to emit, and the client's send to
highlight. A trivial event's round trip (an unknown event, answered at once) shows the transport alone.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.servers import ServerProcess

SECRET = "bench-secret-0123456789abcdef0123456789ab"


def serve(out: Path) -> None:
    """The server as wsgi.py runs it, with timers; the medians are written to `out` on SIGTERM."""
    from gevent import monkey

    monkey.patch_all()
    import signal

    import engineio.socket

    from copilot import create_app, run
    from copilot.assist import CopilotService
    from copilot.cues import detector, model
    from copilot.settings import Settings

    times: dict[str, list[float]] = {}
    received: dict[str, float] = {}

    def timed(owner, name: str, key: str) -> None:
        method = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                times.setdefault(key, []).append((time.perf_counter() - start) * 1000)
        setattr(owner, name, wrapper)

    timed(model.CueModel, "_run", "1 forward pass (worker thread)")
    timed(detector.CueDetector, "analyse_many", "2 detector (pass + phrase rules)")
    timed(CopilotService, "_customer_snippet", "3 service (detector + state + retrieval)")
    # Bench-only instrumentation of Engine.IO's internals, for this timing; never shipped (copilot.compat holds those).
    receive, send = engineio.socket.Socket.receive, engineio.socket.Socket.send

    def on_receive(self, packet):
        received["at"] = time.perf_counter()
        return receive(self, packet)

    def on_send(self, packet):
        if "at" in received and "cue.highlight" in str(packet.data)[:40]:
            times.setdefault("4 server: packet in -> highlight out", []).append(
                (time.perf_counter() - received["at"]) * 1000)
        return send(self, packet)
    engineio.socket.Socket.receive, engineio.socket.Socket.send = on_receive, on_send

    def dump(*_) -> None:
        out.write_text(json.dumps({k: round(statistics.median(v), 3) for k, v in sorted(times.items())}))
        os._exit(0)  # the timers are written; nothing else to clean up
    signal.signal(signal.SIGTERM, dump)
    run(create_app(Settings.from_env()))


async def drive(url: str, rounds: int) -> dict[str, float]:
    import socketio

    from bench.load import read_corpus
    from copilot.security import Tokens

    client = socketio.AsyncClient(reconnection=False)
    arrived: dict[str, float] = {}
    event = asyncio.Event()

    @client.on("cue.highlight", namespace="/copilot")
    async def on_highlight(data):
        arrived[data["snippet_id"]] = time.perf_counter()
        event.set()

    await client.connect(url, namespaces=["/copilot"], auth={"token": Tokens(SECRET).issue("bench", "agent", "b")},
                         transports=["websocket"])
    trivial = []
    for _ in range(300):
        start = time.perf_counter()
        await client.call("ping.nothing", {}, namespace="/copilot")
        trivial.append((time.perf_counter() - start) * 1000)
    latencies = []
    for round_no in range(rounds):
        for number, script in enumerate(read_corpus()):
            cid = f"breakdown-{round_no}-{number}"
            await client.call("conversation.start", {"conversation_id": cid, "channel": script["channel"],
                                                     "queue": script["queue"]}, namespace="/copilot")
            for turn_no, turn in enumerate(script["turns"]):
                payload = {"conversation_id": cid, "snippet_id": f"t{turn_no}", "speaker": turn["speaker"],
                           "text": turn["text"], "final": True}
                await asyncio.sleep(0.01)
                if turn["speaker"] == "agent":
                    await client.call("transcript.snippet", payload, namespace="/copilot")
                    continue
                event.clear()
                start = time.perf_counter()
                await client.emit("transcript.snippet", payload, namespace="/copilot")
                await asyncio.wait_for(event.wait(), 10)
                latencies.append((arrived[payload["snippet_id"]] - start) * 1000)
            await client.call("conversation.end", {"conversation_id": cid}, namespace="/copilot")
    await client.disconnect()
    return {"5 client: send -> highlight (end to end)": round(statistics.median(latencies), 3),
            "trivial event round trip (transport alone)": round(statistics.median(trivial), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        workdir, out = Path(tmp), Path(tmp) / "server.json"
        server = ServerProcess({"COPILOT_SECRET": SECRET, "COPILOT_INSTANCE_DIR": str(workdir / "instance"),
                                "COPILOT_RATE_PER_S": "1000", "COPILOT_RATE_BURST": "1000",
                                "COPILOT_AGENT_RATE_PER_S": "1000", "COPILOT_AGENT_RATE_BURST": "1000"}, workdir,
                               command=[sys.executable, "-m", "bench.breakdown", "--serve", str(out)])
        try:
            client = asyncio.run(drive(server.url, args.rounds))
        finally:
            server.stop()
        medians = {**json.loads(out.read_text()), **client}
    for step, ms in medians.items():
        print(f"{step:48} p50 {ms:6.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
