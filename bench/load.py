"""Load generator: C concurrent conversations on real Socket.IO clients (asyncio; one conversation per connection
unless --per-connection says more), replaying the corpus at a realistic pace, measuring the time from sending a
final customer snippet to receiving its cue.highlight.

    python -m bench.load --url http://127.0.0.1:8000 --token T --conversations 200 --duration 40 --out r.json

Bounded in count and time; loopback only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path

import socketio

CORPUS = Path(__file__).parent / "data" / "conversations.jsonl"


def read_corpus(path: Path = CORPUS, dense: bool = False) -> list[dict]:
    """The replay conversations; dense=True gives the emotion-dense load instead (see dense_corpus)."""
    if dense:
        return dense_corpus()
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


AGENT_TURNS = ("I'm sorry to hear that, let me look into it for you.", "Okay, I can see the account now.",
               "Thanks for bearing with me while I check.", "Right, let me see what I can do about that.")


def dense_corpus(conversations: int = 38, turns: int = 12) -> list[dict]:
    """Emotion-dense conversations: every customer turn carries a cue (a positive turn of the project's
    customer-turn corpus, data/customer_turns), between plain agent turns; the worst case for the detector,
    whose spans and rules only run where a cue fires."""
    from copilot.cues.corpus import read_turns

    positives = [t for t in read_turns() if t.cues]
    random.Random(13).shuffle(positives)
    out = []
    for n in range(conversations):
        script = []
        for k in range(turns):
            script.append({"speaker": "customer", "text": positives[(n * turns + k) % len(positives)].text})
            script.append({"speaker": "agent", "text": AGENT_TURNS[k % len(AGENT_TURNS)]})
        out.append({"id": f"dense-{n:02d}", "channel": "chat", "queue": "general", "turns": script})
    return out


class Results:
    """Latencies and counts gathered by all clients."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.sent_at: list[float] = []  # when each measured snippet was sent (Unix time), in the same order
        self.sent = 0
        self.highlights = 0
        self.errors: dict[str, int] = {}
        self.connect_failures = 0

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1


async def agent(index: int, urls: list[str], token: str, corpus: list[dict], stop_at: float, turn_interval: float,
                results: Results, measure_from: float, conversations: int = 1) -> None:
    """One agent desktop: one connection, carrying `conversations` conversations at once (1 for a voice agent,
    several for a chat agent), each replaying scripts back to back until stop_at."""
    client = socketio.AsyncClient(reconnection=False)
    pending: dict[tuple[str, str], float] = {}

    @client.on("cue.highlight", namespace="/copilot")
    async def on_highlight(data):
        sent_at = pending.pop((data.get("conversation_id"), data.get("snippet_id")), None)
        if sent_at is not None and data.get("final"):
            now = time.perf_counter()
            results.highlights += 1
            if sent_at >= measure_from:
                results.latencies_ms.append((now - sent_at) * 1000)
                results.sent_at.append(time.time() - (now - sent_at))

    url = urls[index % len(urls)]
    try:
        await client.connect(url, namespaces=["/copilot"], auth={"token": token}, transports=["websocket"],
                             wait_timeout=30)
    except Exception:  # noqa: BLE001 - count it, the run goes on
        results.connect_failures += 1
        return
    try:
        await asyncio.gather(*[replay(client, index * conversations + slot, corpus, stop_at, turn_interval, results,
                                      pending) for slot in range(conversations)])
    finally:
        await client.disconnect()


async def replay(client: socketio.AsyncClient, index: int, corpus: list[dict], stop_at: float, turn_interval: float,
                 results: Results, pending: dict[tuple[str, str], float]) -> None:
    """One conversation slot: scripts from the corpus, back to back, one turn every turn_interval."""
    rng = random.Random(index)
    await asyncio.sleep(rng.random() * turn_interval * 2)  # spread the conversations over a pace period
    round_no = 0
    try:
        while time.perf_counter() < stop_at:
            script = corpus[(index + round_no) % len(corpus)]
            cid = f"bench-{index}-{round_no}-{time.time_ns()}"
            ack = await client.call("conversation.start", {"conversation_id": cid, "channel": script["channel"],
                                                           "queue": script["queue"]}, namespace="/copilot", timeout=30)
            if not ack.get("ok"):
                results.error(ack.get("error", {}).get("code", "start_failed"))
            for number, turn in enumerate(script["turns"]):
                if time.perf_counter() >= stop_at:
                    break
                sid = f"t{number}"
                payload = {"conversation_id": cid, "snippet_id": sid, "speaker": turn["speaker"],
                           "text": turn["text"][:4000], "final": True}
                if turn["speaker"] == "customer":
                    pending[(cid, sid)] = time.perf_counter()
                    results.sent += 1
                await client.emit("transcript.snippet", payload, namespace="/copilot")
                await asyncio.sleep(turn_interval)
            await client.call("conversation.end", {"conversation_id": cid}, namespace="/copilot", timeout=30)
            round_no += 1
    except Exception as error:  # noqa: BLE001 - a dropped client is a result, not a crash of the run
        results.error(type(error).__name__)


async def run(urls: list[str], token: str, conversations: int, duration: float, warmup: float,
              turn_interval: float, per_connection: int = 1, dense: bool = False) -> dict:
    corpus = read_corpus(dense=dense)
    results = Results()
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration
    agents = -(-conversations // per_connection)
    tasks = [asyncio.create_task(agent(i, urls, token, corpus, stop_at, turn_interval, results, measure_from,
                                       min(per_connection, conversations - i * per_connection)))
             for i in range(agents)]
    await asyncio.gather(*tasks)
    return {"conversations": conversations, "connections": agents, "duration_s": duration, "warmup_s": warmup,
            "turn_interval_s": turn_interval, "sent": results.sent, "highlights": results.highlights,
            "measured": len(results.latencies_ms), "latencies_ms": results.latencies_ms, "sent_at": results.sent_at,
            "errors": results.errors,
            "connect_failures": results.connect_failures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--url", action="append", required=True, help="a server URL (repeat for several workers)")
    parser.add_argument("--token", required=True)
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--turn-interval", type=float, default=1.5,
                        help="seconds between turns: one customer and one agent snippet every 3 s")
    parser.add_argument("--per-connection", type=int, default=1,
                        help="conversations each agent connection carries at once (a chat agent's several chats)")
    parser.add_argument("--dense", action="store_true", help="the emotion-dense load: every customer turn a cue")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.url, args.token, args.conversations, args.duration, args.warmup, args.turn_interval,
                             args.per_connection, args.dense))
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
