"""Suggestion retrieval: filter vetted phrasings to the moment, score them against the customer's words, and pick
a diverse few (maximal marginal relevance). The ranking is pure; the index and the phrasings are passed in, and
this module imports neither (the library imports it: importing the library back would make a cycle).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

CUE_MATCH_BONUS = 0.05  # per active cue a phrasing names beyond the first
MMR_LAMBDA = 0.7  # relevance against diversity
STRICT_STAGES = frozenset({"agent-protection", "after-verification"})


class Candidate(Protocol):
    """What ranking reads of a phrasing (copilot.library.phrasing.Phrasing is one)."""

    @property
    def id(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def cues(self) -> tuple[str, ...]: ...
    @property
    def stage(self) -> str: ...
    @property
    def channels(self) -> tuple[str, ...]: ...
    @property
    def status(self) -> str: ...


class VectorIndex(Protocol):
    """What retrieval needs of the FAISS adapter."""

    def search(self, query: np.ndarray, k: int, only: Iterable[str] | None = None,
               text_only: bool = False) -> list[tuple[str, float]]: ...

    def vector(self, phrasing_id: str) -> np.ndarray: ...


@dataclass(frozen=True)
class Request:
    """The moment a suggestion is wanted for."""

    embedding: np.ndarray
    cues: Sequence[str]  # active cues, most salient first
    channel: str
    stage: str | None = None
    shown: frozenset[str] = frozenset()
    k: int = 2
    counts: Mapping[str, int] = field(default_factory=dict)  # mentions so far, for the `why`


@dataclass(frozen=True)
class Suggestion:
    """One phrasing offered to the agent, with a short reason."""

    id: str
    text: str
    cues: tuple[str, ...]
    stage: str
    why: str
    score: float

    def as_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "cues": list(self.cues), "stage": self.stage, "why": self.why}


def eligible(phrasing: Candidate, request: Request, stage: str | None) -> bool:
    """Approved, for this channel, not shown before in this conversation, matching an active cue and the stage."""
    return (phrasing.status == "approved" and request.channel in phrasing.channels
            and phrasing.id not in request.shown and bool(set(phrasing.cues) & set(request.cues))
            and (stage is None or phrasing.stage == stage))


def candidates(library: Mapping[str, Candidate], request: Request) -> list[Candidate]:
    """Eligible phrasings at the requested stage; other stages only when none fit and the stage is not strict."""
    chosen = [p for p in library.values() if eligible(p, request, request.stage)]
    if not chosen and request.stage is not None and request.stage not in STRICT_STAGES:
        chosen = [p for p in library.values() if eligible(p, request, None) and p.stage not in STRICT_STAGES]
    return chosen


def mmr(relevance: dict[str, float], vectors: dict[str, np.ndarray], k: int, lam: float = MMR_LAMBDA) -> list[str]:
    """Pick k ids, each maximising lam * relevance - (1 - lam) * similarity to those already picked."""
    picked: list[str] = []
    pool = dict(relevance)
    while pool and len(picked) < k:
        def gain(pid: str) -> float:
            redundancy = max((float(vectors[pid] @ vectors[q]) for q in picked), default=0.0)
            return lam * pool[pid] - (1 - lam) * redundancy
        best = max(pool, key=gain)
        picked.append(best)
        pool.pop(best)
    return picked


def reason(phrasing: Candidate, request: Request) -> str:
    """A short why: the cues it answers (with counts where known) and the stage."""
    parts = []
    for cue in request.cues:
        if cue in phrasing.cues:
            count = request.counts.get(cue, 0)
            name = cue.replace("_", " ")
            parts.append(f"{name} x{count}" if count > 1 else name)
    return f"{', '.join(parts) or 'cue'}; {phrasing.stage}"


def retrieve(library: Mapping[str, Candidate], index: VectorIndex, request: Request) -> list[Suggestion]:
    """At most k suggestions for the moment, best first, never one already shown."""
    pool = candidates(library, request)
    if not pool or request.k <= 0:
        return []
    ids = [p.id for p in pool]
    hits = dict(index.search(request.embedding, k=min(len(ids), max(8, 4 * request.k)), only=ids))
    if not hits:
        return []
    active = set(request.cues)
    relevance = {pid: score + CUE_MATCH_BONUS * (len(active & set(library[pid].cues)) - 1)
                 for pid, score in hits.items()}
    vectors = {pid: index.vector(pid) for pid in relevance}
    chosen = mmr(relevance, vectors, request.k)
    return [Suggestion(pid, library[pid].text, library[pid].cues, library[pid].stage,
                       reason(library[pid], request), round(relevance[pid], 4)) for pid in chosen]
