"""Checks shared by every metric: one message naming the problem, never a silent number.

A metric that compares scores with labels is undefined without at least one anomalous and one
normal timestamp (there is nothing to recall, or no false alarm to count), so such inputs are
refused rather than scored.
"""

from __future__ import annotations

import numpy as np

from anomalygraph.core.errors import ConfigError, DataError


def _one_dimensional(values: object, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise DataError(f"{name} must be one-dimensional (one value per timestamp), got shape {array.shape}")
    return array


def check_labels(labels: object, *, require_both: bool = True) -> np.ndarray:
    """Labels as a boolean array; refuses anything but 0/1, and one-class labels when asked."""
    raw = _one_dimensional(labels, "labels")
    if raw.size == 0:
        raise DataError("labels are empty: metrics need at least one timestamp")
    if raw.dtype == bool:
        mask = raw
    else:
        if not np.issubdtype(raw.dtype, np.number):
            raise DataError(f"labels must be 0/1 numbers, got dtype {raw.dtype}")
        bad = ~((raw == 0) | (raw == 1))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"labels must be 0/1: found {raw[i].item()!r} at index {i} ({int(bad.sum())} such values)"
            )
        mask = raw == 1
    if require_both:
        n_pos = int(mask.sum())
        if n_pos == 0:
            raise DataError(
                "metric undefined: the labels mark no anomalous timestamp (all 0), so there is "
                "nothing to detect; evaluate on a series with at least one labelled anomaly"
            )
        if n_pos == mask.size:
            raise DataError(
                "metric undefined: every timestamp is labelled anomalous (all 1), so false alarms "
                "cannot be counted"
            )
    return mask


def check_scores(scores: object, length: int | None = None) -> np.ndarray:
    """Scores as finite float64; refuses NaN/inf and a length that differs from the labels."""
    raw = _one_dimensional(scores, "scores")
    if raw.dtype == bool:
        raw = raw.astype(np.float64)
    if not np.issubdtype(raw.dtype, np.number):
        raise DataError(f"scores must be numbers, got dtype {raw.dtype}")
    values = raw.astype(np.float64, copy=False)
    if length is not None and values.size != length:
        raise DataError(
            f"labels and scores differ in length: {length} labels but {values.size} scores "
            "(they must be aligned, one score per timestamp)"
        )
    if values.size == 0:
        raise DataError("scores are empty: metrics need at least one timestamp")
    finite = np.isfinite(values)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise DataError(
            f"scores must be finite: found {values[i]} at index {i} "
            f"({int((~finite).sum())} non-finite scores); repair or drop them before evaluating"
        )
    return values


def check_pair(labels: object, scores: object) -> tuple[np.ndarray, np.ndarray]:
    """Aligned boolean labels (both classes present) and finite float64 scores."""
    lab = _one_dimensional(labels, "labels")
    sco = _one_dimensional(scores, "scores")
    if lab.size != sco.size:
        raise DataError(
            f"labels and scores differ in length: {lab.size} labels but {sco.size} scores "
            "(they must be aligned, one score per timestamp)"
        )
    return check_labels(lab), check_scores(sco, lab.size)


def check_window(sliding_window: object) -> int:
    """A buffer length: a non-negative integer."""
    if isinstance(sliding_window, bool) or not isinstance(sliding_window, int | np.integer):
        raise ConfigError(f"sliding_window must be a non-negative integer, got {sliding_window!r}")
    if sliding_window < 0:
        raise ConfigError(f"sliding_window must be a non-negative integer, got {sliding_window}")
    return int(sliding_window)


def check_threshold(threshold: object) -> float:
    """A finite decision threshold (a point is flagged when its score is above it)."""
    try:
        value = float(threshold)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"threshold must be a number, got {threshold!r}") from None
    if not np.isfinite(value):
        raise ConfigError(f"threshold must be finite, got {threshold!r}")
    return value
