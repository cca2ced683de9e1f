"""Socket.IO transport, namespace /ingest: a transcript source's stream. Connect with an integration (or lead,
admin) token, send `transcripts` with the body of POST /api/v1/transcripts, get its answer as the ack. The same
rate limits, error answers and session guard as /copilot; no error closes the connection.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, request
from flask_socketio import SocketIO

from copilot.metrics import Metrics
from copilot.realtime import (
    Connections,
    admit_connection,
    answer_errors,
    event_handler,
    joined,
    refresher,
    refuse_unknown_events,
)
from copilot.security import Identity, Tokens
from copilot.settings import Settings
from copilot.sources.ingest import SENDERS, Ingest

NAMESPACE = "/ingest"


def register(socketio: SocketIO, ingest: Ingest, tokens: Tokens, metrics: Metrics, connections: Connections) -> None:
    """Attach the /ingest handlers to a SocketIO server."""

    @socketio.on("connect", namespace=NAMESPACE)
    def connect(auth: Any = None) -> None:
        admit_connection(socketio, tokens, connections, metrics, NAMESPACE, auth, *SENDERS)  # an agent's: forbidden

    @socketio.on("disconnect", namespace=NAMESPACE)
    def disconnect(*_: Any) -> None:
        connections.remove(request.sid)
        joined(socketio, request.sid, False, NAMESPACE)

    def transcripts(who: Identity, payload: Any) -> dict:
        return ingest.apply(who, ingest.read(payload))

    def answered(answer: dict) -> dict:
        return answer

    answer_errors(socketio, NAMESPACE, connections, metrics)
    refresh = refresher(tokens, connections, *SENDERS)
    socketio.on_event("transcripts", event_handler(connections, transcripts, answered, refresh), namespace=NAMESPACE)
    socketio.on_event("token.refresh", event_handler(connections, None, answered, refresh), namespace=NAMESPACE)

    refuse_unknown_events(socketio, NAMESPACE, connections, answered, refresh, "send transcripts")


def init_app(app: Flask, socketio: SocketIO, settings: Settings, ingest: Ingest, tokens: Tokens,
             metrics: Metrics) -> None:
    """The /ingest handlers on the app's Socket.IO server, with their connections' own rate limits; each
    utterance spends its tenant's events besides (Ingest's admit)."""
    register(socketio, ingest, tokens, metrics, Connections.from_settings(settings))
