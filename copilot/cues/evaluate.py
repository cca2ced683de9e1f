"""Evaluations of the cue detector: GoEmotions test against the paper's BERT-base, and our customer-service set."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from copilot.cues.detector import CueDetector
from copilot.cues.goemotions import read_split
from copilot.cues.realdata import CUES_EVAL, read_jsonl
from copilot.cues.scoring import prf, span_scores
from copilot.cues.taxonomy import CUES, EMOTION_CUES, Span
from copilot.cues.tune import cue_gold, gold_matrix

# Demszky et al. (ACL 2020), Table 4: BERT-base test F1 per label at threshold 0.3; macro 0.46.
PAPER_BERT_F1 = {
    "admiration": 0.65, "amusement": 0.80, "anger": 0.47, "annoyance": 0.34, "approval": 0.36, "caring": 0.39,
    "confusion": 0.37, "curiosity": 0.54, "desire": 0.49, "disappointment": 0.28, "disapproval": 0.39,
    "disgust": 0.45, "embarrassment": 0.43, "excitement": 0.34, "fear": 0.60, "gratitude": 0.86, "grief": 0.00,
    "joy": 0.51, "love": 0.78, "nervousness": 0.35, "optimism": 0.51, "pride": 0.36, "realization": 0.21,
    "relief": 0.15, "remorse": 0.66, "sadness": 0.49, "surprise": 0.50, "neutral": 0.68,
}
PAPER_BERT_MACRO = 0.46
CS_SET = CUES_EVAL / "cs_cues.jsonl"


@dataclass(frozen=True)
class Row:
    """One line of a metrics table."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int


def analyse_in_batches(detector: CueDetector, texts: list[str], batch: int = 64) -> list:
    """Run the detector over many texts. Each text gets a forward pass of its own whatever the batch (see
    CueModel._run), so it scores exactly as serving scores it."""
    out = []
    for start in range(0, len(texts), batch):
        out.extend(detector.analyse_many(texts[start:start + batch]))
    return out


def rows(names, pred: np.ndarray, gold: np.ndarray) -> list[Row]:
    """Metrics rows for each column."""
    p, r, f, s = prf(pred, gold)
    return [Row(n, float(a), float(b), float(c), int(d)) for n, a, b, c, d in zip(names, p, r, f, s)]


def goemotions_report(detector: CueDetector, data_dir: Path) -> dict:
    """Per-label and per-cue metrics on GoEmotions test, labels at their dev-tuned thresholds."""
    labels = detector.model.labels
    test = read_split(data_dir, "test")
    analyses = analyse_in_batches(detector, [e.text for e in test])
    probs = np.array([[a.emotions[name] for name in labels] for a in analyses])
    gold = gold_matrix(test, labels)
    thresholds = np.array([detector.thresholds.labels[name] for name in labels])
    label_rows = rows(labels, probs >= thresholds, gold)
    cue_pred = np.array([[c in a.cue_names for c in EMOTION_CUES] for a in analyses])
    cue_rows = rows(list(EMOTION_CUES), cue_pred, cue_gold(gold, labels))
    return {"labels": label_rows, "cues": cue_rows, "examples": len(test)}


def read_cs_set(path: Path = CS_SET) -> list[dict]:
    """Our customer-service set, with gold spans found from each evidence phrase."""
    items = read_jsonl(path)
    for item in items:
        item["spans"] = {cue: [phrase_span(item["text"], p) for p in phrases]
                         for cue, phrases in item.get("evidence", {}).items()}
    return items


def phrase_span(text: str, phrase: str) -> Span:
    """The first place an evidence phrase stands in its text."""
    start = text.index(phrase)
    return start, start + len(phrase)


