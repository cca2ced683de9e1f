"""One frozen Settings object, read once from the environment, with defaults and validation."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MIN_SECRET_BYTES = 32


class InvalidSetting(ValueError):
    """An environment variable holds a value the server cannot use."""


def setting(env: str, default: Any, *, at_least: int | None = None, at_most: int | None = None,
            choices: tuple[str, ...] = ()) -> Any:
    """A Settings field: its environment variable, its default, and the range or choices its value keeps to."""
    return field(default=default, metadata={"env": env, "at_least": at_least, "at_most": at_most, "choices": choices})


@dataclass(frozen=True)
class Settings:
    """Every setting of the server; the README's settings table documents each one (a test checks they agree)."""

    host: str = setting("HOST", "127.0.0.1")
    port: int = setting("PORT", 8000, at_least=1, at_most=65535)
    model_dir: Path = setting("COPILOT_MODEL_DIR", ROOT / "index" / "model")
    model_graph: str = setting("COPILOT_MODEL_GRAPH", "cues-int8.onnx")
    model_threads: int = setting("COPILOT_MODEL_THREADS", 1, at_least=1)
    model_workers: int = setting("COPILOT_MODEL_WORKERS", 1, at_least=0)
    max_text_chars: int = setting("COPILOT_MAX_TEXT_CHARS", 4000, at_least=1)
    instance_dir: Path = setting("COPILOT_INSTANCE_DIR", ROOT / "instance")
    secret: str = setting("COPILOT_SECRET", "")
    redis_url: str = setting("REDIS_URL", "")
    allowed_origins: tuple[str, ...] = setting("COPILOT_ALLOWED_ORIGINS", ())  # empty: same origin only
    cooldown_s: int = setting("COPILOT_SUGGESTION_COOLDOWN_S", 20, at_least=0)
    rate_per_s: int = setting("COPILOT_RATE_PER_S", 20, at_least=1)
    rate_burst: int = setting("COPILOT_RATE_BURST", 40, at_least=1)
    transcript: str = setting("COPILOT_TRANSCRIPT", "redacted", choices=("redacted", "none"))
    demo: bool = setting("COPILOT_DEMO", True)
    keep_ended_s: int = setting("COPILOT_KEEP_ENDED_S", 600)
    max_body_bytes: int = setting("COPILOT_MAX_BODY_BYTES", 5 * 1024 * 1024, at_least=1024)
    library_sync_ms: int = setting("COPILOT_LIBRARY_SYNC_MS", 250, at_least=0)
    ping_interval_s: int = setting("COPILOT_PING_INTERVAL_S", 10, at_least=1)
    ping_timeout_s: int = setting("COPILOT_PING_TIMEOUT_S", 20, at_least=1)
    demo_public: bool = setting("COPILOT_DEMO_PUBLIC", False)  # serve the demo on a non-loopback HOST too
    # per identity (tenant, agent), over all its connections
    agent_rate_per_s: int = setting("COPILOT_AGENT_RATE_PER_S", 40, at_least=1)
    agent_rate_burst: int = setting("COPILOT_AGENT_RATE_BURST", 80, at_least=1)
    tenant_rate_per_s: int = setting("COPILOT_TENANT_RATE_PER_S", 2000, at_least=1)  # per tenant, all connections
    tenant_rate_burst: int = setting("COPILOT_TENANT_RATE_BURST", 4000, at_least=1)
    # an Engine.IO session must connect to /copilot within this
    join_deadline_s: int = setting("COPILOT_JOIN_DEADLINE_S", 10, at_least=1)
    # Engine.IO sessions not yet on /copilot, per client address
    max_pending_per_address: int = setting("COPILOT_MAX_PENDING_PER_ADDRESS", 64, at_least=1)
    # per tenant, live (not ended) conversations
    max_live_conversations: int = setting("COPILOT_MAX_LIVE_CONVERSATIONS", 5000, at_least=1)
    max_phrasings: int = setting("COPILOT_MAX_PHRASINGS", 10000, at_least=1)  # per tenant library
    max_experiment_bytes: int = setting("COPILOT_MAX_EXPERIMENT_BYTES", 65536, at_least=1)  # one experiment's JSON
    max_experiments: int = setting("COPILOT_MAX_EXPERIMENTS", 50, at_least=1)  # per tenant
    # the Redis event stream: the analytics loaders trim what they have all loaded and is older than this; at most
    # this many entries (a guard for Redis's memory, should the loaders stop)
    event_max_age_days: int = setting("COPILOT_EVENT_MAX_AGE_DAYS", 30, at_least=1)
    event_max_entries: int = setting("COPILOT_EVENT_MAX_ENTRIES", 1_000_000, at_least=1)
    # trusted reverse proxies in front (X-Forwarded-For / -Proto hops to believe)
    proxy_hops: int = setting("COPILOT_PROXY_HOPS", 0, at_least=0)
    # tenant=token pairs checking /api/v1/sources/twilio's signatures; `tenant=@/path` reads the token from a file
    twilio_auth_tokens: str = setting("COPILOT_TWILIO_AUTH_TOKENS", "")
    # open /copilot connections of one identity on one worker
    max_connections_per_agent: int = setting("COPILOT_MAX_CONNECTIONS_PER_AGENT", 32, at_least=1)
    # gevent as served (wsgi.py patches the standard library first); threading for in-process tests and debugging
    async_mode: str = setting("COPILOT_ASYNC_MODE", "gevent", choices=("gevent", "threading"))
    # the analytics store: empty for the embedded DuckDB file, or postgresql://... (several workers, one store)
    analytics_url: str = setting("COPILOT_ANALYTICS_URL", "")
    analytics_retention_days: int = setting("COPILOT_ANALYTICS_RETENTION_DAYS", 400, at_least=1)
    analytics_load_ms: int = setting("COPILOT_ANALYTICS_LOAD_MS", 1000, at_least=10)  # the loader's pause when idle
    report_min_n: int = setting("COPILOT_REPORT_MIN_N", 10, at_least=1)  # below it a report cell says "too few"

    @property
    def event_log(self) -> Path:
        """The embedded event log (used when redis_url is empty)."""
        return self.instance_dir / "events.jsonl"

    @property
    def analytics_db(self) -> Path:
        """The embedded analytics store (used when analytics_url is empty)."""
        return self.instance_dir / "analytics.duckdb"

    @property
    def library_db(self) -> Path:
        """The embedded library store (used when redis_url is empty)."""
        return self.instance_dir / "library.sqlite3"

    @classmethod
    def env_name(cls, name: str) -> str:
        """The environment variable of the setting `name`."""
        return cls.__dataclass_fields__[name].metadata["env"]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (HOST, PORT, COPILOT_*)."""
        env = os.environ if env is None else env
        values = {}
        for spec in fields(cls):
            raw = env.get(spec.metadata["env"])
            if raw is None or raw == "":
                continue
            values[spec.name] = _convert(spec.metadata["env"], raw, spec.default)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise InvalidSetting, naming the variable, for a value out of its field's range or choices, or for
        settings that do not fit together."""
        for spec in fields(self):
            _check(spec.metadata, getattr(self, spec.name))
        name = self.env_name
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise InvalidSetting(f"{name('redis_url')} must start with redis://, rediss:// or unix://")
        if self.redis_url and not self.secret:
            raise InvalidSetting(f"{name('secret')} must be set when {name('redis_url')} is: every worker sharing "
                                 "that Redis must sign tokens with the same secret, or each makes its own and "
                                 "refuses the others' tokens. Make one with: "
                                 "python -c 'import secrets; print(secrets.token_urlsafe(48))'")
        if self.analytics_url and not self.analytics_url.startswith(("postgresql://", "postgres://")):
            raise InvalidSetting(f"{name('analytics_url')} must start with postgresql:// (or be empty for the "
                                 "embedded DuckDB file)")
        for pair in filter(None, (p.strip() for p in self.twilio_auth_tokens.split(","))):
            tenant, _, token = pair.partition("=")
            if not tenant.strip() or not token.strip() or token.strip() == "@":
                raise InvalidSetting(f"{name('twilio_auth_tokens')} must be tenant=token pairs separated by commas "
                                     "(tenant=@/path reads the token from a file)")
        if "*" in self.allowed_origins:
            raise InvalidSetting(f"{name('allowed_origins')} must list origins; '*' is refused")
        if self.secret and len(self.secret.encode()) < MIN_SECRET_BYTES:
            raise InvalidSetting(f"{name('secret')} must be at least {MIN_SECRET_BYTES} bytes (it is "
                                 f"{len(self.secret.encode())}): a short secret can be guessed offline from one token. "
                                 "Make one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'")


def _check(rule: Mapping[str, Any], value: Any) -> None:
    """Refuse a value outside its field's range or choices, naming the variable."""
    env, low, high, choices = rule["env"], rule["at_least"], rule["at_most"], rule["choices"]
    if low is not None and high is not None and not low <= value <= high:
        raise InvalidSetting(f"{env} must be {low}-{high}, got {value}")
    if low is not None and value < low:
        raise InvalidSetting(f"{env} must not be negative, got {value}" if low == 0 else
                             f"{env} must be at least {low}, got {value}")
    if choices and value not in choices:
        raise InvalidSetting(f"{env} must be {' or '.join(choices)}, got {value!r}")


def _convert(name: str, raw: str, default: Any) -> Any:
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
