"""Turning scores into decisions without looking at test labels.

Every rule returns a :class:`Threshold` that records its method and parameters, so a verdict
can say exactly how its intervals were chosen:

* ``percentile``: the ``1 - contamination`` quantile of training scores (PyOD's rule);
* ``k_sigma`` / ``k_sigma_robust``: mean + k x standard deviation of training scores, or
  median + k x 1.4826 x MAD when outliers in training would inflate the spread;
* ``pot``: Peaks-Over-Threshold (Siffer et al., KDD 2017): a generalised Pareto tail fitted to
  the training scores above a high quantile, extrapolated to a false-alarm ``risk``;
* ``spot``: streaming POT: the tail is refitted as each new score above the initial level
  arrives (scores beyond the current threshold are alarms and do not move it).

``top_k`` (the k strongest candidate intervals pass) is not here: it is a cut over candidate
peaks, not over scores (the k-th highest *row* sits inside the strongest bump), so it lives with
the peak finding in :mod:`anomalygraph.detectors.ranking`, which records it as a ``Threshold`` too.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.core.intervals import Interval, scored_intervals
from anomalygraph.core.stats import median_sigma

MIN_PEAKS = 10

ThresholdMethod = Literal["percentile", "pot", "top_k"]
"""The rules a user may choose for ranked candidate intervals (:mod:`anomalygraph.detectors.ranking`)."""


class Threshold(BaseModel):
    value: float
    method: str = Field(description="percentile, k_sigma, k_sigma_robust, pot, spot or top_k")
    params: dict[str, float] = Field(default_factory=dict)
    fitted_on: str = Field("train scores", description="which scores the threshold was computed from")

    def describe(self) -> str:
        params = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.method}({params}) on {self.fitted_on} = {self.value:.6g}"


def _finite_scores(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size == 0:
        raise DataError("cannot compute a threshold from zero scores")
    if not np.isfinite(scores).all():
        raise DataError("cannot compute a threshold: scores contain NaN or inf")
    return scores


def percentile_threshold(train_scores: np.ndarray, contamination: float) -> Threshold:
    """The ``1 - contamination`` quantile of training scores (PyOD's rule)."""
    if not 0 < contamination < 0.5:
        raise DataError(f"contamination must be in (0, 0.5), got {contamination}")
    scores = _finite_scores(train_scores)
    value = float(np.quantile(scores, 1.0 - contamination))
    return Threshold(value=value, method="percentile", params={"contamination": contamination})


def k_sigma_threshold(train_scores: np.ndarray, k: float = 3.0, *, robust: bool = False) -> Threshold:
    """Centre + ``k`` x spread of training scores: mean and std, or median and 1.4826 x MAD."""
    if not (math.isfinite(k) and k > 0):
        raise ConfigError(f"k must be a positive number, got {k}")
    scores = _finite_scores(train_scores)
    if robust:
        centre, spread = median_sigma(scores)
        return Threshold(
            value=centre + k * spread, method="k_sigma_robust", params={"k": k, "median": centre, "sigma": spread}
        )
    centre, spread = float(scores.mean()), float(scores.std())
    return Threshold(value=centre + k * spread, method="k_sigma", params={"k": k, "mean": centre, "std": spread})


# --------------------------------------------------------------------- extreme value theory
class GPDFit(BaseModel):
    """Generalised Pareto tail above ``initial``: shape (xi), scale (sigma) and the counts behind it."""

    model_config = ConfigDict(extra="forbid")

    initial: float
    shape: float
    scale: float = Field(gt=0)
    n_peaks: int
    n_total: int

    def quantile(self, risk: float) -> float:
        """Score exceeded with probability ``risk`` under the fitted tail (Siffer et al., eq. 1)."""
        ratio = risk * self.n_total / self.n_peaks
        if abs(self.shape) < 1e-9:
            return self.initial - self.scale * math.log(ratio)
        return self.initial + self.scale / self.shape * (ratio ** (-self.shape) - 1.0)


def fit_gpd(excesses: np.ndarray, *, start: tuple[float, float] | None = None) -> tuple[float, float]:
    """Maximum-likelihood GPD shape and scale of positive excesses (location 0), by scipy."""
    from scipy import stats  # imported here: scipy.stats costs a second at import time

    excesses = np.asarray(excesses, dtype=np.float64)
    if np.ptp(excesses) == 0:
        raise DataError(
            f"cannot fit a tail: all {excesses.size} scores above the initial threshold are equal "
            "(the scores are too coarse for POT; use a percentile or k-sigma threshold)"
        )
    if start is None:
        shape, _, scale = stats.genpareto.fit(excesses, floc=0)
    else:
        shape, _, scale = stats.genpareto.fit(excesses, start[0], floc=0, scale=start[1])
    return float(shape), float(scale)


def _check_risk_level(risk: float, level: float) -> None:
    if not 0 < level < 1:
        raise ConfigError(f"level (the initial quantile) must be in (0, 1), got {level}")
    if not 0 < risk < 1 - level:
        raise ConfigError(
            f"risk must be in (0, 1 - level) = (0, {1 - level:g}): the threshold has to sit above the "
            f"initial quantile; got risk={risk}"
        )


def _calibrate(scores: np.ndarray, risk: float, level: float) -> GPDFit:
    _check_risk_level(risk, level)
    initial = float(np.quantile(scores, level))
    peaks = scores[scores > initial] - initial
    if peaks.size < MIN_PEAKS:
        raise DataError(
            f"POT needs at least {MIN_PEAKS} training scores above its initial quantile "
            f"(level={level:g}), got {peaks.size} of {scores.size}; give more training scores "
            "or lower the level"
        )
    shape, scale = fit_gpd(peaks)
    return GPDFit(initial=initial, shape=shape, scale=scale, n_peaks=int(peaks.size), n_total=int(scores.size))


def pot_threshold(train_scores: np.ndarray, *, risk: float = 1e-3, level: float = 0.98) -> Threshold:
    """Peaks-Over-Threshold: the score exceeded with probability ``risk`` under a GPD tail.

    ``level`` sets the initial quantile whose excesses are modelled; ``risk`` is the
    false-alarm rate per timestamp the threshold targets (it may lie beyond every training score).
    """
    fit = _calibrate(_finite_scores(train_scores), risk, level)
    return Threshold(
        value=fit.quantile(risk),
        method="pot",
        params={
            "risk": risk, "level": level, "initial": fit.initial, "gpd_shape": fit.shape,
            "gpd_scale": fit.scale, "n_peaks": float(fit.n_peaks),
        },
    )


class SpotResult(BaseModel):
    """SPOT's threshold at each streamed timestamp, its alarms, and the final state."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    thresholds: np.ndarray = Field(exclude=True, repr=False, description="threshold in force at each stream step")
    alarms: np.ndarray = Field(exclude=True, repr=False, description="indices of stream scores above it")
    final: Threshold


def spot(
    train_scores: np.ndarray, stream_scores: np.ndarray, *, risk: float = 1e-3, level: float = 0.98
) -> SpotResult:
    """Streaming POT (SPOT): calibrate on training scores, then update the tail online.

    Each stream score is compared with the threshold in force before it; one above it is an
    alarm and leaves the model unchanged, one above the initial quantile becomes a new peak and
    the GPD is refitted (warm-started from the previous fit). Labels are never used.
    """
    train = _finite_scores(train_scores)
    stream = _finite_scores(stream_scores)
    fit = _calibrate(train, risk, level)
    peaks = list(train[train > fit.initial] - fit.initial)
    shape, scale, n_total = fit.shape, fit.scale, fit.n_total
    value = fit.quantile(risk)
    thresholds = np.empty(stream.size)
    alarms = []
    for i, x in enumerate(stream.tolist()):
        thresholds[i] = value
        if x > value:
            alarms.append(i)
            continue
        n_total += 1
        if x > fit.initial:
            peaks.append(x - fit.initial)
            shape, scale = fit_gpd(np.asarray(peaks), start=(shape, scale))
            value = GPDFit(
                initial=fit.initial, shape=shape, scale=scale, n_peaks=len(peaks), n_total=n_total
            ).quantile(risk)
    final = Threshold(
        value=value,
        method="spot",
        params={
            "risk": risk, "level": level, "initial": fit.initial, "gpd_shape": shape, "gpd_scale": scale,
            "n_peaks": float(len(peaks)), "n_alarms": float(len(alarms)),
        },
        fitted_on=f"train scores, updated online over {stream.size} streamed scores",
    )
    return SpotResult(thresholds=thresholds, alarms=np.asarray(alarms, dtype=np.int64), final=final)


# ------------------------------------------------------------------------------ decisions
def intervals_above(scores: np.ndarray, threshold: Threshold | float | np.ndarray) -> list[Interval]:
    """Runs of timestamps whose score is above the threshold, each with its peak.

    ``threshold`` is a :class:`Threshold`, a number, or one threshold per timestamp (SPOT's
    ``thresholds``); a timestamp is flagged when ``score > threshold``.
    """
    values = _finite_scores(scores)
    if isinstance(threshold, Threshold):
        limit: float | np.ndarray = threshold.value
    elif np.ndim(threshold) == 0:
        limit = float(threshold)  # type: ignore[arg-type]
    else:
        limit = np.asarray(threshold, dtype=np.float64).ravel()
        if limit.size != values.size:
            raise DataError(f"{limit.size} thresholds for {values.size} scores (one per timestamp needed)")
    if np.isnan(limit).any():
        raise DataError("the threshold is NaN")
    return scored_intervals(values > limit, values)
