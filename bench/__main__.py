"""One command for the whole benchmark:

    python -m bench [--levels 25,50,...,700,800] [--duration 40] [--chat-levels 400,600] [--skip-redis] [--skip-naive]
                    [--index-10k]

1. The floor: the cue graph's own inference time on the replay corpus's customer snippets, no server (back to back,
   and paced like the live load).
2. For each deployment (embedded default; the same with three chats per agent connection; two workers sharing a
   real Redis; the naive PyTorch peer when torch is installed), a sweep over C concurrent conversations replaying
   the corpus at one customer and one agent snippet every 3 s each: end-to-end latency (send -> cue.highlight)
   p50/p95/p99, throughput, server CPU and RSS.
3. Optionally, RSS with a 10,000-phrasing library indexed.
Writes bench/results/latest.json, latency.png and latest.md (the tables that BENCHMARKS.md quotes).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import psutil

from bench.load import read_corpus
from copilot.security import Tokens
from tests.servers import ROOT, RedisServer, ServerProcess

RESULTS = Path(__file__).parent / "results"
SECRET = "bench-secret-0123456789abcdef0123456789ab"
P99_BUDGET_MS = 250.0


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def floor(runs: int = 3, paced_gap_s: float = 0.05, dense: bool = False) -> dict:
    """Inference time of the cue graph alone (one thread) and of the full detector, per customer snippet: back to
    back (a hot core and caches), and paced (the graph alone, one snippet every paced_gap_s, as a server sees
    snippets arrive at a realistic pace; an idle core is slower to start)."""
    from copilot.cues import load_detector

    detector = load_detector(threads=1)
    texts = [t["text"] for c in read_corpus(dense=dense) for t in c["turns"] if t["speaker"] == "customer"]
    for text in texts[:20]:
        detector.analyse(text)
    graph, full, paced = [], [], []
    for _ in range(runs):
        for text in texts:
            start = time.perf_counter()
            detector.model.encode([text])
            graph.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            detector.analyse(text)
            full.append((time.perf_counter() - start) * 1000)
    for text in texts:
        time.sleep(paced_gap_s)
        start = time.perf_counter()
        detector.model.encode([text])
        paced.append((time.perf_counter() - start) * 1000)

    def summary(values: list[float]) -> dict:
        return {"p50": percentile(values, 50), "p95": percentile(values, 95), "p99": percentile(values, 99)}
    return {"snippets": len(texts), "graph_ms": summary(graph), "detector_ms": summary(full),
            "graph_paced_ms": {**summary(paced), "gap_s": paced_gap_s}}


def processes_of(pids: list[int]) -> list[psutil.Process]:
    out = []
    for pid in pids:
        proc = psutil.Process(pid)
        out.append(proc)
        out.extend(proc.children(recursive=True))
    return out


def rss_mb(procs: list[psutil.Process]) -> float:
    return sum(p.memory_info().rss for p in procs) / 2**20


def server_seconds(urls: list[str]) -> tuple[float, float]:
    """Sum and count of the servers' own snippet processing time (their Prometheus histogram)."""
    import requests

    total = count = 0.0
    for url in urls:
        try:
            text = requests.get(url + "/metrics", timeout=5).text
        except requests.RequestException:
            continue
        for line in text.splitlines():
            if line.startswith("copilot_snippet_seconds_sum"):
                total += float(line.split()[-1])
            elif line.startswith("copilot_snippet_seconds_count"):
                count += float(line.split()[-1])
    return total, count


