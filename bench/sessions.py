"""What one open session costs the server, apart from any load:

    python -m bench.sessions [--count 400]

Starts the embedded server (`python wsgi.py`) and warms it with a few Socket.IO agents, as the sweep does. Then it
opens `count` sessions (raw WebSocket clients that do Socket.IO's handshake with a token and start one
conversation each, then stay idle), reads the server's RSS, closes them, and does the same again: the first fill
grows the heap, the second shows what a session costs once the heap has room. Pings are set far apart so that
idle clients need not answer them during the few seconds this takes.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import psutil

from tests.servers import ServerProcess

SECRET = "bench-secret-0123456789abcdef0123456789ab"


def open_session(url: str, token: str, number: int):
    """A WebSocket with a Socket.IO session on /copilot and one started conversation."""
    from websocket import create_connection

    ws = create_connection(url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket", timeout=10)
    assert ws.recv().startswith("0{")
    ws.send("40/copilot," + json.dumps({"token": token}))
    assert ws.recv().startswith("40/copilot,")
    ws.conversation_id = f"idle-{number}-{time.time_ns()}"
    call(ws, 1, "conversation.start", {"conversation_id": ws.conversation_id, "channel": "voice"})
    return ws


def call(ws, ack_id: int, event: str, payload: dict) -> None:
    """Send one event and wait for its acknowledgment, skipping the events pushed meanwhile."""
    ws.send(f"42/copilot,{ack_id}" + json.dumps([event, payload]))
    while not (reply := ws.recv()).startswith(f"43/copilot,{ack_id}"):
        pass
    assert json.loads(reply[len(f"43/copilot,{ack_id}"):])[0]["ok"], reply


def warm(ws) -> None:
    """One highlighted snippet through a session, then close it."""
    call(ws, 2, "transcript.snippet", {"conversation_id": ws.conversation_id, "snippet_id": "s1",
                                       "speaker": "customer", "final": True,
                                       "text": "This is the third time I've called and I'm fed up"})
    ws.close()


def fill(server: ServerProcess, token: str, count: int) -> tuple[list, float]:
    """Open count sessions; the server's RSS growth per session in KB."""
    process = psutil.Process(server.pid)
    before = process.memory_info().rss
    sessions = [open_session(server.url, token, n) for n in range(count)]
    time.sleep(1)
    return sessions, (process.memory_info().rss - before) / 1024 / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sessions")
    parser.add_argument("--count", type=int, default=400)
    args = parser.parse_args(argv)
    from copilot.security import Tokens

    token = Tokens(SECRET).issue("bench", "agent", "idle")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server = ServerProcess({"COPILOT_SECRET": SECRET, "COPILOT_INSTANCE_DIR": str(workdir / "instance"),
                                "COPILOT_PING_INTERVAL_S": "300", "COPILOT_RATE_PER_S": "1000",
                                "COPILOT_RATE_BURST": "1000", "COPILOT_AGENT_RATE_PER_S": "1000",
                                "COPILOT_AGENT_RATE_BURST": "1000", "COPILOT_MAX_PENDING_PER_ADDRESS": "4000",
                                "COPILOT_MAX_CONNECTIONS_PER_AGENT": "100000"}, workdir)
        try:
            for n in range(25):  # first-use allocations (the model's arena, caches) are not per session
                warm(open_session(server.url, token, n))
            time.sleep(1)
            sessions, first = fill(server, token, args.count)
            for ws in sessions:
                ws.close()
            time.sleep(2)
            sessions, again = fill(server, token, args.count)
            for ws in sessions:
                ws.close()
        finally:
            server.stop()
    print(f"{args.count} idle sessions, one conversation each: {first:.1f} KB per session on first fill, "
          f"{again:.1f} KB once the heap has room")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
