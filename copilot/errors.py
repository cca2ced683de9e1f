"""Every error the copilot answers with a code, and CODES, the one table that maps each to its code and HTTP status.

The core and the adapters raise these; the transport turns one into `{"ok": false, "error": {"code", "message"}}`
(error_body). A subclass left out of CODES answers with its parent's code.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any


class CopilotError(Exception):
    """Base of every error the transport turns into {"ok": false, "error": {...}}; anything else is internal_error."""

    code, status = "internal_error", 500  # each subclass's pair is set from CODES, below


class InvalidPayload(CopilotError):
    """A payload is malformed, of the wrong type, or misses a field."""


class TextTooLong(CopilotError):
    """A text is longer than the configured limit."""


class UnknownEvent(CopilotError):
    """A Socket.IO event the protocol does not have."""


class NotFound(CopilotError):
    """The thing asked for does not exist (or belongs to another tenant, which looks the same)."""


class NotAuthenticated(CopilotError):
    """An event from a connection that holds no identity here: it never connected with a token, or has left."""


class AuthRequired(CopilotError):
    """No token was given."""


class InvalidToken(CopilotError):
    """The token is malformed or its signature does not match."""


class TokenExpired(CopilotError):
    """The token was valid but its time is up."""


class Forbidden(CopilotError):
    """The role may not do this."""


class RateLimited(CopilotError):
    """Too many events from one connection, agent or tenant; the event was not processed."""


class Flooding(RateLimited):
    """A connection kept sending after its events were refused, far beyond its limit: the transport closes it."""


class TooManyConnections(CopilotError):
    """One identity (tenant, agent) already holds as many open connections to this worker as it may."""


class TooManyPending(CopilotError):
    """Too many sessions from one address have not connected to /copilot yet."""


class UnknownSource(NotFound):
    """POST /api/v1/sources/<name> for a transcript source the server has no mapper for."""


class InvalidSignature(Forbidden):
    """A webhook whose signature is missing or wrong, or whose tenant has no key to check it with (Twilio's
    X-Twilio-Signature)."""


class UnknownConversation(CopilotError):
    """No such conversation for this tenant (another tenant's looks the same)."""


class ConversationExists(CopilotError):
    """conversation.start for an id that is already running."""


class TooManyConversations(CopilotError):
    """conversation.start when the tenant already has its maximum of live conversations."""


class InvalidSnippet(CopilotError):
    """A snippet the engine cannot take (the conversation has ended)."""


class StoreUnavailable(CopilotError):
    """The store cannot be reached or refuses writes (Redis out of memory, a full disk under the event log);
    the request was not applied, so it may be retried."""


class LibraryDamaged(StoreUnavailable):
    """The store lost part of a tenant's library (keys evicted): it is neither served shrunk nor written to."""

    def __init__(self, tenant: str, detail: str) -> None:
        super().__init__(f"the library of tenant '{tenant}' lost keys in the store ({detail}); run Redis with "
                         "maxmemory-policy noeviction and restore it from its append-only file: until then it "
                         "is not loaded and edits are refused")


class InvalidOutcome(InvalidPayload):
    """An outcome record with a missing, unknown or out-of-range field; the message names the field."""


class AnalyticsUnavailable(CopilotError):
    """The analytics store cannot be opened or reached (the embedded DuckDB file is held by another process)."""


class UnknownPhrasing(CopilotError):
    """No phrasing with that id in this tenant's library."""


class PhrasingExists(CopilotError):
    """A phrasing with that id already exists."""


class InvalidPhrasingError(CopilotError):
    """A phrasing failed validation (library.phrasing's InvalidPhrasing); details carries each problem."""

    def __init__(self, error: Any) -> None:
        super().__init__(str(error))
        self.details = error.problems


class ImportRejected(CopilotError):
    """A bulk import (library.files' ParsedRows) had bad rows, so nothing was imported; details lists the first."""

    def __init__(self, parsed: Any) -> None:
        listed = "" if parsed.rejected <= len(parsed.errors) else f"; the first {len(parsed.errors)} are listed"
        super().__init__(f"{parsed.rejected} of {parsed.rows} rows rejected; nothing was imported{listed}")
        self.details = [e.as_dict() for e in parsed.errors]


class LibraryFull(CopilotError):
    """The write would take the tenant's library past its size cap."""


class PayloadTooLarge(CopilotError):
    """A definition (an experiment) is larger than its cap."""


class TooManyExperiments(CopilotError):
    """The tenant already has as many experiments as it may."""


class ExperimentRunning(CopilotError):
    """A redefinition would rename the variants of an experiment that conversations were assigned to."""


class Conflict(CopilotError):
    """The library changed while writing; try again."""


CODES: dict[type[CopilotError], tuple[str, int]] = {
    CopilotError: ("internal_error", 500),
    InvalidPayload: ("invalid_payload", 400),
    TextTooLong: ("text_too_long", 413),
    UnknownEvent: ("unknown_event", 404),
    NotFound: ("not_found", 404),
    NotAuthenticated: ("not_authenticated", 401),
    AuthRequired: ("auth_required", 401),
    InvalidToken: ("invalid_token", 401),
    TokenExpired: ("token_expired", 401),
    Forbidden: ("forbidden", 403),
    UnknownSource: ("unknown_source", 404),
    InvalidSignature: ("invalid_signature", 403),
    RateLimited: ("rate_limited", 429),
    TooManyConnections: ("too_many_connections", 429),
    TooManyPending: ("too_many_pending", 429),
    UnknownConversation: ("unknown_conversation", 404),
    ConversationExists: ("conversation_exists", 409),
    TooManyConversations: ("too_many_conversations", 429),
    InvalidSnippet: ("conversation_ended", 409),
    StoreUnavailable: ("store_unavailable", 503),
    InvalidOutcome: ("invalid_outcome", 400),
    AnalyticsUnavailable: ("analytics_unavailable", 503),
    UnknownPhrasing: ("unknown_phrasing", 404),
    PhrasingExists: ("phrasing_exists", 409),
    InvalidPhrasingError: ("invalid_phrasing", 422),
    ImportRejected: ("import_rejected", 422),
    LibraryFull: ("library_full", 409),
    PayloadTooLarge: ("payload_too_large", 413),
    TooManyExperiments: ("too_many_experiments", 409),
    ExperimentRunning: ("experiment_running", 409),
    Conflict: ("conflict", 409),
}

# The web framework's own errors (a route that does not exist, a body too large), by HTTP status; any other
# status answers http_error.
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
              500: "internal_error"}
