"""Entry point: `python wsgi.py` serves on HOST:PORT (default 127.0.0.1:8000); gunicorn -k gevent imports `app`.

By default (COPILOT_ASYNC_MODE=gevent) the server runs on gevent's event loop: a connection costs a greenlet, not
a thread, and the model runs on a small pool of native threads. The standard library is then patched first,
before anything else imports it; the settings are read before that, and touch neither sockets nor threads.
"""
from copilot.settings import InvalidSetting, Settings

try:
    settings = Settings.from_env()
except InvalidSetting as error:  # one line that names the variable, not a traceback
    raise SystemExit(f"copilot: {error}") from None

from copilot import patch_for_loop  # noqa: E402 - the package's own module imports nothing heavy

patch_for_loop(settings)

from copilot import create_app, run  # noqa: E402 - after the patch, on purpose

app = create_app(settings)

if __name__ == "__main__":
    run(app)
