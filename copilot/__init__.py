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
    import logging  # here, not at the top: `python -m copilot serve` patches for gevent after importing this package

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
            return Outcome.of(bulk, fn, *args)

        def on_log(fn, *args):
            return Outcome.of(log_writer, fn, *args)
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
    if settings.redis_url and not conversations.ping():  # keep starting: Redis may come back, /readyz tells
        logging.getLogger("copilot").warning(
            "copilot: Redis at %s is unreachable; conversations and the library answer store_unavailable until it "
            "is back (/readyz says when)", redacted_url(settings.redis_url))
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
                        cors_allowed_origins=AllowedOrigins(settings.allowed_origins),
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


class AllowedOrigins:
    """Engine.IO's origin check: the server's own origin and the listed ones. A list given to Engine.IO replaces
    its same-origin default, so COPILOT_ALLOWED_ORIGINS refused the sidebar's and the demo's own connection."""

    def __init__(self, listed: tuple[str, ...] = ()) -> None:
        self.listed = frozenset(listed)

    def __call__(self, origin: str | None, environ: dict) -> bool:
        return origin in self.listed or origin in own_origins(environ)


def own_origins(environ: dict) -> set[str]:
    """The origins of the page that made this request, as Engine.IO's default computes them: the request's scheme
    (ProxyFix sets it behind COPILOT_PROXY_HOPS) and Host, and the X-Forwarded-Proto / -Host pair a browser
    cannot set."""
    host = environ.get("HTTP_HOST")
    if not host:
        return set()
    scheme = environ.get("wsgi.url_scheme", "http")
    origins = {f"{scheme}://{host}"}
    if "HTTP_X_FORWARDED_PROTO" in environ or "HTTP_X_FORWARDED_HOST" in environ:
        forwarded_scheme = environ.get("HTTP_X_FORWARDED_PROTO", scheme).split(",")[0].strip()
        forwarded_host = environ.get("HTTP_X_FORWARDED_HOST", host).split(",")[0].strip()
        origins.add(f"{forwarded_scheme}://{forwarded_host}")
    return origins


def redacted_url(url: str) -> str:
    """A Redis URL without its password, for the log."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


class Outcome:
    """What a function returned or raised on a pool thread, handed back to the waiting greenlet. gevent's pool
    prints a traceback for every exception a task raises, even one the caller handles (store_unavailable)."""

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error

    @classmethod
    def of(cls, pool: Any, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn(*args) on pool and return its value or raise its exception here."""
        def capture() -> Outcome:
            try:
                return cls(fn(*args))
            except Exception as error:  # noqa: BLE001 - re-raised on the caller's greenlet below
                return cls(error=error)
        outcome = pool.submit(capture).result()
        if outcome.error is not None:
            raise outcome.error
        return outcome.value


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

        def stop() -> None:
            """SIGINT's default raises KeyboardInterrupt in whichever greenlet runs, and gevent prints it with a
            traceback: stop the server instead, so that serve_forever returns."""
            server = getattr(socketio, "wsgi_server", None)
            if server is not None:
                server.stop(timeout=1)
        gevent.signal_handler(signal.SIGINT, stop)
        socketio.run(app, host=settings.host, port=settings.port, log_output=False, error_log=ShortLines(sys.stderr))
    print("stopped", file=sys.stderr, flush=True)


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
