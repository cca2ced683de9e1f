"""Phrasings as files: the shipped YAML library, and YAML or CSV for bulk import and export."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from copilot.library.phrasing import InvalidPhrasing, Phrasing, parse_phrasing

# libyaml's safe loader when PyYAML has it (its wheels do): about 10x faster on a large import, which would
# otherwise hold the event loop for seconds.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ROOT = Path(__file__).resolve().parents[2]
PROMPTS_DIR = ROOT / "prompts" / "library"
CSV_FIELDS = ("id", "text", "cues", "stage", "channels", "use_when", "status", "locale", "notes")
LIST_FIELDS = ("cues", "channels", "use_when")


class UnreadableFile(ValueError):
    """A bulk file is not valid YAML or CSV of the expected shape."""


@dataclass(frozen=True)
class RowError:
    """One rejected row of an import, with every problem it has."""

    row: int
    id: str | None
    problems: list[dict[str, str]]

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "id": self.id, "problems": self.problems}


def load_library(folder: Path = PROMPTS_DIR) -> list[Phrasing]:
    """Every phrasing in the shipped YAML files; raises InvalidPhrasing naming the file and row on a bad one."""
    phrasings: list[Phrasing] = []
    seen: set[str] = set()
    for path in sorted(Path(folder).glob("*.yaml")):
        rows = read_rows(path.read_text(encoding="utf-8"), "yaml")
        good, errors = parse_rows(rows)
        if errors:
            first = errors[0]
            raise InvalidPhrasing([{"field": f"{path.name} row {first.row}", "message": str(first.problems)}])
        for p in good:
            if p.id in seen:
                raise InvalidPhrasing([{"field": "id", "message": f"{p.id} appears twice ({path.name})"}])
            seen.add(p.id)
        phrasings.extend(good)
    return phrasings


def read_rows(body: str, fmt: str) -> list[dict[str, Any]]:
    """Raw rows from YAML ({phrasings: [...]} or a plain list) or CSV (header row, '|' between list items)."""
    if fmt == "yaml":
        try:
            data = yaml.load(body, Loader=SAFE_LOADER)
        except yaml.YAMLError as error:
            raise UnreadableFile(f"not valid YAML: {error}") from None
        if isinstance(data, dict) and "phrasings" in data:
            data = data["phrasings"]
        if not isinstance(data, list):
            raise UnreadableFile("YAML must be a list of phrasings, or {phrasings: [...]}")
        return data
    if fmt == "csv":
        try:
            reader = csv.DictReader(io.StringIO(body))
            if not reader.fieldnames or not {"id", "text"} <= set(reader.fieldnames):
                raise UnreadableFile(f"CSV needs a header row with at least id and text; columns: {', '.join(CSV_FIELDS)}")
            rows = []
            for row in reader:
                clean = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
                for key in LIST_FIELDS:
                    if key in clean:
                        clean[key] = [v.strip() for v in clean[key].split("|") if v.strip()]
                rows.append(clean)
            return rows
        except csv.Error as error:
            raise UnreadableFile(f"not valid CSV: {error}") from None
    raise UnreadableFile("format must be yaml or csv")


def parse_rows(rows: list[Any]) -> tuple[list[Phrasing], list[RowError]]:
    """Validate every row; returns the good phrasings and an error for each bad row (ids unique in the batch)."""
    good: list[Phrasing] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, 1):
        ident = row.get("id") if isinstance(row, dict) else None
        try:
            phrasing = parse_phrasing(row)
        except InvalidPhrasing as error:
            errors.append(RowError(number, ident if isinstance(ident, str) else None, error.problems))
            continue
        if phrasing.id in seen:
            errors.append(RowError(number, phrasing.id, [{"field": "id", "message": "appears twice in this file"}]))
            continue
        seen.add(phrasing.id)
        good.append(phrasing)
    return good, errors


def dump(phrasings: list[Phrasing], fmt: str) -> str:
    """YAML or CSV text of phrasings, readable back by read_rows."""
    if fmt == "yaml":
        return yaml.safe_dump({"phrasings": [without_version(p) for p in phrasings]}, sort_keys=False,
                              allow_unicode=True, width=120)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for p in phrasings:
            row = without_version(p)
            for key in LIST_FIELDS:
                row[key] = "|".join(row[key])
            writer.writerow(row)
        return out.getvalue()
    raise UnreadableFile("format must be yaml or csv")


def without_version(phrasing: Phrasing) -> dict[str, Any]:
    """A phrasing's fields for export (versions belong to the store, not the file)."""
    data = phrasing.as_dict()
    data.pop("version")
    return data
