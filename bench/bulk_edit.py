"""Live highlights while a team lead imports and approves a large library:

    python -m bench.bulk_edit [--phrasings 3000] [--conversations 50] [--redis]

Starts the embedded server (or, with --redis, one worker on a real Redis of its own), drives C conversations at
the benchmark's pace for 45 s, and meanwhile imports N synthetic phrasings (YAML) and approves them all in one
bulk call. Prints how long each took and the highlight latency over the whole run (p50, p99, max), and split by
what the library was doing when each snippet was sent: the event loop must keep serving while the library works.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.__main__ import import_and_approve, percentile
from copilot.library.phrasing import parse_phrasing
from copilot.security import Tokens
from tests.servers import ROOT, RedisServer, ServerProcess

SECRET = "bench-secret-0123456789abcdef0123456789ab"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bulk_edit")
    parser.add_argument("--phrasings", type=int, default=3000)
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--redis", action="store_true", help="the library and state in a real Redis")
    args = parser.parse_args(argv)
    phrasings = [parse_phrasing({
        "id": f"bulk-{i:05d}", "text": f"Which part of bill number {i} would you like to look at first?",
        "cues": ["confusion"], "stage": "investigate", "status": "draft",
        "use_when": [f"I have a question about bill {i}", f"part of bill {i} looks wrong"]}) for i in range(args.phrasings)]
    tokens = Tokens(SECRET)
    lead = {"Authorization": f"Bearer {tokens.issue('bench', 'lead', 'lee')}"}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        env = {"COPILOT_SECRET": SECRET, "COPILOT_INSTANCE_DIR": str(workdir / "instance"),
               "COPILOT_MAX_BODY_BYTES": str(64 * 2**20)}
        redis_server = RedisServer(workdir / "redis") if args.redis else None
        if redis_server:
            redis_server.start()
            env["REDIS_URL"] = redis_server.url
        server = ServerProcess(env, workdir)
        try:
            out = workdir / "load.json"
            load = subprocess.Popen([sys.executable, "-m", "bench.load", "--url", server.url, "--token",
                                     tokens.issue("bench", "agent", "amy", ttl_s=3600), "--conversations",
                                     str(args.conversations), "--duration", "45", "--warmup", "3", "--out", str(out)],
                                    cwd=ROOT)
            time.sleep(8)
            started = time.time()
            _, imported, approved = import_and_approve(server.url, lead, phrasings)
            load.wait(120)
            result = json.loads(out.read_text())
        finally:
            server.stop()
            if redis_server:
                redis_server.stop()
    latencies = result["latencies_ms"]
    phases = {"quiet": (0, started), "import": (started, started + imported),
              "approve": (started + imported, started + imported + approved),
              "approve, last second": (started + imported + approved - 1, started + imported + approved),
              "after": (started + imported + approved, float("inf"))}
    for name, (start, end) in phases.items():
        during = [ms for ms, at in zip(latencies, result["sent_at"]) if start <= at < end]
        print(f"{name:22} {len(during):5d} highlights, p50 {percentile(during, 50)} ms, p99 {percentile(during, 99)}"
              f" ms, max {round(max(during), 1) if during else None} ms")
    print(json.dumps({"store": "redis" if args.redis else "embedded", "phrasings": args.phrasings,
                      "conversations": args.conversations,
                      "import_s": round(imported, 1), "approve_all_s": round(approved, 1),
                      "highlights": len(latencies), "errors": result["errors"],
                      "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
                      "max_ms": round(max(latencies), 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
