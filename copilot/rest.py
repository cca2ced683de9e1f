"""REST transport: the front door, health, readiness, one-off cue analysis, and the app-wide JSON error handlers."""
from __future__ import annotations

import logging
from functools import partial

from flask import Blueprint, Response, current_app, jsonify, redirect, request
from werkzeug.exceptions import HTTPException

from copilot.conversation_store import redis_policy
from copilot.errors import HTTP_CODES, OTHER_HTTP_CODE, AnswerLog, CopilotError, InvalidPayload, TextTooLong, error_body
from copilot.security import bearer
from copilot.web import demo_enabled

api = Blueprint("api", __name__)
answers = AnswerLog(logging.getLogger("copilot.rest"))


@api.app_errorhandler(CopilotError)
def copilot_error(error: CopilotError):
    """A precise error of ours: its code and HTTP status from errors.CODES (a server failure is logged)."""
    answers.answered(f"{request.method} {request.path}", error)
    return jsonify(error_body(error)), error.status


@api.app_errorhandler(HTTPException)
def http_error(error: HTTPException):
    """Werkzeug's own errors in our shape, coded by errors.HTTP_CODES. An unhandled exception arrives here as a
    500 (internal_error) after Flask has logged its traceback."""
    status = error.code or 500
    code = HTTP_CODES.get(status, OTHER_HTTP_CODE)
    return jsonify({"ok": False, "error": {"code": code, "message": error.description}}), status


@api.app_errorhandler(RecursionError)
def too_deep(error: RecursionError):
    """JSON nested thousands deep: Flask's parser raises RecursionError, which get_json(silent=True) lets
    through as a 500."""
    return jsonify(error_body(InvalidPayload("the body is nested too deeply to read"))), InvalidPayload.status


@api.get("/")
def front_door():
    """Where to go: the demo when it is served to this client, else the pages and the API document."""
    try:
        demo_enabled()
    except CopilotError:
        return jsonify({"ok": True, "name": "Empathy Copilot",
                        "links": {"console": "/console", "floor": "/floor", "sidebar": "/sidebar",
                                  "api": "/api/v1/openapi.json",
                                  "health": "/healthz", "ready": "/readyz"}})
    return redirect("/demo", code=302)


@api.get("/favicon.ico")
def favicon():
    """No icon: an empty answer that browsers cache, instead of a 404 on every page."""
    return Response(status=204, headers={"Cache-Control": "public, max-age=86400"})


@api.get("/healthz")
def healthz():
    """The process is up."""
    return jsonify({"ok": True})


@api.get("/readyz")
def readyz():
    """The model answers, the index is loaded, and the stores are reachable (Redis when configured); and which
    server loop runs."""
    detector = current_app.extensions["copilot.detector"]
    detector.model.encode(["ready"])
    library = current_app.extensions["copilot.library"]
    checks = {"model": True, "index": library.shipped_index is not None and len(library.shipped_index) > 0,
              "library_store": library.ping(),
              "conversation_store": current_app.extensions["copilot.assist"].ping()}
    server = current_app.extensions["socketio"].async_mode  # gevent as served; threading only in tests' own process
    body = {"ok": all(checks.values()), "checks": checks, "server": server}
    store = current_app.extensions["copilot.assist"].store
    if hasattr(store, "redis"):  # a policy that may evict keys could drop the library or live conversations
        body["redis"] = redis_policy(store.redis)
    return jsonify(body), 200 if body["ok"] else 503


@api.post("/api/v1/cues")
def analyse_text():
    """Cues, spans and emotions for one text: {"text": "..."}; an agent's token or above. The analysis runs off the
    event loop, so a long text holds up no one's live snippets."""
    current_app.extensions["copilot.tokens"].verify(bearer(request.headers.get("Authorization"))).require("agent")
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
        raise InvalidPayload("body must be a JSON object with a string field 'text'")
    text = payload["text"]
    limit = current_app.config["COPILOT_SETTINGS"].max_text_chars
    if len(text) > limit:
        raise TextTooLong(f"text is {len(text)} characters; the limit is {limit}")
    detector = current_app.extensions["copilot.detector"]
    analysis = current_app.extensions["copilot.off_loop"](partial(detector.analyse, text, here=True))
    return jsonify({"ok": True, "cues": [h.as_dict() for h in analysis.cues],
                    "emotions": {k: round(v, 4) for k, v in analysis.emotions.items()}})


@api.get("/metrics")
def metrics():
    """Prometheus metrics of this process."""
    body = current_app.extensions["copilot.metrics"].render()
    return Response(body, mimetype="text/plain; version=0.0.4")


@api.get("/api/v1/openapi.json")
def openapi_document():
    """The OpenAPI 3 description of this API."""
    from copilot.openapi import document

    return jsonify(document())
