"""Empathy Copilot: real-time cue highlights and open questions for contact-centre agents."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from copilot.settings import Settings

# Imports sit inside the functions below, not at the top: `python -m copilot serve` and wsgi.py import this package
# (with copilot.settings) before they patch the standard library for gevent.


def patch_for_loop(settings: Settings) -> None:
    """Patch the standard library for gevent when the settings serve on it (COPILOT_ASYNC_MODE=gevent): first,
    before anything imports sockets, threads or ssl. The entry points call it; create_app refuses gevent without it."""
    if settings.async_mode == "gevent":
        from gevent import monkey

        monkey.patch_all()


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app: the one place where the model, the stores and the transports are wired together; each
    module sets up what it owns. The Socket.IO server is app.extensions["socketio"]."""
    from flask import Flask

    from copilot import realtime, realtime_floor, realtime_ingest, security
    from copilot.analytics.api import analytics_api
    from copilot.analytics.service import open_service
    from copilot.assist import CopilotService
    from copilot.concurrency import Pools, async_mode
    from copilot.conversation_store import open_conversations
    from copilot.cues import load_detector
    from copilot.floor_api import floor_api
    from copilot.floor_rules import open_floor_rules
    from copilot.floor_service import FloorService
    from copilot.library.api import library_api
    from copilot.library.service import open_library
    from copilot.metrics import Metrics
    from copilot.rest import api
    from copilot.security import Tokens, load_secret
    from copilot.settings import Settings
    from copilot.sources.api import sources_api
    from copilot.sources.ingest import Ingest
    from copilot.web import web

    settings = settings or Settings.from_env()
    mode = async_mode(settings)
    pools = Pools.for_mode(mode, settings.model_workers)
    app = Flask(__name__, static_folder=None)
    app.config.update(COPILOT_SETTINGS=settings, MAX_CONTENT_LENGTH=settings.max_body_bytes)
    detector = load_detector(settings.model_dir, threads=settings.model_threads, graph=settings.model_graph,
                             executor=pools.model)
    conversations = open_conversations(settings, pools)
    library = open_library(settings, detector, pools)
    metrics = Metrics()
    tokens = Tokens(load_secret(settings.secret, settings.instance_dir))
    rules = open_floor_rules(settings)
    service = CopilotService(detector, library, conversations, metrics, settings.max_text_chars,
                             settings.cooldown_s, settings.transcript, rules.of)
    floor = FloorService(conversations, rules, settings.transcript, off_loop=pools.python)
    feed = realtime_floor.FloorFeed(metrics)
    # the loader's thread and the queries' pool are native threads on gevent
    analytics = open_service(settings, metrics, getattr(conversations, "log", None), gevent=mode == "gevent")
    app.extensions.update({"copilot.detector": detector, "copilot.library": library, "copilot.tokens": tokens,
                           "copilot.assist": service, "copilot.metrics": metrics, "copilot.off_loop": pools.python,
                           "copilot.analytics": analytics})
    socketio = realtime.init_app(app, settings, service, tokens, metrics, board=feed.publish)
    realtime_floor.init_app(app, socketio, settings, floor, tokens, metrics, feed)
    # a source's utterances spend the tenant's events on /copilot: they are its model time too
    ingest = Ingest(service, app.extensions["copilot.deliver"], app.extensions["copilot.connections"].admit_tenant)
    app.extensions["copilot.ingest"] = ingest
    realtime_ingest.init_app(app, socketio, settings, ingest, tokens, metrics)
    security.init_app(app, settings)  # after realtime: its middleware wraps Engine.IO's too
    for blueprint in (api, library_api, floor_api, analytics_api, sources_api, web):
        app.register_blueprint(blueprint)
    return app


def run(app: Flask) -> None:
    """Serve the app on the settings' HOST and PORT (the embedded default, and one worker behind a balancer); one
    "listening on" line first, and Ctrl-C (SIGINT) stops it without a traceback."""
    settings = app.config["COPILOT_SETTINGS"]
    socketio = app.extensions["socketio"]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"listening on http://{host}:{settings.port}", file=sys.stderr, flush=True)
    if socketio.async_mode == "threading":
        try:
            socketio.run(app, host=settings.host, port=settings.port, allow_unsafe_werkzeug=True,
                         use_reloader=False, log_output=False)
        except KeyboardInterrupt:
            pass
    else:
        import signal

        import gevent

        server = no_delay_server(app, settings.host, settings.port, ShortLines(sys.stderr))

        def stop() -> None:
            """SIGINT's default raises KeyboardInterrupt in whichever greenlet runs, and gevent prints it with a
            traceback: stop the server instead, so that serve_forever returns."""
            server.stop(timeout=1)
        gevent.signal_handler(signal.SIGINT, stop)
        server.serve_forever()
    # The analytics loader's batch in progress ends (or is left to the next start) before the interpreter exits:
    # at exit, tearing down its DuckDB connection interrupted the batch's query, which logged a traceback.
    analytics = app.extensions.get("copilot.analytics")
    if analytics is not None:
        analytics.stop(timeout_s=5)
    print("stopped", file=sys.stderr, flush=True)


def no_delay_server(app: Flask, host: str, port: int, error_log: Any) -> Any:
    """gevent's WSGI server as Flask-SocketIO's run builds it (WebSocket through simple-websocket, no access log),
    on a listening socket with TCP_NODELAY, which its connections inherit. Without it every JSON answer on a
    kept-alive connection waited 40 ms: its last small write held back (Nagle) for the client's delayed ACK, so a
    relay posting transcripts on one connection managed 25 a second. gunicorn sets it on its own sockets."""
    import socket

    from gevent import pywsgi

    class NoDelayServer(pywsgi.WSGIServer):
        def init_socket(self) -> None:
            super().init_socket()
            if self.socket.family in (socket.AF_INET, socket.AF_INET6):
                self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    return NoDelayServer((host, port), app, log=None, error_log=error_log)


class ShortLines:
    """gevent's error log with every line cut to MAX_LINE characters: gevent quotes a bad request line whole (up
    to 8 KB) each time one arrives, so anyone could fill the log. Tracebacks keep every one of their lines."""

    MAX_LINE = 300

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        lines = text.split("\n")
        self.stream.write("\n".join(line if len(line) <= self.MAX_LINE else f"{line[:self.MAX_LINE - 20]}... "
                                     f"({len(line)} chars)" for line in lines))

    def flush(self) -> None:
        self.stream.flush()
