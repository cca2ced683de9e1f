"""Conversation state stores: in memory (embedded default) and Redis (scale-out), behind one small interface.

`update` reads, changes and writes one conversation atomically, together with the events the change produced:
under a lock in memory (events to the append-only file), and in one WATCH/MULTI transaction in Redis (events to
the stream), so an acknowledged snippet is always both in the state and in the event log. Nothing outside the
store modules imports redis.
"""
from __future__ import annotations

import json
import pickle
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol, TypeVar

from copilot.conversation import Conversation
from copilot.errors import CopilotError
from copilot.eventlog import STREAM_MAXLEN, EventLog, encode_event

T = TypeVar("T")
STATE_TTL_S = 24 * 3600


class UnknownConversation(CopilotError):
    """No such conversation for this tenant (another tenant's looks the same)."""

    code, status = "unknown_conversation", 404


class ConversationExists(CopilotError):
    """conversation.start for an id that is already running."""

    code, status = "conversation_exists", 409


class StoreUnavailable(CopilotError):
    """The shared store cannot be reached; the request was not applied."""

    code, status = "store_unavailable", 503


Change = Callable[[Conversation], "tuple[T, list[dict]]"]


class ConversationStore(Protocol):
    def create(self, conv: Conversation, events: list[dict]) -> None: ...
    def get(self, tenant: str, conversation_id: str) -> Conversation: ...
    def require(self, tenant: str, conversation_id: str) -> None: ...
    def update(self, tenant: str, conversation_id: str, change: Change) -> T: ...
    def events(self, limit: int = 100_000) -> list[dict]: ...
    def ping(self) -> bool: ...


class MemoryConversationStore:
    """Conversations in this process (the embedded default); the oldest are dropped past `limit`.

    Each is kept pickled (about 2 KB, against about 11 KB as live objects): every update works on a private copy
    anyway, so a failed change leaves no trace, and the copy costs the same one loads and one dumps.
    """

    def __init__(self, log: EventLog, limit: int = 20_000, keep_ended_s: float = 600.0) -> None:
        self.log = log
        self.items: OrderedDict[tuple[str, str], tuple[bytes, float | None]] = OrderedDict()  # (pickle, ended_at)
        self.locks: dict[tuple[str, str], threading.Lock] = {}
        self.lock = threading.Lock()
        self.limit = limit
        self.keep_ended_s = keep_ended_s
        self.swept_at = time.time()

    def create(self, conv: Conversation, events: list[dict]) -> None:
        with self.lock:
            key = (conv.tenant, conv.id)
            if key in self.items and self.items[key][1] is None:
                raise ConversationExists(f"conversation {conv.id} is already running; join it instead")
            self.items[key] = (pickle.dumps(conv), conv.ended_at)
            self.locks[key] = threading.Lock()
            for event in events:
                self.log.append(event)
            self._sweep()
            while len(self.items) > self.limit:
                old, _ = self.items.popitem(last=False)
                self.locks.pop(old, None)

    def _sweep(self) -> None:
        """Forget conversations that ended more than keep_ended_s ago (checked at most every 10 s)."""
        now = time.time()
        if now - self.swept_at < min(10.0, self.keep_ended_s):
            return
        self.swept_at = now
        for key in [k for k, (_, ended) in self.items.items() if ended and now - ended > self.keep_ended_s]:
            self.items.pop(key, None)
            self.locks.pop(key, None)

    def require(self, tenant: str, conversation_id: str) -> None:
        """Raise UnknownConversation unless the conversation exists (cheap: no copy)."""
        if (tenant, conversation_id) not in self.items:
            raise UnknownConversation(f"no conversation {conversation_id}; start it first")

    def get(self, tenant: str, conversation_id: str) -> Conversation:
        stored = self.items.get((tenant, conversation_id))
        if stored is None:
            raise UnknownConversation(f"no conversation {conversation_id}; start it first")
        return pickle.loads(stored[0])

    def update(self, tenant: str, conversation_id: str, change: Change) -> T:
        key = (tenant, conversation_id)
        lock = self.locks.get(key)
        if lock is None:
            raise UnknownConversation(f"no conversation {conversation_id}; start it first")
        with lock:
            draft = pickle.loads(self.items[key][0])  # a private copy: a failed change leaves no trace
            result, events = change(draft)
            self.items[key] = (pickle.dumps(draft), draft.ended_at)
            for event in events:
                self.log.append(event)
            return result

    def events(self, limit: int = 100_000) -> list[dict]:
        """The newest events of the log, oldest first."""
        return self.log.read(limit)

    def ping(self) -> bool:
        return True


