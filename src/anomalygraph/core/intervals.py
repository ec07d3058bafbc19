"""Contiguous runs of a 0/1 mask, shared by labels, predictions, metrics and reports."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field


class Interval(BaseModel):
    """An anomalous interval ``[start, end]`` (inclusive indices) with its strongest score."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    peak: int | None = None
    peak_score: float | None = None

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def mask_to_intervals(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive ``(start, end)`` pairs of the runs of ones, in order."""
    m = np.asarray(mask).astype(bool).ravel()
    if m.size == 0:
        return []
    edges = np.diff(np.concatenate(([0], m.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def intervals_to_mask(intervals: list[tuple[int, int]], length: int) -> np.ndarray:
    """0/1 mask of ``length`` with ones on each inclusive interval (clipped to the series)."""
    mask = np.zeros(length, dtype=np.uint8)
    for start, end in intervals:
        mask[max(start, 0) : min(end, length - 1) + 1] = 1
    return mask


def scored_intervals(mask: np.ndarray, scores: np.ndarray) -> list[Interval]:
    """Intervals of ``mask`` with the position and value of the peak score inside each."""
    scores = np.asarray(scores, dtype=np.float64)
    out = []
    for start, end in mask_to_intervals(mask):
        peak = start + int(np.argmax(scores[start : end + 1]))
        out.append(Interval(start=start, end=end, peak=peak, peak_score=float(scores[peak])))
    return out
