"""One score track → a ranked list of candidate intervals, strongest first, each with a robust z.

A report that lists only the intervals above one threshold hides the near misses: on NAB
``nyc_taxi`` the fused score peaks at all five labelled events, yet a 1% percentile passes one.
So the track's peaks, at least ``separation`` rows apart, become candidates ranked by how far
their peak stands above the fit rows' scores (robust z: median and 1.4826 x MAD of the fit
rows), and the user's threshold method only marks which of them *pass*.

Rules, stated once:

* **peaks**: local maxima of the track (either end counts), at least ``separation`` rows apart,
  the higher one kept (``scipy.signal.find_peaks(distance=separation)``);
* **interval**: the contiguous rows around the peak whose score is above the midpoint between
  the fit-rows median and the peak (half-height, so a bump's width does not depend on where a
  threshold happens to sit), at most ``separation`` rows either side so one interval cannot
  swallow the series;
* **one excursion, one candidate**: a peak whose whole half-height run (before the cap) reaches a
  stronger candidate's peak is a shoulder of the same excursion (a bump or plateau wider than
  ``separation``) and is dropped; so the intervals listed never overlap;
* **passes**: ``percentile`` and ``pot`` are fitted on the fit rows' scores (no labels) and a
  candidate passes when its peak is above the value, as :func:`intervals_above` flags rows;
  ``top_k`` passes the ``k`` strongest candidates.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.core.intervals import Interval, mask_to_intervals
from anomalygraph.core.stats import median_scale
from anomalygraph.core.thresholds import (
    Threshold,
    ThresholdMethod,
    percentile_threshold,
    pot_threshold,
)

FIT_ROWS = "scores of the fit rows"


class RankedInterval(Interval):
    """A candidate interval ``[start, end]`` (inclusive rows) around one peak of the track."""

    peak: int = Field(ge=0)
    peak_score: float
    robust_z: float = Field(description="(peak_score - fit-rows median) / fit-rows 1.4826 MAD")
    passes: bool = Field(False, description="above the chosen threshold (top_k: among the k strongest)")
    rank: int = Field(ge=1, description="1 = strongest candidate")


def _whole(value: object) -> bool:
    """An integer, numpy's included, but not a bool (``True`` is not a count)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_track(scores: np.ndarray, fit_rows: slice) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise DataError(f"candidate intervals need one score track [T], got shape {values.shape}")
    if values.size == 0:
        raise DataError("cannot rank intervals of an empty score track")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"scores contain NaN or inf at {bad.size} rows (first row {int(bad[0])})")
    if not isinstance(fit_rows, slice):
        raise ConfigError(f"fit_rows must be a slice of rows, got {type(fit_rows).__name__}")
    fit = values[fit_rows]
    if fit.size == 0:
        raise DataError(f"fit_rows {fit_rows} selects no rows of the {values.size}-row score track")
    return values, fit



def _peaks(values: np.ndarray, separation: int) -> np.ndarray:
    """Local maxima at least ``separation`` rows apart, either end included, highest first."""
    from scipy.signal import find_peaks  # imported here: scipy.signal costs time at import

    padded = np.concatenate(([-np.inf], values, [-np.inf]))
    rows, _ = find_peaks(padded, distance=separation)
    rows = rows - 1
    return rows[np.argsort(-values[rows], kind="stable")]


def _half_height_run(values: np.ndarray, peak: int, median: float) -> tuple[int, int]:
    """The whole contiguous run around ``peak`` above half-height (midway from the fit median)."""
    above = values > median + (values[peak] - median) / 2
    above[peak] = True  # a peak at or below the median is a one-row run
    return next((start, end) for start, end in mask_to_intervals(above) if start <= peak <= end)


def candidate_intervals(
    scores: np.ndarray, *, fit_rows: slice, separation: int, max_candidates: int = 20
) -> list[RankedInterval]:
    """The track's strongest ``max_candidates`` peaks as intervals, strongest first (none passes yet)."""
    if not (_whole(separation) and separation >= 1):
        raise ConfigError(f"separation must be a whole number of rows >= 1, got {separation!r}")
    if not (_whole(max_candidates) and max_candidates >= 1):
        raise ConfigError(f"max_candidates must be a whole number >= 1, got {max_candidates!r}")
    separation = int(separation)
    values, fit = _check_track(scores, fit_rows)
    median, sigma = median_scale(fit)
    taken: list[RankedInterval] = []
    for peak in _peaks(values, separation).tolist():
        start, end = _half_height_run(values, peak, median)
        if any(start <= c.peak <= end for c in taken):
            continue  # the shoulder of a stronger candidate's excursion
        taken.append(
            RankedInterval(
                start=max(start, peak - separation), end=min(end, peak + separation),
                peak=peak, peak_score=float(values[peak]),
                robust_z=(float(values[peak]) - median) / sigma, rank=len(taken) + 1,
            )
        )
        if len(taken) == max_candidates:
            break
    return taken


def rank_intervals(
    scores: np.ndarray,
    *,
    fit_rows: slice,
    method: ThresholdMethod,
    contamination: float = 0.01,
    risk: float = 1e-3,
    k: int = 5,
    separation: int,
    max_candidates: int = 20,
) -> tuple[Threshold, list[RankedInterval]]:
    """The chosen threshold and the ranked candidates, each marked ``passes`` or not.

    The list holds passing and strongest non-passing candidates alike, so a report can show
    the near misses; it is cut at ``max_candidates``, so with a low threshold passing
    candidates beyond the cut are not listed.
    """
    if method not in ("percentile", "pot", "top_k"):
        raise ConfigError(f"threshold method must be percentile, pot or top_k, got {method!r}")
    if method == "top_k" and not (_whole(k) and 1 <= k <= max_candidates):
        raise ConfigError(f"k must be a whole number in 1..max_candidates ({max_candidates}), got {k!r}")
    candidates = candidate_intervals(scores, fit_rows=fit_rows, separation=separation, max_candidates=max_candidates)
    if method == "top_k":
        cut = candidates[min(int(k), len(candidates)) - 1]
        threshold = Threshold(
            value=cut.peak_score, method="top_k", params={"k": float(k), "n_candidates": float(len(candidates))},
            fitted_on=f"peaks of the candidate intervals (separation {separation} rows), all rows",
        )
        return threshold, [c.model_copy(update={"passes": bool(c.rank <= k)}) for c in candidates]
    fit = np.asarray(scores, dtype=np.float64)[fit_rows]
    if method == "percentile":
        threshold = percentile_threshold(fit, contamination)
    else:
        threshold = pot_threshold(fit, risk=risk)
    threshold = threshold.model_copy(update={"fitted_on": FIT_ROWS})
    return threshold, [c.model_copy(update={"passes": bool(c.peak_score > threshold.value)}) for c in candidates]
