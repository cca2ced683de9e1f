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
# (tests/data/cs_cues_dev.jsonl: macro-F1 0.894 -> 0.928), never on the test set.
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
    """Per-cue thresholds on the cue score and the lexicon support factor, tuned on GoEmotions dev."""

    cues: dict[str, float]
    support: float
    labels: dict[str, float]
    model_only: dict[str, float] = field(default_factory=dict)  # cue thresholds for the model without our rules

    @classmethod
    def from_dict(cls, data: dict) -> Thresholds:
        """Read the thresholds.json layout."""
        return cls(dict(data["cues"]), float(data["support"]), dict(data["labels"]),
                   dict(data.get("cues_model_only", {})))


def cue_scores(emotions: np.ndarray, labels: Sequence[str]) -> dict[str, np.ndarray]:
    """Per emotional cue, the highest probability among its labels (works on one row or a batch)."""
    index = {name: i for i, name in enumerate(labels)}
    return {cue: emotions[..., [index[name] for name in names]].max(-1) for cue, names in EMOTION_CUES.items()}


def blocked(cue: str, found: lexicon.Evidence) -> bool:
    """Whether our words rule an emotional cue out whatever the model says: "I'm not worried", sarcastic
    "thanks a bunch for doubling my premium", or a cue that needs evidence words and has none ("is it 24p now?")."""
    return (cue in found.negated or (cue == "gratitude" and found.sarcasm)
            or (cue in NEEDS_EVIDENCE and cue not in found.spans))


def fires(score: float, threshold: float, has_evidence: bool, support: float, explicit: bool = False) -> bool:
    """The firing rule for an emotional cue: the model is sure, or our words back a weaker model score, or the
    customer said it in so many words ("I'm furious")."""
    return explicit or score >= threshold or (has_evidence and score >= support * threshold)


class CueDetector:
    """Analyse texts with one model pass each batch plus the phrase detectors."""

    def __init__(self, model: Encoder, thresholds: Thresholds, occlusion: bool = True) -> None:
        self.model = model
        self.thresholds = thresholds
        self.occlusion = occlusion

    def analyse(self, text: str, explain: bool = True, here: bool = False) -> Analysis:
        """Cues, emotions and embedding for one text (explain=False skips occlusion, for interim snippets)."""
        return self.analyse_many([text], explain, here)[0]

    def analyse_many(self, texts: list[str], explain: bool = True, here: bool = False) -> list[Analysis]:
        """Cues, emotions and embeddings for a batch of texts, in one forward pass. The phrase detectors run
        while the pass does, when the model has an executor; here=True runs every pass on the calling thread
        (for a caller that is already off the event loop). Model and rules read each text's normal form; the
        spans point into the text as given."""
        normals = [normalise(text) for text in texts]
        if here:
            encoded = self.model.encode_here([n.text for n in normals])
        else:
            waiting = self.model.start([n.text for n in normals])
        scans = [lexicon.scan(text, normal) for text, normal in zip(texts, normals)]
        if not here:
            encoded = waiting()
        scores = cue_scores(encoded.emotions, self.model.labels)
        results = []
        for row, (text, normal, found) in enumerate(zip(texts, normals, scans)):
            evidence = found.spans
            hits = [CueHit(cue, 1.0, tuple(evidence[cue])) for cue in CONVERSATION_CUES if cue in evidence]
            for cue in EMOTION_CUES:
                if blocked(cue, found):
                    continue
                score = float(scores[cue][row])
                spans = evidence.get(cue, [])
                if fires(score, self.thresholds.cues[cue], bool(spans), self.thresholds.support,
                         cue in found.explicit):
                    if not spans and self.occlusion and explain:
                        spans = normal.spans(self.occlude(normal.text, cue, score, here))
                    hits.append(CueHit(cue, score, tuple(spans)))
            emotions = {label: float(p) for label, p in zip(self.model.labels, encoded.emotions[row])}
            results.append(Analysis(text, order_hits(hits), emotions, encoded.embeddings[row]))
        return results

    def occlude(self, text: str, cue: str, score: float, here: bool = False) -> list[Span]:
        """Spans of the one or two word windows whose removal lowers the cue's score most, in one batched pass of
        at most OCCLUSION_VARIANTS texts (single words for short texts, wider windows for long ones)."""
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