def cs_report(detector: CueDetector, path: Path = CS_SET) -> dict:
    """Per-cue metrics on our customer-service set, and how well the spans match the hand-labelled ones."""
    items = read_cs_set(path)
    analyses = analyse_in_batches(detector, [i["text"] for i in items])
    gold = np.array([[c in i["cues"] for c in CUES] for i in items])
    pred = np.array([[c in a.cue_names for c in CUES] for a in analyses])
    hits, f1s = [], []
    for item, analysis in zip(items, analyses):
        for cue, spans in item["spans"].items():
            hit = analysis.cue(cue)
            if hit is not None:
                overlap, f1 = span_scores(hit.spans, spans)
                hits.append(overlap)
                f1s.append(f1)
    errors = [{"id": i["id"], "text": i["text"], "gold": sorted(i["cues"]), "predicted": list(a.cue_names)}
              for i, a in zip(items, analyses) if set(i["cues"]) != set(a.cue_names)]
    return {"cues": rows(CUES, pred, gold), "examples": len(items), "span_hit_rate": float(np.mean(hits)),
            "span_char_f1": float(np.mean(f1s)), "spans_checked": len(hits), "errors": errors}


def macro(table: list[Row]) -> float:
    """Macro-average F1 of a table."""
    return float(np.mean([r.f1 for r in table]))


def format_table(title: str, table: list[Row], paper: dict[str, float] | None = None) -> str:
    """A fixed-width table, with the paper's F1 beside ours where given."""
    head = f"{'':16} {'P':>6} {'R':>6} {'F1':>6} {'n':>5}" + (f" {'BERT':>6} {'diff':>6}" if paper else "")
    lines = [title, head]
    for r in table:
        line = f"{r.name:16} {r.precision:6.3f} {r.recall:6.3f} {r.f1:6.3f} {r.support:5d}"
        if paper:
            line += f" {paper[r.name]:6.2f} {r.f1 - paper[r.name]:+6.3f}"
        lines.append(line)
    lines.append(f"{'macro':16} {np.mean([r.precision for r in table]):6.3f} "
                 f"{np.mean([r.recall for r in table]):6.3f} {macro(table):6.3f}"
                 + (f" {PAPER_BERT_MACRO:>12.2f} {macro(table) - PAPER_BERT_MACRO:+6.3f}" if paper else ""))
    return "\n".join(lines)


# --- Real text that nobody on the project wrote: tweets, DailyDialog, and our hard negatives -------------------------

MIN_POSITIVES = 5  # a cue counts in the tweets' macro-F1 when the half holds at least this many positives
DD_CUES = ("frustration", "anxiety", "sadness")
NEGATIVE_EMOTIONS = frozenset(c for c in EMOTION_CUES if c != "gratitude")


def set_rows(names, predicted: list[frozenset[str]], gold: list[frozenset[str]]) -> list[Row]:
    """Metrics rows per cue from predicted and gold cue sets."""
    pred = np.array([[c in p for c in names] for p in predicted], dtype=bool).reshape(len(predicted), len(names))
    true = np.array([[c in g for c in names] for g in gold], dtype=bool).reshape(len(gold), len(names))
    return rows(names, pred, true)


def counted_macro(table: list[Row], minimum: int = MIN_POSITIVES) -> float:
    """Macro-F1 over the rows with at least `minimum` positives."""
    kept = [r.f1 for r in table if r.support >= minimum]
    return float(np.mean(kept)) if kept else 0.0


def row_of(table: list[Row], name: str) -> Row:
    """One named row of a table."""
    return next(r for r in table if r.name == name)


def tweets_report(detector: CueDetector, half: str, data: Path, peers: dict | None = None) -> dict:
    """Our twelve cues on the labelled tweets of one half, and each peer's cues on the same tweets."""
    from copilot.cues.realdata import read_tweets

    items = read_tweets(half, data)
    gold = [i.cues for i in items]
    analyses = analyse_in_batches(detector, [i.text for i in items])
    ours = set_rows(CUES, [frozenset(a.cue_names) for a in analyses], gold)
    hits = [span_scores(a.cue(cue).spans, spans)[0] for i, a in zip(items, analyses)
            for cue, spans in i.spans.items() if spans and a.cue(cue) is not None]
    out = {"examples": len(items), "cues": ours, "macro": counted_macro(ours), "peers": {},
           "span_hit_rate": float(np.mean(hits)) if hits else 0.0, "spans_checked": len(hits),
           "errors": [{"id": i.id, "gold": sorted(i.cues), "predicted": list(a.cue_names), "text": i.text}
                      for i, a in zip(items, analyses) if set(i.cues) != set(a.cue_names)]}
    for name, peer in (peers or {}).items():
        out["peers"][name] = set_rows(DD_CUES, [peer(i.text) for i in items], gold)
    return out


