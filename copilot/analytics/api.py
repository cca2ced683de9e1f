"""REST for analytics: outcomes in (JSON or CSV), reports and scorecards out (JSON or CSV), erasure and Parquet
export. Thin handlers over the Analytics service (app.extensions["copilot.analytics"]), which runs every query
off the event loop. A token only ever reaches its own tenant's data.
"""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import date
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, send_file

from copilot.analytics import outcomes as parse
from copilot.analytics import store
from copilot.cues.taxonomy import CUES
from copilot.errors import InvalidPayload, NotFound, PayloadTooLarge
from copilot.protocol import Field, check
from copilot.redact import redact
from copilot.security import Identity, bearer

analytics_api = Blueprint("analytics", __name__, url_prefix="/api/v1")

REPORTS = ("resolution", "outcomes", "cqs", "phrasings", "repeat_contacts")
# each report's `by` values, the first its default; the others take none
REPORT_BY = {"resolution": ("day", "queue", "agent", "cue"), "cqs": ("queue", "day", "agent", "all"),
             "repeat_contacts": ("day", "queue", "agent", "all")}
METRICS, SPLITS = tuple(store.METRICS), store.SPLITS
SCORECARD_BY = ("agent", "queue", "day", "all", "conversation")  # conversation: one row each, for QA tools
EXPORT_TABLES = store.EXPORTABLE
MAX_UNKNOWN_LISTED = 100
MAX_ERRORS_LISTED = 1000  # `rejected` counts them all
DAY = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
PARQUET = "application/vnd.apache.parquet"
FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as the start of a formula


def analytics():
    return current_app.extensions["copilot.analytics"]


def identity() -> Identity:
    return g.identity


@analytics_api.before_request
def authenticate() -> None:
    g.identity = current_app.extensions["copilot.tokens"].verify(bearer(request.headers.get("Authorization")))


def day_arg(name: str) -> date | None:
    """A query parameter that names a UTC day, YYYY-MM-DD, or None when absent."""
    value = request.args.get(name)
    if value is None or value == "":
        return None
    try:
        if not DAY.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidPayload(f"{name} must be a day, YYYY-MM-DD") from None


def choice_arg(name: str, allowed: tuple[str, ...], default: str | None = None) -> str | None:
    value = request.args.get(name) or default
    if value is not None and value not in allowed:
        raise InvalidPayload(f"{name} must be one of {', '.join(allowed)}")
    return value


def filters() -> dict[str, Any]:
    """The filters every report takes: from, to (days, inclusive) and queue."""
    day_from, day_to = day_arg("from"), day_arg("to")
    if day_from and day_to and day_from > day_to:
        raise InvalidPayload("from must not be after to")
    params: dict[str, Any] = {"day_from": day_from, "day_to": day_to}
    if request.args.get("queue"):
        params["queue"] = check("queue", Field("name"), request.args["queue"], 0)
    return params


def wants_csv() -> bool:
    return choice_arg("format", ("json", "csv"), "json") == "csv"


def flat(row: dict, prefix: str = "") -> dict:
    """One CSV row from a report row: nested objects become dotted columns, an interval [lo, hi] two columns."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, f"{name}."))
        elif isinstance(value, (list, tuple)) and len(value) == 2 and key.startswith("ci"):
            out[f"{name}_lo"], out[f"{name}_hi"] = value
        elif isinstance(value, (list, tuple)):
            out[name] = cell(";".join(str(v) for v in value))
        else:
            out[name] = "" if value is None else cell(value)
    return out


def cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text such as a queue named "=HYPERLINK(...)" is quoted with '."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA) else value


def csv_reply(rows: list[dict], filename: str) -> Response:
    """Rows as a CSV attachment, written off the loop (a thousand rows of cells is milliseconds of Python)."""
    body = current_app.extensions["copilot.off_loop"](csv_text, rows)
    return Response(body, mimetype="text/csv", headers={"Content-Disposition": f"attachment; filename={filename}.csv"})


def csv_text(rows: list[dict]) -> str:
    """Rows as CSV; the columns in the order they first appear."""
    flats = [flat(row) for row in rows]
    columns = list(dict.fromkeys(key for row in flats for key in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(flats)
    return out.getvalue()


def json_reply(payload: dict) -> Response:
    """A report's JSON, encoded off the loop (the same encoder as jsonify)."""
    body = current_app.extensions["copilot.off_loop"](current_app.json.dumps, payload)
    return Response(body, mimetype="application/json")


