"""Sustained level shifts in a channel, found on period-length block medians.

Shared by the tools' profile, the text rendering of plots for models without vision, and
window explanations, so every part of the project reports the same change points.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from anomalygraph.core.stats import mad_sigma

_MAX_SEGMENT_POINTS = 2000


class ChangePoint(BaseModel):
    """The mean moves from ``before`` to ``after`` at row ``index``."""

    model_config = ConfigDict(extra="forbid")

    index: int
    before: float
    after: float


def _robust_sigma(y: np.ndarray) -> float:
    diffs = np.diff(y)
    if diffs.size == 0:
        return 0.0
    sigma = mad_sigma(diffs) / np.sqrt(2)
    return sigma if sigma > 0 else float(np.std(diffs)) / np.sqrt(2)


def change_points(
    x: np.ndarray, *, max_points: int = 5, period: int | None = None, penalty: float = 3.0, min_effect: float = 0.1
) -> list[ChangePoint]:
    """Level shifts by binary segmentation with a BIC-like penalty, on period-length block medians.

    Summarising each period first keeps seasonality from reading as shifts, and medians keep a
    lone spike from moving its block; a segment must span at least 3 blocks, and a shift must be
    at least ``min_effect`` of the series' 5-95% range to be worth telling a model about.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    block = max(int(period or 1), int(np.ceil(len(x) / _MAX_SEGMENT_POINTS)), 1)
    n_blocks = len(x) // block
    if n_blocks < 8:
        return []
    y = np.median(x[: n_blocks * block].reshape(n_blocks, block), axis=1)
    q05, q95 = np.percentile(x, [5, 95])
    smallest = min_effect * float(q95 - q05)
    sigma = _robust_sigma(y)
    if sigma == 0:
        sigma = float(np.std(y)) or 1.0
    threshold = penalty * sigma**2 * np.log(n_blocks)
    min_size = 3
    found: list[int] = []
    segments = [(0, n_blocks)]
    while segments and len(found) < max_points:
        best = None
        for a, b in segments:
            n = b - a
            if n < 2 * min_size:
                continue
            seg = y[a:b]
            csum = np.cumsum(seg)
            k = np.arange(min_size, n - min_size + 1)
            left_mean = csum[k - 1] / k
            right_mean = (csum[-1] - csum[k - 1]) / (n - k)
            gain = k * (n - k) / n * (left_mean - right_mean) ** 2
            gain[np.abs(left_mean - right_mean) < smallest] = 0.0
            i = int(np.argmax(gain))
            if gain[i] > threshold and (best is None or gain[i] > best[0]):
                best = (float(gain[i]), a, b, a + int(k[i]))
        if best is None:
            break
        _, a, b, split = best
        found.append(split)
        segments.remove((a, b))
        segments += [(a, split), (split, b)]
    bounds = [0, *sorted(found), n_blocks]
    points = []
    for left, cut, right in zip(bounds, bounds[1:], bounds[2:], strict=False):
        points.append(
            ChangePoint(index=cut * block, before=float(y[left:cut].mean()), after=float(y[cut:right].mean()))
        )
    return points