def dailydialog_report(detector: CueDetector, split: str, data: Path, peers: dict | None = None) -> dict:
    """On everyday dialogue: how often an emotional cue fires on an utterance labelled "none", how often a
    conversational cue fires at all, and frustration, anxiety and sadness against DailyDialog's labels (anger and
    disgust as frustration, fear as anxiety)."""
    from copilot.cues.realdata import DAILYDIALOG_CUES, read_dailydialog

    items = read_dailydialog(split, data)
    analyses = analyse_in_batches(detector, [u.text for u in items])
    predicted = [frozenset(a.cue_names) for a in analyses]
    return {"examples": len(items), **dialogue_figures(items, predicted, DAILYDIALOG_CUES),
            "peers": {name: dialogue_figures(items, [peer(u.text) for u in items], DAILYDIALOG_CUES)
                      for name, peer in (peers or {}).items()}}


def dialogue_figures(items, predicted: list[frozenset[str]], mapping: dict[str, str]) -> dict:
    """False alarms on "none", conversational firing and the three-cue table for one set of predictions."""
    none = [p for u, p in zip(items, predicted) if u.emotion == "none"]
    gold = [frozenset({mapping[u.emotion]}) if u.emotion in mapping else frozenset() for u in items]
    table = set_rows(DD_CUES, predicted, gold)
    conversational = frozenset(c for c in CUES if c not in EMOTION_CUES)
    return {
        "none": len(none),
        "none_false_alarms": float(np.mean([bool(p & frozenset(EMOTION_CUES)) for p in none])),
        "none_false_alarms_negative": float(np.mean([bool(p & NEGATIVE_EMOTIONS) for p in none])),
        "conversational_rate": float(np.mean([bool(p & conversational) for p in predicted])),
        "cues": table, "macro": macro(table),
    }


def hard_negatives_report(detector: CueDetector, path: Path | None = None, peers: dict | None = None) -> dict:
    """How many of our hard negatives (everyday utterances with trigger words, no cue) fire any cue."""
    from copilot.cues.realdata import HARD_NEGATIVES, read_hard_negatives

    items = read_hard_negatives(path or HARD_NEGATIVES)
    analyses = analyse_in_batches(detector, [i["text"] for i in items])
    fired = [(i, a.cue_names) for i, a in zip(items, analyses) if a.cues]
    per_cue = {c: sum(c in names for _, names in fired) for c in CUES}
    return {"examples": len(items), "fire_rate": len(fired) / len(items),
            "per_cue": {c: n for c, n in per_cue.items() if n},
            "fired": [{"id": i["id"], "cues": list(names), "text": i["text"]} for i, names in fired],
            "peers": {name: float(np.mean([bool(peer(i["text"])) for i in items])) for name, peer in
                      (peers or {}).items()}}


PROBES = CUES_EVAL / "cue_probes_blind.jsonl"


def probes_report(detector: CueDetector, path: Path = PROBES) -> dict:
    """A blind check set: 360 customer turns written by someone who never saw the detector, its code or its data
    (240 with cues, at least 20 per cue, 46 crises; 120 look-alikes with none). Never trained or tuned on."""
    items = read_jsonl(path)
    analyses = analyse_in_batches(detector, [i["text"] for i in items])
    gold = [frozenset(i["cues"]) for i in items]
    predicted = [frozenset(a.cue_names) for a in analyses]
    table = set_rows(CUES, predicted, gold)
    quiet = [p for g, p in zip(gold, predicted) if not g]
    return {"examples": len(items), "cues": table, "macro": macro(table),
            "crisis_recall": row_of(table, "crisis").recall,
            "no_cue_false_alarms": float(np.mean([bool(p) for p in quiet])) if quiet else 0.0}
