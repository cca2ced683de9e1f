"""Tokens, roles and tenants: who may do what, signed with the server's secret.

A token names a tenant, a role (agent, lead, admin) and an agent id, and expires. It is an itsdangerous
signature over that JSON, so the server needs no session store to check it.
"""
from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeSerializer

from copilot.errors import CopilotError

ROLES = ("agent", "lead", "admin")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
AGENT_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
DEFAULT_TTL_S = 12 * 3600
SALT = "copilot-token-v1"


class AuthRequired(CopilotError):
    """No token was given."""

    code, status = "auth_required", 401


class InvalidToken(CopilotError):
    """The token is malformed or its signature does not match."""

    code, status = "invalid_token", 401


class TokenExpired(CopilotError):
    """The token was valid but its time is up."""

    code, status = "token_expired", 401


class Forbidden(CopilotError):
    """The role may not do this."""

    code, status = "forbidden", 403


@dataclass(frozen=True)
class Identity:
    """Who is calling: a tenant, a role and an agent id."""

    tenant: str
    role: str
    agent: str

    def require(self, role: str) -> None:
        """Raise Forbidden unless this identity has at least the given role."""
        if ROLE_RANK[self.role] < ROLE_RANK[role]:
            raise Forbidden(f"this needs the {role} role; the token has {self.role}")


def check_names(tenant: str, role: str, agent: str) -> None:
    """Raise ValueError for a tenant, role or agent id the server would refuse."""
    if not TENANT_PATTERN.match(tenant):
        raise ValueError("tenant must be 1-40 lower-case letters, digits or '-'")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not AGENT_PATTERN.match(agent):
        raise ValueError("agent id must be 1-64 letters, digits or . _ @ -")


class Tokens:
    """Issue and verify signed, expiring tokens."""

    def __init__(self, secret: str) -> None:
        self.serializer = URLSafeSerializer(secret, salt=SALT)

    def issue(self, tenant: str, role: str, agent: str, ttl_s: int = DEFAULT_TTL_S, now: float | None = None) -> str:
        """A token for this identity that expires ttl_s seconds from now."""
        check_names(tenant, role, agent)
        expires = int((now or time.time()) + ttl_s)
        return self.serializer.dumps({"t": tenant, "r": role, "a": agent, "exp": expires})

    def verify(self, token: object, now: float | None = None) -> Identity:
        """The identity a token carries; raises AuthRequired, InvalidToken or TokenExpired."""
        if token is None or token == "":
            raise AuthRequired("a token is required: pass auth={'token': ...} or an Authorization: Bearer header")
        if not isinstance(token, str) or len(token) > 2048:
            raise InvalidToken("the token is not a string the server issued")
        try:
            data = self.serializer.loads(token)
        except BadSignature:
            raise InvalidToken("the token's signature does not match this server's secret") from None
        if not isinstance(data, dict) or not {"t", "r", "a", "exp"} <= set(data):
            raise InvalidToken("the token lacks tenant, role, agent or expiry")
        if data["exp"] < (now or time.time()):
            raise TokenExpired("the token has expired; ask for a new one")
        try:
            check_names(data["t"], data["r"], data["a"])
        except (ValueError, TypeError) as error:
            raise InvalidToken(str(error)) from None
        return Identity(data["t"], data["r"], data["a"])


def bearer(header: str | None) -> str | None:
    """The token of an 'Authorization: Bearer ...' header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def load_secret(configured: str, instance_dir: Path) -> str:
    """The configured secret, or one kept in the instance folder (made once, readable by this user only)."""
    if configured:
        return configured
    path = Path(instance_dir) / "secret.key"
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".secret.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    try:
        os.link(tmp, path)  # atomic and never overwrites: two servers starting together agree on one secret
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


class RateLimited(CopilotError):
    """Too many events on one connection; the event was not processed."""

    code, status = "rate_limited", 429


class TokenBucket:
    """A per-connection rate limit: `rate` events a second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.clock = clock
        self.last = clock()

    def take(self) -> None:
        """Spend one token or raise RateLimited."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            raise RateLimited(f"more than {self.rate:g} events a second; slow down and retry")
        self.tokens -= 1
