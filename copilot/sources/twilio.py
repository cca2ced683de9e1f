"""Twilio Real-Time Transcription status callbacks (pure): the form fields Twilio POSTs to the `statusCallbackUrl`
of `<Start><Transcription>` (Twilio docs, "TwiML Voice: <Transcription>"), and Twilio's request signature
(Twilio docs, "Webhooks security"; the algorithm of twilio-python's RequestValidator).

`transcription-content` with `Final=true` is a final utterance: CallSid is the conversation, Track the speaker
(inbound_track, the caller, is ?channels='s first: customer; outbound_track the second: agent), SequenceId its
number within the transcription (TranscriptionSid, so a transcription restarted on the call starts new ids).
A partial result carries no id that ties it to its final one, so partials are ignored (set partialResults=false
to save the callbacks). `transcription-stopped` ends the call; started and error events are ignored.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from copilot.errors import InvalidPayload
from copilot.sources.contract import Batch
from copilot.sources.messages import (
    IGNORED,
    Options,
    Read,
    channel_speaker,
    conversation,
    read_messages,
    utterance,
)

TRACKS = {"inbound_track": 0, "outbound_track": 1}
DEFAULT_PORTS = {"https": 443, "http": 80}


def batch(payload: Any, options: Options) -> Batch:
    """The utterance of one callback's form fields (a dict of str), or of a list of them."""
    return read_messages(payload, options, read)


def read(fields: dict, options: Options) -> Read:
    """One callback."""
    event = fields.get("TranscriptionEvent")
    if event == "transcription-stopped":
        return Read(ended=[conversation(fields.get("CallSid"))])
    if event != "transcription-content":
        if not isinstance(event, str):
            raise InvalidPayload("a callback names its TranscriptionEvent")
        return IGNORED  # transcription-started, transcription-error
    if fields.get("Final") not in ("true", "false", True, False):
        raise InvalidPayload("Final must be true or false")
    if fields.get("Final") in ("false", False):
        return IGNORED
    track = fields.get("Track")
    if track not in TRACKS:
        raise InvalidPayload(f"Track must be one of {', '.join(TRACKS)}")
    try:
        data = json.loads(fields.get("TranscriptionData") or "")
    except (TypeError, ValueError):
        raise InvalidPayload("TranscriptionData must be a JSON object") from None
    if not isinstance(data, dict):
        raise InvalidPayload("TranscriptionData must be a JSON object")
    call = fields.get("CallSid")
    transcription = fields.get("TranscriptionSid") or call  # SequenceId counts within one transcription
    return Read(utterances=[utterance(options, call, (transcription, track, fields.get("SequenceId")),
                                      channel_speaker(options, TRACKS[track]), data.get("transcript"), True)])


def signature(url: str, params: Mapping[str, str] | Iterable[tuple[str, str]], auth_token: str) -> str:
    """X-Twilio-Signature of a request: HMAC-SHA1 under the auth token of the full URL followed by each POST
    parameter's name and value, sorted by name (a repeated name's values sorted too), base64."""
    pairs = sorted(params.items() if isinstance(params, Mapping) else params)
    signed = url + "".join(name + value for name, value in pairs)
    digest = hmac.new(auth_token.encode("utf-8"), signed.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def valid_signature(url: str, params: Mapping[str, str] | Iterable[tuple[str, str]], auth_token: str,
                    given: str | None) -> bool:
    """Whether `given` is Twilio's signature of the request, compared in constant time. Twilio signs the URL as
    configured, with or without the scheme's default port, so both are tried (as twilio-python does)."""
    if not given or not auth_token:
        return False
    pairs = list(params.items() if isinstance(params, Mapping) else params)
    expected = given.encode("utf-8", "replace")
    matches = [hmac.compare_digest(signature(form, pairs, auth_token).encode("ascii"), expected)
               for form in url_forms(url)]
    return any(matches)


def url_forms(url: str) -> tuple[str, str]:
    """The URL without a port, and with its port (the scheme's default where it names none)."""
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    host = hostport.rsplit(":", 1)[0] if parts.port is not None else hostport
    prefix = f"{userinfo}@" if userinfo else ""
    port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    bare = urlunsplit(parts._replace(netloc=prefix + host))
    return bare, urlunsplit(parts._replace(netloc=f"{prefix}{host}:{port}")) if port else url
