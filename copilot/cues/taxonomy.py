"""The customer-service cue taxonomy: twelve cues, six read by the model and six by explainable detectors.

Pure data and pure functions: no I/O, no model.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# Emotional cues and the GoEmotions labels that carry each one. A cue's score is the highest probability
# among its labels; its threshold is tuned on GoEmotions dev (see copilot.cues.tune).
EMOTION_CUES: dict[str, tuple[str, ...]] = {
    "frustration": ("anger", "annoyance", "disgust", "disapproval"),
    "disappointment": ("disappointment",),
    "confusion": ("confusion",),
    "anxiety": ("fear", "nervousness"),
    "sadness": ("sadness", "grief"),
    "gratitude": ("gratitude", "relief"),
}

CONVERSATION_CUES: tuple[str, ...] = (
    "repeat_contact", "escalation_request", "churn_risk", "urgency", "abuse", "crisis",
)

CUES: tuple[str, ...] = tuple(EMOTION_CUES) + CONVERSATION_CUES

# Cues that signal the customer is unhappy: these want acknowledging by the agent.
NEGATIVE_CUES: frozenset[str] = frozenset(
    {"frustration", "disappointment", "confusion", "anxiety", "sadness", "repeat_contact", "escalation_request",
     "churn_risk", "crisis"})

Span = tuple[int, int]


@dataclass(frozen=True)
class CueHit:
    """One cue that fired on a text, with its score and the character spans of the words that carried it."""

    cue: str
    score: float
    spans: tuple[Span, ...] = ()

    def as_dict(self) -> dict:
        """JSON form used by the CLI and the protocol."""
        return {"cue": self.cue, "score": round(self.score, 4), "spans": [list(s) for s in self.spans]}


@dataclass(frozen=True)
class Analysis:
    """Everything one forward pass and the detectors say about one text."""

    text: str
    cues: tuple[CueHit, ...]
    emotions: Mapping[str, float] = field(default_factory=dict)
    embedding: Sequence[float] | None = None

    def cue(self, name: str) -> CueHit | None:
        """The hit for one cue, or None when it did not fire."""
        return next((hit for hit in self.cues if hit.cue == name), None)

    @property
    def cue_names(self) -> tuple[str, ...]:
        """Names of the cues that fired, in taxonomy order."""
        return tuple(hit.cue for hit in self.cues)


def order_hits(hits: Sequence[CueHit]) -> tuple[CueHit, ...]:
    """Hits in taxonomy order, one per cue (the highest score wins, spans merged)."""
    merged: dict[str, CueHit] = {}
    for hit in hits:
        known = merged.get(hit.cue)
        if known is None:
            merged[hit.cue] = hit
        else:
            spans = tuple(sorted(set(known.spans) | set(hit.spans)))
            merged[hit.cue] = CueHit(hit.cue, max(known.score, hit.score), spans)
    return tuple(merged[c] for c in CUES if c in merged)
