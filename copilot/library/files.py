"""Phrasings as files: the shipped YAML library, and YAML or CSV for bulk import and export."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, MappingEndEvent, MappingStartEvent, SequenceEndEvent, SequenceStartEvent, StreamEndEvent
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from copilot.library.phrasing import InvalidPhrasing, Phrasing, parse_phrasing

try:  # libyaml's parser (PyYAML's wheels have it) reads the events in C, several times faster
    from yaml.cyaml import CParser as EventParser

    EVENT_BASES: tuple[type, ...] = (EventParser,)
except ImportError:  # pragma: no cover - a PyYAML built without libyaml
    EventParser, EVENT_BASES = None, (Reader, Scanner, Parser)

ROOT = Path(__file__).resolve().parents[2]
PROMPTS_DIR = ROOT / "prompts" / "library"
CSV_FIELDS = ("id", "text", "cues", "stage", "channels", "use_when", "status", "locale", "notes")
LIST_FIELDS = ("cues", "channels", "use_when")
MAX_LISTED_ROWS = 100  # an import's error lists the first rejected rows in full and counts the rest
MAX_DEPTH = 8  # a phrasing row nests three levels deep (row, list, text)
MERGE_TAG = "tag:yaml.org,2002:merge"
NO_ALIASES = ("YAML anchors and aliases (&name, *name) and merge keys (<<) are not accepted: "
              "write each phrasing out in full")
SHAPE = "YAML must be a list of phrasings, or {phrasings: [...]}"


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


@dataclass
class ParsedRows:
    """What an import's rows hold: the good phrasings, and the first rejected rows out of `rejected`."""

    good: list[Phrasing] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rejected: int = 0
    rows: int = 0


class RowLoader(Composer, *EVENT_BASES, SafeConstructor, Resolver):
    """Safe YAML, composed and built one row at a time, that refuses aliases, anchors and merge keys.

    Aliases are how 10 KB of YAML becomes a million rows (and a 200 MB error); one row at a time keeps a 5 MB
    file from becoming a 300 MB node graph. Events come from libyaml; only the composing is Python."""

    def __init__(self, stream: str) -> None:
        if EventParser is not None:
            EventParser.__init__(self, stream)
        else:  # pragma: no cover
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self.depth = 0

    def take(self) -> Any:
        """The next event, refused if it carries an anchor."""
        event = self.get_event()
        if getattr(event, "anchor", None) is not None:
            raise UnreadableFile(f"{NO_ALIASES} (line {event.start_mark.line + 1})")
        return event

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
            raise UnreadableFile(f"{NO_ALIASES} (line {event.start_mark.line + 1})")
        if self.depth >= MAX_DEPTH:
            raise UnreadableFile(f"YAML nested more than {MAX_DEPTH} levels deep (line {event.start_mark.line + 1})")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def flatten_mapping(self, node: Any) -> None:
        if any(key.tag == MERGE_TAG for key, _ in node.value):
            raise UnreadableFile(f"{NO_ALIASES} (line {node.start_mark.line + 1})")
        super().flatten_mapping(node)

    def next_value(self) -> Any:
        """Compose and build the next node on its own."""
        return self.construct_document(self.compose_node(None, None))

    def items(self) -> Iterator[Any]:
        """Each item of the sequence that starts here."""
        self.take()
        while not self.check_event(SequenceEndEvent):
            yield self.next_value()
        self.get_event()


def load_library(folder: Path = PROMPTS_DIR) -> list[Phrasing]:
    """Every phrasing in the shipped YAML files; raises InvalidPhrasing naming the file and row on a bad one."""
    phrasings: list[Phrasing] = []
    seen: set[str] = set()
    for path in sorted(Path(folder).glob("*.yaml")):
        parsed = parse_rows(read_rows(path.read_text(encoding="utf-8"), "yaml"))
        if parsed.errors:
            first = parsed.errors[0]
            raise InvalidPhrasing([{"field": f"{path.name} row {first.row}", "message": str(first.problems)}])
        good = parsed.good
        for p in good:
            if p.id in seen:
                raise InvalidPhrasing([{"field": "id", "message": f"{p.id} appears twice ({path.name})"}])
            seen.add(p.id)
        phrasings.extend(good)
    return phrasings


def read_rows(body: str, fmt: str) -> Iterator[dict[str, Any]]:
    """Raw rows, one at a time, from YAML ({phrasings: [...]} or a plain list) or CSV (header row, '|' between
    list items). Raises UnreadableFile, possibly after some rows, when the file is not of that shape."""
    if fmt == "yaml":
        return _yaml_rows(body)
    if fmt == "csv":
        return _csv_rows(body)
    raise UnreadableFile("format must be yaml or csv")


def _yaml_rows(body: str) -> Iterator[Any]:
    loader = RowLoader(body)
    try:
        loader.get_event()  # the stream's start
        if loader.check_event(StreamEndEvent):
            raise UnreadableFile(SHAPE)
        loader.get_event()  # the document's start
        if loader.check_event(SequenceStartEvent):
            yield from loader.items()
        elif loader.check_event(MappingStartEvent):
            loader.take()
            found = False
            while not loader.check_event(MappingEndEvent):
                key = loader.next_value()
                if key == "phrasings" and not found and loader.check_event(SequenceStartEvent):
                    found = True
                    yield from loader.items()
                else:
                    loader.next_value()  # other keys are ignored, but read with the same refusals
            loader.get_event()
            if not found:
                raise UnreadableFile(SHAPE)
        else:
            raise UnreadableFile(SHAPE)
        loader.get_event()  # the document's end
        if not loader.check_event(StreamEndEvent):
            raise UnreadableFile("a YAML file of phrasings holds one document")
    except yaml.YAMLError as error:
        raise UnreadableFile(f"not valid YAML: {error}") from None
    finally:
        loader.dispose()


def _csv_rows(body: str) -> Iterator[dict[str, Any]]:
    try:
        reader = csv.DictReader(io.StringIO(body))
        if not reader.fieldnames or not {"id", "text"} <= set(reader.fieldnames):
            raise UnreadableFile(f"CSV needs a header row with at least id and text; columns: {', '.join(CSV_FIELDS)}")
        for row in reader:
            clean = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
            for key in LIST_FIELDS:
                if key in clean:
                    clean[key] = [v.strip() for v in clean[key].split("|") if v.strip()]
            yield clean
    except csv.Error as error:
        raise UnreadableFile(f"not valid CSV: {error}") from None


def parse_rows(rows: Iterable[Any], max_listed: int = MAX_LISTED_ROWS) -> ParsedRows:
    """Validate every row (ids unique in the batch); keeps the good phrasings, and the problems of the first
    `max_listed` bad rows while counting all of them, so a file of bad rows never makes an unbounded reply."""
    parsed = ParsedRows()
    seen: set[str] = set()

    def reject(number: int, ident: Any, problems: list[dict[str, str]]) -> None:
        parsed.rejected += 1
        if len(parsed.errors) < max_listed:
            parsed.errors.append(RowError(number, ident[:80] if isinstance(ident, str) else None, problems))

    for number, row in enumerate(rows, 1):
        parsed.rows = number
        ident = row.get("id") if isinstance(row, dict) else None
        try:
            phrasing = parse_phrasing(row)
        except InvalidPhrasing as error:
            reject(number, ident, error.problems)
            continue
        if phrasing.id in seen:
            reject(number, phrasing.id, [{"field": "id", "message": "appears twice in this file"}])
            continue
        seen.add(phrasing.id)
        parsed.good.append(phrasing)
    return parsed


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
