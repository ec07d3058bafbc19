"""Metrics of a decision: at a given threshold, or the best over TSB-AD's threshold grid.

A timestamp is flagged when its score is above the threshold (``score > threshold``), the same
rule detectors use with their :class:`~anomalygraph.core.thresholds.Threshold`. The ``*_best``
functions pick the threshold with the labels (TSB-AD's oracle protocol: 100 evenly spaced
thresholds between the lowest and highest score), so they are upper bounds on what a deployed
detector reaches, useful to compare detectors, never to claim accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from anomalygraph.core.thresholds import Threshold
from anomalygraph.metrics.affiliation import affiliation_prf_of
from anomalygraph.metrics.families import (
    event_prf_of,
    point_adjusted_prf_of,
    point_prf_of,
    range_prf_of,
)
from anomalygraph.metrics.flags import PRF, Flags, Truth
from anomalygraph.metrics.inputs import check_pair, check_threshold

GRID_SIZE = 100

Family = Callable[[Truth, Flags], PRF]
FAMILIES: dict[str, Family] = {
    "point": point_prf_of,
    "point_adjusted": point_adjusted_prf_of,
    "event": event_prf_of,
    "range": range_prf_of,
    "affiliation": affiliation_prf_of,
}
GRID_FAMILIES = ("point_adjusted", "event", "range", "affiliation")


def threshold_value(threshold: float | Threshold) -> float:
    return check_threshold(threshold.value if isinstance(threshold, Threshold) else threshold)


def prf_at(labels: np.ndarray, scores: np.ndarray, threshold: float | Threshold, families: Iterable[str]) -> dict[str, PRF]:
    """Each family's precision, recall and F1 with the flags ``scores > threshold``."""
    y, s = check_pair(labels, scores)
    truth, flags = Truth.of(y), Flags.of(s > threshold_value(threshold))
    return {name: FAMILIES[name](truth, flags) for name in families}


def best_f1_over_grid(labels: np.ndarray, scores: np.ndarray, families: Iterable[str] = GRID_FAMILIES) -> dict[str, float]:
    """Each family's best F1 over TSB-AD's 100 thresholds (linearly spaced, min to max score)."""
    y, s = check_pair(labels, scores)
    families = list(families)
    truth = Truth.of(y)
    grid = np.linspace(s.min(), s.max(), GRID_SIZE)
    level = np.searchsorted(grid, s, side="left")  # grid thresholds strictly below each score
    present = np.bincount(level, minlength=GRID_SIZE + 1)
    # Threshold k flags level > k; consecutive thresholds with no score between them agree.
    distinct = [0, *np.flatnonzero(present[1:GRID_SIZE] > 0) + 1]
    best = dict.fromkeys(families, 0.0)
    for k in distinct:
        flags = Flags.of(level > k)
        for name in families:
            best[name] = max(best[name], FAMILIES[name](truth, flags).f1)
    return best


def point_prf(labels: np.ndarray, scores: np.ndarray, threshold: float | Threshold) -> PRF:
    """Point-wise precision, recall and F1 at ``threshold``."""
    return prf_at(labels, scores, threshold, ["point"])["point"]


def event_prf(labels: np.ndarray, scores: np.ndarray, threshold: float | Threshold) -> PRF:
    """Event-wise recall with point-wise precision at ``threshold`` (TSB-AD's Event-based F1)."""
    return prf_at(labels, scores, threshold, ["event"])["event"]


def range_prf(labels: np.ndarray, scores: np.ndarray, threshold: float | Threshold) -> PRF:
    """Range-based precision, recall and F1 (Tatbul et al. 2018) at ``threshold``."""
    return prf_at(labels, scores, threshold, ["range"])["range"]


def affiliation_prf(labels: np.ndarray, scores: np.ndarray, threshold: float | Threshold) -> PRF:
    """Affiliation precision, recall and F1 (Huet et al. 2022) at ``threshold``."""
    return prf_at(labels, scores, threshold, ["affiliation"])["affiliation"]


def f1_point_adjusted(labels: np.ndarray, scores: np.ndarray, threshold: float | Threshold | None = None) -> float:
    """F1 after point adjustment: OPTIMISTIC, never a headline.

    One flagged point credits its whole event, so random scores reach a high value on series
    with long events. Without ``threshold``, the best over the threshold grid (TSB-AD's PA-F1),
    which is doubly optimistic.
    """
    if threshold is None:
        return best_f1_over_grid(labels, scores, ["point_adjusted"])["point_adjusted"]
    return prf_at(labels, scores, threshold, ["point_adjusted"])["point_adjusted"].f1


def event_f1_best(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best event-wise F1 over the threshold grid (TSB-AD's Event-based-F1); oracle threshold."""
    return best_f1_over_grid(labels, scores, ["event"])["event"]


def range_f1_best(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best range-based F1 over the threshold grid (TSB-AD's R-based-F1); oracle threshold."""
    return best_f1_over_grid(labels, scores, ["range"])["range"]


def affiliation_f1_best(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best affiliation F1 over the threshold grid (TSB-AD's Affiliation-F); oracle threshold."""
    return best_f1_over_grid(labels, scores, ["affiliation"])["affiliation"]
