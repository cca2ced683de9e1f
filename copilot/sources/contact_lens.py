"""Amazon Connect Contact Lens real-time segments (pure): the events of a contact analysis segment stream, as the
Kinesis records carry them (Amazon Connect Administrator Guide, "Data model for conversational analytics segment
streams to analyze voice contacts").

STARTED events are ignored, SEGMENTS events carry `Utterance` segments (pieces of a turn, `PartialContent`, tied to
their turn by `TranscriptId`) and `Transcript` segments (the turn, `Content`, its `Id`); COMPLETED or FAILED end
the contact. Categories, PostContactSummary and the other segments are ignored. ContactId is the conversation.
A turn's pieces in one body are joined here; the pieces of a later body are marked `piece` and joined with the
earlier ones by the service, in the conversation's state (so on every worker). A relay Lambda's whole Kinesis
event, `{"Records": [{"kinesis": {"data": ...}}]}`, is read record by record.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from copilot.errors import InvalidPayload
from copilot.sources.contract import Batch, Utterance
from copilot.sources.messages import (
    IGNORED,
    Options,
    Read,
    base64_json,
    conversation,
    read_messages,
    role_speaker,
    utterance,
)

ROLES = {"CUSTOMER": "customer", "AGENT": "agent", "SYSTEM": None, "CUSTOM_BOT": None, "SUPERVISOR": None}
ENDS = ("COMPLETED", "FAILED")


def batch(payload: Any, options: Options) -> Batch:
    """The utterances of one segment-stream event or a list of them; a Kinesis record's `Data` (base64) or an
    EventBridge envelope's `detail` is read for the event it wraps, a Lambda event's `Records` each as a message."""
    if isinstance(payload, dict) and isinstance(payload.get("Records"), list):
        payload = payload["Records"]  # AWS Lambda's Kinesis event, as a relay function got it
    pieces: dict[tuple[str, str], dict[Any, tuple[float, str]]] = {}  # each turn's Utterance pieces in this body

    def read(event: dict, options: Options) -> Read:
        if "Data" in event or "kinesis" in event:
            event = base64_json(event["Data"] if "Data" in event else event["kinesis"]["data"])
        elif "detail" in event:  # an EventBridge envelope
            event = event["detail"]
        if not isinstance(event, dict):
            raise InvalidPayload("a record or envelope must hold one JSON event")
        kind, contact = event.get("EventType"), event.get("ContactId")
        if not isinstance(kind, str):
            raise InvalidPayload("the event names its EventType")
        if kind in ENDS:
            return Read(ended=[conversation(contact)])
        if kind != "SEGMENTS":
            return IGNORED  # STARTED, and any event type added later
        segments = event.get("Segments")
        if not isinstance(segments, list):
            raise InvalidPayload("a SEGMENTS event carries a Segments list")
        read = Read()
        for segment in segments:
            if not isinstance(segment, dict):
                raise InvalidPayload("each segment must be a JSON object")
            final = "Transcript" in segment
            turn = segment.get("Transcript") or segment.get("Utterance")
            if turn is None:
                continue  # Categories, PostContactSummary, Issues...
            speaker = role_speaker(ROLES, turn.get("ParticipantRole"))
            if speaker is None:
                continue
            if final:
                read.utterances.append(utterance(options, contact, (turn.get("Id"),), speaker, turn.get("Content"),
                                                 True, turn.get("BeginOffsetMillis"), turn.get("EndOffsetMillis")))
            else:
                read.utterances.append(so_far(options, contact, turn, speaker))
        return read

    def so_far(options: Options, contact: Any, piece: dict, speaker: str) -> Utterance:
        """A turn as far as this body has it: each Utterance piece carries only its own words, so the pieces of
        one TranscriptId are joined in the order of their offsets (and with those of earlier bodies by the
        service: a piece)."""
        one = utterance(options, contact, (piece.get("TranscriptId"),), speaker, piece.get("PartialContent"), False,
                        piece.get("BeginOffsetMillis"), piece.get("EndOffsetMillis"))
        turn = pieces.setdefault((one.conversation_id, one.utterance_id), {})
        turn[piece.get("Id") or len(turn)] = (one.start_ms or 0.0, one.text)
        ordered = sorted(turn.values(), key=lambda p: p[0])
        text = " ".join(words.strip() for _, words in ordered if words.strip())
        return replace(one, text=text, start_ms=ordered[0][0] if one.start_ms is not None else None, piece=True)

    return read_messages(payload, options, read)
