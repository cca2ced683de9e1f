"""Deepgram live streaming results (pure): the `Results` messages of wss://api.deepgram.com/v1/listen as a relay
receives them (Deepgram docs, "Live Audio" API reference and "Interim Results").

Interim results of one stretch of audio share its `start`, and the one with `is_final` closes it: the utterance id
is the request id, the channel and that start. The speaker is the channel's (multichannel=true, ?channels= maps the
indexes), else the diarized words' speaker (diarize=true), else ?speaker=; Metadata, UtteranceEnd and
SpeechStarted are ignored. A Deepgram stream names no call, so the relay names it: ?conversation_id=.
"""
from __future__ import annotations

from collections import Counter
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
    seconds_ms,
    utterance,
)


def batch(payload: Any, options: Options) -> Batch:
    """The utterances of one Deepgram message or a list of them."""
    cid = relayed(options)

    def read(message: dict, options: Options) -> Read:
        kind = message.get("type")
        if kind != "Results":
            if not isinstance(kind, str):
                raise InvalidPayload("a Deepgram message names its type")
            return IGNORED  # Metadata, UtteranceEnd, SpeechStarted
        alternative = message["channel"]["alternatives"][0]
        channel, channels = message.get("channel_index") or [0, 1]
        start, duration = seconds_ms(message.get("start")), seconds_ms(message.get("duration"))
        request = (message.get("metadata") or {}).get("request_id")
        return Read(utterances=[utterance(
            options, cid, (request, f"ch{channel}", int(start or 0)), speaker(options, channel, channels, alternative),
            alternative.get("transcript"), message.get("is_final") is True, start,
            None if start is None or duration is None else start + duration)])

    return read_messages(payload, options, read)


def speaker(options: Options, channel: Any, channels: Any, alternative: dict) -> str:
    """Who spoke: the channel's speaker on multichannel audio, else the diarized words' most common speaker."""
    words = alternative.get("words") or []
    diarized = [w["speaker"] for w in words if isinstance(w, dict) and "speaker" in w]
    multichannel = isinstance(channels, int) and channels > 1
    if options.speaker or multichannel or not diarized:
        return channel_speaker(options, channel)
    return channel_speaker(options, Counter(diarized).most_common(1)[0][0])