def upload() -> tuple[list, list[dict]]:
    """The outcomes of the request's body (JSON, text/csv, or a multipart `file`) and the rows refused, parsed
    off the loop (a 200,000-row export takes seconds of Python)."""
    off_loop = current_app.extensions["copilot.off_loop"]
    if request.mimetype == "multipart/form-data":
        file = request.files.get("file")
        if file is None:
            raise InvalidPayload("a multipart upload carries the CSV as its field 'file'")
        return off_loop(parse_csv_bytes, file.read())
    if request.mimetype == "application/json":
        return off_loop(parse_json_bytes, body_bytes())
    if request.mimetype in ("text/csv", "text/plain", "application/csv"):
        return off_loop(parse_csv_bytes, body_bytes())
    raise InvalidPayload("send application/json, text/csv, or a multipart/form-data 'file'")


def body_bytes() -> bytes:
    """The request's body, refused with payload_too_large past COPILOT_MAX_BODY_BYTES: a chunked body has no
    Content-Length, and Werkzeug cuts one off at the limit without a word, so it is read here to one byte past."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None:
        return request.get_data()  # Werkzeug has checked the declared length against the limit
    data = request.environ["wsgi.input"].read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"the body is over {limit} bytes (COPILOT_MAX_BODY_BYTES)")
    return data


def parse_csv_bytes(data: bytes) -> tuple[list, list[dict]]:
    return parse.parse_csv(text_of(data))


def parse_json_bytes(data: bytes) -> tuple[list, list[dict]]:
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if not isinstance(body, (dict, list)):
        raise InvalidPayload('the body must be {"outcomes": [...]} or a list of outcomes')
    return parse.parse_json(body)


def text_of(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # a spreadsheet's export often starts with a byte-order mark
    except UnicodeDecodeError:
        raise InvalidPayload("the CSV must be UTF-8 text") from None


@analytics_api.post("/outcomes")
def post_outcomes():
    """Survey and business outcomes keyed by conversation id; a later post of the same id replaces it. Bad rows
    are reported (by line or index) and the rest land; invalid_payload only when nothing could be read."""
    who = identity()
    who.require("integration", "lead")
    try:
        outcomes, errors = upload()
    except csv.Error as error:  # the csv module's own refusals (a cell past its field size limit)
        raise InvalidPayload(f"the CSV cannot be read: {error}") from None
    if not outcomes and (not errors or errors[0].get("line") == 1):
        unread = InvalidPayload(errors[0]["message"] if errors else "the body holds no outcomes")
        unread.details = errors
        raise unread
    result = analytics().put_outcomes(who.tenant, outcomes) if outcomes else {"accepted": 0, "unknown": []}
    unknown = list(result["unknown"])
    return jsonify({"ok": True, "accepted": result["accepted"],
                    "unknown_conversations": {"count": len(unknown), "ids": unknown[:MAX_UNKNOWN_LISTED]},
                    "rejected": len(errors), "errors": errors[:MAX_ERRORS_LISTED]})


@analytics_api.get("/reports/<name>")
def report(name: str):
    """One report's cells (n, rate or mean, 95% interval; "too few" below the minimum n), as JSON or CSV."""
    who = identity()
    who.require("lead")
    if name not in REPORTS:
        raise NotFound(f"no report '{name}'; the reports are {', '.join(REPORTS)}")
    params = filters()
    if name in REPORT_BY:
        params["by"] = choice_arg("by", REPORT_BY[name], REPORT_BY[name][0])
    if name == "repeat_contacts" and request.args.get("within_days"):
        within = request.args["within_days"]
        if not within.isascii() or not within.isdigit() or not 1 <= int(within) <= 365:
            raise InvalidPayload("within_days must be a whole number from 1 to 365")
        params["within_days"] = int(within)
    if name in ("outcomes", "phrasings"):
        params["metric"] = choice_arg("metric", METRICS, "csat")
    if name == "outcomes":
        params["split"] = choice_arg("split", SPLITS, "acknowledged")
        if request.args.get("cue"):
            params["cue"] = choice_arg("cue", CUES)
        if request.args.get("experiment"):
            params["experiment"] = check("experiment", Field("name"), request.args["experiment"], 0)
    fmt_csv = wants_csv()
    answer = analytics().report(who.tenant, name, params)
    if fmt_csv:
        return csv_reply(answer["rows"], name)
    return json_reply({"ok": True, "report": name, **answer})


