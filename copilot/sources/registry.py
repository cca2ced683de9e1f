"""The transcript sources the server maps, by the name in /api/v1/sources/<name>, and the endpoint's query options
(pure)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from copilot.conversation import SPEAKERS
from copilot.errors import InvalidPayload
from copilot.protocol import Field, check
from copilot.sources import assemblyai, contact_lens, deepgram, google, transcribe, twilio
from copilot.sources.contract import Batch, Start, parse_start
from copilot.sources.messages import Options

__all__ = ["SOURCES", "Options", "options_from"]

SOURCES: dict[str, Callable[[Any, Options], Batch]] = {
    "contact-lens": contact_lens.batch, "twilio": twilio.batch, "deepgram": deepgram.batch,
    "assemblyai": assemblyai.batch, "transcribe": transcribe.batch, "google": google.batch}
START_OPTIONS = ("agent", "channel", "queue", "customer_ref", "locale", "consent")
OPTIONS = ("conversation_id", "speaker", "channels", "session", "start", *START_OPTIONS)
MAX_CHANNELS = 8
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def options_from(args: Mapping[str, str]) -> Options:
    """The Options of an endpoint's query string; InvalidPayload naming a bad or unknown option."""
    unknown = sorted(name for name in args if name not in OPTIONS)
    if unknown:
        raise InvalidPayload(f"no option {', '.join(unknown)}; the options are {', '.join(OPTIONS)}")
    conversation_id = args.get("conversation_id") or ""
    if conversation_id:
        check("conversation_id", Field("id"), conversation_id, 0)
    speaker = args.get("speaker") or ""
    if speaker and speaker not in SPEAKERS:
        raise InvalidPayload(f"speaker must be one of {', '.join(SPEAKERS)}")
    channels = tuple(c.strip() for c in (args.get("channels") or "customer,agent").split(","))
    if not 0 < len(channels) <= MAX_CHANNELS or any(c not in SPEAKERS for c in channels):
        raise InvalidPayload(f"channels must list a speaker ({', '.join(SPEAKERS)}) for each channel, in order")
    session = args.get("session") or ""
    if session:
        check("session", Field("id"), session, 0)
    return Options(conversation_id=conversation_id, speaker=speaker, channels=channels, start=start_from(args),
                   session=session)


def start_from(args: Mapping[str, str]) -> Start | None:
    """The Start of ?start= and its fields: ?start=false never starts a conversation."""
    start = (args.get("start") or "true").lower()
    if start not in TRUE + FALSE:
        raise InvalidPayload("start must be true or false")
    fields: dict[str, Any] = {name: args[name] for name in START_OPTIONS if args.get(name)}
    if start in FALSE:
        if fields:
            raise InvalidPayload(f"start=false starts nothing, so {', '.join(fields)} cannot be given")
        return None
    if "consent" in fields:
        consent = fields["consent"].lower()
        if consent not in TRUE + FALSE:
            raise InvalidPayload("consent must be true or false")
        fields["consent"] = consent in TRUE
    return parse_start(fields)
