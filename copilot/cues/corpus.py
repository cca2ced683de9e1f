"""The training corpora of the cue model as plain rows (pure: no model, no torch): GoEmotions comments and the
project's own customer turns (data/customer_turns/, written by the project; see its DATA_CARD.md).

A row carries what is known about a text and marks what is not: a GoEmotions comment knows its 28 labels and the
six emotional cues they imply, not the six conversational ones; a customer turn knows all twelve cues and the words
that carry them, not the 28 labels. Training masks what a row does not know.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from copilot.cues.goemotions import Example
from copilot.cues.taxonomy import CUES, EMOTION_CUES, Span
from copilot.text import Normalised, normalise

CUSTOMER_TURNS = Path(__file__).resolve().parents[2] / "data" / "customer_turns"
CHANNELS = ("voice", "chat", "social", "email")
DEV_SHARE = 0.15  # of the customer turns, held out by a hash of the id: thresholds and design choices

# What a GoEmotions comment says about each emotional cue when the cue head learns from it. Unlike the cue scores
# of the 28-label head (taxonomy.EMOTION_CUES), frustration leaves out `disapproval`: on Reddit it is mostly plain
# disagreement ("No, it's not."), which in a contact centre is not frustration. Chosen on customer-service dev.
GOEMOTIONS_CUE_LABELS: dict[str, tuple[str, ...]] = {
    **EMOTION_CUES, "frustration": ("anger", "annoyance", "disgust"),
}


@dataclass(frozen=True)
class Row:
    """One training text: labels where known (None where not), cue flags where known, evidence spans per cue."""

    text: str
    labels: tuple[int, ...] | None  # GoEmotions label ids, or None for a customer turn
    cues: dict[str, bool]  # known cues only
    spans: dict[str, list[Span]] = field(default_factory=dict)  # char spans in `text`, per cue
    source: str = "goemotions"


@dataclass(frozen=True)
class Turn:
    """One line of the customer-turn corpus."""

    id: str
    channel: str
    text: str
    cues: tuple[str, ...]
    evidence: dict[str, list[str]]
    hard_negative: bool

    @property
    def split(self) -> str:
        """train or dev, fixed by the id so that every run holds out the same turns."""
        bucket = int(hashlib.sha256(self.id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        return "dev" if bucket < DEV_SHARE else "train"


class CorpusError(ValueError):
    """A line of the corpus breaks its format."""


def parse_turn(line: str, where: str = "") -> Turn:
    """One corpus line, checked: known channel and cues, every cue with evidence found in the text."""
    data = json.loads(line)
    cues = tuple(data["cues"])
    unknown = set(cues) - set(CUES)
    if unknown:
        raise CorpusError(f"{where}: unknown cues {sorted(unknown)}")
    if data["channel"] not in CHANNELS:
        raise CorpusError(f"{where}: unknown channel {data['channel']!r}")
    evidence = {cue: list(words) for cue, words in data.get("evidence", {}).items()}
    for cue in cues:
        if not evidence.get(cue):
            raise CorpusError(f"{where}: cue {cue} has no evidence")
    for cue, words in evidence.items():
        if cue not in cues:
            raise CorpusError(f"{where}: evidence for {cue}, which is not among its cues")
        for word in words:
            if word not in data["text"]:
                raise CorpusError(f"{where}: evidence {word!r} is not in the text")
    if data.get("hard_negative") and cues:
        raise CorpusError(f"{where}: a hard negative with cues")
    return Turn(data["id"], data["channel"], data["text"], cues, evidence, bool(data.get("hard_negative")))


def read_turns(folder: Path = CUSTOMER_TURNS) -> list[Turn]:
    """Every turn of every .jsonl file in the folder, in file and line order; ids must be unique."""
    turns, seen = [], set()
    for path in sorted(Path(folder).glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                turn = parse_turn(line, f"{path.name}:{number}")
                if turn.id in seen:
                    raise CorpusError(f"{path.name}:{number}: duplicate id {turn.id}")
                seen.add(turn.id)
                turns.append(turn)
    return turns


def evidence_spans(text: str, words: Sequence[str]) -> list[Span]:
    """Where each evidence phrase stands in the text (every occurrence), as sorted char spans."""
    spans = []
    for word in words:
        start = text.find(word)
        while start >= 0:
            spans.append((start, start + len(word)))
            start = text.find(word, start + 1)
    return sorted(set(spans))


def turn_row(turn: Turn) -> Row:
    """A customer turn as a training row, on the text the model reads (the normal form), spans mapped into it."""
    normal = normalise(turn.text)
    spans = {}
    for cue, words in turn.evidence.items():
        found = evidence_spans(turn.text, words)
        spans[cue] = [to_normal(normal, s) for s in found]
    return Row(normal.text, None, {cue: cue in turn.cues for cue in CUES}, spans, "customer_turns")


def to_normal(normal: Normalised, span: Span) -> Span:
    """An original-text span as a span of the normal text: from the first to the last normal character that
    comes from inside it (the identity where the text was already normal)."""
    if normal.starts is None:
        return span
    inside = [i for i, (s, e) in enumerate(zip(normal.starts, normal.ends)) if s < span[1] and e > span[0]]
    return (inside[0], inside[-1] + 1) if inside else span


def goemotions_row(example: Example, labels: Sequence[str], spans: dict[str, list[Span]] | None = None) -> Row:
    """A GoEmotions comment as a training row: its labels, and the emotional cues they imply."""
    names = {labels[i] for i in example.labels}
    cues = {cue: bool(names & set(members)) for cue, members in GOEMOTIONS_CUE_LABELS.items()}
    return Row(normalise(example.text).text, tuple(example.labels), cues, spans or {}, "goemotions")


def split_turns(turns: Iterable[Turn]) -> tuple[list[Turn], list[Turn]]:
    """(train, dev) by each turn's fixed split."""
    turns = list(turns)
    return [t for t in turns if t.split == "train"], [t for t in turns if t.split == "dev"]


def stats(turns: list[Turn]) -> dict:
    """Counts for the data card: turns, hard negatives, per channel, per cue, per split."""
    from collections import Counter

    return {
        "turns": len(turns), "hard_negatives": sum(t.hard_negative for t in turns),
        "no_cue": sum(not t.cues for t in turns),
        "channels": dict(Counter(t.channel for t in turns).most_common()),
        "cues": {cue: sum(cue in t.cues for t in turns) for cue in CUES},
        "splits": dict(Counter(t.split for t in turns)),
    }


if __name__ == "__main__":
    print(json.dumps(stats(read_turns()), indent=1))
