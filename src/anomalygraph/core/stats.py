"""Robust statistics: one definition of the MAD-based scale that the whole package uses.

``1.4826 x MAD`` estimates the standard deviation of normal data while ignoring outliers,
which is why thresholds, fusion, the rule-bank operators and the window explanations all
measure "how unusual" in it. What to use when the MAD is 0 (a channel on a few discrete
levels, a constant window) differs by caller, so the fallback is the caller's, stated there.
"""

from __future__ import annotations

import numpy as np

MAD_TO_SIGMA = 1.4826
"""MAD of a normal distribution x 1.4826 = its standard deviation."""


def mad_sigma(x: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """``1.4826 x median(|x - median(x)|)`` along ``axis`` (a float for ``axis=None``); may be 0."""
    x = np.asarray(x)
    if axis is None:
        return MAD_TO_SIGMA * float(np.median(np.abs(x - np.median(x))))
    median = np.median(x, axis=axis, keepdims=True)
    return np.median(np.abs(x - median), axis=axis) * MAD_TO_SIGMA


def median_sigma(x: np.ndarray) -> tuple[float, float]:
    """Median and 1.4826 x MAD of all of ``x`` (the sigma may be 0)."""
    x = np.asarray(x)
    median = float(np.median(x))
    return median, MAD_TO_SIGMA * float(np.median(np.abs(x - median)))


def median_scale(x: np.ndarray) -> tuple[float, float]:
    """Median and a scale that is never 0: 1.4826 x MAD, else the std, else 1.

    Scores often sit on a few levels, where the MAD is 0 but the std is not; a constant
    reference gets 1, so a z measured against it stays finite.
    """
    x = np.asarray(x)
    median, sigma = median_sigma(x)
    return median, sigma if sigma > 0 else float(x.std()) or 1.0


def _tiny(level: np.ndarray) -> np.ndarray:
    return 1e-6 * np.maximum(1.0, np.abs(level))


def robust_scale(x: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    """Per-window, per-channel scale ``[B, D]``: 1.4826 × MAD, else the std, else ``fallback``, else 1.

    Telemetry often sits on a few discrete levels, where the MAD is 0 but the std is not; a
    channel that is constant in its window borrows the series-wide scale. The scale covers
    everything inside the window, seasonality included: on a strongly seasonal channel, one
    scale is a sizeable share of the daily swing, which a bank's magnitudes should allow for.
    """
    mad = mad_sigma(x, axis=1)
    med = np.median(x, axis=1)
    tiny = _tiny(med)
    scale = np.where(mad > tiny, mad, x.std(axis=1))
    if fallback is not None:
        scale = np.where(scale > tiny, scale, np.broadcast_to(fallback, scale.shape))
    return np.where(scale > tiny, scale, 1.0).astype(x.dtype)
