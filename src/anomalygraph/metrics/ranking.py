"""Threshold-free point-wise metrics: AUC-ROC, AUC-PR, best F1, computed by scikit-learn.

Every distinct score is a candidate threshold (a point is flagged when its score is at least the
threshold). The calls are the ones TSB-AD 1.5 makes (``basic_metricor.metric_ROC``,
``metric_PR`` and ``metric_PointF1`` in ``TSB_AD/evaluation/basic_metrics.py``):
``roc_auc_score`` for AUC-ROC, ``average_precision_score`` (step-wise, no interpolation) for
AUC-PR, and the best F1 over ``precision_recall_curve`` for Standard-F1. The inputs are checked
here first (:func:`~anomalygraph.metrics.inputs.check_pair`), so a one-class or misaligned pair
gets this project's error rather than scikit-learn's.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from anomalygraph.metrics.inputs import check_pair

# TSB-AD's Standard-F1 divides by (precision + recall + 1e-5); kept so numbers are comparable
# with its leaderboard (it lowers a perfect F1 to 0.999995).
BEST_F1_EPS = 1e-5


def auc_roc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids between distinct thresholds)."""
    y, s = check_pair(labels, scores)
    return float(roc_auc_score(y, s))


def auc_pr(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision (step-wise, no interpolation)."""
    y, s = check_pair(labels, scores)
    return float(average_precision_score(y, s))


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Best point-wise F1 over every threshold, and the lowest score flagged to reach it
    (flags are ``score >= value`` here, as in scikit-learn's curves).

    Oracle: the threshold is chosen with the labels, so this is an upper bound for a deployed
    detector, not an estimate of one.
    """
    y, s = check_pair(labels, scores)
    precision, recall, thresholds = precision_recall_curve(y, s)
    # The curve runs from the lowest threshold up and ends with (precision 1, recall 0), which
    # has no threshold (its F1 is 0, so TSB-AD's max over it is the same). Where several
    # thresholds tie on F1 the highest is reported (the fewest flags).
    precision, recall = precision[:-1], recall[:-1]
    f1 = 2 * (precision * recall) / (precision + recall + BEST_F1_EPS)
    best = f1.size - 1 - int(np.argmax(f1[::-1]))
    return float(f1[best]), float(thresholds[best])


def best_f1(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best point-wise F1 over every threshold (TSB-AD's Standard-F1); an oracle upper bound."""
    return best_f1_threshold(labels, scores)[0]
