"""Every metric of one (labels, scores) pair in one pass: what the benchmark runner records."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.core.thresholds import Threshold
from anomalygraph.metrics.detection import (
    FAMILIES,
    GRID_FAMILIES,
    best_f1_over_grid,
    threshold_value,
)
from anomalygraph.metrics.flags import PRF, Flags, Truth
from anomalygraph.metrics.inputs import check_pair
from anomalygraph.metrics.ranking import auc_pr, auc_roc, best_f1
from anomalygraph.metrics.vus import WindowSource, range_auc_curves, resolve_window


class DecisionMetrics(BaseModel):
    """Metrics of the flags ``scores > threshold`` (a threshold chosen without test labels)."""

    model_config = ConfigDict(extra="forbid")

    threshold: float
    n_flagged: int
    point: PRF
    event: PRF = Field(description="event-wise recall, point-wise precision")
    range: PRF = Field(description="range-based, Tatbul et al. 2018")
    affiliation: PRF = Field(description="Huet et al. 2022")
    point_adjusted: PRF = Field(description="OPTIMISTIC: one flagged point credits its whole event")


class MetricReport(BaseModel):
    """All metrics of one detector on one series; VUS-PR is the headline.

    ``*_best`` and ``f1_point_adjusted`` pick their threshold with the labels (TSB-AD's
    protocol): upper bounds for comparing detectors. ``at_threshold`` holds what a deployed
    detector would reach with its own threshold.
    """

    model_config = ConfigDict(extra="forbid")
    headline: ClassVar[str] = "vus_pr"

    vus_pr: float = Field(description="headline: volume under the range-PR surface")
    vus_roc: float
    auc_pr: float
    auc_roc: float
    range_auc_pr: float = Field(description="range-PR area at buffer length sliding_window")
    range_auc_roc: float
    f1_best: float = Field(description="best point-wise F1 over all thresholds (oracle)")
    event_f1_best: float = Field(description="best event-wise F1 over 100 thresholds (oracle)")
    range_f1_best: float = Field(description="best range-based F1 over 100 thresholds (oracle)")
    affiliation_f1_best: float = Field(description="best affiliation F1 over 100 thresholds (oracle)")
    f1_point_adjusted: float = Field(description="OPTIMISTIC: best point-adjusted F1 over 100 thresholds")
    sliding_window: int = Field(description="VUS buffer length")
    sliding_window_source: WindowSource
    label_ratio: float = Field(description="share of timestamps labelled anomalous (VUS-PR of random scores is near it)")
    n_events: int
    length: int
    at_threshold: DecisionMetrics | None = None

    def summary(self) -> dict[str, float]:
        """Flat name -> value, headline first; decision metrics without a suffix, oracles with ``_best``."""
        out: dict[str, float] = {
            name: getattr(self, name)
            for name in (
                "vus_pr", "vus_roc", "auc_pr", "auc_roc", "range_auc_pr", "range_auc_roc",
                "f1_best", "event_f1_best", "range_f1_best", "affiliation_f1_best", "f1_point_adjusted",
            )
        }
        if self.at_threshold is not None:
            d = self.at_threshold
            out |= {
                "precision": d.point.precision, "recall": d.point.recall, "f1": d.point.f1,
                "event_recall": d.event.recall, "event_f1": d.event.f1,
                "range_precision": d.range.precision, "range_recall": d.range.recall, "range_f1": d.range.f1,
                "affiliation_precision": d.affiliation.precision, "affiliation_recall": d.affiliation.recall,
                "affiliation_f1": d.affiliation.f1,
                "f1_point_adjusted_at_threshold": d.point_adjusted.f1,
            }
        out |= {"label_ratio": self.label_ratio, "sliding_window": float(self.sliding_window)}
        return out


def all_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    sliding_window: int | None = None,
    threshold: float | Threshold | None = None,
    series: np.ndarray | None = None,
) -> MetricReport:
    """Every metric, sharing the work: one VUS surface, one sweep of the threshold grid.

    ``sliding_window=None`` takes the autocorrelation period of ``series`` (the series values,
    first channel, as TSB-AD does) or, without it, of the scores; the report says which.
    """
    y, s = check_pair(labels, scores)
    window, source = resolve_window(sliding_window, s, series)
    auc, ap = range_auc_curves(y, s, np.arange(window + 1))
    grid = best_f1_over_grid(y, s, GRID_FAMILIES)
    truth = Truth.of(y)
    decision = None
    if threshold is not None:
        value = threshold_value(threshold)
        flags = Flags.of(s > value)
        prf = {name: FAMILIES[name](truth, flags) for name in FAMILIES}
        decision = DecisionMetrics(threshold=value, n_flagged=flags.n_flagged, **prf)
    return MetricReport(
        vus_pr=float(ap.mean()),
        vus_roc=float(auc.mean()),
        auc_pr=auc_pr(y, s),
        auc_roc=auc_roc(y, s),
        range_auc_pr=float(ap[-1]),
        range_auc_roc=float(auc[-1]),
        f1_best=best_f1(y, s),
        event_f1_best=grid["event"],
        range_f1_best=grid["range"],
        affiliation_f1_best=grid["affiliation"],
        f1_point_adjusted=grid["point_adjusted"],
        sliding_window=window,
        sliding_window_source=source,
        label_ratio=float(y.mean()),
        n_events=int(truth.starts.size),
        length=int(y.size),
        at_threshold=decision,
    )
