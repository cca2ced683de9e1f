"""Start servers as a user would (`python wsgi.py`, or gunicorn as the Dockerfile does) on loopback ports, and a
Redis of our own: the tests' harness, which the benchmarks start their servers with too."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def stop_process(process: subprocess.Popen, grace_s: float = 10) -> None:
    """Ask a child process to end, and kill it if it has not within grace_s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace_s)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One server process on a free loopback port, waited on until /readyz answers."""

    def __init__(self, env: dict, workdir: Path, gunicorn: bool = False, command: list[str] | None = None,
                 ready_path: str = "/readyz") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), "PYTHONUNBUFFERED": "1", **env}
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = (workdir / f"server-{self.port}.log").open("w")
        if command is None:
            command = [sys.executable, "wsgi.py"]
            if gunicorn:  # the Dockerfile's command
                command = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1", "--worker-connections",
                           "4000", "-b", f"127.0.0.1:{self.port}", "wsgi:app"]
        self.process = subprocess.Popen(command, cwd=ROOT, env=full, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_ready(ready_path)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, path: str, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: see {self.log.name}")
            try:
                if requests.get(self.url + path, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()


class RedisServer:
    """A redis-server of our own on a free loopback port (append-only file, fsync every write)."""

    def __init__(self, workdir: Path) -> None:
        import shutil

        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; run the README test command, which installs it")
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def new_database(url: str, name: str) -> str:
    """A fresh, empty database `name` on the PostgreSQL server of `url` (dropped first if it exists); its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name


class PostgresServer:
    """A PostgreSQL server of our own (Debian's packages) on a free loopback port, its data and socket in a fresh
    temporary folder; as root, initdb and postgres run as the `postgres` user, which may not enter root's tmp dirs."""

    def __init__(self, workdir: Path, durable: bool = False) -> None:
        import glob

        self.durable = durable  # False: fsync and full-page writes off, for tests; the benchmark keeps them on
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
        if not bins:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin, self.workdir, self.port = Path(bins[-1]).parent, workdir, free_port()
        self.process: subprocess.Popen | None = None
        self.root: Path | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_owner(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def start(self) -> None:
        import tempfile

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="copilot-pg-"))
        data, sockets = self.root / "data", self.root / "run"
        sockets.mkdir()
        if os.geteuid() == 0:
            import shutil

            for path in (self.root, sockets):
                shutil.chown(path, "postgres", "postgres")
        log = (self.workdir / "postgres.log").open("w")
        subprocess.run(self._as_owner([str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                       "-E", "UTF8", "--no-sync"]), check=True, stdout=log, stderr=subprocess.STDOUT)
        # a test server: durability off (fsync, full pages), the speed of a disposable database
        fast = [] if self.durable else ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self.process = subprocess.Popen(
            self._as_owner([str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(sockets),
                            "-c", "listen_addresses=127.0.0.1", *fast]),
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: see {log.name}")
            ready = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("postgres did not start")

    def stop(self) -> None:
        import shutil

        if self.process and self.process.poll() is None:
            # runuser does not pass signals on: pg_ctl signals postgres itself ("fast": end sessions, then stop)
            subprocess.run(self._as_owner([str(self.bin / "pg_ctl"), "stop", "-D", str(self.root / "data"),
                                           "-m", "fast", "-w"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)
