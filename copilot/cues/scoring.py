"""Classification and span metrics (pure numpy): precision, recall, F1, threshold search, span overlap."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from copilot.cues.taxonomy import Span

THRESHOLD_GRID = np.round(np.arange(0.01, 0.96, 0.01), 2)


def prf(pred: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-column precision, recall, F1 and support of boolean predictions against 0/1 gold."""
    pred, gold = pred.astype(bool), gold.astype(bool)
    tp = (pred & gold).sum(0).astype(float)
    fp = (pred & ~gold).sum(0)
    fn = (~pred & gold).sum(0)
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / np.maximum(tp + fn, 1)
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return precision, recall, f1, gold.sum(0)


def best_thresholds(scores: np.ndarray, gold: np.ndarray, grid: np.ndarray = THRESHOLD_GRID) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the grid threshold that maximises F1 (ties go to the lower threshold), and that F1."""
    thresholds = np.zeros(scores.shape[1])
    best = np.zeros(scores.shape[1])
    for col in range(scores.shape[1]):
        pred = scores[:, col][:, None] >= grid[None, :]
        _, _, f1, _ = prf(pred, np.repeat(gold[:, col][:, None], len(grid), 1))
        pick = int(f1.argmax())
        thresholds[col], best[col] = grid[pick], f1[pick]
    return thresholds, best


def span_scores(predicted: Sequence[Span], gold: Sequence[Span]) -> tuple[bool, float]:
    """Whether any predicted span overlaps a gold span, and the character-level F1 of the two span sets."""
    pred_chars = {i for s, e in predicted for i in range(s, e)}
    gold_chars = {i for s, e in gold for i in range(s, e)}
    overlap = len(pred_chars & gold_chars)
    f1 = 2 * overlap / (len(pred_chars) + len(gold_chars)) if pred_chars or gold_chars else 1.0
    return overlap > 0, f1
