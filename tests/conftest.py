"""Shared fixtures: the committed model, a real Redis server on a free port, and live servers on loopback."""
from __future__ import annotations

import itertools
import json
import threading
import time

import pytest

from tests.servers import ROOT, RedisServer, ServerProcess, free_port, new_database  # noqa: F401 - tests import these from here too

TEST_SECRET = "test-secret-0123456789abcdef0123456789"  # at least 32 bytes, as the server requires

DEPLOYMENTS = itertools.count(1)  # each Redis deployment's analytics database gets a name of its own
GOEMOTIONS = ROOT.parent / "shared" / "data" / "goemotions"


def own_server(workdir, secret: str, **env: str) -> ServerProcess:
    """A `python wsgi.py` server of a test module's own on loopback, its instance folder (`.instance`) under
    workdir, no suggestion cooldown and rates that a quick test stays under, unless `env` sets its own."""
    settings = {"COPILOT_SECRET": secret, "COPILOT_INSTANCE_DIR": str(workdir / "instance"),
                "COPILOT_SUGGESTION_COOLDOWN_S": "0", "COPILOT_RATE_PER_S": "200", "COPILOT_RATE_BURST": "400",
                "COPILOT_AGENT_RATE_PER_S": "500", "COPILOT_AGENT_RATE_BURST": "500", **env}
    server = ServerProcess(settings, workdir)
    server.instance = workdir / "instance"
    return server


class Deployment:
    """The servers of one deployment, and a way to read its event log: the embedded default (one `python wsgi.py`)
    or two workers sharing the session's Redis, the first `python wsgi.py` and the last as the Dockerfile runs it."""

    def __init__(self, kind, servers, instance, redis_url=None):
        self.kind, self.servers, self.instance, self.redis_url = kind, servers, instance, redis_url

    @classmethod
    def start(cls, request, env: dict, workdir) -> Deployment:
        """The deployment `request.param` names ("embedded", or two workers on Redis) with the settings in env."""
        redis_url = None
        if request.param == "embedded":
            servers = [ServerProcess(env, workdir)]
        else:
            import redis

            redis_url = request.getfixturevalue("redis_server").url
            with redis.Redis.from_url(redis_url) as client:  # the session's Redis: start from what a new one has
                client.flushall()
            # two workers share one analytics store, as docker-compose.yml wires them: a database of their own
            analytics = new_database(request.getfixturevalue("postgres_url"), f"deploy_{next(DEPLOYMENTS)}")
            shared = {**env, "REDIS_URL": redis_url, "COPILOT_ANALYTICS_URL": analytics}
            servers = [ServerProcess(shared, workdir), ServerProcess(shared, workdir, gunicorn=True)]
        return cls(request.param, servers, workdir / "instance", redis_url)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def events(self):
        if self.redis_url:
            import redis

            client = redis.Redis.from_url(self.redis_url, decode_responses=True)
            return [json.loads(f["event"]) for _, f in client.xrange("copilot:events")]
        return [json.loads(line) for line in (self.instance / "events.jsonl").read_text().splitlines()]


@pytest.fixture(scope="session")
def detector():
    """The real cue detector over index/model (onnxruntime, no torch)."""
    from copilot.cues import load_detector

    return load_detector()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path):
    """A Redis server of the test's own, for tests that change its settings (memory, eviction) or stop it."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    """A clean database on the session's Redis server."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


class LiveServer:
    """A Flask app served by werkzeug on a loopback port, in a thread."""

    def __init__(self, app) -> None:
        from werkzeug.serving import make_server

        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.app.extensions["copilot.analytics"].stop()  # its loader would outlive the test's Redis


@pytest.fixture
def make_settings(tmp_path):
    """Settings for an app built in the test process (threading: gevent has not patched it), with its own
    instance folder and secret."""
    from copilot.settings import Settings

    def build(**overrides):
        values = {"instance_dir": tmp_path / "instance", "secret": TEST_SECRET, "library_sync_ms": 50,
                  "async_mode": "threading"}
        values.update(overrides)
        return Settings(**values)
    return build


class AgentClient:
    """A real python-socketio client on /copilot that records every server event."""

    def __init__(self, url: str, token: str | None, headers: dict | None = None, connect: bool = True) -> None:
        import socketio

        self.url, self.token, self.headers = url, token, headers or {}
        self.sio = socketio.Client(reconnection=False)
        self.events: list[tuple[str, dict]] = []
        self.cond = threading.Condition()
        for name in ("cue.highlight", "suggestion.push", "alert", "handoff.note", "conversation.summary",
                     "connect_error"):
            self.sio.on(name, self._recorder(name), namespace="/copilot")
        if connect:
            self.connect()

    def _recorder(self, name):
        def record(data):
            with self.cond:
                self.events.append((name, data))
                self.cond.notify_all()
        return record

    def connect(self) -> None:
        self.sio.connect(self.url, namespaces=["/copilot"], auth={"token": self.token} if self.token else None,
                         transports=["websocket"], headers=self.headers, wait_timeout=10)

    def call(self, event: str, payload=None, timeout: float = 30):
        return self.sio.call(event, payload, namespace="/copilot", timeout=timeout)

    def say(self, cid: str, sid: str, text: str, speaker: str = "customer", final: bool = True) -> dict:
        """Send one transcript snippet and return its acknowledgment."""
        return self.call("transcript.snippet", {"conversation_id": cid, "snippet_id": sid, "speaker": speaker,
                                                "text": text, "final": final})

    def wait_for(self, name: str, predicate=lambda d: True, timeout: float = 10) -> dict:
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for event, data in self.events:
                    if event == name and predicate(data):
                        return data
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(f"no {name} event arrived; got {[e for e, _ in self.events]}")
                self.cond.wait(left)

    def of(self, name: str) -> list[dict]:
        with self.cond:
            return [d for e, d in self.events if e == name]

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


@pytest.fixture(params=["sqlite", "redis"])
def library_server(request, make_settings):
    """The app served over loopback on each store: the embedded SQLite file, then a real Redis."""
    from copilot import create_app

    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    live = LiveServer(create_app(make_settings(redis_url=redis_url)))
    yield live
    live.stop()


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A real PostgreSQL server of the test session's own (Debian's packages) on a free loopback port."""
    from tests.servers import PostgresServer

    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    server.start()
    yield server.url
    server.stop()