def run_level(urls: list[str], pids: list[int], cpu_pids: list[int], conversations: int, duration: float,
              warmup: float, workdir: Path, per_connection: int = 1, dense: bool = False) -> dict:
    """Drive one load level in a separate process and watch the servers' memory (pids) and CPU (cpu_pids, which
    may add a Redis server) meanwhile."""
    token = Tokens(SECRET).issue("bench", "agent", "bench-agent", ttl_s=24 * 3600)
    out = workdir / f"load-{conversations}-{time.time_ns()}.json"
    command = [sys.executable, "-m", "bench.load", "--token", token, "--conversations", str(conversations),
               "--duration", str(duration), "--warmup", str(warmup), "--out", str(out),
               "--per-connection", str(per_connection)] + (["--dense"] if dense else [])
    for url in urls:
        command += ["--url", url]
    procs, cpu_procs = processes_of(pids), processes_of(cpu_pids)
    sum_before, count_before = server_seconds(urls)
    load = subprocess.Popen(command, cwd=ROOT)
    time.sleep(warmup)
    cpu_before = sum(sum(p.cpu_times()[:2]) for p in cpu_procs)
    started = time.time()
    peak = 0.0
    while load.poll() is None:
        peak = max(peak, rss_mb(procs))
        time.sleep(1.0)
    elapsed = time.time() - started
    cpu = (sum(sum(p.cpu_times()[:2]) for p in cpu_procs) - cpu_before) / max(elapsed, 1e-9)
    sum_after, count_after = server_seconds(urls)
    server_ms = (sum_after - sum_before) * 1000 / (count_after - count_before) if count_after > count_before else None
    data = json.loads(out.read_text())
    lat = data.pop("latencies_ms")
    data.pop("sent_at")
    return {**data, "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95), "p99_ms": percentile(lat, 99),
            "max_ms": round(max(lat), 1) if lat else None, "throughput_per_s": round(len(lat) / duration, 2),
            "server_cpu_cores": round(cpu, 2), "server_rss_peak_mb": round(peak, 1),
            "server_mean_processing_ms": round(server_ms, 2) if server_ms else None}


Started = tuple[list[str], list[int], list[int], Callable[[], None]]  # urls, RSS pids, CPU pids, stop


def sweep(name: str, start: Callable[[], Started], levels: list[int], duration: float, warmup: float,
          workdir: Path, per_connection: int = 1, dense: bool = False) -> dict:
    """One fresh deployment per level, so no level inherits another's heap or ended conversations. A short warm-up
    load comes first: first-use allocations (the model's arena, caches) are not per conversation."""
    rows = []
    for level in levels:
        urls, pids, cpu_pids, stop = start()
        try:
            run_level(urls, pids, cpu_pids, 25, 6, 2, workdir)
            time.sleep(2)
            idle = rss_mb(processes_of(pids))
            row = run_level(urls, pids, cpu_pids, level, duration, warmup, workdir, per_connection, dense)
        finally:
            stop()
        row["idle_rss_mb"] = round(idle, 1)
        row["rss_per_conversation_kb"] = round((row["server_rss_peak_mb"] - idle) * 1024 / level, 1)
        rows.append(row)
        print(f"{name:10} C={level:4d} p50 {row['p50_ms']} p95 {row['p95_ms']} p99 {row['p99_ms']} ms, "
              f"{row['throughput_per_s']} highlights/s, server {row['server_mean_processing_ms']} ms/snippet, "
              f"cpu {row['server_cpu_cores']}, rss {row['server_rss_peak_mb']} MB "
              f"({row['rss_per_conversation_kb']} KB/conversation), errors {row['errors']}", flush=True)
        if row["p99_ms"] is None or row["p99_ms"] > 4 * P99_BUDGET_MS:
            break  # saturated: higher levels only queue up more
    sustained = [r for r in rows if r["p99_ms"] is not None and r["p99_ms"] <= P99_BUDGET_MS and not r["errors"]]
    best = max(sustained, key=lambda r: r["conversations"]) if sustained else None
    return {"name": name, "idle_rss_mb": rows[0]["idle_rss_mb"] if rows else None, "levels": rows,
            "max_conversations_p99_250ms": best["conversations"] if best else 0,
            "throughput_at_max": best["throughput_per_s"] if best else 0.0}