OTHER_HTTP_CODE = "http_error"


def _carry_codes() -> None:
    """Give each class in CODES its pair, so that `error.code` reads the table."""
    for error, (code, status) in CODES.items():
        error.code, error.status = code, status


_carry_codes()


def error_body(error: CopilotError) -> dict:
    """The wire form of an error; `details` (a list of problems) when the error carries one."""
    body = {"code": error.code, "message": str(error)}
    details = getattr(error, "details", None)
    if details is not None:
        body["details"] = details
    return {"ok": False, "error": body}


def internal_error_body() -> dict:
    """The wire form of an exception that is not a CopilotError: a bug, whose details stay in the log."""
    return error_body(CopilotError("the server failed to process this event"))


class AnswerLog:
    """The log line for an error answered to a client. The client's own mistakes (4xx) go to DEBUG: anyone could
    fill the log with them. The server's failures (5xx: a store down, a library damaged) go to WARNING, where an
    operator sees them, at most once per code every `every_s` seconds, with the count held back meanwhile."""

    def __init__(self, logger: logging.Logger, every_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger, self.every_s, self.clock = logger, every_s, clock
        self.last: dict[str, float] = {}
        self.held: dict[str, int] = {}

    def answered(self, where: str, error: CopilotError) -> None:
        """Log that `where` (an event or a route) answered `error`."""
        if error.status < 500:
            self.logger.debug("%s answered %s: %s", where, error.code, error)
            return
        now = self.clock()
        if now - self.last.get(error.code, -self.every_s) < self.every_s:
            self.held[error.code] = self.held.get(error.code, 0) + 1
            return
        self.last[error.code] = now
        held = self.held.pop(error.code, 0)
        self.logger.warning("%s answered %s: %s%s", where, error.code, error,
                            f" ({held} more answered so since the last line)" if held else "")
