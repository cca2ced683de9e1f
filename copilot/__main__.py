"""Commands: `python -m copilot token ...` prints a signed token; `python -m copilot serve` runs the server;
`python -m copilot analytics load|export` moves the event log into the analytics store, or a table out of it."""
from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from copilot.security import DEFAULT_TTL_S, ROLES, Tokens, load_secret
from copilot.settings import InvalidSetting, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m copilot")
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="print a signed token for a tenant, role and agent")
    token.add_argument("--tenant", required=True)
    token.add_argument("--role", choices=ROLES, default="agent",
                       help="agent, lead or admin; integration for a system that sends transcripts and outcomes, "
                            "nothing else")
    token.add_argument("--agent", help="the agent's (or lead's, admin's) id; default: the role's name, "
                                       "e.g. 'lead' for --role lead")
    token.add_argument("--ttl", type=int, default=DEFAULT_TTL_S, help="seconds until it expires")
    commands.add_parser("serve", help="run the server on HOST:PORT as `python wsgi.py` does (gevent unless "
                                      "COPILOT_ASYNC_MODE=threading; the embedded default needs no Redis)")
    analytics = commands.add_parser("analytics", help="the analytics store: load the event log, export a table")
    tasks = analytics.add_subparsers(dest="task", required=True)
    load = tasks.add_parser("load", help="load the event log into the analytics store (what a server's loader "
                                         "thread does); until stopped, or with --once until caught up")
    load.add_argument("--once", action="store_true", help="exit once every logged event is loaded")
    load.add_argument("--batch", type=int, default=5000, help="events per transaction")
    export = tasks.add_parser("export", help="write one table of a tenant for a range of days to a Parquet file")
    export.add_argument("--tenant", required=True)
    export.add_argument("--table", required=True)
    export.add_argument("--from", dest="day_from", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
    export.add_argument("--to", dest="day_to", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
    export.add_argument("--out", required=True, type=Path, help="the .parquet file to write")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except InvalidSetting as error:  # one line that names the variable, not a traceback
        print(f"copilot: {error}", file=sys.stderr)
        return 2
    if args.command == "token":
        tokens = Tokens(load_secret(settings.secret, settings.instance_dir))
        try:
            print(tokens.issue(args.tenant, args.role, args.agent or args.role, ttl_s=args.ttl))
        except ValueError as error:
            parser.error(str(error))
        return 0
    if args.command == "analytics":
        return analytics_command(settings, args)
    return serve(settings)


def analytics_command(settings: Settings, args: argparse.Namespace) -> int:
    """`analytics load` and `analytics export`, in this process (no server): the store must not be open
    elsewhere when it is the embedded DuckDB file."""
    import signal

    from copilot.analytics.service import Analytics
    from copilot.errors import CopilotError

    service = Analytics(settings, batch=getattr(args, "batch", 5000))
    try:
        if args.task == "export":
            service.export(args.tenant, args.table, args.day_from, args.day_to, args.out)
            print(f"exported {args.table} of {args.tenant} to {args.out}", file=sys.stderr)
            return 0
        if args.once:
            print(f"loaded {service.load_once()} events", file=sys.stderr)
            return 0
        signal.signal(signal.SIGTERM, lambda *_: service.stop_signal.set())
        print("loading; Ctrl-C stops", file=sys.stderr, flush=True)
        try:
            service.load_until_stopped()
        except KeyboardInterrupt:
            pass
        return 0
    except CopilotError as error:
        print(f"copilot: {error}", file=sys.stderr)
        return 1
    finally:
        service.stop(timeout_s=0)


def serve(settings: Settings) -> int:
    """Serve as `python wsgi.py` does: on gevent (COPILOT_ASYNC_MODE) the standard library is patched before the
    app is built. Nothing imported so far (security, settings) has touched sockets, threads or ssl."""
    from copilot import create_app, patch_for_loop, run

    patch_for_loop(settings)

    run(create_app(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
