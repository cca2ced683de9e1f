"""The ingest contract (pure): utterances from systems that are not a browser, read from the generic JSON body of
POST /api/v1/transcripts and the /ingest `transcripts` event. Every source's mapper ends in the same Batch.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from copilot.conversation import CHANNELS, SPEAKERS
from copilot.errors import CopilotError, InvalidPayload
from copilot.protocol import ID, Field, check
from copilot.security import AGENT_PATTERN

MAX_UTTERANCES = 500  # in one body; a source sends more as several batches
START_FIELDS = {"agent": Field("name", False), "channel": Field("choice", False, CHANNELS),
                "queue": Field("name", False), "customer_ref": Field("name", False), "locale": Field("name", False),
                "consent": Field("bool", False)}
UTTERANCE_FIELDS = {"conversation_id": Field("id"), "utterance_id": Field("id"),
                    "speaker": Field("choice", True, SPEAKERS), "text": Field("text"), "final": Field("bool")}
OFFSETS = ("start_ms", "end_ms")
BODY_FIELDS = ("start", "utterances", "end")


@dataclass(frozen=True)
class Start:
    """How to start a conversation that is not running when its first utterance arrives."""

    agent: str = ""  # "" = unclaimed: the first agent whose sidebar starts or joins that id claims it
    channel: str = "voice"
    queue: str = ""
    customer_ref: str = ""
    locale: str = "en"
    consent: bool = True

    def payload(self, conversation_id: str) -> dict[str, Any]:
        """The conversation.start payload that starts `conversation_id` this way (the agent goes apart)."""
        return {"conversation_id": conversation_id, "channel": self.channel, "queue": self.queue,
                "customer_ref": self.customer_ref, "locale": self.locale, "consent": self.consent}


@dataclass(frozen=True)
class Utterance:
    """One result of a speech-to-text source: interim results and the final one share an utterance id."""

    conversation_id: str
    utterance_id: str  # stable across an utterance's interim results and its final one
    speaker: str  # "customer" | "agent" (copilot.conversation.SPEAKERS)
    text: str
    final: bool
    start_ms: float | None = None  # offsets from the start of the call, when the source gives them
    end_ms: float | None = None
    start: Start | None = None  # None: never start; an unknown conversation is unknown_conversation
    # a piece of an interim result with only its own words (Contact Lens): the service joins it with the pieces of
    # that utterance taken before, which the conversation keeps until its final result
    piece: bool = False

    def snippet(self) -> dict[str, Any]:
        """The transcript.snippet payload of this utterance."""
        return {"conversation_id": self.conversation_id, "snippet_id": self.utterance_id, "speaker": self.speaker,
                "text": self.text, "final": self.final}


@dataclass
class Batch:
    """What one body (or one source's messages) holds: utterances, the conversations that ended, what was refused."""

    utterances: list[Utterance] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)  # conversation ids the source says have ended (after the utterances)
    refused: list[dict] = field(default_factory=list)  # what could not be read: {"index": i, "code", "message"}
    ignored: int = 0  # source messages that carry no utterance (metadata, keep-alives, sentiment-only)
    # each utterance's position in the source's own message list (a mapper's body); empty: its place in `utterances`
    positions: list[int] = field(default_factory=list)

    def position(self, n: int) -> int:
        """Where the n-th utterance stood in the body, as its error's `index` names it."""
        return self.positions[n] if len(self.positions) == len(self.utterances) else n


def refusal(index: int, error: CopilotError, item: Any = None) -> dict[str, Any]:
    """The `refused` entry of message `index`, with the ids it names when they are ids."""
    entry: dict[str, Any] = {"index": index}
    if isinstance(item, Mapping):
        for name in ("utterance_id", "conversation_id"):
            value = item.get(name)
            if isinstance(value, str) and ID.fullmatch(value):
                entry[name] = value
    return {**entry, "code": error.code, "message": str(error)}


def parse_start(value: Any, where: str = "start") -> Start | None:
    """A start option: an object of conversation.start's fields (and `agent`), true for the defaults, false or
    null for never; InvalidPayload naming the field otherwise."""
    if value is None or value is False:
        return None
    if value is True:
        return Start()
    if not isinstance(value, Mapping):
        raise InvalidPayload(f"{where} must be true, false or an object")
    unknown = sorted(str(k) for k in value if k not in START_FIELDS)
    if unknown:
        raise InvalidPayload(f"{where} has no field {', '.join(unknown)}")
    clean = {name: check(f"{where}.{name}", spec, value[name], 0)
             for name, spec in START_FIELDS.items() if value.get(name) is not None}
    if clean.get("agent") and not AGENT_PATTERN.fullmatch(clean["agent"]):
        raise InvalidPayload(f"{where}.agent must be an agent id (1-64 letters, digits or . _ @ -) or empty")
    return Start(**clean)


