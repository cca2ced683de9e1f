"""Precision, recall, F1, threshold search and span overlap."""
import numpy as np

from copilot.cues.scoring import best_thresholds, prf, span_scores


def test_prf_counts_true_and_false_positives_per_column():
    pred = np.array([[1, 0], [1, 1], [0, 1]])
    gold = np.array([[1, 0], [0, 1], [1, 0]])
    precision, recall, f1, support = prf(pred, gold)
    assert list(precision) == [0.5, 0.5] and list(recall) == [0.5, 1.0]
    assert np.allclose(f1, [0.5, 2 / 3]) and list(support) == [2, 1]


def test_best_threshold_separates_perfectly_separable_scores():
    scores = np.array([[0.9], [0.8], [0.3], [0.1]])
    gold = np.array([[1], [1], [0], [0]])
    thresholds, f1 = best_thresholds(scores, gold)
    assert 0.3 < thresholds[0] <= 0.8 and f1[0] == 1.0


def test_span_scores_measure_overlap_in_characters():
    assert span_scores([(0, 4)], [(0, 4)]) == (True, 1.0)
    hit, f1 = span_scores([(0, 4)], [(2, 6)])
    assert hit and f1 == 0.5
    assert span_scores([(0, 2)], [(5, 9)]) == (False, 0.0)
