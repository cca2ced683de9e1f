"""What every mapper shares (pure): the endpoint's Options, and reading a source's messages one at a time into a
Batch, a message that cannot be read refused with its index while the others are read."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from copilot.errors import CopilotError, InvalidPayload
from copilot.protocol import ID
from copilot.sources.contract import MAX_UTTERANCES, Batch, Start, Utterance, offset, refusal


@dataclass(frozen=True)
class Options:
    """How to read one source's messages, from the endpoint's query string."""

    conversation_id: str = ""  # for sources whose payload carries no call id the relay names it (?conversation_id=)
    speaker: str = ""  # single-speaker streams (AssemblyAI, Transcribe without channels): ?speaker=customer
    channels: tuple[str, ...] = ("customer", "agent")  # channel/track index -> speaker (?channels=agent,customer)
    start: Start | None = field(default_factory=Start)  # ?start=false -> None; ?agent=amy&queue=billing fill it
    session: str = ""  # a stream whose utterance numbers restart in each session names the session (AssemblyAI)


@dataclass(frozen=True)
class Read:
    """What one source message says: its utterances and the conversations it ends; neither means it is ignored."""

    utterances: list[Utterance] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)


IGNORED = Read()


def read_messages(payload: Any, options: Options, read: Callable[[dict, Options], Read]) -> Batch:
    """The Batch of a body that is one source message or a list of them; `read` takes one message. More than
    MAX_UTTERANCES utterances refuse the whole body, as the generic contract does."""
    batch = Batch()
    for index, message in enumerate(payload if isinstance(payload, list) else [payload]):
        try:
            if not isinstance(message, dict):
                raise InvalidPayload("a message must be a JSON object")
            got = read(message, options)
        except CopilotError as error:
            batch.refused.append(refusal(index, error))
            continue
        # a field of the wrong shape deep down, a number too large to compute with, JSON nested too deep to read
        except (TypeError, ValueError, AttributeError, KeyError, ArithmeticError, RecursionError) as error:
            shape = InvalidPayload(f"the message does not have the documented shape ({type(error).__name__}: {error})")
            batch.refused.append(refusal(index, shape))
            continue
        spoken = [u for u in got.utterances if u.text.strip()]  # not the empty results a source sends for silence
        if not spoken and not got.ended:
            batch.ignored += 1
        batch.utterances += spoken
        batch.positions += [index] * len(spoken)
        batch.ended += got.ended
        if len(batch.utterances) > MAX_UTTERANCES:
            raise InvalidPayload(f"more than {MAX_UTTERANCES} utterances in one body: send batches")
    return batch


def utterance(options: Options, conversation_id: str, key: tuple, speaker: str, text: Any, final: bool,
              start_ms: Any = None, end_ms: Any = None) -> Utterance:
    """One Utterance, its id made from the source's own `key` parts (stable across an utterance's interim results
    and its final one); InvalidPayload when a part is missing or of the wrong kind."""
    if not isinstance(text, str):
        raise InvalidPayload("the transcript text must be a string")
    return Utterance(conversation_id=conversation(conversation_id), utterance_id=utterance_id(*key),
                     speaker=speaker, text=text, final=final, start_ms=offset("the start offset", start_ms),
                     end_ms=offset("the end offset", end_ms),
                     start=options.start)


def conversation(value: Any) -> str:
    """A conversation id as the agent's sidebar names it, taken as it is (the desktop knows that id)."""
    if not isinstance(value, str) or not ID.fullmatch(value):
        raise InvalidPayload("the conversation id must be 1-128 letters, digits and . _ : @ - (name it with "
                         "?conversation_id= where the source's messages carry none)")
    return value


def relayed(options: Options) -> str:
    """The conversation a relay names for a source whose messages carry no call id."""
    if not options.conversation_id:
        raise InvalidPayload("this source's messages carry no call id: name the conversation with ?conversation_id=")
    return options.conversation_id


def utterance_id(*parts: Any) -> str:
    """An utterance id from the source's id parts; a digest of them where they do not make an id."""
    if any(part is None or part == "" or isinstance(part, (dict, list, bool)) for part in parts):
        raise InvalidPayload("the message carries no id for its utterance")
    joined = ".".join(str(part) for part in parts)
    if ID.fullmatch(joined):
        return joined
    return "h" + hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def seconds_ms(value: Any) -> float | None:
    """Seconds from the start of the audio (Deepgram, Transcribe) as milliseconds."""
    seconds = offset("the start or end time", value)
    if seconds is None:
        return None
    ms = round(seconds * 1000, 3)
    if not math.isfinite(ms):  # a finite number of seconds can still be too many milliseconds for a float
        raise InvalidPayload("the start or end time must be a number of seconds that fits in milliseconds")
    return ms


def channel_speaker(options: Options, index: Any) -> str:
    """The speaker of a channel or track index, as ?channels= maps them; ?speaker= names one for every message."""
    if options.speaker:
        return options.speaker
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(options.channels):
        raise InvalidPayload(f"channel {index!r} has no speaker: map it with ?channels= (customer,agent by default)")
    return options.channels[index]


def role_speaker(roles: Mapping[str, str | None], role: Any) -> str | None:
    """The speaker of a source's participant role; None for a role that is neither (a bot, the system)."""
    if role not in roles:
        raise InvalidPayload(f"participant role {role!r} is not one of {', '.join(roles)}")
    return roles[role]


def base64_json(data: Any) -> Any:
    """The JSON inside a base64 field (a Kinesis record's Data, a Pub/Sub message's data)."""
    if not isinstance(data, str):
        raise InvalidPayload("the wrapped data must be a base64 string")
    try:
        return json.loads(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError, RecursionError):  # RecursionError: JSON nested too deep to read
        raise InvalidPayload("the wrapped data is not base64 of a JSON message") from None
