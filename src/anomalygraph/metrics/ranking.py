"""Threshold-free point-wise metrics from one sort of the scores: AUC-ROC, AUC-PR, best F1.

Every distinct score is a candidate threshold (a point is flagged when its score is at least the
threshold), exactly as scikit-learn's ``roc_curve`` / ``average_precision_score`` /
``precision_recall_curve`` define them, which is what TSB-AD reports as AUC-ROC, AUC-PR and
Standard-F1.
"""

from __future__ import annotations

import numpy as np

from anomalygraph.metrics.inputs import check_pair

# TSB-AD's Standard-F1 divides by (precision + recall + 1e-5); kept so numbers are comparable
# with its leaderboard (it lowers a perfect F1 to 0.999995).
BEST_F1_EPS = 1e-5


def ranked_counts(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct score, from the highest down."""
    order = np.argsort(scores, kind="stable")[::-1]
    ranked = scores[order]
    hits = labels[order]
    last_of_value = np.flatnonzero(np.diff(ranked)) if ranked.size > 1 else np.empty(0, np.int64)
    cut = np.concatenate((last_of_value, [ranked.size - 1]))
    tps = np.cumsum(hits, dtype=np.int64)[cut]
    fps = (cut + 1) - tps
    return tps, fps, ranked[cut]


def auc_roc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids between distinct thresholds)."""
    y, s = check_pair(labels, scores)
    tps, fps, _ = ranked_counts(y, s)
    tpr = np.concatenate(([0.0], tps / tps[-1]))
    fpr = np.concatenate(([0.0], fps / fps[-1]))
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def auc_pr(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision (step-wise, no interpolation)."""
    y, s = check_pair(labels, scores)
    tps, fps, _ = ranked_counts(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.concatenate(([0.0], recall))) * precision))


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Best point-wise F1 over every threshold, and the lowest score flagged to reach it
    (flags are ``score >= value`` here, as in scikit-learn's curves).

    Oracle: the threshold is chosen with the labels, so this is an upper bound for a deployed
    detector, not an estimate of one.
    """
    y, s = check_pair(labels, scores)
    tps, fps, values = ranked_counts(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    f1 = 2.0 * precision * recall / (precision + recall + BEST_F1_EPS)
    best = int(np.argmax(f1))
    return float(f1[best]), float(values[best])


def best_f1(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best point-wise F1 over every threshold (TSB-AD's Standard-F1); an oracle upper bound."""
    return best_f1_threshold(labels, scores)[0]
