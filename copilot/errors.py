"""The one table that maps the core's exceptions to error codes, and the error payload shape."""
from __future__ import annotations


class CopilotError(Exception):
    """Base of every error the transport turns into {"ok": false, "error": {...}}."""

    code = "internal_error"
    status = 500


class InvalidPayload(CopilotError):
    """A payload is malformed, of the wrong type, or misses a field."""

    code, status = "invalid_payload", 400


class TextTooLong(CopilotError):
    """A text is longer than the configured limit."""

    code, status = "text_too_long", 413


class UnknownEvent(CopilotError):
    """A Socket.IO event the protocol does not have."""

    code, status = "unknown_event", 404


class NotFound(CopilotError):
    """The thing asked for does not exist (or belongs to another tenant, which looks the same)."""

    code, status = "not_found", 404


class NotReady(CopilotError):
    """The model or another dependency is not loaded yet."""

    code, status = "not_ready", 503


def error_body(error: CopilotError) -> dict:
    """The wire form of an error; `details` (a list of problems) when the error carries one."""
    body = {"code": error.code, "message": str(error)}
    details = getattr(error, "details", None)
    if details is not None:
        body["details"] = details
    return {"ok": False, "error": body}
