"""Survey and business outcomes keyed by conversation id (pure): the fields, one record's validation, and the CSV
and JSON batches a survey tool sends, where a bad row is reported by its line and the others still count.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from copilot.errors import InvalidOutcome, InvalidPayload
from copilot.protocol import ID

MAX_ROWS = 200_000
ITEMS = ("felt_understood", "acknowledged_situation", "clear_next_steps")  # on the survey's own scale
SCALES = (5, 7)
LATEST_AT = 32_503_680_000.0  # the year 3000: a responded_at past it is a typo, not a date
WHOLE = re.compile(r"\s*[+-]?[0-9]{1,9}\s*")
TRUE, FALSE = frozenset({"true", "yes", "y", "1"}), frozenset({"false", "no", "n", "0"})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one conversation: survey scores and business results, each None when not sent."""

    conversation_id: str
    csat: int | None = None
    nps: int | None = None
    felt_understood: int | None = None
    acknowledged_situation: int | None = None
    clear_next_steps: int | None = None
    survey_scale: int = 5
    resolved: bool | None = None
    repeat_contact: bool | None = None
    repeat_within_days: int | None = None
    responded_at: float | None = None  # unix seconds


def _integer(name: str, low: int, high: int) -> Callable[[Any], int]:
    def read(value: Any) -> int:
        if isinstance(value, str) and (value.isdigit() and value.isascii() or WHOLE.fullmatch(value)):
            number: Any = int(value)
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        else:
            number = value
        if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
            raise InvalidOutcome(f"{name} must be a whole number from {low} to {high}, not {value!r}")
        return number
    return read


