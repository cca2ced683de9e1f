"""Suggestion ranking (pure): eligibility, stage fallback, MMR diversity, never a repeat, the `why`."""
import numpy as np

from copilot.library.phrasing import parse_phrasing
from copilot.suggest import Request, candidates, mmr, reason, retrieve


def phrasing(pid, cues, stage="check-in", status="approved", channels=("voice", "chat", "email")):
    return parse_phrasing({"id": pid, "text": "What has happened so far?", "cues": list(cues), "stage": stage,
                           "channels": list(channels), "use_when": ["one", "two"], "status": status})


class TableIndex:
    """A stand-in index: fixed vectors, cosine search (pure logic test only)."""

    def __init__(self, vectors):
        self.vectors = {k: v / np.linalg.norm(v) for k, v in vectors.items()}

    def search(self, query, k, only=None, text_only=False):
        ids = [i for i in (only if only is not None else self.vectors) if i in self.vectors]
        ranked = sorted(((i, float(self.vectors[i] @ query)) for i in ids), key=lambda kv: -kv[1])
        return ranked[:k]

    def vector(self, pid):
        return self.vectors[pid]


LIBRARY = {p.id: p for p in [
    phrasing("fr-a", ["frustration"]), phrasing("fr-b", ["frustration"]), phrasing("fr-c", ["frustration"]),
    phrasing("fr-draft", ["frustration"], status="draft"), phrasing("fr-email", ["frustration"], channels=["email"]),
    phrasing("cr-a", ["crisis"], stage="investigate"), phrasing("ab-a", ["abuse"], stage="agent-protection")]}
INDEX = TableIndex({"fr-a": np.array([0.8, 0.6, 0]), "fr-b": np.array([0.78, 0.62, 0.05]),
                    "fr-c": np.array([0.75, -0.3, 0.59]),
                    "fr-email": np.array([1.0, 0, 0]), "cr-a": np.array([0, 1.0, 0]), "ab-a": np.array([0, 0, 1.0])})
QUERY = np.array([1.0, 0, 0])


def ids(suggestions):
    return [s.id for s in suggestions]


def test_only_approved_phrasings_for_the_channel_and_an_active_cue_are_candidates():
    found = {p.id for p in candidates(LIBRARY, Request(QUERY, ["frustration"], "chat", "check-in"))}
    assert found == {"fr-a", "fr-b", "fr-c"}


def test_phrasings_already_shown_are_never_offered_again():
    shown = frozenset({"fr-a"})
    assert "fr-a" not in ids(retrieve(LIBRARY, INDEX, Request(QUERY, ["frustration"], "chat", "check-in", shown)))


def test_mmr_prefers_a_diverse_second_pick_over_a_near_copy():
    picked = ids(retrieve(LIBRARY, INDEX, Request(QUERY, ["frustration"], "chat", "check-in", k=2)))
    assert picked == ["fr-a", "fr-c"]


def test_mmr_with_full_weight_on_relevance_keeps_relevance_order():
    vectors = {k: INDEX.vector(k) for k in ("fr-a", "fr-b", "fr-c")}
    assert mmr({"fr-a": 0.9, "fr-b": 0.89, "fr-c": 0.5}, vectors, 2, lam=1.0) == ["fr-a", "fr-b"]


def test_a_missing_stage_falls_back_to_other_stages_but_strict_stages_do_not():
    assert ids(retrieve(LIBRARY, INDEX, Request(np.array([0, 1.0, 0]), ["crisis"], "voice", "options")))[0] == "cr-a"
    assert retrieve(LIBRARY, INDEX, Request(QUERY, ["frustration"], "chat", "agent-protection")) == []


def test_the_why_names_the_cue_with_its_count_and_the_stage():
    text = reason(LIBRARY["fr-a"], Request(QUERY, ["frustration", "urgency"], "chat", counts={"frustration": 3}))
    assert text == "frustration x3; check-in"


def test_no_cue_means_no_suggestion():
    assert retrieve(LIBRARY, INDEX, Request(QUERY, [], "chat")) == []
