"""Conversation state stores: in memory (embedded default) and Redis (scale-out), behind one small interface.

`update` reads, changes and writes one conversation atomically, together with the events the change produced:
in memory the events are appended (and synced) to the file first and the new state published only after, and
in Redis state and stream entries go in one WATCH/MULTI transaction. So an acknowledged change is always both in
the state and in the event log, and a refused one (`store_unavailable`) in neither. Each tenant may hold at most
`max_live` live conversations; nobody's live conversation is ever dropped to make room. Nothing outside the
store modules imports redis.
"""
from __future__ import annotations

import json
import logging
import pickle
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

from copilot.concurrency import run_here
from copilot.conversation import Conversation
from copilot.errors import ConversationExists, StoreUnavailable, TooManyConversations, UnknownConversation
from copilot.eventlog import EventLog, FileEventLog, stream_append, tenant_needle
from copilot.settings import Settings

if TYPE_CHECKING:
    from copilot.concurrency import Pools

T = TypeVar("T")
STATE_TTL_S = 24 * 3600
MAX_FORGOTTEN = 50_000  # ended conversation ids the embedded store remembers after forgetting their state
INDEX_REFRESH_S = 3600  # how stale a live conversation's score in the Redis index may get
INDEXED = "indexed_at"  # stored beside the conversation's fields in Redis: when its index score was set


Update = Callable[[Conversation], "tuple[T, list[dict]]"]


class ConversationStore(Protocol):
    reads_on_loop: bool  # its client's sockets belong to the event loop: never call it from a pool thread

    def create(self, conv: Conversation, events: list[dict]) -> None: ...
    def get(self, tenant: str, conversation_id: str) -> Conversation: ...
    def require(self, tenant: str, conversation_id: str) -> None: ...
    def ended_lately(self, tenant: str, conversation_id: str) -> bool: ...
    def update(self, tenant: str, conversation_id: str, change: Update) -> T: ...
    def events(self, limit: int = 100_000, tenant: str | None = None) -> list[dict]: ...
    def live_conversations(self, tenant: str, off_loop: Callable[..., Any] = ...) -> list[Conversation]: ...
    def ping(self) -> bool: ...


def refuse_takeover(existing: Conversation, new: Conversation) -> None:
    """An ended conversation kept for a late join may be started again by the agent it belongs to, never taken
    over by another: their events would reach the first agent's room and the summary would be lost."""
    if not existing.open_to(new.agent, "agent"):
        raise ConversationExists(f"conversation {new.id} is in use by another agent; use a new id")


def unknown(conversation_id: str) -> UnknownConversation:
    return UnknownConversation(f"no conversation {conversation_id}; start it first")


def too_many(tenant: str, limit: int) -> TooManyConversations:
    return TooManyConversations(f"tenant {tenant} already has {limit} live conversations; end some first")