def _boolean(name: str) -> Callable[[Any], bool]:
    def read(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower() if isinstance(value, (str, int)) else None
        if word in TRUE:
            return True
        if word in FALSE:
            return False
        raise InvalidOutcome(f"{name} must be true or false (yes/no, 1/0), not {value!r}")
    return read


def _moment(value: Any) -> float:
    """responded_at: unix seconds, or an ISO 8601 time (UTC when it names no zone)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            at = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise InvalidOutcome(f"responded_at must be an ISO 8601 time or unix seconds, not {value!r}") from None
            at = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        at = float(value)
    else:
        raise InvalidOutcome(f"responded_at must be an ISO 8601 time or unix seconds, not {value!r}")
    if not (math.isfinite(at) and 0 <= at <= LATEST_AT):
        raise InvalidOutcome(f"responded_at is out of range: {value!r}")
    return at


def _conversation_id(value: Any) -> str:
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or not ID.fullmatch(text):
        raise InvalidOutcome("conversation_id must be 1-128 letters, digits or . _ : @ - (starting with a letter or digit)")
    return text


def _scale(value: Any) -> int:
    scale = _integer("survey_scale", 5, 7)(value)
    if scale not in SCALES:
        raise InvalidOutcome(f"survey_scale must be 5 or 7, not {value!r}")
    return scale


# Items are read on the widest scale here and checked against the record's own survey_scale after.
FIELDS: dict[str, Callable[[Any], Any]] = {
    "conversation_id": _conversation_id,
    "csat": _integer("csat", 1, 5),
    "nps": _integer("nps", 0, 10),
    **{item: _integer(item, 1, max(SCALES)) for item in ITEMS},
    "survey_scale": _scale,
    "resolved": _boolean("resolved"),
    "repeat_contact": _boolean("repeat_contact"),
    "repeat_within_days": _integer("repeat_within_days", 1, 365),
    "responded_at": _moment,
}


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _checked(values: dict[str, Any]) -> Outcome:
    """An Outcome from values already read, once its conversation id is there and its items fit its scale."""
    if "conversation_id" not in values:
        raise InvalidOutcome("conversation_id is required")
    scale = values.get("survey_scale", 5)
    for item in ITEMS:
        if values.get(item, 1) > scale:
            raise InvalidOutcome(f"{item} must be from 1 to the survey_scale ({scale}), not {values[item]}")
    return Outcome(**values)


def parse_outcome(record: Mapping[str, Any]) -> Outcome:
    """One outcome from a JSON object (or a CSV row keyed by field); raises InvalidOutcome naming the field.
    Unknown keys are refused: a misspelt column must not drop a score without a word."""
    if not isinstance(record, Mapping):
        raise InvalidOutcome("an outcome must be an object")
    unknown = sorted(str(k) for k in record if k not in FIELDS)
    if unknown:
        raise InvalidOutcome(f"unknown field(s): {', '.join(unknown)}; the fields are {', '.join(FIELDS)}")
    return _checked({name: FIELDS[name](value) for name, value in record.items() if not _absent(value)})


def field_name(header: str) -> str:
    """A CSV header cell as a field name: case, spaces, hyphens and a spreadsheet's BOM do not matter."""
    return re.sub(r"[\s\-]+", "_", header.replace("\ufeff", "").strip().lower())


def _error(where: str, n: int, message: str) -> dict[str, Any]:
    return {where: n, "code": "invalid_outcome", "message": message}


def _last_per_conversation(outcomes: Iterable[Outcome]) -> list[Outcome]:
    """One outcome per conversation, the last sent: a later row replaces an earlier one, as a later POST does."""
    return list({o.conversation_id: o for o in outcomes}.values())


def parse_csv(text: str) -> tuple[list[Outcome], list[dict[str, Any]]]:
    """Outcomes from a CSV with a header row of field names, and an error per bad row by its line as a spreadsheet
    numbers it (the header is line 1). Empty cells are absent; a header that cannot be read reads nothing."""
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if header is None:
        return [], [_error("line", 1, "the CSV is empty: it needs a header row of field names")]
    names = [field_name(h) for h in header]
    named = [name for name in names if name]  # a blank header cell (a trailing comma) names no column
    unknown = [h for h, name in zip(header, names) if name and name not in FIELDS]
    if unknown or "conversation_id" not in names or len(set(named)) != len(named):
        problem = (f"unknown column(s): {', '.join(unknown)}" if unknown else "no conversation_id column"
                   if "conversation_id" not in names else "a column appears twice")
        return [], [_error("line", 1, f"{problem}; the columns are {', '.join(FIELDS)}")]
    readers = [FIELDS.get(name) for name in names]
    outcomes, errors = [], []
    line = 1
    while True:
        line += 1
        read_up_to = rows.line_num
        try:
            row = next(rows, None)
        except csv.Error as e:  # a cell past the csv module's size limit: the reader goes on at the next line
            errors.append(_error("line", line, f"the row cannot be read as CSV ({e})"))
            if rows.line_num == read_up_to:  # nothing was consumed: going on would read the same again
                break
            continue
        if row is None:
            break
        if line > MAX_ROWS + 1:
            errors.append(_error("line", line, f"at most {MAX_ROWS:,} rows in one upload: this row and the rest were "
                                               "not read"))
            break
        try:
            values = {}
            for name, read, cell in zip(names, readers, row):
                if cell := cell.strip():
                    if read is None:
                        raise InvalidOutcome(f"a value in a column without a header: {cell[:40]!r}")
                    values[name] = read(cell)
            if any(cell.strip() for cell in row[len(names):]):
                raise InvalidOutcome(f"the row has {len(row)} cells and the header {len(names)}")
            if values:  # a blank row, as spreadsheets leave them, is no outcome and no error
                outcomes.append(_checked(values))
        except InvalidOutcome as e:
            errors.append(_error("line", line, str(e)))
    return _last_per_conversation(outcomes), errors


def parse_json(body: Any) -> tuple[list[Outcome], list[dict[str, Any]]]:
    """Outcomes from {"outcomes": [...]} or a bare list (decoded, or its JSON text), and an error per bad record by
    its index. Raises InvalidPayload when the body is neither."""
    if isinstance(body, (str, bytes)):
        try:
            body = json.loads(body)
        except ValueError:
            raise InvalidPayload("the body is not JSON") from None
    records = body.get("outcomes") if isinstance(body, Mapping) else body
    if not isinstance(records, list):
        raise InvalidPayload('outcomes must be a list, or an object {"outcomes": [...]}')
    outcomes, errors = [], []
    for index, record in enumerate(records):
        if index >= MAX_ROWS:
            errors.append(_error("index", index, f"at most {MAX_ROWS:,} outcomes in one request: this one and the "
                                                 "rest were not read"))
            break
        try:
            outcomes.append(parse_outcome(record))
        except InvalidOutcome as e:
            errors.append(_error("index", index, str(e)))
    return _last_per_conversation(outcomes), errors
