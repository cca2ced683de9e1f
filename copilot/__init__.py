"""Empathy Copilot: real-time cue highlights and open questions for contact-centre agents."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

MAX_MESSAGE_BYTES = 1_000_000  # largest Socket.IO message; a snippet is at most COPILOT_MAX_TEXT_CHARS anyway

if TYPE_CHECKING:
    from flask import Flask

    from copilot.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app: the one place where the model, the stores and the transports are wired together.
    The Socket.IO server is app.extensions["socketio"]."""
    from flask import Flask
    from flask_socketio import SocketIO

    from copilot.cues import load_detector
    from copilot.eventlog import FileEventLog
    from copilot.index import load_or_build
    from copilot.library.api import library_api
    from copilot.library.files import load_library
    from copilot.library.service import Library
    from copilot.library.store import RedisLibraryStore, SqliteLibraryStore
    from copilot.metrics import Metrics
    from copilot.realtime import (
        Connections,
        JsonPacket,
        cap_send_queues,
        guard_sessions,
        register,
        serve_websockets,
        share_pings,
    )
    from copilot.rest import api
    from copilot.security import Lobby, Tokens, load_secret
    from copilot.service import CopilotService
    from copilot.settings import Settings
    from copilot.store import MemoryConversationStore, RedisConversationStore
    from copilot.web import web

    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder=None)
    app.config["COPILOT_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    mode = async_mode()
    executor, offload, on_bulk, on_log = None, None, None, None
    if mode == "gevent":  # native threads for what would hold up the event loop
        from gevent.threadpool import ThreadPoolExecutor

        if settings.model_workers:  # forward passes
            executor = ThreadPoolExecutor(settings.model_workers)
        bulk = ThreadPoolExecutor(1)  # the library's parsing and embedding, beside the live passes
        log_writer = ThreadPoolExecutor(1)  # the event log's write and sync, never queued behind a bulk edit

        def on_bulk(fn, *args):
            return bulk.submit(fn, *args).result()

        def on_log(fn, *args):
            return log_writer.submit(fn, *args).result()
        offload = QuickSwitches(on_bulk)  # parsing is pure Python: it would hold the GIL
    detector = load_detector(settings.model_dir, threads=settings.model_threads, graph=settings.model_graph,
                             executor=executor)
    if settings.redis_url:
        library_store = RedisLibraryStore(settings.redis_url)
        conversations = RedisConversationStore(settings.redis_url, max_live=settings.max_live_conversations,
                                               event_max_entries=settings.event_max_entries,
                                               event_max_age_days=settings.event_max_age_days)
    else:
        library_store = SqliteLibraryStore(settings.library_db, offload=on_bulk)
        conversations = MemoryConversationStore(FileEventLog(settings.event_log, offload=on_log),
                                                keep_ended_s=settings.keep_ended_s,
                                                max_live=settings.max_live_conversations)
    shipped = load_library()
    def library_embed(texts: list[str]):
        """A bulk approval embeds thousands of texts: on its own thread, not queued ahead of live snippets."""
        return on_bulk(detector.model.embed_here, texts) if on_bulk else detector.model.embed(texts)
    library = Library(library_store, library_embed, shipped, load_or_build(shipped, detector.model.embed),
                      sync_interval_s=settings.library_sync_ms / 1000, offload=offload,
                      max_phrasings=settings.max_phrasings, max_experiment_bytes=settings.max_experiment_bytes,
                      max_experiments=settings.max_experiments)
    metrics = Metrics()
    tokens = Tokens(load_secret(settings.secret, settings.instance_dir))
    service = CopilotService(detector, library, conversations, metrics, settings.max_text_chars,
                             settings.cooldown_s, settings.transcript)
    socketio = SocketIO(app, async_mode=mode, message_queue=settings.redis_url or None,
                        cors_allowed_origins=list(settings.allowed_origins) or None,
                        max_http_buffer_size=MAX_MESSAGE_BYTES, ping_interval=settings.ping_interval_s,
                        ping_timeout=settings.ping_timeout_s, serializer=JsonPacket)
    serve_websockets(socketio, MAX_MESSAGE_BYTES)
    guard_sessions(socketio, Lobby(settings.join_deadline_s, settings.max_pending_per_address))
    cap_send_queues(socketio)
    if mode == "gevent":
        share_pings(socketio)
    app.extensions.update({"copilot.detector": detector, "copilot.library": library, "copilot.tokens": tokens,
                           "copilot.service": service, "copilot.metrics": metrics, "socketio": socketio,
                           "copilot.off_loop": offload or (lambda fn, *args: fn(*args))})
    connections = Connections(settings.rate_per_s, settings.rate_burst, settings.agent_rate_per_s,
                              settings.agent_rate_burst, settings.tenant_rate_per_s, settings.tenant_rate_burst,
                              settings.max_connections_per_agent)
    app.extensions["copilot.connections"] = register(socketio, service, tokens, metrics, connections)
    if settings.proxy_hops:  # outermost, so that Engine.IO and every view see the client's address and scheme
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops)
    app.wsgi_app = SecurityHeaders(app.wsgi_app)  # outermost: Engine.IO answers /socket.io/ outside Flask
    app.register_blueprint(api)
    app.register_blueprint(library_api)
    app.register_blueprint(web)
    return app


class SecurityHeaders:
    """WSGI middleware that adds the headers every response promises (README) where a response lacks them,
    Engine.IO's included: it answers /socket.io/ below Flask, so no after_request hook sees those responses."""

    HEADERS = (("Referrer-Policy", "no-referrer"), ("X-Content-Type-Options", "nosniff"))

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            extra = [(name, value) for name, value in self.HEADERS if name.lower() not in present]
            return start_response(status, list(headers) + extra, exc_info)
        return self.app(environ, start)


class QuickSwitches:
    """Runs pure-Python bulk work (parsing an import) on another thread with the GIL handed over every 0.5 ms
    instead of every 5 ms. While that thread computes, the event loop's thread waits for the GIL each time it
    comes back from a socket or a forward pass, up to the whole interval: at 5 ms a 3,000-phrasing import held
    highlights up for over a second (bench.bulk_edit). Only while such work runs: the default stays otherwise."""

    INTERVAL_S = 0.0005

    def __init__(self, run: Callable[..., Any]) -> None:
        self.run, self.active, self.default = run, 0, None  # default: the interval to restore, read on first use

    def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.active += 1  # only the event loop's greenlets call this: no lock needed
        if self.active == 1:
            self.default = sys.getswitchinterval()
            sys.setswitchinterval(self.INTERVAL_S)
        try:
            return self.run(fn, *args)
        finally:
            self.active -= 1
            if self.active == 0:
                sys.setswitchinterval(self.default)


def async_mode() -> str:
    """gevent when the process has patched the standard library for it (`python wsgi.py`, gunicorn -k gevent),
    threading otherwise (tests that build an app in their own process)."""
    try:
        from gevent import monkey
    except ImportError:
        return "threading"
    return "gevent" if monkey.is_module_patched("socket") else "threading"


def run(app: Flask) -> None:
    """Serve the app on the settings' HOST and PORT (the embedded default, and one worker behind a balancer)."""
    settings = app.config["COPILOT_SETTINGS"]
    socketio = app.extensions["socketio"]
    if socketio.async_mode == "threading":
        socketio.run(app, host=settings.host, port=settings.port, allow_unsafe_werkzeug=True, use_reloader=False,
                     log_output=False)
    else:
        socketio.run(app, host=settings.host, port=settings.port, log_output=False, error_log=ShortLines(sys.stderr))


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
