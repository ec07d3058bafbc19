"""Sliding windows over ``[T, D]`` arrays and the inverse map from window scores to timestamps.

Every windowed detector goes through these two functions, so score[t] always means timestamp t.
The last window is aligned to the end of the series even when the stride does not divide the
length, so no timestamp is left uncovered.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from anomalygraph.core.errors import DataError

Reduce = Literal["mean", "max"]


def window_starts(length: int, window: int, stride: int = 1) -> np.ndarray:
    """Start index of each window; the final start is ``length - window``."""
    if window < 1 or stride < 1:
        raise DataError(f"window ({window}) and stride ({stride}) must be at least 1")
    if length < window:
        raise DataError(f"series of {length} timestamps is shorter than the window of {window}")
    starts = np.arange(0, length - window + 1, stride)
    if starts[-1] != length - window:
        starts = np.append(starts, length - window)
    return starts


def sliding_windows(values: np.ndarray, window: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Windows ``[N, window, D]`` (a read-only view where possible) and their start indices."""
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    starts = window_starts(len(values), window, stride)
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)  # [T-w+1, D, w]
    return view[starts].transpose(0, 2, 1), starts


def windows_to_scores(
    window_scores: np.ndarray,
    starts: np.ndarray,
    window: int,
    length: int,
    reduce: Reduce = "mean",
) -> np.ndarray:
    """Map ``[N]`` (one score per window) or ``[N, window]`` (per step) scores to ``[length]``.

    Each timestamp takes the mean or max over the windows that cover it.
    """
    scores = np.asarray(window_scores, dtype=np.float64)
    starts = np.asarray(starts, dtype=np.int64)
    if scores.ndim == 1:
        scores = np.repeat(scores[:, None], window, axis=1)
    if scores.shape != (len(starts), window):
        raise DataError(
            f"window scores of shape {scores.shape} do not match {len(starts)} windows of {window}"
        )
    index = (starts[:, None] + np.arange(window)[None, :]).ravel()
    if index.min(initial=0) < 0 or index.max(initial=0) >= length:
        raise DataError(f"windows reach outside a series of {length} timestamps")
    counts = np.bincount(index, minlength=length)
    if (counts == 0).any():
        raise DataError(f"timestamp {int(np.argmin(counts))} is covered by no window")
    if reduce == "mean":
        return np.bincount(index, weights=scores.ravel(), minlength=length) / counts
    if reduce == "max":
        out = np.full(length, -np.inf)
        np.maximum.at(out, index, scores.ravel())
        return out
    raise DataError(f"unknown reduction {reduce!r}; use 'mean' or 'max'")


def window_maxima(scores: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """The largest of ``scores`` inside each window of ``window`` steps starting at ``starts``.

    How a window is ranked by a detector's per-timestamp scores (normal candidate filtering).
    """
    from scipy.ndimage import maximum_filter1d

    return maximum_filter1d(np.asarray(scores, dtype=np.float64), window, origin=-(window // 2), mode="nearest")[starts]
