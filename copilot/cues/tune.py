"""Tune thresholds on GoEmotions dev with an exported ONNX graph, and write <graph>.thresholds.json beside it.

    python -m copilot.cues.tune --goemotions ../shared/data/goemotions [--model index/model] [--graph cues.onnx]

Per label: the threshold that maximises dev F1. Per emotional cue: the threshold on the cue score together with
the lexicon support factor (one factor for all cues) that maximise dev macro-F1 of the six cues.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from copilot.cues import lexicon
from copilot.cues.detector import blocked, cue_scores
from copilot.cues.goemotions import read_split
from copilot.cues.metrics import THRESHOLD_GRID, best_thresholds, prf
from copilot.cues.model import DEFAULT_GRAPH, DEFAULT_MODEL_DIR, CueModel, thresholds_path
from copilot.cues.taxonomy import EMOTION_CUES

SUPPORT_GRID = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)


def encode_all(model: CueModel, texts: list[str], batch: int = 1, progress: bool = True) -> np.ndarray:
    """Emotion probabilities for many texts, one at a time as serving runs them, with a progress line."""
    out = []
    for start in range(0, len(texts), batch):
        out.append(model.encode(texts[start:start + batch]).emotions)
        if progress and start % 1000 == 0:
            print(f"  encoded {min(start + batch, len(texts))}/{len(texts)}", flush=True)
    return np.concatenate(out)


def gold_matrix(examples, labels: list[str]) -> np.ndarray:
    """0/1 gold labels, examples by labels."""
    gold = np.zeros((len(examples), len(labels)), dtype=np.int8)
    for row, example in enumerate(examples):
        gold[row, list(example.labels)] = 1
    return gold


def cue_gold(gold: np.ndarray, labels: list[str]) -> np.ndarray:
    """A cue is present when any of its GoEmotions labels is."""
    index = {name: i for i, name in enumerate(labels)}
    return np.stack([gold[:, [index[name] for name in names]].max(1) for names in EMOTION_CUES.values()], 1)


def evidence_matrix(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per text and emotional cue: whether our lexicon finds evidence words, whether it finds explicit ones, and
    whether our words rule the cue out (the detector's own rule)."""
    found = [lexicon.scan(t) for t in texts]
    evidence = np.array([[cue in f.spans for cue in EMOTION_CUES] for f in found], dtype=bool)
    explicit = np.array([[cue in f.explicit for cue in EMOTION_CUES] for f in found], dtype=bool)
    ruled_out = np.array([[blocked(cue, f) for cue in EMOTION_CUES] for f in found], dtype=bool)
    return evidence, explicit, ruled_out


def tune_cues(scores: np.ndarray, evidence: np.ndarray, gold: np.ndarray, explicit: np.ndarray | None = None,
              blocked: np.ndarray | None = None) -> tuple[dict, float, float]:
    """Choose per-cue thresholds and the shared support factor by dev macro-F1, applying the detector's rules:
    explicit phrases always fire, negated or sarcastic ones block."""
    explicit = np.zeros_like(evidence) if explicit is None else explicit
    blocked = np.zeros_like(evidence) if blocked is None else blocked
    best = (-1.0, None, None)
    for support in SUPPORT_GRID:
        thresholds = np.zeros(scores.shape[1])
        f1s = np.zeros(scores.shape[1])
        for col in range(scores.shape[1]):
            grid = THRESHOLD_GRID[None, :]
            pred = ((scores[:, col][:, None] >= grid) | explicit[:, col][:, None]
                    | (evidence[:, col][:, None] & (scores[:, col][:, None] >= support * grid)))
            pred &= ~blocked[:, col][:, None]
            _, _, f1, _ = prf(pred, np.repeat(gold[:, col][:, None], grid.shape[1], 1))
            pick = int(f1.argmax())
            thresholds[col], f1s[col] = THRESHOLD_GRID[pick], f1[pick]
        if f1s.mean() > best[0] + 1e-9:
            best = (float(f1s.mean()), support, thresholds)
    macro, support, thresholds = best
    return {cue: float(t) for cue, t in zip(EMOTION_CUES, thresholds)}, float(support), macro


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goemotions", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--graph", default=DEFAULT_GRAPH)
    args = parser.parse_args(argv)

    model = CueModel(args.model, threads=2, graph=args.graph)
    dev = read_split(args.goemotions, "dev")
    texts = [e.text for e in dev]
    probs = encode_all(model, texts)
    gold = gold_matrix(dev, model.labels)
    label_thresholds, label_f1 = best_thresholds(probs, gold)
    scores = np.stack(list(cue_scores(probs, model.labels).values()), 1)
    evidence, explicit, blocked = evidence_matrix(texts)
    cues, support, cue_macro = tune_cues(scores, evidence, cue_gold(gold, model.labels), explicit, blocked)
    model_only, model_only_f1 = best_thresholds(scores, cue_gold(gold, model.labels))
    result = {
        "tuned_on": "GoEmotions dev", "examples": len(dev),
        "cues_model_only": {cue: float(t) for cue, t in zip(EMOTION_CUES, model_only)},
        "labels": {name: float(t) for name, t in zip(model.labels, label_thresholds)},
        "cues": cues, "support": support,
        "dev_macro_f1_labels": round(float(label_f1.mean()), 4), "dev_macro_f1_cues": round(cue_macro, 4),
        "dev_macro_f1_cues_model_only": round(float(model_only_f1.mean()), 4),
    }
    thresholds_path(args.model, args.graph).write_text(json.dumps({"graph": args.graph, **result}, indent=1) + "\n")
    print(f"dev macro-F1: 28 labels {label_f1.mean():.4f}, 6 cues as served {cue_macro:.4f} (support {support}), "
          f"6 cues from the model alone {model_only_f1.mean():.4f}")


if __name__ == "__main__":
    main()
