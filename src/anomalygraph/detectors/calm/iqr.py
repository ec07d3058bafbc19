"""CALM's anomaly rule: bounds from quantile forecasts, the flag, and the interval checks.

The rule (arXiv 2508.21273, section 3.3): a point is anomalous when the actual value lies outside
``[Q1 - k * IQR, Q3 + k * IQR]`` with ``IQR = Q3 - Q1`` and ``k = 1.5``, from the forecaster's
q20, q30, q70 and q80. The paper does not say which of those are Q1 and Q3.

**Decision, from the authors' code.** ``AshokDevireddy/beam``,
``sdks/python/apache_beam/ml/ts/inference_model_handler.py`` (``DynamicTimesFmModelHandler.run_inference``)
takes TimesFM's quantile columns 2, 3, 7, 8 (q20, q30, q70, q80) and sets
``Q1 = nanmean(q20, q30)`` and ``Q3 = nanmean(q70, q80)``; a point is flagged when
``actual > upper`` or ``actual < lower`` (strictly), with score ``(actual - upper) / IQR`` above
or ``(lower - actual) / IQR`` below. So here the defaults are ``q1=(0.2, 0.3)`` and
``q3=(0.7, 0.8)``: each quartile stand-in is the mean of the levels named, and one level (``q1=0.25``
with a forecaster that predicts q25) works as well. Both are configurable.

Pure numpy; shapes broadcast, the quantile axis is the last one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from anomalygraph.core.errors import ConfigError, DataError

Q1_LEVELS: tuple[float, ...] = (0.2, 0.3)
Q3_LEVELS: tuple[float, ...] = (0.7, 0.8)
IQR_K = 1.5

__all__ = [
    "IQR_K",
    "Q1_LEVELS",
    "Q3_LEVELS",
    "flag",
    "interval_coverage",
    "interval_width",
    "iqr_bounds",
    "outlier_score",
    "quantile_column",
]


def _levels(levels: float | Sequence[float]) -> tuple[float, ...]:
    return (float(levels),) if isinstance(levels, (int, float)) else tuple(float(q) for q in levels)


def quantile_column(quantile_forecast: np.ndarray, quantiles: Sequence[float], level: float) -> np.ndarray:
    """The forecast of one level (``[...]``, the quantile axis dropped); the level must be one predicted."""
    forecast = np.asarray(quantile_forecast, dtype=np.float64)
    levels = np.asarray(quantiles, dtype=np.float64)
    if forecast.shape[-1:] != levels.shape:
        raise DataError(f"quantile forecast has {forecast.shape[-1:]} levels on its last axis, "
                        f"but {len(levels)} quantiles were named {list(levels)}")
    hits = [i for i, q in enumerate(levels.tolist()) if abs(q - level) <= 1e-9]  # a few levels: no numpy call per point
    if not hits:
        raise ConfigError(f"quantile level {level:g} is not among the forecaster's levels {[f'{q:g}' for q in levels]}")
    return forecast[..., hits[0]]


def iqr_bounds(quantile_forecast: np.ndarray, quantiles: Sequence[float], q1: float | Sequence[float] = Q1_LEVELS,
               q3: float | Sequence[float] = Q3_LEVELS, k: float = IQR_K) -> tuple[np.ndarray, np.ndarray]:
    """``(lower, upper) = (Q1 - k * IQR, Q3 + k * IQR)``, each ``[...]``: Q1 and Q3 the means of the levels named."""
    low, high = _levels(q1), _levels(q3)
    if not low or not high:
        raise ConfigError("q1 and q3 must each name at least one quantile level")
    if max(low) >= min(high):
        raise ConfigError(f"the levels of q1 {list(low)} must all lie below those of q3 {list(high)}")
    if not np.isfinite(k) or k < 0:
        raise ConfigError(f"k must be a finite number of 0 or more, got {k}")
    first = np.mean([quantile_column(quantile_forecast, quantiles, q) for q in low], axis=0)
    third = np.mean([quantile_column(quantile_forecast, quantiles, q) for q in high], axis=0)
    iqr = third - first
    return first - k * iqr, third + k * iqr


def _actual(actual: np.ndarray) -> np.ndarray:
    array = np.asarray(actual, dtype=np.float64)
    if not np.isfinite(array).all():
        raise DataError(f"actual values hold {int((~np.isfinite(array)).sum())} NaN or infinite values; "
                        "fill them before flagging")
    return array


def flag(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """True where the actual value lies strictly outside ``[lower, upper]`` (a point on a bound is normal)."""
    value = _actual(actual)
    return np.asarray((value < lower) | (value > upper), dtype=bool)


def outlier_score(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, k: float = IQR_K) -> np.ndarray:
    """How far outside the bounds, in IQRs: the authors' score where flagged, negative inside.

    ``IQR = (upper - lower) / (1 + 2k)`` recovers it from the bounds; a zero IQR counts as a tiny
    one, so the score stays finite and ranks points for ROC AUC.
    """
    value = _actual(actual)
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    iqr = (upper - lower) / (1.0 + 2.0 * k)
    tiny = 1e-12 * np.maximum(1.0, np.maximum(np.abs(lower), np.abs(upper)))
    return np.maximum(value - upper, lower - value) / np.maximum(iqr, tiny)


def interval_coverage(actual: np.ndarray, lower_q: np.ndarray, upper_q: np.ndarray) -> float:
    """Share of actual values inside ``[lower_q, upper_q]`` (bounds included).

    For ``[q20, q80]`` a calibrated forecaster covers about 0.6; far less after fine-tuning is the
    paper's "quantile collapse".
    """
    value = _actual(actual)
    inside = (value >= lower_q) & (value <= upper_q)
    if inside.size == 0:
        raise DataError("no actual values to measure coverage on")
    return float(np.mean(inside))


def interval_width(lower_q: np.ndarray, upper_q: np.ndarray) -> float:
    """Mean width of ``[lower_q, upper_q]``: with coverage, the other half of the collapse check."""
    width = np.asarray(upper_q, dtype=np.float64) - np.asarray(lower_q, dtype=np.float64)
    if width.size == 0:
        raise DataError("no intervals to measure the width of")
    return float(np.mean(width))
