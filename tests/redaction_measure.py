"""The redaction measure, shared by tests/security/test_redaction_corpus.py and `python -m bench.redaction`:
per kind of personal data, the hit rate and false-positive rate on a corpus.

A case is hit when none of its `pii` substrings survives in what would be stored. Digit PII is compared on digits
alone, in any script and with every separator stripped, and counts as surviving when any four of its digits in a
row (all of them, if fewer) are still there; other PII is compared on normalised, lower-cased text. A negative
(kind "none") is a false positive when its text comes out changed. Cases with `snippets` go through
redact_snippet one snippet after another, carrying the open-digit count, as the service does.
"""
from __future__ import annotations

import html
import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "data" / "redaction_corpus.jsonl"
KINDS = ("card", "email", "phone", "ssn", "nino", "iban", "none")
DIGIT_WINDOW = 4


@dataclass
class KindScore:
    """How one kind of case fared."""

    cases: int = 0
    hits: int = 0
    false_positives: int = 0
    misses: list[str] | None = None

    @property
    def hit_rate(self) -> float:
        return self.hits / self.cases if self.cases else 1.0


def read_corpus(path: Path = CORPUS) -> list[dict]:
    """The corpus cases, one JSON object a line."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _digits(text: str) -> str:
    return "".join(str(unicodedata.digit(c)) for c in text if unicodedata.digit(c, None) is not None)


def _plain(text: str) -> str:
    """Text as a reader sees it, for comparing: entities decoded, NFKC, invisible characters dropped, spaces
    collapsed, lower case. Written here, not taken from copilot.text, so the measure does not share the redactor's
    own normalisation (and runs against the old code, which had none)."""
    text = unicodedata.normalize("NFKC", html.unescape(text)).replace("\u2019", "'")
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return re.sub(r"\s+", " ", text).lower()


def survives(pii: str, stored: str) -> bool:
    """Whether a piece of personal data is still readable in a stored text."""
    wanted = _digits(pii)
    if wanted:
        kept = _digits(stored)
        width = min(len(wanted), DIGIT_WINDOW)
        return any(wanted[i:i + width] in kept for i in range(len(wanted) - width + 1))
    return _plain(pii) in _plain(stored)


def stored_texts(case: dict, redact: Callable[[str], str],
                 redact_snippet: Callable[[str, int], tuple[str, int]] | None) -> list[str]:
    """What would be stored for a case: its text redacted, or each of its snippets in turn."""
    if "snippets" not in case:
        return [redact(case["text"])]
    if redact_snippet is None:  # the old code redacted each snippet on its own
        return [redact(s) for s in case["snippets"]]
    out, open_digits = [], 0
    for snippet in case["snippets"]:
        text, open_digits = redact_snippet(snippet, open_digits)
        out.append(text)
    return out


def score(cases: list[dict], redact: Callable[[str], str],
          redact_snippet: Callable[[str, int], tuple[str, int]] | None = None) -> dict[str, KindScore]:
    """Per kind (and "all" over the PII kinds): cases, hits, false positives, and the texts of the misses."""
    scores = {kind: KindScore(misses=[]) for kind in (*KINDS, "all")}
    for case in cases:
        kind = case["kind"]
        stored = stored_texts(case, redact, redact_snippet)
        inputs = case["snippets"] if "snippets" in case else [case["text"]]
        for key in (kind, "all") if kind != "none" else (kind,):
            scores[key].cases += 1
        if kind == "none":
            if stored != inputs:
                scores[kind].false_positives += 1
                scores[kind].misses.append(f"{inputs!r} -> {stored!r}")
            else:
                scores[kind].hits += 1
            continue
        if not any(survives(p, s) for p in case["pii"] for s in stored):
            scores[kind].hits += 1
            scores["all"].hits += 1
        else:
            scores[kind].misses.append(f"{inputs!r} -> {stored!r}")
    return scores


def table(scores: dict[str, KindScore]) -> str:
    """The scores as a text table."""
    lines = [f"{'kind':<6} {'cases':>5} {'hit rate':>9} {'false positives':>16}"]
    for kind, s in scores.items():
        if kind == "none":
            lines.append(f"{kind:<6} {s.cases:>5} {'-':>9} {s.false_positives:>7} ({s.false_positives / max(1, s.cases):.1%})")
        else:
            lines.append(f"{kind:<6} {s.cases:>5} {s.hit_rate:>9.1%} {'-':>16}")
    return "\n".join(lines)