class MemoryConversationStore:
    """Conversations in this process (the embedded default). Live ones stay until they end or sit idle for
    `idle_s`; ended ones are kept `keep_ended_s` for a late join, at most `max_ended` of them (oldest dropped).

    Each is kept pickled (about 2 KB, against about 11 KB as live objects): every update works on a private copy
    anyway, so a failed change leaves no trace, and the copy costs the same one loads and one dumps.
    """

    reads_on_loop = False  # a file and this process's memory: safe from a pool thread

    def __init__(self, log: EventLog, max_ended: int = 20_000, keep_ended_s: float = Settings.keep_ended_s,
                 max_live: int = Settings.max_live_conversations, idle_s: float = STATE_TTL_S) -> None:
        self.log = log
        self.items: dict[tuple[str, str], bytes] = {}
        self.live: dict[str, OrderedDict[str, float]] = {}  # tenant -> id -> last change, least recent first
        self.ended: OrderedDict[tuple[str, str], float] = OrderedDict()  # -> ended_at, in the order they ended
        self.locks: dict[tuple[str, str], threading.Lock] = {}
        self.lock = threading.Lock()  # guards items, live, ended and locks; per-conversation locks guard changes
        self.max_ended, self.keep_ended_s = max_ended, keep_ended_s
        # ids of ended conversations already forgotten (tenant, id) -> ended_at, for a day: a transcript source
        # resending a finished call must not start it again (the Redis store keeps the state itself that long)
        self.forgotten: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.max_live, self.idle_s = max_live, idle_s
        self.swept_at = time.time()

    def create(self, conv: Conversation, events: list[dict]) -> None:
        key, now = (conv.tenant, conv.id), time.time()
        with self.lock:
            self._sweep(now)
            self._expire_idle(conv.tenant, now)
            live = self.live.get(conv.tenant, {})
            if conv.id in live:
                raise ConversationExists(f"conversation {conv.id} is already running; join it instead")
            if key in self.items:  # ended, kept for a late join: only its own agent may start it again
                refuse_takeover(pickle.loads(self.items[key]), conv)
            if conv.ended_at is None and len(live) >= self.max_live:
                raise too_many(conv.tenant, self.max_live)
            data = pickle.dumps(conv)
            self._log(events)
            self.forgotten.pop(key, None)
            self.items[key] = data
            self.locks.setdefault(key, threading.Lock())
            self._place(key, conv.ended_at, now)

    def require(self, tenant: str, conversation_id: str) -> None:
        """Raise UnknownConversation unless the conversation exists (cheap: no copy)."""
        if (tenant, conversation_id) not in self.items:
            raise unknown(conversation_id)

    def ended_lately(self, tenant: str, conversation_id: str) -> bool:
        """Whether a conversation of this id ended within the last day, though its state has been forgotten."""
        with self.lock:
            ended_at = self.forgotten.get((tenant, conversation_id))
        return ended_at is not None and time.time() - ended_at < STATE_TTL_S

    def get(self, tenant: str, conversation_id: str) -> Conversation:
        stored = self.items.get((tenant, conversation_id))
        if stored is None:
            raise unknown(conversation_id)
        return pickle.loads(stored)

    def update(self, tenant: str, conversation_id: str, change: Update) -> T:
        key = (tenant, conversation_id)
        lock = self.locks.get(key)
        if lock is None:
            raise unknown(conversation_id)
        with lock:
            stored = self.items.get(key)
            if stored is None:  # dropped while we waited for the lock
                raise unknown(conversation_id)
            draft = pickle.loads(stored)  # a private copy: a failed change leaves no trace
            result, events = change(draft)
            data = pickle.dumps(draft)
            self._log(events)  # logged first: if the disk refuses, the state stays as it was
            with self.lock:
                self.items[key] = data
                self.locks.setdefault(key, lock)
                self._place(key, draft.ended_at, time.time())
            return result

    def events(self, limit: int = 100_000, tenant: str | None = None) -> list[dict]:
        """The newest events of the log, oldest first (with `tenant`, that tenant's among them)."""
        return self.log.read(limit, tenant)

    def live_conversations(self, tenant: str, off_loop: Callable[..., Any] = run_here) -> list[Conversation]:
        """The tenant's live conversations (copies), for the floor's snapshot; unpickled through off_loop."""
        with self.lock:
            stored = [self.items.get((tenant, cid)) for cid in self.live.get(tenant, ())]
        return off_loop(lambda: [pickle.loads(data) for data in stored if data is not None])

    def ping(self) -> bool:
        return True

    def _log(self, events: list[dict]) -> None:
        try:
            self.log.append_all(events)
        except OSError as error:
            raise StoreUnavailable(f"the event log cannot be written ({error.strerror or error}); "
                                   "nothing was applied, retry later") from None

    def _place(self, key: tuple[str, str], ended_at: float | None, now: float) -> None:
        """Book the conversation as live (most recently changed) or ended; called under self.lock."""
        tenant, cid = key
        if ended_at is None:
            self.ended.pop(key, None)
            live = self.live.setdefault(tenant, OrderedDict())
            live[cid] = now
            live.move_to_end(cid)
            return
        live = self.live.get(tenant)
        if live is not None:
            live.pop(cid, None)
            if not live:
                del self.live[tenant]
        if key not in self.ended:
            self.ended[key] = ended_at
            while len(self.ended) > self.max_ended:
                self._drop(*self.ended.popitem(last=False))

    def _drop(self, key: tuple[str, str], ended_at: float | None = None) -> None:
        self.items.pop(key, None)
        self.locks.pop(key, None)
        if ended_at is not None:
            self.forgotten.pop(key, None)
            self.forgotten[key] = ended_at
            while len(self.forgotten) > MAX_FORGOTTEN or (
                    self.forgotten and next(iter(self.forgotten.values())) < ended_at - STATE_TTL_S):
                self.forgotten.popitem(last=False)

    def _expire_idle(self, tenant: str, now: float) -> None:
        """Drop the tenant's live conversations unchanged for idle_s (as Redis lets their state expire)."""
        live = self.live.get(tenant)
        while live:
            cid, changed_at = next(iter(live.items()))
            if now - changed_at <= self.idle_s:
                return
            del live[cid]
            self._drop((tenant, cid))
        self.live.pop(tenant, None)

    def _sweep(self, now: float) -> None:
        """Forget conversations that ended more than keep_ended_s ago, and idle live ones (at most every 10 s)."""
        if now - self.swept_at < min(10.0, self.keep_ended_s):
            return
        self.swept_at = now
        while self.ended:
            key, ended_at = next(iter(self.ended.items()))
            if now - ended_at <= self.keep_ended_s:
                break
            del self.ended[key]
            self._drop(key, ended_at)
        for tenant in list(self.live):
            self._expire_idle(tenant, now)


