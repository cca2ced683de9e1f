"""Tokens, roles and tenants: who may do what, signed with the server's secret; rate limits; and the origin check
and headers that guard every request.

A token names a tenant, a role (agent, lead, admin, or integration) and an agent id, and expires. It is an
itsdangerous signature over that JSON, so the server needs no session store to check it.
"""
from __future__ import annotations

import math
import os
import re
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from itsdangerous import BadSignature, URLSafeSerializer

from copilot.errors import AuthRequired, Forbidden, InvalidToken, RateLimited, TokenExpired, TooManyPending
from copilot.settings import Settings

if TYPE_CHECKING:
    from flask import Flask

ROLES = ("agent", "lead", "admin", "integration")
# integration (the systems that send outcomes and transcripts) stands apart, below agent: it reaches only what names it
ROLE_RANK = {"integration": -1, "agent": 0, "lead": 1, "admin": 2}
# \Z, not $: `$` also matches before a trailing newline. Both are safe with match() and with fullmatch().
TENANT_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,39}\Z")
AGENT_PATTERN = re.compile(r"[A-Za-z0-9._@-]{1,64}\Z")
DEFAULT_TTL_S = 12 * 3600
SALT = "copilot-token-v1"


@dataclass(frozen=True)
class Identity:
    """Who is calling: a tenant, a role and an agent id, until the token's expiry (unix seconds)."""

    tenant: str
    role: str
    agent: str
    expires: float = field(default=math.inf, compare=False)

    def expired(self, now: float | None = None) -> bool:
        """Whether the token this identity came from has run out."""
        return (time.time() if now is None else now) >= self.expires

    def require(self, *roles: str) -> None:
        """Raise Forbidden unless this identity has at least one of the given roles: agent, lead and admin rank
        above one another; integration is met only by its own name."""
        if any(self.role == role if "integration" in (role, self.role) else ROLE_RANK[self.role] >= ROLE_RANK[role]
               for role in roles):
            return
        if self.role == "integration":
            raise Forbidden("an integration token may only send outcomes and transcripts (POST /api/v1/outcomes, "
                            "POST /api/v1/transcripts, POST /api/v1/sources/<name>, Socket.IO /ingest)")
        raise Forbidden(f"this needs the {' or '.join(roles)} role; the token has {self.role}")


def check_names(tenant: str, role: str, agent: str) -> None:
    """Raise ValueError for a tenant, role or agent id the server would refuse."""
    if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
        raise ValueError("tenant must be 1-40 lower-case letters, digits or '-'")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not isinstance(agent, str) or not AGENT_PATTERN.fullmatch(agent):
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
        if isinstance(data["exp"], bool) or not isinstance(data["exp"], (int, float)):
            raise InvalidToken("the token's expiry is not a time")
        if data["exp"] < (now or time.time()):
            raise TokenExpired("the token has expired; ask for a new one")
        try:
            check_names(data["t"], data["r"], data["a"])
        except (ValueError, TypeError) as error:
            raise InvalidToken(str(error)) from None
        return Identity(data["t"], data["r"], data["a"], expires=data["exp"])


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


class TokenBucket:
    """A rate limit: `rate` events a second on average, bursts up to `burst`; `scope` names what it limits."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 scope: str = "connection") -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.clock = clock
        self.last = clock()
        self.scope = scope

    def refill(self) -> float:
        """The tokens there are now."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        return self.tokens

    def take(self) -> None:
        """Spend one token or raise RateLimited."""
        take_together([self])

    def refused(self) -> RateLimited:
        return RateLimited(f"more than {self.rate:g} events a second on this {self.scope}; slow down and retry")


def take_together(buckets: Sequence[TokenBucket]) -> None:
    """Spend one token of every bucket, or none and raise RateLimited naming the first one that is empty: an
    event refused by the tenant's limit must not use up the connection's."""
    for bucket in buckets:
        if bucket.refill() < 1:
            raise bucket.refused()
    for bucket in buckets:
        bucket.tokens -= 1


class RateLimits:
    """One token bucket per key (an agent, a tenant), shared by all of that key's connections. A bucket that has
    filled up again is the same as a new one, so such buckets are dropped once there are many."""

    def __init__(self, rate: float, burst: int, scope: str, clock: Callable[[], float] = time.monotonic,
                 prune_above: int = 1024) -> None:
        self.rate, self.burst, self.scope, self.clock = rate, burst, scope, clock
        self.buckets: dict[Hashable, TokenBucket] = {}
        self.prune_above = prune_above

    def __getitem__(self, key: Hashable) -> TokenBucket:
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.prune_above:
                self.prune()
            bucket = self.buckets[key] = TokenBucket(self.rate, self.burst, self.clock, self.scope)
        return bucket

    def prune(self) -> None:
        """Drop the buckets that are full again; keep the threshold ahead of the ones still in use."""
        self.buckets = {key: b for key, b in self.buckets.items() if b.refill() < b.burst}
        self.prune_above = max(self.prune_above, 2 * len(self.buckets))

    def __len__(self) -> int:
        return len(self.buckets)


class Lobby:
    """Engine.IO sessions that have not yet connected to /copilot: at most `max_per_address` per client address,
    each for at most `deadline_s`. A squatter that only answers pings is then closed (pure: the caller closes)."""

    def __init__(self, deadline_s: float = Settings.join_deadline_s,
                 max_per_address: int = Settings.max_pending_per_address,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.deadline_s, self.max_per_address, self.clock = deadline_s, max_per_address, clock
        self.waiting: dict[str, tuple[str, float]] = {}  # session -> (address, due)
        self.per_address: Counter[str] = Counter()
        self.due: deque[tuple[float, str]] = deque()  # every session waits as long: appending keeps due order

    def enter(self, sid: str, address: str, capped: bool = True) -> None:
        """Admit a session that has not joined yet, or raise TooManyPending (never when capped is False)."""
        if sid in self.waiting:
            return
        if capped and self.per_address[address] >= self.max_per_address:
            raise TooManyPending(f"more than {self.max_per_address} sessions from this address have not "
                                 "connected to /copilot; connect them or close them")
        due = self.clock() + self.deadline_s
        self.waiting[sid] = (address, due)
        self.per_address[address] += 1
        self.due.append((due, sid))

    def leave(self, sid: str) -> None:
        """The session joined /copilot, or ended."""
        entry = self.waiting.pop(sid, None)
        if entry is not None:
            address = entry[0]
            self.per_address[address] -= 1
            if self.per_address[address] <= 0:
                del self.per_address[address]

    def overdue(self) -> Iterator[str]:
        """The sessions past their deadline, each taken out of the lobby."""
        now = self.clock()
        while self.due and self.due[0][0] <= now:
            due, sid = self.due.popleft()
            entry = self.waiting.get(sid)
            if entry is not None and entry[1] == due:  # not a stale entry of a session that left and came back
                self.leave(sid)
                yield sid
        if not self.waiting:
            self.due.clear()

    def __len__(self) -> int:
        return len(self.waiting)



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


def init_app(app: Flask, settings: Settings) -> None:
    """The WSGI middleware around everything, Engine.IO included (so call it after the Socket.IO server wraps the
    app): ProxyFix behind COPILOT_PROXY_HOPS, so that Engine.IO and every view see the client's address and
    scheme, then SecurityHeaders outermost, because Engine.IO answers /socket.io/ outside Flask."""
    if settings.proxy_hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops)
    app.wsgi_app = SecurityHeaders(app.wsgi_app)