@analytics_api.get("/scorecards")
def scorecards():
    """The empathy scorecards aggregated by agent, queue or day, or one row per conversation (by=conversation:
    each rubric item met, not met or empty where it did not apply), as JSON or CSV (for QA tools)."""
    who = identity()
    who.require("lead")
    params = {**filters(), "by": choice_arg("by", SCORECARD_BY, "agent")}
    fmt_csv = wants_csv()
    if params["by"] == "conversation":
        answer = {"rows": analytics().scorecard_rows(who.tenant, {k: v for k, v in params.items() if k != "by"})}
    else:
        answer = analytics().scorecards(who.tenant, params)
    if fmt_csv:
        return csv_reply(answer["rows"], f"scorecards-by-{params['by']}")
    return json_reply({"ok": True, "by": params["by"], **answer})


@analytics_api.get("/scorecards/<conversation_id>")
def scorecard(conversation_id: str):
    """One conversation's scorecard: each item met or not, with its turn and evidence words."""
    who = identity()
    who.require("lead")
    check("conversation_id", Field("id"), conversation_id, 0)
    card = analytics().scorecard(who.tenant, conversation_id)
    if card is None:
        raise NotFound(f"no scorecard for conversation '{conversation_id}'")
    if wants_csv():
        return csv_reply([{"conversation_id": conversation_id, **item} for item in card["items"]],
                         f"scorecard-{conversation_id}")
    return jsonify({"ok": True, "conversation_id": conversation_id, "scorecard": card})


@analytics_api.post("/erasure")
def erase():
    """Erase one conversation or every conversation of one customer_ref, from the event log, the analytics store
    and the outcomes; audited."""
    who = identity()
    who.require("admin")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or len(body) != 1 or not {"conversation_id", "customer_ref"} & set(body):
        raise InvalidPayload('the body must be {"conversation_id": ...} or {"customer_ref": ...}')
    if "conversation_id" in body:
        target = {"conversation_id": check("conversation_id", Field("id"), body["conversation_id"], 0)}
    else:
        target = {"customer_ref": check("customer_ref", Field("name"), body["customer_ref"], 0)}
        if not target["customer_ref"]:
            raise InvalidPayload("customer_ref must not be empty")
        stored = redact(target["customer_ref"])
        if stored != target["customer_ref"]:  # "[EMAIL]" would erase every customer whose ref was an email
            raise InvalidPayload(f"that customer_ref holds personal data, so it was logged redacted ({stored}), which "
                                 "other customers' refs may share: erase those conversations by conversation_id")
        # redact() leaves its own "[KIND]" placeholders as they are, so "[EMAIL]" passes the check above and would
        # erase every customer whose ref was an email; copilot.redact exposes no list of kinds, hence the shape
        if placeholder := re.search(r"\[[A-Z_]+\]", stored):
            raise InvalidPayload(f"that customer_ref holds the redaction placeholder {placeholder.group(0)}, which "
                                 "stands for every customer whose ref was redacted to it: erase those conversations "
                                 "by conversation_id")
    erased = analytics().erase(who, **target)
    return jsonify({"ok": True, **target, "erased": erased})


@analytics_api.get("/erasures")
def erasures():
    """The tenant's erasure audit: who erased what kind of target when, and how many rows (never the target)."""
    who = identity()
    who.require("admin")
    return jsonify({"ok": True, "erasures": analytics().erasures(who.tenant)})


@analytics_api.get("/export")
def export():
    """One table of the tenant's analytics for a range of days, as a Parquet file for a warehouse."""
    who = identity()
    who.require("admin")
    table = choice_arg("table", EXPORT_TABLES)
    day_from, day_to = day_arg("from"), day_arg("to")
    if table is None or day_from is None or day_to is None:
        raise InvalidPayload("export needs table, from and to")
    if day_from > day_to:
        raise InvalidPayload("from must not be after to")
    exported = analytics().export(who.tenant, table, day_from, day_to)
    handle = exported.open("rb")
    exported.unlink()  # the open handle keeps the file until it is sent: nothing is left behind
    return send_file(handle, PARQUET, as_attachment=True, download_name=f"{who.tenant}-{table}-{day_from}-{day_to}.parquet")
