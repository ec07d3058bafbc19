"""Accuracy metrics for time-series anomaly detection, equal to TSB-AD's to 1e-6 and faster.

Headline: :func:`vus_pr` (volume under the range-PR surface, Paparrizos et al., VLDB 2022),
robust to the lag between labels and detections and not fooled by point adjustment. All
metrics take ``labels[T]`` (0/1) and ``scores[T]`` (higher is more anomalous) and refuse
misaligned, non-binary, non-finite or one-class input with a :class:`~anomalygraph.core.errors.DataError`.

Threshold-free: :func:`vus_pr`, :func:`vus_roc`, :func:`range_auc_pr`, :func:`range_auc_roc`,
:func:`auc_pr`, :func:`auc_roc`. At a threshold (``score > threshold``): :func:`point_prf`,
:func:`event_prf`, :func:`range_prf`, :func:`affiliation_prf`. Oracle (threshold picked with
the labels): :func:`best_f1`, :func:`event_f1_best`, :func:`range_f1_best`,
:func:`affiliation_f1_best` and the optimistic :func:`f1_point_adjusted`. Everything at once:
:func:`all_metrics`.
"""

from anomalygraph.metrics.detection import (
    affiliation_f1_best,
    affiliation_prf,
    best_f1_over_grid,
    event_f1_best,
    event_prf,
    f1_point_adjusted,
    point_prf,
    range_f1_best,
    range_prf,
)
from anomalygraph.metrics.flags import PRF
from anomalygraph.metrics.ranking import auc_pr, auc_roc, best_f1, best_f1_threshold
from anomalygraph.metrics.suite import DecisionMetrics, MetricReport, all_metrics
from anomalygraph.metrics.vus import (
    range_auc_pr,
    range_auc_roc,
    resolve_window,
    vus,
    vus_pr,
    vus_roc,
)

__all__ = [
    "PRF",
    "DecisionMetrics",
    "MetricReport",
    "affiliation_f1_best",
    "affiliation_prf",
    "all_metrics",
    "auc_pr",
    "auc_roc",
    "best_f1",
    "best_f1_over_grid",
    "best_f1_threshold",
    "event_f1_best",
    "event_prf",
    "f1_point_adjusted",
    "point_prf",
    "range_auc_pr",
    "range_auc_roc",
    "range_f1_best",
    "range_prf",
    "resolve_window",
    "vus",
    "vus_pr",
    "vus_roc",
]
