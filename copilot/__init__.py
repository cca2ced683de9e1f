"""Empathy Copilot: real-time cue highlights and open questions for contact-centre agents."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from copilot.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app: the one place where the model, the stores and the transport are wired together."""
    from flask import Flask

    from copilot.cues import load_detector
    from copilot.index import load_or_build
    from copilot.library.api import library_api
    from copilot.library.files import load_library
    from copilot.library.service import Library
    from copilot.library.store import RedisLibraryStore, SqliteLibraryStore
    from copilot.rest import api
    from copilot.security import Tokens, load_secret
    from copilot.settings import Settings

    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder=None)
    app.config["COPILOT_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    detector = load_detector(settings.model_dir, threads=settings.model_threads)
    store = RedisLibraryStore(settings.redis_url) if settings.redis_url else SqliteLibraryStore(settings.library_db)
    shipped = load_library()
    library = Library(store, detector.model.embed, shipped, load_or_build(shipped, detector.model.embed),
                      sync_interval_s=settings.library_sync_ms / 1000)
    app.extensions["copilot.detector"] = detector
    app.extensions["copilot.library"] = library
    app.extensions["copilot.tokens"] = Tokens(load_secret(settings.secret, settings.instance_dir))
    app.register_blueprint(api)
    app.register_blueprint(library_api)
    return app


def run(app: Flask) -> None:
    """Serve the app on the settings' HOST and PORT (development and the embedded default)."""
    settings = app.config["COPILOT_SETTINGS"]
    app.run(host=settings.host, port=settings.port, threaded=True)