def offset(name: str, value: Any) -> float | None:
    """An offset in milliseconds: a number >= 0, or None when absent."""
    if value is None:
        return None
    try:  # float() of an integer past a float's range is an OverflowError
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number < 0:
        raise InvalidPayload(f"{name} must be a number of milliseconds >= 0")
    return number


def parse_utterance(item: Any, max_text_chars: int, start: Start | None) -> Utterance:
    """One item of `utterances`; InvalidPayload or TextTooLong naming the field."""
    if not isinstance(item, Mapping):
        raise InvalidPayload("an utterance is a JSON object")
    unknown = sorted(str(k) for k in item if k not in UTTERANCE_FIELDS and k not in OFFSETS and k != "start")
    if unknown:
        raise InvalidPayload(f"an utterance has no field {', '.join(unknown)}")
    clean = {}
    for name, spec in UTTERANCE_FIELDS.items():
        if item.get(name) is None:
            raise InvalidPayload(f"{name} is required")
        clean[name] = check(name, spec, item[name], max_text_chars)
    own_start = parse_start(item["start"]) if "start" in item else start
    return Utterance(**clean, start_ms=offset("start_ms", item.get("start_ms")),
                     end_ms=offset("end_ms", item.get("end_ms")), start=own_start)


def parse_batch(payload: Any, max_text_chars: int, max_utterances: int = MAX_UTTERANCES) -> Batch:
    """The generic body: {"start", "utterances", "end"} or a bare list of utterances. A bad utterance goes to
    `refused` with its index and the rest are read; a body that cannot be read at all raises InvalidPayload."""
    if isinstance(payload, list):
        payload = {"utterances": payload}
    if not isinstance(payload, Mapping):
        raise InvalidPayload('the body must be {"utterances": [...]} or a list of utterances')
    unknown = sorted(str(k) for k in payload if k not in BODY_FIELDS)
    if unknown:
        raise InvalidPayload(f"the body has no field {', '.join(unknown)}")
    items = payload.get("utterances") or []
    if not isinstance(items, list):
        raise InvalidPayload("utterances must be a list")
    if len(items) > max_utterances:
        raise InvalidPayload(f"{len(items)} utterances in one body; the limit is {max_utterances}: send batches")
    start = parse_start(payload.get("start"))
    ended = payload.get("end") or []
    if not isinstance(ended, list):
        raise InvalidPayload("end must be a list of conversation ids")
    if len(ended) > max_utterances:  # each bad one is an error in the answer: keep the answer as bounded as the body
        raise InvalidPayload(f"{len(ended)} ends in one body; the limit is {max_utterances}: send batches")
    batch = Batch()
    for position, cid in enumerate(ended):  # a bad id costs only its own end, as a bad utterance does
        try:
            batch.ended.append(check("end", Field("id"), cid, 0))
        except CopilotError as error:
            batch.refused.append({"end": position, "code": error.code, "message": str(error)})
    batch.ended = list(dict.fromkeys(batch.ended))
    for index, item in enumerate(items):
        try:
            batch.utterances.append(parse_utterance(item, max_text_chars, start))
        except CopilotError as error:
            batch.refused.append(refusal(index, error, item))
    return batch


def in_order(utterances: Iterable[Utterance]) -> list[Utterance]:
    """What to apply of one batch, in order: per utterance only its final result if one arrived (the first, when
    it was repeated), else its last interim one; by conversation (in order of first appearance), then by start
    offset, an utterance without one keeping its place after the one before it."""
    listed = list(utterances)
    kept: dict[tuple[str, str], int] = {}
    for position, u in enumerate(listed):
        key = (u.conversation_id, u.utterance_id)
        held = kept.get(key)
        if held is None or not listed[held].final:
            kept[key] = position
    conversations: dict[str, int] = {}
    keys: dict[int, tuple[int, float, int]] = {}
    last_offset: dict[str, float] = {}
    for position, u in enumerate(listed):
        rank = conversations.setdefault(u.conversation_id, len(conversations))
        at = u.start_ms if u.start_ms is not None else last_offset.get(u.conversation_id, -math.inf)
        last_offset[u.conversation_id] = at
        keys[position] = (rank, at, position)
    return [listed[p] for p in sorted(kept.values(), key=keys.__getitem__)]
