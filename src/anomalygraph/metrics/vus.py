"""Range-AUC and VUS (Paparrizos et al., VLDB 2022), vectorised, equal to TSB-AD's ``opt`` version.

For a buffer length ``w`` every labelled event gets soft margins of ``w // 2`` points on each
side (weight ``sqrt(1 - d / w)`` at distance ``d``, 1 where margins of two events meet); the
range-based TPR, FPR and precision are then traced over 250 thresholds taken from the sorted
scores, and Range-AUC-ROC / Range-AUC-PR are the areas under those curves. VUS averages the
areas over ``w = 0 .. sliding_window``.

Range-AUC at buffer length ``w`` is that surface's slice at ``w`` (what VUS averages). TSB-AD
1.5's standalone ``RangeAUC`` is not used as the reference for it: it pads events
asymmetrically and divides by zero for buffers above 2 (its ``get_metrics`` has that call
commented out).

TSB-AD loops over buffer lengths x thresholds x events and copies the label array in every
step (O(W x 250 x T)). Here each timestamp is reduced once to the index of the first threshold
that flags it and to its distances from the nearest events, so every (buffer length,
threshold) cell is a cumulative sum over those small summaries.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from anomalygraph.core.errors import DataError
from anomalygraph.core.intervals import mask_to_intervals
from anomalygraph.data.periods import estimate_period
from anomalygraph.metrics.inputs import check_pair, check_window

N_THRESHOLDS = 250


def first_flagging_threshold(scores: np.ndarray, n_thresholds: int) -> tuple[np.ndarray, np.ndarray]:
    """TSB-AD's VUS thresholds (evenly spaced ranks of the sorted scores) and, per timestamp,
    the index of the first (highest) one that flags it (``score >= threshold``)."""
    ranks = np.linspace(0, scores.size - 1, n_thresholds).astype(int)
    thresholds = np.sort(scores)[::-1][ranks]
    first = np.searchsorted(-thresholds, -scores, side="left")
    return thresholds, first


def _event_bounds(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    runs = np.asarray(mask_to_intervals(labels), dtype=np.int64).reshape(-1, 2)
    return runs[:, 0], runs[:, 1]


def _margin_distances(labels: np.ndarray, starts: np.ndarray, ends: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal timestamps within ``reach`` of an event: their index, nearest and second-nearest
    margin distances (a margin point covered by two events' margins weighs 1)."""
    t = np.flatnonzero(~labels)
    big = np.iinfo(np.int64).max // 4
    k = np.searchsorted(ends, t, side="left") - 1  # last event ending before t
    left1 = np.where(k >= 0, t - ends[np.maximum(k, 0)], big)
    left2 = np.where(k >= 1, t - ends[np.maximum(k - 1, 0)], big)
    r = np.searchsorted(starts, t, side="right")  # first event starting after t
    n = starts.size
    right1 = np.where(r < n, starts[np.minimum(r, n - 1)] - t, big)
    right2 = np.where(r + 1 < n, starts[np.minimum(r + 1, n - 1)] - t, big)
    near = np.minimum(left1, right1)
    second = np.minimum(np.maximum(left1, right1), np.minimum(left2, right2))
    keep = near <= reach
    return t[keep], near[keep], second[keep]