class RedisConversationStore:
    """Conversations as JSON strings in Redis, expiring a day after their last change. Each tenant's live ones
    are also in a sorted set scored by last change (refreshed at most hourly, so updates rarely touch it),
    kept in the same transactions as the state: it counts them for the cap."""

    reads_on_loop = True  # redis-py's sockets are gevent's under the event loop: a pool thread cannot use them

    def __init__(self, url: str, prefix: str = "copilot", stream: str = "copilot:events",
                 max_live: int = Settings.max_live_conversations, event_max_entries: int = Settings.event_max_entries) -> None:
        import redis

        self.redis = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2,
                                          retry_on_timeout=True)
        self.errors = redis.RedisError  # out of memory, read-only replica, unreachable: all "not applied"
        self.unreachable = (redis.ConnectionError, redis.TimeoutError)
        self.WatchError = redis.WatchError
        self.prefix, self.stream, self.max_live = prefix, stream, max_live
        self.event_max_entries = event_max_entries

    def key(self, tenant: str, conversation_id: str) -> str:
        return f"{self.prefix}:conv:{tenant}:{conversation_id}"

    def index(self, tenant: str) -> str:
        """The tenant's live conversations: id -> time of the last change (at most INDEX_REFRESH_S old)."""
        return f"{self.prefix}:live:{tenant}"

    def create(self, conv: Conversation, events: list[dict]) -> None:
        key, index = self.key(conv.tenant, conv.id), self.index(conv.tenant)
        try:
            with self.redis.pipeline() as pipe:
                while True:
                    try:
                        pipe.watch(key, index)
                        existing = pipe.get(key)
                        if existing and json.loads(existing).get("ended_at") is None:
                            raise ConversationExists(f"conversation {conv.id} is already running; join it instead")
                        if existing:
                            refuse_takeover(self._decode(existing)[0], conv)
                        now = time.time()
                        if conv.ended_at is None and pipe.zcount(index, now - STATE_TTL_S, "+inf") >= self.max_live:
                            raise too_many(conv.tenant, self.max_live)
                        pipe.multi()
                        pipe.zremrangebyscore(index, "-inf", f"({now - STATE_TTL_S}")
                        if conv.ended_at is None:
                            pipe.zadd(index, {conv.id: now})
                            pipe.expire(index, STATE_TTL_S + INDEX_REFRESH_S)
                        pipe.set(key, self._encode(conv, now), ex=STATE_TTL_S)
                        stream_append(pipe, self.stream, events, self.event_max_entries)
                        pipe.execute()
                        return
                    except self.WatchError:
                        continue
        except self.errors as error:
            raise self._unavailable(error) from None

    def ended_lately(self, tenant: str, conversation_id: str) -> bool:
        """Never forgotten before it is a day old: an ended conversation's state stays as long as any (its key's
        expiry), and a source's resend finds it ended."""
        return False

    def require(self, tenant: str, conversation_id: str) -> None:
        """Raise UnknownConversation unless the conversation exists (one EXISTS round trip)."""
        try:
            found = self.redis.exists(self.key(tenant, conversation_id))
        except self.errors as error:
            raise self._unavailable(error) from None
        if not found:
            raise unknown(conversation_id)

    def get(self, tenant: str, conversation_id: str) -> Conversation:
        try:
            data = self.redis.get(self.key(tenant, conversation_id))
        except self.errors as error:
            raise self._unavailable(error) from None
        if data is None:
            raise unknown(conversation_id)
        return self._decode(data)[0]

    def update(self, tenant: str, conversation_id: str, change: Update) -> T:
        key, index = self.key(tenant, conversation_id), self.index(tenant)
        try:
            with self.redis.pipeline() as pipe:
                while True:
                    try:
                        pipe.watch(key)
                        data = pipe.get(key)
                        if data is None:
                            raise unknown(conversation_id)
                        conv, indexed_at = self._decode(data)
                        was_live = conv.ended_at is None
                        result, events = change(conv)
                        now = time.time()
                        pipe.multi()
                        if was_live and conv.ended_at is not None:
                            pipe.zrem(index, conversation_id)
                        elif conv.ended_at is None and now - indexed_at > INDEX_REFRESH_S:
                            indexed_at = now  # also indexes a conversation stored before the index existed
                            pipe.zadd(index, {conversation_id: now})
                            pipe.expire(index, STATE_TTL_S + INDEX_REFRESH_S)
                        pipe.set(key, self._encode(conv, indexed_at), ex=STATE_TTL_S)
                        stream_append(pipe, self.stream, events, self.event_max_entries)
                        pipe.execute()
                        return result
                    except self.WatchError:
                        continue
        except self.errors as error:
            raise self._unavailable(error) from None

    def events(self, limit: int = 100_000, tenant: str | None = None) -> list[dict]:
        """The newest events of the shared stream, oldest first (with `tenant`, that tenant's among them)."""
        try:
            entries = self.redis.xrevrange(self.stream, count=limit)
        except self.errors as error:
            raise self._unavailable(error) from None
        needle = tenant_needle(tenant) if tenant else ""
        return [json.loads(fields["event"]) for _, fields in reversed(entries) if needle in fields["event"]]

    def live_conversations(self, tenant: str, off_loop: Callable[..., Any] = run_here,
                           chunk: int = 500) -> list[Conversation]:
        """The tenant's live conversations, read through its index of live ones (no key scan), for the floor's
        snapshot: read here (the client's sockets are the loop's), decoded through off_loop (2,000 of them take
        about 0.2 s)."""
        try:
            ids = self.redis.zrangebyscore(self.index(tenant), time.time() - STATE_TTL_S, "+inf")
            stored = []
            for at in range(0, len(ids), chunk):
                stored.extend(self.redis.mget([self.key(tenant, cid) for cid in ids[at:at + chunk]]))
        except self.errors as error:
            raise self._unavailable(error) from None
        def decode() -> list[Conversation]:
            conversations = [self._decode(data)[0] for data in stored if data]
            return [c for c in conversations if c.ended_at is None]
        return off_loop(decode)

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except self.errors:
            return False

    @staticmethod
    def _encode(conv: Conversation, indexed_at: float) -> str:
        return json.dumps({**conv.as_dict(), INDEXED: indexed_at})

    @staticmethod
    def _decode(data: str) -> tuple[Conversation, float]:
        fields = json.loads(data)
        indexed_at = fields.pop(INDEXED, 0.0)
        return Conversation.from_dict(fields), indexed_at

    def _unavailable(self, error: Exception) -> StoreUnavailable:
        if isinstance(error, self.unreachable):
            return StoreUnavailable(f"conversation store unreachable: {error}")
        return StoreUnavailable(f"conversation store refused the write ({error}); nothing was applied, "
                                "retry later")


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id in its order: milliseconds, then sequence."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def stream_errors(method: Callable[..., T]) -> Callable[..., T]:
    """An EventStream method whose Redis errors come out as StoreUnavailable (retried by the loader)."""
    @wraps(method)
    def guarded(self: EventStream, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except self.errors as error:
            raise StoreUnavailable(f"the event stream cannot be read or written ({error})") from None
    return guarded


class EventStream:
    """The Redis event stream as the analytics loader reads it: one consumer group, entries acknowledged once the
    store holds them, and the stream trimmed only behind what the group has acknowledged. One client per thread:
    make it in the thread that uses it (under gevent its sockets belong to that thread's hub)."""

    PAGE = 1000

    def __init__(self, url: str, stream: str = "copilot:events", group: str = "copilot-analytics",
                 keep_days: float = Settings.event_max_age_days) -> None:
        import redis

        self.redis = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10, socket_connect_timeout=2)
        self.errors = redis.RedisError
        self.stream, self.group, self.keep_days = stream, group, keep_days

    @stream_errors
    def join(self) -> None:
        """Create the consumer group (and the stream) unless it exists; a new group starts at the stream's start."""
        try:
            self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except self.errors as error:
            if "BUSYGROUP" not in str(error):
                raise

    @stream_errors
    def read(self, consumer: str, count: int, pending: bool = False) -> list[tuple[str, str | None]]:
        """Up to `count` entries (id, event JSON) for this consumer: new ones, or with `pending` those delivered
        to it and not yet acknowledged. An entry erased while pending comes back with no event."""
        try:
            answer = self.redis.xreadgroup(self.group, consumer, {self.stream: "0" if pending else ">"}, count=count)
        except self.errors as error:
            if "NOGROUP" not in str(error):
                raise
            self.join()  # the stream was deleted (and its group with it): start over on the new one
            answer = self.redis.xreadgroup(self.group, consumer, {self.stream: "0" if pending else ">"}, count=count)
        entries = answer[0][1] if answer else []
        return [(entry_id, (fields or {}).get("event")) for entry_id, fields in entries]

    @stream_errors
    def claim(self, consumer: str, idle_ms: int, count: int) -> list[tuple[str, str | None]]:
        """Take over entries another consumer was delivered and left unacknowledged for idle_ms (it died)."""
        answer = self.redis.xautoclaim(self.stream, self.group, consumer, idle_ms, "0-0", count=count)
        return [(entry_id, (fields or {}).get("event")) for entry_id, fields in answer[1] if entry_id]

    @stream_errors
    def claim_from(self, dead: str, consumer: str) -> int:
        """Take over every pending entry of a consumer known to be dead, and forget it."""
        taken = 0
        while True:
            pending = self.redis.xpending_range(self.stream, self.group, "-", "+", self.PAGE, consumername=dead)
            if not pending:
                break
            self.redis.xclaim(self.stream, self.group, consumer, 0, [p["message_id"] for p in pending],
                              justid=True)
            taken += len(pending)
        self.redis.xgroup_delconsumer(self.stream, self.group, dead)
        return taken

    @stream_errors
    def consumers(self) -> list[dict[str, Any]]:
        return self.redis.xinfo_consumers(self.stream, self.group)

    @stream_errors
    def ack(self, ids: list[str]) -> None:
        if ids:
            self.redis.xack(self.stream, self.group, *ids)

    def _group(self) -> dict[str, Any] | None:
        try:
            groups = self.redis.xinfo_groups(self.stream)
        except self.errors as error:
            if "no such key" not in str(error):
                raise
            return None  # no stream (yet, or deleted)
        return next((g for g in groups if g["name"] == self.group), None)

    def behind(self, group: dict[str, Any] | None = None) -> str | None:
        """The oldest id a group (this loader's by default) still needs: its oldest pending entry, else the first
        not yet delivered; None without the group."""
        group = self._group() if group is None else group
        if group is None:
            return None
        if group["pending"]:
            return self.redis.xpending(self.stream, group["name"])["min"]
        ms, seq = entry_key(group["last-delivered-id"])
        return f"{ms}-{seq + 1}"

    @stream_errors
    def trim_behind(self) -> int:
        """Drop the entries that every loader's group has acknowledged (each analytics store has its group: one
        DuckDB file per worker, or one PostgreSQL for all) and that are older than keep_days: the stream is
        trimmed only behind the loaders, and keeps recent history besides."""
        try:
            groups = self.redis.xinfo_groups(self.stream)
        except self.errors as error:
            if "no such key" not in str(error):
                raise
            return 0
        needed = [self.behind(g) for g in groups]
        if not needed:
            return 0
        aged = f"{int((time.time() - self.keep_days * 86400) * 1000)}-0"
        minid = min([*needed, aged], key=entry_key)
        return int(self.redis.xtrim(self.stream, minid=minid, approximate=False))

    @stream_errors
    def backlog(self) -> tuple[int, float | None]:
        """Entries the group has not acknowledged yet (pending and undelivered), and the time the oldest of them
        was added (an entry's id starts with its milliseconds)."""
        minid = self.behind()
        if minid is None:
            return 0, None
        waiting = self.redis.xrange(self.stream, min=minid, max="+", count=1)
        if not waiting:
            return 0, None
        group = self._group() or {}
        lag = group.get("lag")  # unknown after some deletions: then the stream's length, trimmed behind us
        undelivered = int(lag) if lag is not None else int(self.redis.xlen(self.stream))
        return undelivered + int(group.get("pending", 0)), int(waiting[0][0].split("-")[0]) / 1000

    @stream_errors
    def lost(self) -> tuple[str, int | None] | None:
        """When a trim went past what the group was delivered (the guard's MAXLEN or age, past a stopped loader):
        the stream's first id now and how many entries went unread (None: unknown), each gap reported once."""
        group = self._group()
        if group is None or group["last-delivered-id"] == "0-0":  # a new group starts from what the stream holds
            return None
        delivered, info = entry_key(group["last-delivered-id"]), self.redis.xinfo_stream(self.stream)
        first = info.get("recorded-first-entry-id") or "0-0"
        if entry_key(first) <= delivered or entry_key(info.get("max-deleted-entry-id") or "0-0") > delivered:
            return None  # nothing unread is gone, or an erasure deleted unread entries: no trim to count
        read = group.get("entries-read")
        if read is None:
            return first, None
        # every entry still here is unread (the first lies past the group), so the rest of the unread went
        before = int(info["entries-added"]) - int(info["length"])
        count = before - int(read)
        if count <= 0:
            return None
        # counted once: the group now reckons those as read, so its lag (and the next look) is right again
        self.redis.xgroup_setid(self.stream, self.group, group["last-delivered-id"], entries_read=before)
        return first, count

    @stream_errors
    def erase(self, match: Callable[[dict[str, Any]], bool], needles: tuple[str, ...]) -> int:
        """XDEL every entry whose event `match`es, scanning the stream in pages; `needles` must all be in an
        entry's JSON before it is parsed."""
        deleted, start = 0, "-"
        while True:
            page = self.redis.xrange(self.stream, min=start, max="+", count=self.PAGE)
            ids = [entry_id for entry_id, fields in page
                   if all(n in fields.get("event", "") for n in needles) and match(json.loads(fields["event"]))]
            if ids:
                deleted += int(self.redis.xdel(self.stream, *ids))
            if len(page) < self.PAGE:
                return deleted
            start = f"({page[-1][0]}"

    def close(self) -> None:
        self.redis.close()


