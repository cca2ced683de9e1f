"""REST for transcript sources: the generic batch (POST /api/v1/transcripts) and each source's own payload
(POST /api/v1/sources/<name>). Thin handlers: the body is read and parsed off the event loop, then applied by
Ingest (app.extensions["copilot.ingest"]), whose answer is the response.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from flask import Blueprint, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState

from copilot.analytics.api import body_bytes
from copilot.errors import InvalidPayload, InvalidSignature, PayloadTooLarge, UnknownSource
from copilot.security import Identity, bearer
from copilot.sources import twilio
from copilot.sources.contract import Batch
from copilot.sources.ingest import SENDERS, Ingest
from copilot.sources.registry import SOURCES, options_from

sources_api = Blueprint("sources", __name__, url_prefix="/api/v1")
INLINE_BYTES = 16 * 1024  # bodies up to this are parsed on the loop (well under a millisecond)


def ingest() -> Ingest:
    return current_app.extensions["copilot.ingest"]


def caller() -> Identity:
    """The bearer token's identity, which must be an integration, a lead or an admin (else 401/403)."""
    who = current_app.extensions["copilot.tokens"].verify(bearer(request.headers.get("Authorization")))
    who.require(*SENDERS)
    return who


def read_json(data: bytes, parse: Callable[[Any], Batch]) -> Batch:
    """`parse` of the body's JSON; InvalidPayload when the body is not JSON."""
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep to read
        raise InvalidPayload("the body must be JSON") from None
    return parse(payload)


def json_body(parse: Callable[[Any], Batch]) -> Batch:
    """The request's JSON body read to a Batch by `parse`, off the event loop (a 500-utterance batch is a few
    MB of Python objects); payload_too_large past COPILOT_MAX_BODY_BYTES."""
    data = body_bytes()
    if len(data) <= INLINE_BYTES:  # a webhook's few hundred bytes: the hop to a pool thread costs more than this
        return read_json(data, parse)
    return current_app.extensions["copilot.off_loop"](read_json, data, parse)


def applied(who: Identity, batch: Batch, source: str = "transcripts") -> Response:
    """The answer of applying a batch: 200 whenever the body could be read, its errors listed by index."""
    return jsonify(ingest().apply(who, batch, source))


@sources_api.post("/transcripts")
def post_transcripts():
    """A batch of utterances in the generic contract (copilot.sources.contract); see the README."""
    who = caller()
    return applied(who, json_body(ingest().read))


# -- each source's own payload (copilot.sources.registry): POST /api/v1/sources/<name> ---------------------------
# Engineer B's section: the mapped sources and Twilio's signed webhook.
TWILIO_TOKENS = "copilot.twilio_tokens"
MAX_TWILIO_BODY = 64 * 1024  # a callback is a few hundred bytes; this endpoint takes no bearer token
MAX_TWILIO_FIELDS = 100


@sources_api.record_once
def read_twilio_tokens(state: BlueprintSetupState) -> None:
    """Each tenant's Twilio auth token (COPILOT_TWILIO_AUTH_TOKENS), read once as the app is built, so that a
    token file that cannot be read stops the start rather than a call."""
    settings = state.app.config.get("COPILOT_SETTINGS")
    state.app.extensions[TWILIO_TOKENS] = twilio_tokens(settings.twilio_auth_tokens if settings else "")


def twilio_tokens(listed: str) -> dict[str, str]:
    """tenant=token pairs, comma-separated; tenant=@/path reads the token from that file."""
    tokens = {}
    for pair in filter(None, (p.strip() for p in listed.split(","))):
        tenant, _, token = (part.strip() for part in pair.partition("="))
        tokens[tenant] = Path(token[1:]).read_text().strip() if token.startswith("@") else token
    return tokens


@sources_api.post("/sources/<source>")
def post_source(source: str):
    """One source's own messages (one, or a list), mapped by copilot.sources.registry; the query string holds
    its options (?conversation_id=, ?speaker=, ?channels=, ?start= and the start fields)."""
    who = caller()
    mapper = SOURCES.get(source)
    if mapper is None:
        raise UnknownSource(f"no transcript source {source!r}; the sources are {', '.join(SOURCES)}")
    return applied(who, json_body(partial(mapper, options=options_from(request.args))), source)


@sources_api.post("/sources/twilio")
def post_twilio():
    """Twilio's Real-Time Transcription status callback. Twilio sends no bearer token: ?tenant= names the tenant,
    whose auth token must sign the request (X-Twilio-Signature), else invalid_signature and nothing lands."""
    tenant = request.args.get("tenant", "")
    if not tenant:
        raise InvalidSignature("name the tenant in the callback URL (?tenant=acme): its Twilio auth token, from "
                               "COPILOT_TWILIO_AUTH_TOKENS, checks the signature")
    fields = form_fields()
    token = current_app.extensions.get(TWILIO_TOKENS, {}).get(tenant)
    if token is None or not twilio.valid_signature(public_url(), fields, token,
                                                   request.headers.get("X-Twilio-Signature")):
        raise InvalidSignature("the request is not signed with this tenant's Twilio auth token (X-Twilio-Signature "
                               "over this URL and the form; COPILOT_TWILIO_AUTH_TOKENS holds each tenant's)")
    options = options_from({k: v for k, v in request.args.items() if k != "tenant"})
    return applied(Identity(tenant, "integration", "twilio"), twilio.batch(dict(fields), options), "twilio")


def form_fields() -> list[tuple[str, str]]:
    """The form-encoded body's name-value pairs, as Twilio signed them; payload_too_large past MAX_TWILIO_BODY."""
    if (request.content_length or 0) > MAX_TWILIO_BODY:
        raise PayloadTooLarge(f"a Twilio callback is at most {MAX_TWILIO_BODY} bytes")
    data = body_bytes()
    if len(data) > MAX_TWILIO_BODY:
        raise PayloadTooLarge(f"a Twilio callback is at most {MAX_TWILIO_BODY} bytes")
    try:
        return parse_qsl(data.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_TWILIO_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise InvalidPayload("the body must be a UTF-8 form of at most 100 fields") from None


def public_url() -> str:
    """The URL Twilio signed: scheme and host as the caller reached us (ProxyFix behind COPILOT_PROXY_HOPS
    proxies), path and query as sent."""
    environ = request.environ
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    if not target.startswith("/"):  # gevent's server keeps no raw target: quote the path back as it came
        path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
        query = environ.get("QUERY_STRING", "")
        target = quote(path, safe="/:@!$&'()*+,;=-._~") + (f"?{query}" if query else "")
    return f"{request.scheme}://{request.host}{target}"
