#!/usr/bin/env bash
# The whole test suite, from a fresh machine: makes .venv, installs what the tests need (Python packages, and
# Debian's redis-server, chromium, nginx and postgresql, which the tests start themselves on loopback, and nodejs/npm,
# which build the Amazon Connect app's bundle from its pinned lock file), then runs ruff and pytest.
# Usage: bash tests/run.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing="$missing postgresql"
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -n "$missing" ]; then
  echo "tests/run.sh: installing Debian packages:$missing (apt-get, output in /tmp/copilot-apt.log)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q $missing >/tmp/copilot-apt.log 2>&1 \
    || { $sudo apt-get update -q >>/tmp/copilot-apt.log 2>&1 && $sudo apt-get install -y -q $missing >>/tmp/copilot-apt.log 2>&1; } \
    || { echo "tests/run.sh: apt-get failed; see /tmp/copilot-apt.log" >&2; tail -n 20 /tmp/copilot-apt.log >&2; exit 1; }
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
.venv/bin/ruff check --quiet copilot tests bench wsgi.py
(cd integrations/amazon-connect && npm ci --no-audit --no-fund --loglevel=error >/dev/null && npm run --silent build >/dev/null 2>&1) \
  || { echo "tests/run.sh: building integrations/amazon-connect failed (npm ci && npm run build)" >&2; exit 1; }
exec .venv/bin/python -m pytest "$@"