def redis_policy(url_or_client: Any) -> dict[str, Any]:
    """What /readyz should say about a Redis that holds the library and live conversations: its eviction
    policy, memory limit and persistence, and warnings. Any policy but noeviction may drop them (volatile-* as
    well as allkeys-*: conversation keys carry a TTL), so `ok` is true only for noeviction."""
    import redis

    client = url_or_client
    if isinstance(url_or_client, str):
        client = redis.Redis.from_url(url_or_client, decode_responses=True, socket_timeout=2,
                                      socket_connect_timeout=2)
    try:  # INFO, not CONFIG GET: managed services often rename or disable CONFIG
        memory, persistence = client.info("memory"), client.info("persistence")
    except redis.RedisError as error:
        return {"ok": False, "reachable": False, "warnings": [f"redis unreachable: {error}"]}
    finally:
        if client is not url_or_client:
            client.close()
    policy, maxmemory = str(memory.get("maxmemory_policy", "")), int(memory.get("maxmemory", 0))
    appendonly = bool(int(persistence.get("aof_enabled", 0)))
    warnings = []
    if policy != "noeviction":
        warnings.append(f"maxmemory-policy is {policy}: Redis may evict the library and live conversations; "
                        "set noeviction")
    if maxmemory == 0:
        warnings.append("maxmemory is not set: Redis grows until the OS kills it; set it below the host's memory")
    if not appendonly:
        warnings.append("appendonly is off: a Redis restart loses acknowledged state and events")
    return {"ok": policy == "noeviction", "reachable": True, "maxmemory_policy": policy, "maxmemory": maxmemory,
            "appendonly": appendonly, "can_evict": policy != "noeviction", "warnings": warnings}


def open_conversations(settings: Settings, pools: Pools) -> ConversationStore:
    """Live conversations in Redis (REDIS_URL) or in memory over the embedded event log. An unreachable Redis does
    not stop the start: it may come back, and /readyz tells."""
    if not settings.redis_url:
        return MemoryConversationStore(FileEventLog(settings.event_log, offload=pools.log),
                                       keep_ended_s=settings.keep_ended_s, max_live=settings.max_live_conversations)
    conversations = RedisConversationStore(settings.redis_url, max_live=settings.max_live_conversations,
                                           event_max_entries=settings.event_max_entries)
    if not conversations.ping():
        logging.getLogger("copilot").warning(
            "copilot: Redis at %s is unreachable; conversations and the library answer store_unavailable until it "
            "is back (/readyz says when)", redacted_url(settings.redis_url))
    return conversations


def redacted_url(url: str) -> str:
    """A Redis URL without its password, for the log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()