def servers(*processes: ServerProcess, extra_cpu: list[int] = ()) -> Started:
    def stop() -> None:
        for process in processes:
            process.stop()
    pids = [p.pid for p in processes]
    return [p.url for p in processes], pids, pids + list(extra_cpu), stop


def state_size_redis(url: str) -> dict:
    """Average Redis memory of one conversation's state (MEMORY USAGE over the bench tenant's keys)."""
    import redis

    client = redis.Redis.from_url(url)
    sizes = [client.memory_usage(key) or 0 for key in client.scan_iter("copilot:conv:bench:*", count=500)]
    return {"keys": len(sizes), "mean_bytes": round(statistics.mean(sizes)) if sizes else None,
            "max_bytes": max(sizes) if sizes else None}


def import_and_approve(url: str, lead: dict, phrasings: list) -> tuple[dict, float, float]:
    """Import phrasings as YAML, then approve them all in one bulk call (approval is what puts a phrasing in the
    index): the import's reply and the seconds each step took."""
    import requests

    from copilot.library.files import dump

    start = time.time()
    reply = requests.post(url + "/api/v1/phrasings/import?format=yaml", headers=lead, timeout=1800,
                          data=dump(phrasings, "yaml").encode())
    reply.raise_for_status()
    imported = time.time() - start
    start = time.time()
    requests.post(url + "/api/v1/phrasings/bulk", headers=lead, timeout=1800,
                  json={"action": "approve", "ids": [p.id for p in phrasings]}).raise_for_status()
    return reply.json(), imported, time.time() - start