def _segment_min(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Minimum of ``values`` over each inclusive ``[start, end]`` (disjoint, ordered)."""
    padded = np.concatenate((values, [0]))
    bounds = np.stack((starts, ends + 1), axis=1).ravel()
    return np.minimum.reduceat(padded, bounds)[::2]


def range_auc_curves(
    labels: np.ndarray, scores: np.ndarray, windows: np.ndarray, n_thresholds: int = N_THRESHOLDS
) -> tuple[np.ndarray, np.ndarray]:
    """Range-AUC-ROC and Range-AUC-PR for each buffer length in ``windows`` (checked inputs)."""
    windows = np.asarray(windows, dtype=np.int64)
    T = labels.size
    P = int(labels.sum())
    starts, ends = _event_bounds(labels)
    _, first = first_flagging_threshold(scores, n_thresholds)
    bins = n_thresholds + 1

    def cumulative(index: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.cumsum(np.bincount(index, weights=weights, minlength=bins)[:n_thresholds])

    flagged = cumulative(first)
    hits = cumulative(first[labels])

    # Margin points grouped once by (nearest distance, second distance capped past the reach,
    # first flagging threshold): their weight depends on nothing else.
    max_reach = int(windows.max()) // 2 if windows.size else 0
    t_margin, near, second = _margin_distances(labels, starts, ends, max_reach)
    second = np.minimum(second, max_reach + 1)
    key = (near * (max_reach + 2) + second) * bins + first[t_margin]
    groups, counts = np.unique(key, return_counts=True)
    g_first = groups % bins
    g_near = groups // bins // (max_reach + 2)
    g_second = groups // bins % (max_reach + 2)

    # Earliest flagging threshold within each event's reach, grown one step of reach at a time.
    gaps = starts[1:] - ends[:-1]
    reach_first = _segment_min(first, starts, ends)
    reach = 0

    auc = np.empty(windows.size)
    ap = np.empty(windows.size)
    for i in np.argsort(windows, kind="stable"):
        w = int(windows[i])
        h = w // 2
        while reach < h:
            reach += 1
            left = first[np.maximum(starts - reach, 0)]
            right = first[np.minimum(ends + reach, T - 1)]
            reach_first = np.minimum(reach_first, np.minimum(left, right))
        if w > 0:
            single = np.sqrt(1 - np.minimum(g_near, w) / w)
            weight = np.where(g_second <= h, 1.0, np.where(g_near <= h, single, 0.0))
        else:
            weight = np.zeros(g_near.size)
        margin = cumulative(g_first, weight * counts)
        # Events whose margins touch form one range; a range exists once any point in it is flagged.
        opens = np.concatenate(([0], np.flatnonzero(gaps > 2 * h) + 1))
        existence = cumulative(np.minimum.reduceat(reach_first, opens))

        tp = hits + margin
        p_new = (P + (P + margin)) / 2
        tpr = np.minimum(tp / p_new, 1) * (existence / opens.size)
        fpr = (flagged - tp) / (T - p_new)
        precision = tp / flagged

        tpr_full = np.concatenate(([0.0], tpr, [1.0]))
        fpr_full = np.concatenate(([0.0], fpr, [1.0]))
        auc[i] = np.dot(np.diff(fpr_full), (tpr_full[1:] + tpr_full[:-1]) / 2)
        ap[i] = np.dot(tpr_full[1:-1] - tpr_full[:-2], precision)
    return auc, ap


WindowSource = Literal["given", "series period", "score period"]


def resolve_window(
    sliding_window: int | None, scores: np.ndarray, series: np.ndarray | None = None
) -> tuple[int, WindowSource]:
    """The buffer length and where it came from.

    ``None`` means the autocorrelation period (TSB-AD's ``find_length_rank``, rank 1) of the
    series' first channel, which is what the TSB-AD benchmark uses; without the series, the
    period of the scores stands in (say so in any table that reports it).
    """
    if sliding_window is not None:
        return check_window(sliding_window), "given"
    if series is not None:
        values = np.asarray(series, dtype=np.float64)
        if values.ndim == 2:
            values = values[:, 0]
        if values.ndim != 1 or values.size == 0:
            raise DataError(f"series must be one channel or [T, D] values, got shape {np.shape(series)}")
        if not np.isfinite(values).all():
            raise DataError("series values must be finite to estimate the period for sliding_window")
        return estimate_period(values), "series period"
    return estimate_period(scores), "score period"


def vus(
    labels: np.ndarray, scores: np.ndarray, sliding_window: int | None = None, *, series: np.ndarray | None = None
) -> tuple[float, float, int, WindowSource]:
    """VUS-ROC, VUS-PR, the buffer length used and its source, from one pass."""
    y, s = check_pair(labels, scores)
    window, source = resolve_window(sliding_window, s, series)
    auc, ap = range_auc_curves(y, s, np.arange(window + 1))
    return float(auc.mean()), float(ap.mean()), window, source


def vus_pr(
    labels: np.ndarray, scores: np.ndarray, sliding_window: int | None = None, *, series: np.ndarray | None = None
) -> float:
    """Volume under the range-PR surface over buffer lengths ``0..sliding_window`` (headline metric).

    ``sliding_window=None`` takes the autocorrelation period of ``series`` (as the TSB-AD
    benchmark does) or, without it, of the scores.
    """
    return vus(labels, scores, sliding_window, series=series)[1]


def vus_roc(
    labels: np.ndarray, scores: np.ndarray, sliding_window: int | None = None, *, series: np.ndarray | None = None
) -> float:
    """Volume under the range-ROC surface over buffer lengths ``0..sliding_window``."""
    return vus(labels, scores, sliding_window, series=series)[0]


def range_auc(
    labels: np.ndarray, scores: np.ndarray, sliding_window: int | None = None, *, series: np.ndarray | None = None
) -> tuple[float, float]:
    """Range-AUC-ROC and Range-AUC-PR at the single buffer length ``sliding_window``."""
    y, s = check_pair(labels, scores)
    window, _ = resolve_window(sliding_window, s, series)
    auc, ap = range_auc_curves(y, s, np.array([window]))
    return float(auc[0]), float(ap[0])


def range_auc_pr(
    labels: np.ndarray, scores: np.ndarray, sliding_window: int | None = None, *, series: np.ndarray | None = None
) -> float:
    """Range-AUC-PR: area under the range-PR curve with buffer length ``sliding_window``."""
    return range_auc(labels, scores, sliding_window, series=series)[1]


def range_auc_roc(
    labels: np.ndarray, scores: np.ndarray, sliding_window: int | None = None, *, series: np.ndarray | None = None
) -> float:
    """Range-AUC-ROC: area under the range-ROC curve with buffer length ``sliding_window``."""
    return range_auc(labels, scores, sliding_window, series=series)[0]
