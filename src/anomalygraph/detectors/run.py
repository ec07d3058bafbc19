"""Fit-and-score one detector on one series, the unit of work shared by the CLI, tools and benchmarks.

The fitting rule is explicit and reported: the format's training split when it has one,
otherwise the whole series (unsupervised), never anything chosen with test labels.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.core.errors import ConfigError
from anomalygraph.core.intervals import Interval, scored_intervals
from anomalygraph.core.thresholds import Threshold
from anomalygraph.data.series import TimeSeries
from anomalygraph.detectors.base import Detector, create_detector


class FitOn(StrEnum):
    train = "train"
    all = "all"


class DetectorRun(BaseModel):
    """A detector's verdict on a series; ``scores`` stays out of the JSON form to keep it small."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    detector: str
    config: dict[str, Any]
    series: str
    fitted_on: str
    threshold: Threshold
    intervals: list[Interval]
    n_flagged: int
    fit_seconds: float
    score_seconds: float
    device: str
    scores: np.ndarray = Field(exclude=True, repr=False)


def settings_for(detector: str, settings: dict[str, Any], detectors: list[str] | None = None) -> dict[str, Any]:
    """The settings one detector gets from ``key=value`` pairs shared by a multi-detector run.

    ``name.key`` applies only to detector ``name`` (``anomaly_transformer.epochs=1``), a plain
    ``key`` to every detector. A scoped key naming a detector that is not in ``detectors`` is an
    error rather than a setting that silently does nothing.
    """
    chosen: dict[str, Any] = {}
    for key, value in settings.items():
        scope, dot, field = key.rpartition(".")
        if not dot:
            chosen[key] = value
            continue
        if not scope or not field:
            raise ConfigError(f"setting {key!r}: expected key or detector.key")
        if detectors is not None and scope not in detectors:
            raise ConfigError(f"setting {key!r} names detector {scope!r}, which is not among {', '.join(detectors)}")
        if scope == detector:
            chosen[field] = value
    return chosen


def fit_rows(series: TimeSeries, fit_on: FitOn) -> tuple[TimeSeries, str]:
    """The rows a detector learns from, and a sentence saying which they are."""
    if fit_on == FitOn.train and series.train_end is not None:
        return series.train(), f"rows 0..{series.train_end - 1} (the format's training split)"
    if fit_on == FitOn.train:
        return series, "the whole series (the format has no training split; unsupervised)"
    return series, "the whole series (asked with --fit-on all)"


def fit_detector(
    series: TimeSeries, name: str, *, config: dict[str, Any] | None = None, fit_on: FitOn = FitOn.train
) -> tuple[Detector, str]:
    """A fitted detector and the sentence saying which rows it learnt from."""
    train, fitted_on = fit_rows(series, fit_on)
    return create_detector(name, **(config or {})).fit(train), fitted_on


def run_detector(
    series: TimeSeries,
    name: str | None = None,
    *,
    config: dict[str, Any] | None = None,
    fit_on: FitOn = FitOn.train,
    detector: Detector | None = None,
    fitted_on: str = "a saved model",
    threshold: Threshold | None = None,
) -> DetectorRun:
    """Fit (unless a fitted ``detector`` is given), score every row, threshold, extract intervals.

    ``threshold`` replaces the detector's own (a percentile of its training scores), for rules
    such as POT computed from the same training scores.
    """
    if detector is None:
        if name is None:
            raise ValueError("run_detector needs a detector name or a fitted detector")
        detector, fitted_on = fit_detector(series, name, config=config, fit_on=fit_on)
    started = time.perf_counter()
    scores = detector.score(series)
    score_seconds = time.perf_counter() - started
    threshold = threshold or detector.threshold_
    assert threshold is not None
    mask = scores > threshold.value
    return DetectorRun(
        detector=detector.name,
        config=detector.config.model_dump(mode="json"),
        series=series.name,
        fitted_on=fitted_on,
        threshold=threshold,
        intervals=scored_intervals(mask, scores),
        n_flagged=int(mask.sum()),
        fit_seconds=detector.fit_seconds_ or 0.0,
        score_seconds=score_seconds,
        device=str(getattr(detector, "device_", "cpu")),
        scores=scores,
    )


def top_intervals(intervals: list[Interval], k: int = 5) -> list[Interval]:
    """Strongest intervals first."""
    return sorted(intervals, key=lambda iv: -(iv.peak_score or -np.inf))[:k]