def index_10k(workdir: Path) -> dict:
    """RSS of an embedded server after a 10,000-phrasing library is imported and indexed."""
    import requests

    from copilot.library.phrasing import parse_phrasing

    aspects = ["part", "step", "moment", "detail", "change", "question", "worry", "outcome", "option", "date"]
    things = ["bill", "order", "refund", "contract", "letter", "visit", "payment", "account", "claim", "booking"]
    verbs = ["look at", "go through", "talk about", "sort out", "check", "start with", "explain", "revisit",
             "settle", "untangle"]
    extras = ["", " today", " together", " first", " with me", " now", " in detail", " again", " properly", " next"]
    cues = ["frustration", "confusion", "anxiety", "repeat_contact", "urgency", "disappointment"]
    phrasings = []
    for i in range(10_000):
        a, t, v, e = aspects[i % 10], things[(i // 10) % 10], verbs[(i // 100) % 10], extras[(i // 1000) % 10]
        phrasings.append(parse_phrasing({
            "id": f"synthetic-{i:05d}", "text": f"Which {a} of the {t} would you like to {v}{e}?",
            "cues": [cues[i % len(cues)]], "stage": "investigate", "status": "draft",
            "use_when": [f"I have a question about my {t}", f"the {a} of my {t} is wrong"]}))
    server = ServerProcess({"COPILOT_SECRET": SECRET, "COPILOT_INSTANCE_DIR": str(workdir / "i10k"),
                            "COPILOT_MAX_BODY_BYTES": str(64 * 2**20)}, workdir)
    try:
        lead = {"Authorization": f"Bearer {Tokens(SECRET).issue('bench', 'lead', 'lee')}"}
        requests.get(server.url + "/api/v1/phrasings", headers=lead, timeout=60)
        reply, imported, approved = import_and_approve(server.url, lead, phrasings)
        listing = requests.get(server.url + "/api/v1/phrasings?status=approved", headers=lead, timeout=120).json()
        return {"imported": reply.get("imported"), "import_s": round(imported, 1), "approve_all_s": round(approved, 1),
                "approved_in_library": listing["count"], "rss_mb": round(rss_mb(processes_of([server.pid])), 1)}
    finally:
        server.stop()


def tables(report: dict) -> str:
    """The report as the Markdown that BENCHMARKS.md quotes."""
    f = report["floor"]
    lines = [f"Floor ({f['snippets']} customer snippets, one onnxruntime thread, no server): cue graph back to back "
             f"p50 {f['graph_ms']['p50']} ms, p95 {f['graph_ms']['p95']}; paced one every "
             f"{f['graph_paced_ms']['gap_s']} s p50 {f['graph_paced_ms']['p50']} ms, p95 {f['graph_paced_ms']['p95']}; "
             f"full detector back to back p50 {f['detector_ms']['p50']} ms, p95 {f['detector_ms']['p95']}", ""]
    if report.get("floor_dense"):
        d = report["floor_dense"]
        lines += [f"Floor, emotion-dense ({d['snippets']} customer snippets, every one with a cue): cue graph p50 "
                  f"{d['graph_ms']['p50']} ms, p95 {d['graph_ms']['p95']}; full detector p50 {d['detector_ms']['p50']} "
                  f"ms, p95 {d['detector_ms']['p95']} ({d['detector_ms']['p95'] / d['graph_ms']['p95']:.2f}x the "
                  f"graph's p95)", ""]
    for d in report["deployments"]:
        lines += [f"**{d['name']}** (largest C with p99 <= {P99_BUDGET_MS:.0f} ms: {d['max_conversations_p99_250ms']}, "
                  f"{d['throughput_at_max']} highlights/s)", ""]
        if d.get("conversation_state_in_redis"):
            lines += [f"state in Redis: {d['conversation_state_in_redis']}", ""]
        lines += ["| C | connections | p50 ms | p95 ms | p99 ms | highlights/s | server ms/snippet | server CPU (cores) "
                  "| idle RSS MB | peak RSS MB | RSS/conversation KB | errors |", "|" + "---|" * 12]
        for r in d["levels"]:
            lines.append(f"| {r['conversations']} | {r['connections']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | "
                         f"{r['throughput_per_s']} | {r['server_mean_processing_ms']} | {r['server_cpu_cores']} | "
                         f"{r['idle_rss_mb']} | {r['server_rss_peak_mb']} | {r['rss_per_conversation_kb']} | "
                         f"{sum(r['errors'].values()) + r['connect_failures']} |")
        lowest = d["levels"][0] if d["levels"] else None
        if lowest and lowest["p50_ms"]:
            lines += ["", f"At C={lowest['conversations']} the end-to-end median is "
                          f"{lowest['p50_ms'] / f['graph_ms']['p50']:.2f}x the back-to-back graph and "
                          f"{lowest['p50_ms'] / f['graph_paced_ms']['p50']:.2f}x the paced graph."]
        lines.append("")
    if report.get("index_10k"):
        lines.append(f"10,000-phrasing library: {report['index_10k']}")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for deployment in report["deployments"]:
        rows = [r for r in deployment["levels"] if r["p99_ms"] is not None]
        xs = [r["conversations"] for r in rows]
        ax.plot(xs, [r["p50_ms"] for r in rows], marker="o", label=f"{deployment['name']} p50")
        ax.plot(xs, [r["p99_ms"] for r in rows], marker="^", linestyle="--", label=f"{deployment['name']} p99")
    ax.axhline(P99_BUDGET_MS, color="grey", linewidth=0.8)
    ax.axhline(100, color="grey", linewidth=0.8, linestyle=":")
    ax.set_yscale("log")
    ax.set_xlabel("concurrent conversations (one customer + one agent snippet every 3 s each)")
    ax.set_ylabel("send -> cue.highlight latency (ms)")
    ax.set_title(f"End-to-end latency on {report['machine']['cpus']} cores ({report['date']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="25,50,100,200,300,400,500,600,700,800")
    parser.add_argument("--naive-levels", default="5,10,25,50,100")
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--chat-levels", default="400,600",
                        help="levels to rerun with several conversations per connection (empty: skip)")
    parser.add_argument("--chat-per-connection", type=int, default=3)
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--index-10k", action="store_true")
    parser.add_argument("--dense-levels", default="100,200,300",
                        help="levels to rerun with the emotion-dense load, every customer turn a cue (empty: skip)")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    report = {"date": date.today().isoformat(), "command": " ".join(["python -m bench", *(argv or sys.argv[1:])]),
              "machine": {"cpus": psutil.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                          "processor": platform.processor() or platform.machine(), "python": platform.python_version()},
              "floor": floor(), "deployments": []}
    if args.dense_levels:
        report["floor_dense"] = floor(dense=True)
    print("floor", report["floor"], flush=True)
    if args.dense_levels:
        print("floor, emotion-dense", report["floor_dense"], flush=True)
    # Every conversation runs as one agent of one tenant, from one address, all connecting at once: lift the
    # per-agent limit and the cap on sessions not yet on /copilot to what the sweep's 800 conversations need.
    env = {"COPILOT_SECRET": SECRET, "COPILOT_MODEL_THREADS": "1", "COPILOT_RATE_PER_S": "50", "COPILOT_RATE_BURST": "100",
           "COPILOT_AGENT_RATE_PER_S": "2000", "COPILOT_AGENT_RATE_BURST": "4000",
           "COPILOT_MAX_PENDING_PER_ADDRESS": "4000", "COPILOT_MAX_CONNECTIONS_PER_AGENT": "100000"}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)

        def embedded() -> Started:
            return servers(ServerProcess({**env, "COPILOT_INSTANCE_DIR": str(workdir / "embedded")}, workdir))
        report["deployments"].append(sweep("embedded", embedded, levels, args.duration, args.warmup, workdir))
        if args.chat_levels:  # chat agents: one desktop connection carries several conversations
            k = args.chat_per_connection
            report["deployments"].append(sweep(f"embedded-chat{k}", embedded, [int(x) for x in args.chat_levels.split(",")],
                                               args.duration, args.warmup, workdir, per_connection=k))
        if args.dense_levels:  # every customer turn carries a cue: spans and rules run on every snippet
            report["deployments"].append(sweep("embedded-dense", embedded, [int(x) for x in args.dense_levels.split(",")],
                                               args.duration, args.warmup, workdir, dense=True))
        if not args.skip_redis:
            redis_server = RedisServer(workdir / "redis")
            redis_server.start()
            renv = {**env, "REDIS_URL": redis_server.url, "COPILOT_INSTANCE_DIR": str(workdir / "redis-workers")}

            def redis_workers() -> Started:  # one as python wsgi.py, one as the Dockerfile runs gunicorn
                return servers(ServerProcess(renv, workdir), ServerProcess(renv, workdir, gunicorn=True),
                               extra_cpu=[redis_server.process.pid])
            try:
                result = sweep("redis-2w", redis_workers, levels, args.duration, args.warmup, workdir)
                result["conversation_state_in_redis"] = state_size_redis(redis_server.url)
                report["deployments"].append(result)
            finally:
                redis_server.stop()
        if not args.skip_naive:
            try:
                import torch  # noqa: F401
            except ImportError:
                print("naive peer skipped: install requirements-train.txt (torch) to run it", flush=True)
            else:
                def naive() -> Started:
                    return servers(ServerProcess({}, workdir, command=[sys.executable, "-m", "bench.naive_peer"]))
                report["deployments"].append(sweep("naive", naive, [int(x) for x in args.naive_levels.split(",")],
                                                   args.duration, args.warmup, workdir))
        if args.index_10k:
            report["index_10k"] = index_10k(workdir)
            print("index_10k", report["index_10k"], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(report, RESULTS / "latency.png")
    (RESULTS / "latest.md").write_text(tables(report))
    print(tables(report))
    print(json.dumps({d["name"]: {"max_conversations_p99_250ms": d["max_conversations_p99_250ms"],
                                  "throughput_at_max": d["throughput_at_max"]} for d in report["deployments"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
