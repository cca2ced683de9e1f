"""The analytics store at a contact centre's scale (issue #16):

    python -m bench.analytics [--events 10000000] [--ingest 200000] [--skip-postgres] [--skip-live]
                              [--conversations 100] [--duration 40] [--repeats 2] [--csv-rows 100000]

1. Reports: `events` synthetic events (30 days, 1,000 agents, 5 tenants; 20 events a conversation) made in the
   store by the store's own bulk INSERT ... SELECT (DuckDB, and PostgreSQL from Debian's packages unless
   --skip-postgres), then every report of every tenant, three times each: the slowest answer per report.
2. Ingest: `ingest` synthetic events (bench.synthetic, shaped like the server's log) written as an event log file
   and moved by the real loader (FileSource -> Loader) into that full store: events a second.
3. Live (DuckDB): a server (`python wsgi.py`) whose instance holds the full store; `conversations` agents replay
   the corpus while, in alternate phases, a lead asks every report over HTTP in a loop: the agents' highlight
   p99 with and without the lead. Then a CSV of `csv-rows` outcomes, one row malformed, POSTed to it: the time,
   and that the bad row is reported by its line while the others land.
Loopback only, bounded in time. Writes bench/results/analytics.json and analytics.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import psutil
import requests

from bench.__main__ import RESULTS, SECRET, percentile, run_level
from bench.synthetic import write_log
from copilot.analytics import reports
from copilot.analytics.loader import FileSource, Loader
from copilot.analytics.store import DuckDBAnalytics, PostgresAnalytics
from copilot.security import Tokens
from tests.servers import PostgresServer, ServerProcess

REPORT_TARGET_S = {"duckdb": 1.0, "postgresql": 2.0}
INGEST_TARGET_PER_S = 2000.0
SLOWDOWN_TARGET = 1.10
CSV_TARGET_S = 10.0
MIN_N = 10
ASKS = [  # every report the REST API answers, with each grouping and split
    ("resolution", {"by": "day"}), ("resolution", {"by": "queue"}), ("resolution", {"by": "agent"}),
    ("resolution", {"by": "cue"}),
    ("outcomes", {"metric": "csat", "split": "acknowledged"}),
    ("outcomes", {"metric": "felt_understood", "split": "acknowledged"}),
    ("outcomes", {"metric": "csat", "split": "suggestion"}),
    ("outcomes", {"metric": "csat", "split": "variant", "experiment": "exp-1"}),
    ("cqs", {"by": "queue"}), ("cqs", {"by": "day"}), ("cqs", {"by": "agent"}),
    ("phrasings", {}), ("repeat_contacts", {"by": "day"}), ("repeat_contacts", {"by": "queue"}),
    ("scorecards", {"by": "agent"}), ("scorecards", {"by": "queue"}),
]


def ask(store, tenant: str, name: str, params: dict) -> dict:
    """One report as the service asks it."""
    if name == "scorecards":
        return reports.scorecards(store, tenant, params, MIN_N)
    return reports.report(store, tenant, name, params, MIN_N)


def time_reports(store, tenants: int, runs: int = 3) -> dict:
    """Per report (name and parameters), the slowest of `runs` answers for every tenant, in seconds."""
    slowest = {}
    for name, params in ASKS:
        key = name + "".join(f" {k}={v}" for k, v in params.items())
        worst, rows = 0.0, 0
        for _run in range(runs):
            for t in range(tenants):
                started = time.perf_counter()
                answer = ask(store, f"tenant-{t}", name, params)
                worst = max(worst, time.perf_counter() - started)
                rows = max(rows, len(answer["rows"]))
        slowest[key] = {"slowest_s": round(worst, 3), "rows": rows}
        print(f"  {key}: {worst:.3f} s ({rows} rows)", flush=True)
    return slowest


def ingest(store, workdir: Path, count: int) -> dict:
    """Write a synthetic event log and load it with the real loader; events a second over the whole load."""
    log = workdir / "ingest.jsonl"
    written = write_log(log, count, seed=int(time.time()))
    loader = Loader(store, FileSource(log), batch=5000)
    started = time.perf_counter()
    loaded = 0
    while True:
        new = loader.run_once()
        if new == 0 and store.position(loader.source.name) == str(log.stat().st_size):
            break
        loaded += new
    elapsed = time.perf_counter() - started
    again = loader.run_once()  # caught up: nothing more, nothing twice
    log.unlink()
    return {"events": written, "loaded": loaded, "seconds": round(elapsed, 2),
            "events_per_s": round(loaded / elapsed, 1), "second_pass_loaded": again}


def engine(kind: str, store, args: argparse.Namespace, workdir: Path) -> dict:
    print(f"{kind}: synthesizing {args.events:,} events", flush=True)
    started = time.perf_counter()
    made = store.bulk_synthesize(tenants=5, agents=1000, days=30, events=args.events)
    result = {"synthesized": made, "synthesize_s": round(time.perf_counter() - started, 1)}
    print(f"{kind}: made in {result['synthesize_s']} s; timing reports", flush=True)
    result["reports"] = time_reports(store, 5)
    result["slowest_report_s"] = max(r["slowest_s"] for r in result["reports"].values())
    result["reports_target_s"] = REPORT_TARGET_S[kind]
    print(f"{kind}: ingest of {args.ingest:,} events", flush=True)
    result["ingest"] = ingest(store, workdir, args.ingest)
    print(f"{kind}: {result['ingest']}", flush=True)
    return result


class LeadLoop(threading.Thread):
    """A team lead asking every report over HTTP, back to back, until stopped."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.stop, self.times, self.failures = url, token, threading.Event(), [], 0

    def run(self) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token}"
        while not self.stop.is_set():
            for name, params in ASKS:
                path = "/api/v1/scorecards" if name == "scorecards" else f"/api/v1/reports/{name}"
                started = time.perf_counter()
                reply = session.get(self.url + path, params=params, timeout=60)
                self.times.append(time.perf_counter() - started)
                if reply.status_code != 200:
                    self.failures += 1
                if self.stop.is_set():
                    return


