"""A plot, said in words: what a text-only model gets instead of the image.

Per channel: summary statistics with where the extremes are, the dominant period, level shifts
(change points of the mean), and a sketch of the shape as three rows of block characters
(bucket maximum, mean and minimum on a shared 8-level scale), with highlighted intervals marked
under the buckets they touch. Short enough for a small model's context (about 10 lines a
channel), faithful enough that spikes, shifts and seasonality survive.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from anomalygraph.core.intervals import Interval
from anomalygraph.data.changes import ChangePoint, change_points
from anomalygraph.data.periods import periods
from anomalygraph.data.series import TimeSeries, row_label

BLOCKS = "▁▂▃▄▅▆▇█"
__all__ = ["BLOCKS", "ChangePoint", "change_points", "periods", "render_channel", "render_series", "sketch"]


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _when(index: int, timestamps: pd.DatetimeIndex | None) -> str:
    return row_label(index, timestamps, "t")


def _levels(values: np.ndarray, lo: float, hi: float) -> str:
    if hi <= lo:
        return BLOCKS[3] * len(values)
    idx = np.clip(((values - lo) / (hi - lo) * (len(BLOCKS) - 1)).round().astype(int), 0, len(BLOCKS) - 1)
    return "".join(BLOCKS[i] for i in idx)


def sketch(x: np.ndarray, *, width: int = 60, intervals: Sequence[tuple[int, int]] = ()) -> list[str]:
    """Rows ``max``, ``mean``, ``min`` of ``width`` buckets, plus a ``marks`` row when intervals are given."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n_buckets = max(1, min(width, len(x)))
    edges = np.linspace(0, len(x), n_buckets + 1).astype(int)
    buckets = [x[a:b] for a, b in itertools.pairwise(edges)]
    hi_row = np.array([b.max() for b in buckets])
    mean_row = np.array([b.mean() for b in buckets])
    lo_row = np.array([b.min() for b in buckets])
    lo, hi = float(x.min()), float(x.max())
    rows = [
        f"max  {_levels(hi_row, lo, hi)}",
        f"mean {_levels(mean_row, lo, hi)}",
        f"min  {_levels(lo_row, lo, hi)}",
    ]
    if intervals:
        marks = [" "] * n_buckets
        for start, end in intervals:
            for i, (a, b) in enumerate(itertools.pairwise(edges)):
                if start < b and end >= a:
                    marks[i] = "^"
        rows.append("mark " + "".join(marks))
    return rows


def _as_pairs(intervals: Sequence[Interval | tuple[int, int]] | None) -> list[tuple[int, int]]:
    pairs = []
    for item in intervals or ():
        if isinstance(item, Interval):
            pairs.append((item.start, item.end))
        else:
            start, end = item
            pairs.append((int(start), int(end)))
    return pairs


def _step(timestamps: pd.DatetimeIndex) -> str | None:
    if len(timestamps) < 2:
        return None
    return str(pd.Timedelta(np.median(np.diff(timestamps.to_numpy()))))


def render_channel(
    x: np.ndarray, name: str, *, timestamps: pd.DatetimeIndex | None = None,
    intervals: Sequence[tuple[int, int]] = (), width: int = 60,
) -> str:
    x = np.asarray(x, dtype=np.float64).ravel()
    q05, q50, q95 = np.percentile(x, [5, 50, 95])
    imin, imax = int(np.argmin(x)), int(np.argmax(x))
    lines = [
        f"[{name}] mean {_fmt(x.mean())}, std {_fmt(x.std())}, median {_fmt(q50)}, 5-95% {_fmt(q05)} to {_fmt(q95)}; "
        f"min {_fmt(x[imin])} at {_when(imin, timestamps)}, max {_fmt(x[imax])} at {_when(imax, timestamps)}"
    ]
    found = periods(x)
    if found:
        text = "; ".join(f"{lag} steps (autocorrelation {acf:.2f})" for lag, acf in found)
        lines.append(f"  periods: {text}")
    else:
        lines.append("  periods: none clear")
    shifts = change_points(x, period=found[0][0] if found else None)
    if shifts:
        lines.append(
            "  level shifts: "
            + "; ".join(f"{_when(c.index, timestamps)}: {_fmt(c.before)} -> {_fmt(c.after)}" for c in shifts)
        )
    else:
        lines.append("  level shifts: none detected")
    per = int(np.ceil(len(x) / max(1, min(width, len(x)))))
    lines.append(f"  shape ({min(width, len(x))} buckets of about {per} points; levels ▁ = {_fmt(x.min())} to █ = {_fmt(x.max())}):")
    lines += [f"    {row}" for row in sketch(x, width=width, intervals=intervals)]
    return "\n".join(lines)


def render_series(
    series: TimeSeries | np.ndarray,
    *,
    intervals: Sequence[Interval | tuple[int, int]] | None = None,
    width: int = 60,
    max_channels: int = 4,
) -> str:
    """The textual stand-in for a plot of ``series`` (with ``intervals`` highlighted)."""
    from anomalygraph.plots.detection import pick_channels

    ts = series if isinstance(series, TimeSeries) else TimeSeries(values=np.asarray(series), name="series")
    pairs = _as_pairs(intervals)
    head = f"Series {ts.name!r}: {ts.length:,} points, {ts.n_channels} channel{'s' if ts.n_channels != 1 else ''}"
    if ts.timestamps is not None:
        head += f", {ts.timestamps[0]} to {ts.timestamps[-1]}"
        if step := _step(ts.timestamps):
            head += f" (median step {step})"
    lines = [head + "."]
    shown = pick_channels(ts, max_channels)
    if len(shown) < ts.n_channels:
        lines.append(f"Showing the {len(shown)} most variable of {ts.n_channels} channels.")
    for i in shown:
        lines.append(render_channel(ts.values[:, i], ts.channels[i], timestamps=ts.timestamps, intervals=pairs, width=width))
    if pairs:
        spans = "; ".join(
            f"{_when(a, ts.timestamps)} to {_when(min(b, ts.length - 1), ts.timestamps)}" for a, b in pairs[:10]
        )
        more = f" (+{len(pairs) - 10} more)" if len(pairs) > 10 else ""
        lines.append(f"Highlighted intervals (marked ^): {spans}{more}")
    return "\n".join(lines)
