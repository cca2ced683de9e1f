"""The Socket.IO protocol: the client events and their payload rules, validated in one place, and the events the
server emits with their fields (pure).

The README's protocol section documents the same tables; tests check they agree.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from copilot.conversation import CHANNELS, FEEDBACK, MODES, SPEAKERS
from copilot.errors import InvalidPayload, TextTooLong
from copilot.floor import HAND_ANSWERS, MAX_WHISPER_CHARS

# \Z, not $: `$` also matches before a trailing newline, so "c-1\n" was an id.
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}\Z")
KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}\Z")
TOKEN = re.compile(r"[A-Za-z0-9_.=-]{1,2048}\Z")  # what itsdangerous' URL-safe serializer writes


@dataclass(frozen=True)
class Field:
    """One payload field: its kind and whether it is required."""

    kind: str  # id, text, bool, number, choice, name, token, key (an alert id: a conversation id and a rule)
    required: bool = True
    choices: tuple[str, ...] = ()


EVENTS: dict[str, dict[str, Field]] = {
    "conversation.start": {
        "conversation_id": Field("id"), "channel": Field("choice", True, CHANNELS),
        "queue": Field("name", False), "customer_ref": Field("name", False), "locale": Field("name", False),
        "consent": Field("bool", False)},
    "transcript.snippet": {
        "conversation_id": Field("id"), "snippet_id": Field("id"), "speaker": Field("choice", True, SPEAKERS),
        "text": Field("text"), "final": Field("bool"), "ts": Field("number", False)},
    "conversation.mode": {"conversation_id": Field("id"), "mode": Field("choice", True, MODES)},
    "suggestion.feedback": {"conversation_id": Field("id"), "suggestion_id": Field("id"),
                            "action": Field("choice", True, FEEDBACK)},
    "conversation.transfer": {"conversation_id": Field("id"), "to_queue": Field("name", False),
                              "to_agent": Field("id", False)},
    "conversation.end": {"conversation_id": Field("id")},
    "conversation.join": {"conversation_id": Field("id")},
    "conversation.raise_hand": {"conversation_id": Field("id")},
    "token.refresh": {"token": Field("token")},
}

# Namespace /floor, a team lead's board (README, "The live floor"). A whisper's text is at most MAX_WHISPER_CHARS.
FLOOR_EVENTS: dict[str, dict[str, Field]] = {
    "floor.watch": {"queue": Field("name", False)},
    "alert.claim": {"conversation_id": Field("id"), "alert_id": Field("key")},
    "hand.answer": {"conversation_id": Field("id"), "answer": Field("choice", True, tuple(HAND_ANSWERS))},
    "floor.whisper": {"conversation_id": Field("id"), "text": Field("text")},
    "token.refresh": {"token": Field("token")},
}

# Server to client, each event's payload fields as the README's table lists them (`?`: not in every payload).
# conversation.summary carries the conversation.end ack's summary, whose fields the summary itself defines.
SERVER_EVENTS: dict[str, tuple[str, ...]] = {
    "cue.highlight": ("conversation_id", "snippet_id", "final", "speaker", "text", "cues", "triage_level", "tone",
                      "line", "mode"),
    "suggestion.push": ("conversation_id", "suggestions"),
    "alert": ("conversation_id", "kind", "message"),
    "handoff.note": ("conversation_id", "note", "reason", "to_queue?"),
    "conversation.summary": (),
    "lead.answer": ("conversation_id", "answer", "message", "lead"),
    "lead.whisper": ("conversation_id", "text", "lead", "at"),
}

# Server to a lead on /floor.
FLOOR_SERVER_EVENTS: dict[str, tuple[str, ...]] = {
    "floor.diff": ("rows", "removed", "at"),
    "floor.alert": ("id", "conversation_id", "agent", "queue", "rule", "reason", "history", "evidence", "at",
                    "taken_by"),
    "floor.hand": ("conversation_id", "agent", "queue", "raised_at", "summary", "row"),
}


def validate(event: str, payload: Any, max_text: int, events: Mapping[str, dict[str, Field]] = EVENTS) -> dict[str, Any]:
    """The payload with defaults filled in, or InvalidPayload / TextTooLong naming the field."""
    spec = events[event]
    if not isinstance(payload, Mapping):
        raise InvalidPayload(f"{event} takes a JSON object")
    unknown = sorted(str(k) for k in payload if k not in spec)
    if unknown:
        raise InvalidPayload(f"{event} has no field {', '.join(unknown)}")
    clean: dict[str, Any] = {}
    for name, field in spec.items():
        if name not in payload or payload[name] is None:
            if field.required:
                raise InvalidPayload(f"{name} is required")
            continue
        clean[name] = check(name, field, payload[name], max_text)
    return clean


def check(name: str, field: Field, value: Any, max_text: int) -> Any:
    """One field's value, checked."""
    if field.kind == "id":
        if not isinstance(value, str) or not ID.fullmatch(value):
            raise InvalidPayload(f"{name} must be 1-128 characters of letters, digits and . _ : @ -")
    elif field.kind == "key":
        if not isinstance(value, str) or not KEY.fullmatch(value):
            raise InvalidPayload(f"{name} must be an id the server sent")
    elif field.kind == "token":
        if not isinstance(value, str) or not TOKEN.fullmatch(value):
            raise InvalidPayload(f"{name} must be a token the server issued")
    elif field.kind == "name":
        if not isinstance(value, str) or len(value) > 128 or any(ord(ch) < 32 for ch in value):
            raise InvalidPayload(f"{name} must be text of at most 128 characters")
        if not encodable(value):
            raise InvalidPayload(f"{name} must be valid Unicode text (a lone surrogate such as \\ud800 is not)")
    elif field.kind == "text":
        if not isinstance(value, str):
            raise InvalidPayload(f"{name} must be text")
        if len(value) > max_text:
            raise TextTooLong(f"{name} is {len(value)} characters; the limit is {max_text}")
        if "\x00" in value:
            raise InvalidPayload(f"{name} must not contain NUL characters")
        if not encodable(value):
            raise InvalidPayload(f"{name} must be valid Unicode text (a lone surrogate such as \\ud800 is not)")
    elif field.kind == "bool":
        if not isinstance(value, bool):
            raise InvalidPayload(f"{name} must be true or false")
    elif field.kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise InvalidPayload(f"{name} must be a number")
    elif field.kind == "choice":
        if value not in field.choices:
            raise InvalidPayload(f"{name} must be one of {', '.join(field.choices)}")
    return value


def validate_whisper(payload: Any) -> dict[str, Any]:
    """A floor.whisper payload: its text 1-MAX_WHISPER_CHARS characters, not blank."""
    data = validate("floor.whisper", payload, MAX_WHISPER_CHARS, FLOOR_EVENTS)
    if not data["text"].strip():
        raise InvalidPayload("text must not be empty")
    return data


def encodable(value: str) -> bool:
    """Whether the text can be written as UTF-8: JSON lets a client send a lone surrogate, which cannot."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