def csv_import(url: str, token: str, rows: int) -> dict:
    """POST a CSV of `rows` outcomes, line 1000 malformed; the time and what came back."""
    lines = ["conversation_id,csat,nps,felt_understood,acknowledged_situation,clear_next_steps,resolved"]
    for n in range(rows):
        lines.append(f"syn-0-{n},{1 + n % 5},{n % 11},{1 + n % 5},{1 + (n * 7) % 5},{1 + (n * 3) % 5},"
                     f"{'yes' if n % 3 else 'no'}")
    lines[999] = "syn-0-998,eleven,3,2,2,2,yes"  # spreadsheet line 1000
    body = ("\n".join(lines) + "\n").encode()
    started = time.perf_counter()
    reply = requests.post(url + "/api/v1/outcomes", data=body, timeout=120,
                          headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"})
    elapsed = time.perf_counter() - started
    answer = reply.json()
    return {"rows": rows, "bytes": len(body), "seconds": round(elapsed, 2), "status": reply.status_code,
            "accepted": answer.get("accepted"), "errors": answer.get("errors", [])[:3],
            "unknown_conversations": (answer.get("unknown_conversations") or {}).get("count")}


def live(store_file: Path, args: argparse.Namespace, workdir: Path) -> dict:
    """Agents' highlight latency with and without a lead running reports, on a server holding the full store."""
    instance = workdir / "live"
    instance.mkdir()
    shutil.copy(store_file, instance / "analytics.duckdb")
    os.sync()  # else the copy's dirty gigabytes are written back during the first phase, and every event log
    time.sleep(5)  # fdatasync (each snippet's) waits behind them: a stall of seconds that is the benchmark's own
    env = {"COPILOT_SECRET": SECRET, "COPILOT_INSTANCE_DIR": str(instance), "COPILOT_MODEL_THREADS": "1",
           "COPILOT_AGENT_RATE_PER_S": "2000", "COPILOT_AGENT_RATE_BURST": "4000",
           "COPILOT_MAX_PENDING_PER_ADDRESS": "4000", "COPILOT_MAX_CONNECTIONS_PER_AGENT": "100000"}
    server = ServerProcess(env, workdir)
    tokens = Tokens(SECRET)
    lead = tokens.issue("tenant-0", "lead", "bench-lead", ttl_s=24 * 3600)
    phases = []
    try:
        for repeat in range(args.repeats):
            for with_reports in (False, True):
                loop = LeadLoop(server.url, lead) if with_reports else None
                if loop:
                    loop.start()
                level = run_level([server.url], [server.pid], [server.pid], args.conversations, args.duration,
                                  args.warmup, workdir)
                phase = {"repeat": repeat, "reports": with_reports, "p50_ms": level["p50_ms"],
                         "p95_ms": level["p95_ms"], "p99_ms": level["p99_ms"], "max_ms": level["max_ms"],
                         "measured": level["measured"], "errors": level["errors"]}
                if loop:
                    loop.stop.set()
                    loop.join(timeout=120)
                    phase.update(report_answers=len(loop.times), report_failures=loop.failures,
                                 report_p50_s=percentile(loop.times, 50), report_max_s=round(max(loop.times), 3))
                phases.append(phase)
                print("live", phase, flush=True)
        integration = tokens.issue("tenant-0", "integration", "bench-surveys", ttl_s=3600)
        imported = csv_import(server.url, integration, args.csv_rows)
        print("csv", imported, flush=True)
    finally:
        server.stop()
    without = [p["p99_ms"] for p in phases if not p["reports"]]
    with_ = [p["p99_ms"] for p in phases if p["reports"]]
    ratio = (sum(with_) / len(with_)) / (sum(without) / len(without))
    return {"conversations": args.conversations, "phases": phases, "p99_without_ms": without, "p99_with_ms": with_,
            "p99_ratio": round(ratio, 3), "target_ratio": SLOWDOWN_TARGET, "csv": imported}


def table(report: dict) -> str:
    out = [f"# Analytics benchmark, {report['date']}", "", f"`{report['command']}` on {report['machine']}", ""]
    for kind, result in report["engines"].items():
        out += [f"## {kind}: {result['synthesized']['events']:,} events, {result['synthesized']['conversations']:,} "
                f"conversations (made in {result['synthesize_s']} s)", "",
                "| report | slowest of 3 runs x 5 tenants (s) | rows |", "|---|---:|---:|"]
        out += [f"| {k} | {v['slowest_s']} | {v['rows']} |" for k, v in result["reports"].items()]
        i = result["ingest"]
        out += ["", f"Slowest report {result['slowest_report_s']} s (target {result['reports_target_s']} s). "
                f"Ingest through the loader: {i['loaded']:,} events in {i['seconds']} s = {i['events_per_s']:,} "
                f"events/s (target {INGEST_TARGET_PER_S:,.0f}); a second pass loaded {i['second_pass_loaded']}.", ""]
    if "live" in report:
        lv = report["live"]
        out += ["## Live highlights with a lead running reports (DuckDB, embedded)", "",
                "| phase | reports | p50 ms | p95 ms | p99 ms | max ms | report answers | report p50 s |",
                "|---|---|---:|---:|---:|---:|---:|---:|"]
        out += [f"| {p['repeat']} | {'yes' if p['reports'] else 'no'} | {p['p50_ms']} | {p.get('p95_ms')} | "
                f"{p['p99_ms']} | {p.get('max_ms')} | "
                f"{p.get('report_answers', '')} | {p.get('report_p50_s', '')} |" for p in lv["phases"]]
        c = lv["csv"]
        out += ["", f"p99 with reports / without: x{lv['p99_ratio']} (target x{lv['target_ratio']}).", "",
                f"CSV import: {c['rows']:,} rows ({c['bytes']:,} bytes) in {c['seconds']} s (target {CSV_TARGET_S} s), "
                f"HTTP {c['status']}, {c['accepted']:,} accepted, errors {c['errors']}.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--ingest", type=int, default=200_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--csv-rows", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="keep the synthesized DuckDB file here, and reuse it if it is there "
                                                   "(then the DuckDB reports and ingest are not rerun)")
    args = parser.parse_args(argv)
    report = {"date": date.today().isoformat(),
              "command": " ".join(["python -m bench.analytics", *(argv if argv is not None else sys.argv[1:])]),
              "machine": f"{psutil.cpu_count()} CPUs, {round(psutil.virtual_memory().total / 2**30)} GB, "
                         f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
              "engines": {}}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        duck_file = args.keep if args.keep else workdir / "analytics.duckdb"
        if not duck_file.exists():
            store = DuckDBAnalytics(duck_file)
            try:
                report["engines"]["duckdb"] = engine("duckdb", store, args, workdir)
            finally:
                store.close()
        if not args.skip_postgres:
            server = PostgresServer(workdir / "postgres")
            server.start()
            try:
                store = PostgresAnalytics(server.url)
                try:
                    report["engines"]["postgresql"] = engine("postgresql", store, args, workdir)
                finally:
                    store.close()
            finally:
                server.stop()
        if not args.skip_live:
            report["live"] = live(duck_file, args, workdir)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "analytics.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / "analytics.md").write_text(table(report))
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
