"""One frozen Settings object, read once from the environment, with defaults and validation."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIN_SECRET_BYTES = 32


class InvalidSetting(ValueError):
    """An environment variable holds a value the server cannot use."""


@dataclass(frozen=True)
class Settings:
    """Every setting of the server; the README's settings table documents each one."""

    host: str = "127.0.0.1"
    port: int = 8000
    model_dir: Path = ROOT / "index" / "model"
    model_graph: str = "cues-int8.onnx"
    model_threads: int = 1
    model_workers: int = 1
    max_text_chars: int = 4000
    instance_dir: Path = ROOT / "instance"
    secret: str = ""
    redis_url: str = ""
    allowed_origins: tuple[str, ...] = ()  # empty: same origin only
    cooldown_s: int = 20
    rate_per_s: int = 20
    rate_burst: int = 40
    transcript: str = "redacted"
    demo: bool = True
    keep_ended_s: int = 600
    max_body_bytes: int = 5 * 1024 * 1024
    library_sync_ms: int = 250
    ping_interval_s: int = 10
    ping_timeout_s: int = 20
    demo_public: bool = False  # serve the demo on a non-loopback HOST too
    agent_rate_per_s: int = 40  # per identity (tenant, agent), over all its connections
    agent_rate_burst: int = 80
    tenant_rate_per_s: int = 2000  # per tenant, over all its connections
    tenant_rate_burst: int = 4000
    join_deadline_s: int = 10  # an Engine.IO session must connect to /copilot within this
    max_pending_per_address: int = 64  # Engine.IO sessions not yet on /copilot, per client address
    max_live_conversations: int = 5000  # per tenant, live (not ended) conversations
    max_phrasings: int = 10000  # per tenant library
    max_experiment_bytes: int = 65536  # one experiment's JSON
    max_experiments: int = 50  # per tenant
    event_max_age_days: int = 30  # the Redis event stream keeps this much history
    event_max_entries: int = 1_000_000  # and at most this many entries
    proxy_hops: int = 0  # trusted reverse proxies in front (X-Forwarded-For / -Proto hops to believe)
    max_connections_per_agent: int = 32  # open /copilot connections of one identity on one worker

    @property
    def event_log(self) -> Path:
        """The embedded event log (used when redis_url is empty)."""
        return self.instance_dir / "events.jsonl"

    @property
    def library_db(self) -> Path:
        """The embedded library store (used when redis_url is empty)."""
        return self.instance_dir / "library.sqlite3"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (HOST, PORT, COPILOT_*)."""
        env = os.environ if env is None else env
        names = ENV_NAMES
        values = {}
        for field in fields(cls):
            raw = env.get(names[field.name])
            if raw is None or raw == "":
                continue
            values[field.name] = _convert(names[field.name], raw, field.default)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise InvalidSetting for values out of range."""
        if not 0 < self.port < 65536:
            raise InvalidSetting(f"PORT must be 1-65535, got {self.port}")
        if self.model_threads < 1:
            raise InvalidSetting("COPILOT_MODEL_THREADS must be at least 1")
        if self.model_workers < 0:
            raise InvalidSetting("COPILOT_MODEL_WORKERS must not be negative")
        if self.max_text_chars < 1:
            raise InvalidSetting("COPILOT_MAX_TEXT_CHARS must be at least 1")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise InvalidSetting("REDIS_URL must start with redis://, rediss:// or unix://")
        if self.redis_url and not self.secret:
            raise InvalidSetting("COPILOT_SECRET must be set when REDIS_URL is: every worker sharing that Redis must "
                                 "sign tokens with the same secret, or each makes its own and refuses the others' "
                                 "tokens. Make one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'")
        if self.max_body_bytes < 1024:
            raise InvalidSetting("COPILOT_MAX_BODY_BYTES must be at least 1024")
        if self.transcript not in ("redacted", "none"):
            raise InvalidSetting("COPILOT_TRANSCRIPT must be redacted or none")
        if self.rate_per_s < 1 or self.rate_burst < 1 or self.cooldown_s < 0:
            raise InvalidSetting("COPILOT_RATE_PER_S and COPILOT_RATE_BURST must be positive, "
                                 "COPILOT_SUGGESTION_COOLDOWN_S not negative")
        if "*" in self.allowed_origins:
            raise InvalidSetting("COPILOT_ALLOWED_ORIGINS must list origins; '*' is refused")
        if self.library_sync_ms < 0:
            raise InvalidSetting("COPILOT_LIBRARY_SYNC_MS must not be negative")
        if self.ping_interval_s < 1 or self.ping_timeout_s < 1:
            raise InvalidSetting("COPILOT_PING_INTERVAL_S and COPILOT_PING_TIMEOUT_S must be at least 1")
        if self.secret and len(self.secret.encode()) < MIN_SECRET_BYTES:
            raise InvalidSetting(f"COPILOT_SECRET must be at least {MIN_SECRET_BYTES} bytes (it is "
                                 f"{len(self.secret.encode())}): a short secret can be guessed offline from one token. "
                                 "Make one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'")
        for name in ("agent_rate_per_s", "agent_rate_burst", "tenant_rate_per_s", "tenant_rate_burst",
                     "join_deadline_s", "max_pending_per_address", "max_live_conversations", "max_phrasings",
                     "max_experiment_bytes", "max_experiments", "event_max_age_days", "event_max_entries",
                     "max_connections_per_agent"):
            if getattr(self, name) < 1:
                raise InvalidSetting(f"{ENV_NAMES[name]} must be at least 1")
        if self.proxy_hops < 0:
            raise InvalidSetting("COPILOT_PROXY_HOPS must not be negative")