class RedisConversationStore:
    """Conversations as JSON strings in Redis, expiring a day after their last change."""

    def __init__(self, url: str, prefix: str = "copilot", stream: str = "copilot:events") -> None:
        import redis

        self.redis = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2,
                                          retry_on_timeout=True)
        self.errors = (redis.ConnectionError, redis.TimeoutError)
        self.WatchError = redis.WatchError
        self.prefix = prefix
        self.stream = stream

    def key(self, tenant: str, conversation_id: str) -> str:
        return f"{self.prefix}:conv:{tenant}:{conversation_id}"

    def create(self, conv: Conversation, events: list[dict]) -> None:
        key = self.key(conv.tenant, conv.id)
        try:
            with self.redis.pipeline() as pipe:
                while True:
                    try:
                        pipe.watch(key)
                        existing = pipe.get(key)
                        if existing and json.loads(existing).get("ended_at") is None:
                            raise ConversationExists(f"conversation {conv.id} is already running; join it instead")
                        pipe.multi()
                        pipe.set(key, json.dumps(conv.as_dict()), ex=STATE_TTL_S)
                        self._log(pipe, events)
                        pipe.execute()
                        return
                    except self.WatchError:
                        continue
        except self.errors as error:
            raise StoreUnavailable(f"conversation store unreachable: {error}") from None

    def require(self, tenant: str, conversation_id: str) -> None:
        """Raise UnknownConversation unless the conversation exists (one EXISTS round trip)."""
        try:
            found = self.redis.exists(self.key(tenant, conversation_id))
        except self.errors as error:
            raise StoreUnavailable(f"conversation store unreachable: {error}") from None
        if not found:
            raise UnknownConversation(f"no conversation {conversation_id}; start it first")

    def get(self, tenant: str, conversation_id: str) -> Conversation:
        try:
            data = self.redis.get(self.key(tenant, conversation_id))
        except self.errors as error:
            raise StoreUnavailable(f"conversation store unreachable: {error}") from None
        if data is None:
            raise UnknownConversation(f"no conversation {conversation_id}; start it first")
        return Conversation.from_dict(json.loads(data))

    def update(self, tenant: str, conversation_id: str, change: Change) -> T:
        key = self.key(tenant, conversation_id)
        try:
            with self.redis.pipeline() as pipe:
                while True:
                    try:
                        pipe.watch(key)
                        data = pipe.get(key)
                        if data is None:
                            raise UnknownConversation(f"no conversation {conversation_id}; start it first")
                        conv = Conversation.from_dict(json.loads(data))
                        result, events = change(conv)
                        pipe.multi()
                        pipe.set(key, json.dumps(conv.as_dict()), ex=STATE_TTL_S)
                        self._log(pipe, events)
                        pipe.execute()
                        return result
                    except self.WatchError:
                        continue
        except self.errors as error:
            raise StoreUnavailable(f"conversation store unreachable: {error}") from None

    def events(self, limit: int = 100_000) -> list[dict]:
        """The newest events of the shared stream, oldest first."""
        entries = self.redis.xrevrange(self.stream, count=limit)
        return [json.loads(fields["event"]) for _, fields in reversed(entries)]

    def _log(self, pipe, events: list[dict]) -> None:
        for event in events:
            pipe.xadd(self.stream, {"event": encode_event(event)}, maxlen=STREAM_MAXLEN, approximate=True)

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except self.errors:
            return False
