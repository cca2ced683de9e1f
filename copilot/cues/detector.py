"""Turn texts into cues: one model pass for the emotional cues, phrase detectors for the conversational ones.

Emotional cues fire on the model's score against a dev-tuned threshold. Our evidence lexicon explains the
decision with spans, and may lower the bar to `support` times the threshold where the words are explicit (the
factor is tuned on GoEmotions dev too). Explicit phrases ("I'm furious", "thank you so
much") fire their cue on their own. When the model fires and no evidence word is found, the spans come from
batched occlusion: the words whose removal lowers the cue score most.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from copilot.cues import lexicon
from copilot.cues.taxonomy import CONVERSATION_CUES, EMOTION_CUES, Analysis, CueHit, Span, order_hits
from copilot.text import normalise

# In customer service a plain question is not confusion, and the model mixes up sadness and disappointment:
# these cues fire only with our words as evidence. Chosen on the customer-service dev set
# (data/cues_eval/cs_cues_dev.jsonl: macro-F1 0.894 -> 0.928), never on the test set.
NEEDS_EVIDENCE = frozenset({"confusion", "disappointment"})
OCCLUSION_VARIANTS = 4  # one small batch, whatever the length: windows of words grow with the text


class Encoder(Protocol):
    """What the detector needs of the model adapter."""

    labels: list[str]

    def encode(self, texts: list[str]): ...
    def encode_here(self, texts: list[str]): ...
    def start(self, texts: list[str]): ...


@dataclass(frozen=True)
class Thresholds:
    """Per-cue thresholds, tuned on dev data (see copilot.cues.tune).

    `cues`: emotional cue thresholds on the cue score; `support`: the factor our evidence words lower them by;
    `labels`: the 28 GoEmotions label thresholds; `check`: per conversational cue, how sure the cue head must be
    for an ambiguous phrase to count; `model`: per conversational cue, how sure it must be to fire with no phrase
    at all (above 1: never); `score`: where an emotional cue's score comes from (the cue head, the 28 labels, or
    their mean); `needs_evidence`: emotional cues that fire only with our words; `veto`: an explicit phrase of an
    emotional cue is overruled where the score is below veto x its threshold ("Fast and Furious is on"), and
    `overrule`, per conversational cue, the cue head score below which an unambiguous phrase is overruled too
    ("The Idiot by Dostoevsky"). Disclosures of danger to life are never overruled."""

    cues: dict[str, float]
    support: float
    labels: dict[str, float]
    check: dict[str, float] = field(default_factory=dict)
    model: dict[str, float] = field(default_factory=dict)
    score: str = "labels"
    needs_evidence: frozenset[str] = NEEDS_EVIDENCE
    span: float = 0.5
    veto: float = 0.0
    overrule: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> Thresholds:
        """Read the thresholds.json layout."""
        return cls(dict(data["cues"]), float(data["support"]), dict(data["labels"]),
                   dict(data.get("check", {})), dict(data.get("model", {})),
                   data.get("score", "labels"), frozenset(data.get("needs_evidence", NEEDS_EVIDENCE)),
                   float(data.get("span", 0.5)), float(data.get("veto", 0.0)), dict(data.get("overrule", {})))


def cue_scores(emotions: np.ndarray, labels: Sequence[str]) -> dict[str, np.ndarray]:
    """Per emotional cue, the highest probability among its labels (works on one row or a batch)."""
    index = {name: i for i, name in enumerate(labels)}
    return {cue: emotions[..., [index[name] for name in names]].max(-1) for cue, names in EMOTION_CUES.items()}


def emotional_scores(encoded, labels: Sequence[str], cue_names: Sequence[str], score: str) -> dict[str, np.ndarray]:
    """The score of each emotional cue: from the cue head, from the 28 labels, or the mean of both."""
    if encoded.cues is None or score == "labels":
        return cue_scores(encoded.emotions, labels)
    head = {cue: encoded.cues[..., cue_names.index(cue)] for cue in EMOTION_CUES}
    if score == "cue_head":
        return head
    from_labels = cue_scores(encoded.emotions, labels)
    return {cue: (head[cue] + from_labels[cue]) / 2 for cue in EMOTION_CUES}


def blocked(cue: str, found: lexicon.Evidence, needs_evidence: frozenset[str] = NEEDS_EVIDENCE) -> bool:
    """Whether our words rule an emotional cue out whatever the model says: "I'm not worried", sarcastic
    "thanks a bunch for doubling my premium", or a cue that needs evidence words and has none ("is it 24p now?")."""
    return (cue in found.negated or (cue == "gratitude" and found.sarcasm)
            or (cue in needs_evidence and cue not in found.spans))


def fires(score: float, threshold: float, has_evidence: bool, support: float, explicit: bool = False,
          veto: float = 0.0) -> bool:
    """The firing rule for an emotional cue: the model is sure, or our words back a weaker model score, or the
    customer said it in so many words ("I'm furious") and the model does not all but rule it out."""
    return ((explicit and score >= veto * threshold) or score >= threshold
            or (has_evidence and score >= support * threshold))


def conversational_fires(cue: str, found: lexicon.Evidence, head: float | None, thresholds: Thresholds) -> bool:
    """The firing rule for a conversational cue: an unambiguous phrase ("I want a manager"); an ambiguous one
    ("right now", "cancer") that the cue head backs; or the cue head alone, where it is very sure. Without a cue
    head (an older graph), every phrase counts."""
    if cue in found.safety or (head is None and cue in found.spans):
        return True
    if head is None:
        return False
    if cue in found.explicit:
        return head >= thresholds.overrule.get(cue, 0.0)
    if cue in found.innocent:
        return False
    if cue in found.spans:
        return head >= thresholds.check.get(cue, 0.5)
    return head >= thresholds.model.get(cue, 2.0)


def token_spans(evidence: np.ndarray, offsets: Sequence[tuple[int, int]], text: str, threshold: float) -> list[Span]:
    """Word spans of the tokens whose evidence probability passes the threshold (the best token where none does
    but it reaches half of it), in the text the model read; word pieces are widened to their whole word."""
    tokens = [i for i, (s, e) in enumerate(offsets) if e > s]
    if not tokens:
        return []
    chosen = [i for i in tokens if evidence[i] >= threshold]
    if not chosen:
        best = max(tokens, key=lambda i: evidence[i])
        chosen = [best] if evidence[best] >= threshold / 2 else []
    spans = []
    for i in chosen:
        start, end = offsets[i]
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "'"):
            start -= 1
        while end < len(text) and (text[end].isalnum() or text[end] == "'"):
            end += 1
        spans.append((start, end))
    return lexicon.merge_spans(spans, gap=1)  # words one space apart make one span


class CueDetector:
    """Analyse texts with one model pass per text plus the phrase detectors."""

    def __init__(self, model: Encoder, thresholds: Thresholds, occlusion: bool = True) -> None:
        self.model = model
        self.thresholds = thresholds
        self.occlusion = occlusion
        self.cue_names: list[str] = list(getattr(model, "cues", []) or [])
        self.column = {cue: i for i, cue in enumerate(self.cue_names)}  # each cue's column in the model's outputs

    def analyse(self, text: str, explain: bool = True, here: bool = False) -> Analysis:
        """Cues, emotions and embedding for one text (explain=False skips occlusion, for interim snippets)."""
        return self.analyse_many([text], explain, here)[0]

    def analyse_many(self, texts: list[str], explain: bool = True, here: bool = False) -> list[Analysis]:
        """Cues, emotions and embeddings for texts, one forward pass each. The phrase detectors run while the
        passes do, when the model has an executor; here=True runs every pass on the calling thread (for a caller
        that is already off the event loop). Model and rules read each text's normal form; the spans point into
        the text as given. A graph with an evidence head gives the spans of model-found cues from the same pass;
        an older graph falls back to occlusion (extra passes)."""
        normals = [normalise(text) for text in texts]
        if here:
            encoded = self.model.encode_here([n.text for n in normals])
        else:
            waiting = self.model.start([n.text for n in normals])
        scans = [lexicon.scan(text, normal) for text, normal in zip(texts, normals)]
        if not here:
            encoded = waiting()
        limits = self.thresholds
        scores = emotional_scores(encoded, self.model.labels, self.cue_names, limits.score)
        heads = encoded.cues
        results = []
        for row, (text, normal, found) in enumerate(zip(texts, normals, scans)):
            evidence = found.spans

            hits = []
            for cue in CONVERSATION_CUES:
                head = float(heads[row, self.column[cue]]) if heads is not None else None
                if conversational_fires(cue, found, head, limits):
                    spans = evidence.get(cue) or (self.model_spans(cue, row, normal, encoded, scores, here) if explain else [])
                    stated = cue in found.explicit or cue in found.safety or head is None
                    hits.append(CueHit(cue, 1.0 if stated else head, tuple(spans)))
            for cue in EMOTION_CUES:
                if blocked(cue, found, limits.needs_evidence):
                    continue
                score = float(scores[cue][row])
                spans = evidence.get(cue, [])
                if fires(score, limits.cues[cue], bool(spans), limits.support, cue in found.explicit, limits.veto):
                    if not spans and explain:
                        spans = self.model_spans(cue, row, normal, encoded, scores, here)
                    hits.append(CueHit(cue, score, tuple(spans)))
            emotions = {label: float(p) for label, p in zip(self.model.labels, encoded.emotions[row])}
            results.append(Analysis(text, order_hits(hits), emotions, encoded.embeddings[row]))
        return results

    def model_spans(self, cue: str, row: int, normal, encoded, scores: dict, here: bool) -> list[Span]:
        """Spans for a cue the model found without our words: from the evidence head of the same pass, or (an
        older graph, emotional cues only) from occlusion."""
        if encoded.cues is not None and encoded.evidence:
            where = token_spans(encoded.evidence[row][:, self.column[cue]], encoded.offsets[row],
                                normal.text, self.thresholds.span)
            return normal.spans(where)
        if self.occlusion and cue in EMOTION_CUES:
            return normal.spans(self.occlude(normal.text, cue, float(scores[cue][row]), here))
        return []

    def occlude(self, text: str, cue: str, score: float, here: bool = False) -> list[Span]:
        """Spans of the one or two word windows whose removal lowers the cue's score most, in one batched pass of
        at most OCCLUSION_VARIANTS texts (single words for short texts, wider windows for long ones). Only for a
        graph without an evidence head."""
        words = [(m.start(), m.end()) for m in lexicon.WORD.finditer(text)]
        if len(words) < 2:
            return [words[0]] if words else []
        size = -(-len(words) // OCCLUSION_VARIANTS)
        windows = [(words[i][0], words[min(i + size, len(words)) - 1][1]) for i in range(0, len(words), size)]
        variants = [text[:s] + text[e:] for s, e in windows]
        encoded = self.model.encode_here(variants) if here else self.model.encode(variants)
        drops = score - cue_scores(encoded.emotions, self.model.labels)[cue]
        order = np.argsort(-drops)
        best = float(drops[order[0]])
        if best <= 0:
            return []
        chosen = [windows[i] for i in order[:2] if drops[i] >= 0.5 * best]
        return lexicon.merge_spans(chosen)
