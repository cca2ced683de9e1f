"""AssemblyAI streaming results (pure): Universal Streaming (v3) `Turn` messages and the older real-time (v2)
`PartialTranscript` / `FinalTranscript` ones, as a relay receives them (AssemblyAI docs, "Universal Streaming"
message sequence, and the v2 real-time reference).

v3: a turn's results share `turn_order`; the one with `end_of_turn` is final, and with format_turns its formatted
repeat (`turn_is_formatted`) is ignored, the turn having been taken once. v2: a transcript's partials share its
`audio_start`. One stream is one speaker (?speaker=, customer by default: stream each side on its own); the relay
names the call (?conversation_id=). Begin / SessionBegins are ignored; Termination / SessionTerminated end the call.
"""
from __future__ import annotations

from typing import Any

from copilot.errors import InvalidPayload
from copilot.sources.contract import Batch
from copilot.sources.messages import (
    IGNORED,
    Options,
    Read,
    channel_speaker,
    read_messages,
    relayed,
    utterance,
)

ENDS = ("Termination", "SessionTerminated")


def batch(payload: Any, options: Options) -> Batch:
    """The utterances of one AssemblyAI message or a list of them."""
    cid = relayed(options)

    def read(message: dict, options: Options) -> Read:
        kind = message.get("type", message.get("message_type"))
        who = channel_speaker(options, 0)
        if kind == "Turn":
            if message.get("end_of_turn") is True and message.get("turn_is_formatted") is True:
                return IGNORED
            order = message.get("turn_order")
            if isinstance(order, bool) or not isinstance(order, int):
                raise InvalidPayload("a Turn carries its turn_order")
            words = [w for w in message.get("words") or [] if isinstance(w, dict)]
            return Read(utterances=[utterance(options, cid, ("turn", who, order), who, message.get("transcript"),
                                              message.get("end_of_turn") is True,
                                              words[0].get("start") if words else None,
                                              words[-1].get("end") if words else None)])
        if kind in ("PartialTranscript", "FinalTranscript"):
            begin = message.get("audio_start")
            return Read(utterances=[utterance(options, cid, ("rt", who, begin), who, message.get("text"),
                                              kind == "FinalTranscript", begin, message.get("audio_end"))])
        if kind in ENDS:
            return Read(ended=[cid])
        if not isinstance(kind, str):
            raise InvalidPayload("an AssemblyAI message names its type (v3) or message_type (v2)")
        return IGNORED  # Begin, SessionBegins, SessionInformation

    return read_messages(payload, options, read)
