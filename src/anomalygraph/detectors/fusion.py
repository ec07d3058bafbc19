"""Combining several detectors' scores into one track, with agreement per interval.

Scores live on different scales, so each is first put in robust-z units using the rows the
detector was fitted on (median and MAD of *training* scores, never anything labelled), then
averaged, by default weighted by how well each detector's ranking agrees with the others' (a
detector that sees nothing the others see gets little say; no labels are involved). An
interval's agreement is the share of detectors whose own thresholded intervals overlap it, so
a report can say "3 of 4 detectors agree" rather than trust one model blindly.

Whether fusion beats a single detector is measured per fold, beside the other selection
strategies, by ``anomalygraph eval diagnosis`` (:mod:`anomalygraph.detectors.selection`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from anomalygraph.core.errors import DataError
from anomalygraph.core.intervals import intervals_to_mask, scored_intervals
from anomalygraph.core.stats import median_scale
from anomalygraph.core.thresholds import Threshold, percentile_threshold


class FusedInterval(BaseModel):
    start: int
    end: int
    peak: int
    peak_score: float
    detectors: list[str] = Field(description="detectors whose own intervals overlap this one")
    agreement: float = Field(description="share of fused detectors that flag it")


FusionMethod = Literal["agreement_weighted", "robust_z_mean", "rank_mean"]


class FusionResult(BaseModel):
    method: FusionMethod
    detectors: list[str]
    weights: dict[str, float] = Field(default_factory=dict, description="each detector's share of the fused score")
    threshold: Threshold
    intervals: list[FusedInterval]


def agreeing(masks: Mapping[str, np.ndarray], start: int, end: int) -> list[str]:
    """Detectors whose own 0/1 mask flags any row of ``start..end`` (inclusive)."""
    return [name for name, mask in masks.items() if mask[start : end + 1].any()]


def robust_z(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``(scores - median) / (1.4826 MAD)`` with the median and MAD of ``reference``."""
    median, scale = median_scale(reference)
    return (scores - median) / scale


def agreement_weights(parts: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Each detector's Spearman correlation with the mean of the others, clipped at 0, summing to 1.

    Equal weights when fewer than three detectors (two always agree equally) or none agrees.
    """
    from scipy.stats import spearmanr

    names = list(parts)
    raw = np.zeros(len(names))
    if len(names) >= 3:
        for i, name in enumerate(names):
            rest = np.mean([parts[other] for other in names if other != name], axis=0)
            rho = spearmanr(parts[name], rest).statistic
            raw[i] = max(0.0, float(np.nan_to_num(rho)))
    if raw.sum() <= 0:
        raw = np.ones(len(names))
    return {name: float(w) for name, w in zip(names, raw / raw.sum(), strict=True)}


def rank_normalise(scores: np.ndarray) -> np.ndarray:
    """Ranks scaled to (0, 1]: scale-free and robust to one detector's extreme values."""
    from scipy.stats import rankdata

    return rankdata(scores, method="average") / len(scores)


def fuse_scores(
    scores: Mapping[str, np.ndarray],
    own_masks: Mapping[str, np.ndarray],
    *,
    fit_rows: slice,
    method: FusionMethod = "agreement_weighted",
    contamination: float = 0.01,
) -> tuple[np.ndarray, FusionResult]:
    """Fused scores ``[T]`` and the intervals above their train-row percentile, with agreement."""
    if not scores:
        raise DataError("no detector scores to fuse")
    lengths = {len(s) for s in scores.values()}
    if len(lengths) != 1:
        raise DataError(f"detector scores have different lengths {sorted(lengths)}")
    names = list(scores)
    if method == "rank_mean":
        parts = {n: rank_normalise(np.asarray(scores[n], float)) for n in names}
    else:
        parts = {n: robust_z(np.asarray(scores[n], float), np.asarray(scores[n], float)[fit_rows]) for n in names}
    if method == "agreement_weighted":
        weights = agreement_weights(parts)
    else:
        weights = {n: 1 / len(names) for n in names}
    fused = np.sum([weights[n] * parts[n] for n in names], axis=0)
    threshold = percentile_threshold(fused[fit_rows], contamination)
    threshold = threshold.model_copy(update={"fitted_on": "fused scores of the rows the detectors were fitted on"})
    intervals = []
    for iv in scored_intervals(fused > threshold.value, fused):
        who = agreeing({n: own_masks[n] for n in names}, iv.start, iv.end)
        intervals.append(
            FusedInterval(start=iv.start, end=iv.end, peak=iv.peak or iv.start, peak_score=iv.peak_score or 0.0,
                          detectors=who, agreement=len(who) / len(names))
        )
    intervals.sort(key=lambda iv: (-iv.agreement, -iv.peak_score))
    return fused, FusionResult(method=method, detectors=names, weights=weights, threshold=threshold, intervals=intervals)


def masks_from_intervals(intervals: Mapping[str, list[tuple[int, int]]], length: int) -> dict[str, np.ndarray]:
    return {name: intervals_to_mask(spans, length) for name, spans in intervals.items()}
