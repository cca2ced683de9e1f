"""AssemblyAI streaming results (pure): Universal Streaming (v3) `Turn` messages and the older real-time (v2)
`PartialTranscript` / `FinalTranscript` ones, as a relay receives them (AssemblyAI docs, "Universal Streaming"
message sequence, and the v2 real-time reference).

v3: a turn's results share `turn_order`; any one with `end_of_turn` is final, formatted or not (Universal-3 Pro
sends only a formatted one; with format_turns the formatted repeat of an unformatted one is a duplicate of it). v2:
a transcript's partials share its `audio_start`. Both count from 0 again in each session, so a relay that reconnects
mid-call names the session (?session=, the id of its Begin or SessionBegins message; one in the same body names it
too). One stream is one speaker (?speaker=, customer by default: stream each side on its own); the relay names the
call (?conversation_id=). Begin / SessionBegins carry no words. Termination / SessionTerminated end one side's
stream, not the call (the other side's stream, or a reconnect, carries on): the relay ends the call with
POST /api/v1/transcripts {"end": [id]}.
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

BEGINS = {"Begin": "id", "SessionBegins": "session_id"}  # where each names its session


def batch(payload: Any, options: Options) -> Batch:
    """The utterances of one AssemblyAI message or a list of them."""
    cid = relayed(options)
    session = [options.session]  # a Begin in this body names the session of the messages after it

    def key(*parts: Any) -> tuple:
        return (*parts, session[0]) if session[0] else parts

    def read(message: dict, options: Options) -> Read:
        kind = message.get("type", message.get("message_type"))
        who = channel_speaker(options, 0)
        if kind == "Turn":
            order = message.get("turn_order")
            if isinstance(order, bool) or not isinstance(order, int):
                raise InvalidPayload("a Turn carries its turn_order")
            words = [w for w in message.get("words") or [] if isinstance(w, dict)]
            return Read(utterances=[utterance(options, cid, key("turn", who, order), who, message.get("transcript"),
                                              message.get("end_of_turn") is True,
                                              words[0].get("start") if words else None,
                                              words[-1].get("end") if words else None)])
        if kind in ("PartialTranscript", "FinalTranscript"):
            begin = message.get("audio_start")
            return Read(utterances=[utterance(options, cid, key("rt", who, begin), who, message.get("text"),
                                              kind == "FinalTranscript", begin, message.get("audio_end"))])
        if not isinstance(kind, str):
            raise InvalidPayload("an AssemblyAI message names its type (v3) or message_type (v2)")
        if kind in BEGINS and isinstance(message.get(BEGINS[kind]), str) and message[BEGINS[kind]]:
            session[0] = message[BEGINS[kind]]
        return IGNORED  # Begin, SessionBegins, SessionInformation, Termination, SessionTerminated

    return read_messages(payload, options, read)
