"""Amazon Transcribe streaming results (pure): `TranscriptEvent`s of StartStreamTranscription and the
`UtteranceEvent`s of Call Analytics (StartCallAnalyticsStreamTranscription), as the AWS SDKs give them to a relay,
in the API's own field names (Amazon Transcribe API Reference, "TranscriptEvent", "Result", "UtteranceEvent").

A TranscriptEvent's results share their `ResultId` across partials (`IsPartial`) and the final one; `ChannelId`
ch_0 / ch_1 picks the speaker through ?channels= (with channel identification), else ?speaker=. An UtteranceEvent
carries its `UtteranceId` and `ParticipantRole`. CategoryEvents are ignored. The relay names the call:
?conversation_id=.
"""
from __future__ import annotations

import re
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
    role_speaker,
    seconds_ms,
    utterance,
)

ROLES = {"CUSTOMER": "customer", "AGENT": "agent"}
CHANNEL = re.compile(r"ch_(\d{1,2})\Z")


def batch(payload: Any, options: Options) -> Batch:
    """The utterances of one event (`{"TranscriptEvent": ...}`, `{"UtteranceEvent": ...}`, or the bare
    `{"Transcript": ...}` of a TranscriptEvent) or a list of them."""
    cid = relayed(options)

    def read(event: dict, options: Options) -> Read:
        if "UtteranceEvent" in event:
            turn = event["UtteranceEvent"]
            return Read(utterances=[utterance(
                options, cid, (turn.get("UtteranceId"),), options.speaker or
                role_speaker(ROLES, turn.get("ParticipantRole")), turn.get("Transcript"),
                complete(turn), turn.get("BeginOffsetMillis"), turn.get("EndOffsetMillis"))])
        transcript = event.get("TranscriptEvent", event).get("Transcript")
        if transcript is None:
            if "CategoryEvent" in event:
                return IGNORED
            raise InvalidPayload("an event is a TranscriptEvent, an UtteranceEvent or a CategoryEvent")
        read = Read()
        for result in transcript["Results"]:
            alternatives = result.get("Alternatives") or []
            if not alternatives:
                continue
            read.utterances.append(utterance(
                options, cid, (result.get("ResultId"),), speaker(options, result.get("ChannelId")),
                alternatives[0].get("Transcript"), complete(result),
                seconds_ms(result.get("StartTime")), seconds_ms(result.get("EndTime"))))
        return read

    return read_messages(payload, options, read)


def speaker(options: Options, channel: Any) -> str:
    """The speaker of a result's ChannelId (ch_0, ch_1); the first of ?channels= when channel identification is
    off."""
    if channel is None:
        return channel_speaker(options, 0)
    found = CHANNEL.fullmatch(channel) if isinstance(channel, str) else None
    if found is None:
        raise InvalidPayload("ChannelId must be ch_0, ch_1, ...")
    return channel_speaker(options, int(found.group(1)))


def complete(result: dict) -> bool:
    """Whether a result is final: IsPartial false (the SDKs' default when it is left out)."""
    partial = result.get("IsPartial", False)
    if not isinstance(partial, bool):
        raise InvalidPayload("IsPartial must be true or false")
    return not partial
