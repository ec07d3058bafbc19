"""Threshold-dependent metric families, each a function of (labelled events, flagged runs).

Definitions follow TSB-AD 1.5 (``TSB_AD.evaluation``) so numbers are comparable with its
benchmark, including three of its conventions that are worth knowing:

* point adjustment (``f1_point_adjusted``) credits a whole event once any of its points is
  flagged; TSB-AD's adjustment never back-fills timestamp 0, so an event starting there loses
  that point unless it was flagged itself;
* event-wise F1 (TSB-AD's "Event-based-F1") pairs event-wise recall with point-wise precision,
  and an event that runs to the last timestamp is matched on all but that timestamp;
* with nothing flagged, precision is 0 (scikit-learn's ``zero_division=0``), so F1 is 0.

Two degenerate inputs differ on purpose: flags covering the whole series are one run here
(TSB-AD's run extraction finds none and reports range precision 0), and affiliation with
nothing flagged is 0 here where TSB-AD returns NaN (so with constant scores its best
affiliation F1 is NaN and ours 0).
"""

from __future__ import annotations

import numpy as np

from anomalygraph.metrics.flags import PRF, Flags, Truth

EVENT_F1_EPS = 1e-15
RANGE_RECALL_ALPHA = 0.2


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def _f1(precision: float, recall: float) -> float:
    total = precision + recall
    return 2 * precision * recall / total if total > 0 else 0.0


def point_prf_of(truth: Truth, flags: Flags) -> PRF:
    """Every timestamp counted on its own."""
    tp = int(flags.mask[truth.labels].sum())
    precision = _ratio(tp, flags.n_flagged)
    recall = tp / truth.n_positive
    f1 = 2 * tp / (flags.n_flagged + truth.n_positive) if tp > 0 else 0.0
    return PRF(precision=precision, recall=recall, f1=f1)


def point_adjusted_prf_of(truth: Truth, flags: Flags) -> PRF:
    """Point adjustment: an event with any flagged point counts as wholly detected (optimistic)."""
    lengths = truth.ends - truth.starts + 1
    detected = flags.count(truth.starts, truth.ends) > 0
    tp = int(lengths[detected].sum())
    if truth.starts.size and truth.starts[0] == 0 and detected[0] and not flags.mask[0]:
        tp -= 1  # TSB-AD's back-fill stops before timestamp 0
    flagged_normal = flags.n_flagged - int(flags.mask[truth.labels].sum())
    precision = _ratio(tp, tp + flagged_normal)
    recall = tp / truth.n_positive
    f1 = 2 * tp / (2 * tp + flagged_normal + (truth.n_positive - tp)) if tp > 0 else 0.0
    return PRF(precision=precision, recall=recall, f1=f1)


def event_prf_of(truth: Truth, flags: Flags) -> PRF:
    """Event-wise recall (an event counts once any point is flagged) with point-wise precision."""
    ends = np.minimum(truth.ends, truth.length - 2)  # TSB-AD closes a trailing event one step early
    matchable = ends >= truth.starts
    hit = np.zeros(truth.starts.size, dtype=bool)
    hit[matchable] = flags.count(truth.starts[matchable], ends[matchable]) > 0
    recall = float(hit.sum()) / truth.starts.size
    precision = _ratio(int(flags.mask[truth.labels].sum()), flags.n_flagged)
    f1 = 2 * recall * precision / (recall + precision + EVENT_F1_EPS)
    return PRF(precision=precision, recall=recall, f1=f1)


def _overlapping(starts: np.ndarray, ends: np.ndarray, other_starts: np.ndarray, other_ends: np.ndarray) -> np.ndarray:
    """How many of the (sorted, disjoint) ``other`` runs overlap each inclusive ``[start, end]``."""
    return np.searchsorted(other_starts, ends, side="right") - np.searchsorted(other_ends, starts, side="left")


def range_prf_of(truth: Truth, flags: Flags) -> PRF:
    """Range-based precision and recall (Tatbul et al., NeurIPS 2018) as TSB-AD sets them up.

    Recall per event: 0.2 x existence + 0.8 x overlap fraction / number of flagged runs it is
    split into; precision per flagged run: overlap fraction / number of events it spans (flat
    positional bias). Each is averaged over events / flagged runs.
    """
    lengths = truth.ends - truth.starts + 1
    hit_points = flags.count(truth.starts, truth.ends)
    pieces = _overlapping(truth.starts, truth.ends, flags.starts, flags.ends)
    cardinality = np.where(pieces > 0, 1.0 / np.maximum(pieces, 1), 0.0)
    existence = float((hit_points > 0).sum())
    overlap = float(np.sum(hit_points / lengths * cardinality))
    recall = (RANGE_RECALL_ALPHA * existence + (1 - RANGE_RECALL_ALPHA) * overlap) / truth.starts.size

    if flags.starts.size == 0:
        precision = 0.0
    else:
        label_prefix = np.concatenate(([0], np.cumsum(truth.labels, dtype=np.int64)))
        run_lengths = flags.ends - flags.starts + 1
        true_points = label_prefix[flags.ends + 1] - label_prefix[flags.starts]
        spans = _overlapping(flags.starts, flags.ends, truth.starts, truth.ends)
        run_cardinality = np.where(spans > 0, 1.0 / np.maximum(spans, 1), 0.0)
        precision = float(np.sum(true_points / run_lengths * run_cardinality)) / flags.starts.size
    return PRF(precision=precision, recall=recall, f1=_f1(precision, recall))
