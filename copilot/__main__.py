"""Commands: `python -m copilot token ...` prints a signed token; `python -m copilot serve` runs the server."""
from __future__ import annotations

import argparse
import sys

from copilot.security import DEFAULT_TTL_S, ROLES, Tokens, load_secret
from copilot.settings import InvalidSetting, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m copilot")
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="print a signed token for a tenant, role and agent")
    token.add_argument("--tenant", required=True)
    token.add_argument("--role", choices=ROLES, default="agent")
    token.add_argument("--agent", help="the agent's (or lead's, admin's) id; default: the role's name, "
                                       "e.g. 'lead' for --role lead")
    token.add_argument("--ttl", type=int, default=DEFAULT_TTL_S, help="seconds until it expires")
    commands.add_parser("serve", help="run the server on HOST:PORT as `python wsgi.py` does (gevent unless "
                                      "COPILOT_ASYNC_MODE=threading; the embedded default needs no Redis)")
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
    return serve(settings)


def serve(settings: Settings) -> int:
    """Serve as `python wsgi.py` does: on gevent (COPILOT_ASYNC_MODE) the standard library is patched before the
    app is built. Nothing imported so far (security, settings) has touched sockets, threads or ssl."""
    from copilot import create_app, patch_for_loop, run

    patch_for_loop(settings)

    run(create_app(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
