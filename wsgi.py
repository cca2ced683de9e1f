"""Entry point: `python wsgi.py` serves on HOST:PORT (default 127.0.0.1:8000); gunicorn imports `app`."""
from copilot import create_app, run
from copilot.settings import Settings

app = create_app(Settings.from_env())

if __name__ == "__main__":
    run(app)