ENV_NAMES = {
    "host": "HOST", "port": "PORT", "model_dir": "COPILOT_MODEL_DIR", "model_threads": "COPILOT_MODEL_THREADS",
    "model_workers": "COPILOT_MODEL_WORKERS",
    "model_graph": "COPILOT_MODEL_GRAPH",
    "max_text_chars": "COPILOT_MAX_TEXT_CHARS", "instance_dir": "COPILOT_INSTANCE_DIR", "secret": "COPILOT_SECRET",
    "redis_url": "REDIS_URL", "allowed_origins": "COPILOT_ALLOWED_ORIGINS", "max_body_bytes": "COPILOT_MAX_BODY_BYTES",
    "library_sync_ms": "COPILOT_LIBRARY_SYNC_MS", "cooldown_s": "COPILOT_SUGGESTION_COOLDOWN_S",
    "rate_per_s": "COPILOT_RATE_PER_S", "rate_burst": "COPILOT_RATE_BURST", "transcript": "COPILOT_TRANSCRIPT",
    "demo": "COPILOT_DEMO", "keep_ended_s": "COPILOT_KEEP_ENDED_S",
    "ping_interval_s": "COPILOT_PING_INTERVAL_S", "ping_timeout_s": "COPILOT_PING_TIMEOUT_S",
    "demo_public": "COPILOT_DEMO_PUBLIC", "agent_rate_per_s": "COPILOT_AGENT_RATE_PER_S",
    "agent_rate_burst": "COPILOT_AGENT_RATE_BURST", "tenant_rate_per_s": "COPILOT_TENANT_RATE_PER_S",
    "tenant_rate_burst": "COPILOT_TENANT_RATE_BURST", "join_deadline_s": "COPILOT_JOIN_DEADLINE_S",
    "max_pending_per_address": "COPILOT_MAX_PENDING_PER_ADDRESS",
    "max_live_conversations": "COPILOT_MAX_LIVE_CONVERSATIONS", "max_phrasings": "COPILOT_MAX_PHRASINGS",
    "max_experiment_bytes": "COPILOT_MAX_EXPERIMENT_BYTES", "max_experiments": "COPILOT_MAX_EXPERIMENTS",
    "event_max_age_days": "COPILOT_EVENT_MAX_AGE_DAYS", "event_max_entries": "COPILOT_EVENT_MAX_ENTRIES",
    "proxy_hops": "COPILOT_PROXY_HOPS", "max_connections_per_agent": "COPILOT_MAX_CONNECTIONS_PER_AGENT",
}


def _convert(name: str, raw: str, default):
    if isinstance(default, bool):
        if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
            raise InvalidSetting(f"{name} must be true or false, got {raw!r}")
        return raw.lower() in {"1", "true", "yes"}
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise InvalidSetting(f"{name} must be an integer, got {raw!r}") from None
    if isinstance(default, Path):
        return Path(raw)
    if isinstance(default, tuple):
        return tuple(item.strip().rstrip("/") for item in raw.split(",") if item.strip())
    return raw
