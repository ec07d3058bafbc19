"""How a window differs from its surroundings, in robust units a person can read.

For each channel: the window's level against the context median (in robust sigmas), its
largest excursion, its spread relative to the context, and a morphology guess from the rule
bank's closed vocabulary, so agents and rule banks speak the same words.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from anomalygraph.core.errors import DataError
from anomalygraph.core.stats import median_sigma
from anomalygraph.data.periods import periods
from anomalygraph.data.series import TimeSeries
from anomalygraph.rulebank.names import Morphology


class ChannelDeviation(BaseModel):
    channel: str
    level_z: float = Field(description="(window median - context median) / context robust sigma")
    peak_z: float = Field(description="largest |value - context median| in the window, in robust sigmas")
    spread_ratio: float = Field(description="window std / context std")
    morphology: Morphology | None = Field(description="closest shape in the rule-bank vocabulary, None when normal")


class WindowExplanation(BaseModel):
    series: str
    start: int
    end: int
    start_time: str | None
    end_time: str | None
    context_rows: tuple[int, int]
    deviating_channels: list[ChannelDeviation] = Field(description="channels beyond 3 robust sigmas, strongest first")
    n_channels: int
    labelled_fraction: float | None = Field(description="share of the window's rows labelled anomalous, when labels exist")
    top_channel: str | None = Field(None, description="the channel that deviates most (None: none deviates)")
    summary: str


def _robust_scale(x: np.ndarray, floor: float) -> tuple[float, float]:
    """Median and robust sigma of ``x``; ``floor`` keeps a flat context from making every change infinite."""
    median, scale = median_sigma(x)
    return median, max(scale, float(x.std()) if scale == 0 else 0.0, floor)


def _morphology(
    window: np.ndarray, context: np.ndarray, level_z: float, peak_z: float, spread: float, floor: float
) -> Morphology | None:
    if max(abs(level_z), peak_z) < 3 and spread < 2.5:
        return None
    median, scale = _robust_scale(context, floor)
    z = (window - median) / scale
    extreme = np.abs(z) > 3
    if peak_z >= 4 and (extreme.mean() <= 0.2 or len(window) <= 2):  # one or two rows cannot be a shift
        return "spike" if z[np.argmax(np.abs(z))] > 0 else "dip"
    if spread >= 2.5 and abs(level_z) < 3:
        return "variance_burst"
    if abs(level_z) >= 3 and len(window) < 4:
        return "spike" if level_z > 0 else "dip"
    if abs(level_z) >= 3:
        return "drift" if _ramp_fits_better(window) else "level_shift"
    return "contextual"


def _ramp_fits_better(window: np.ndarray) -> bool:
    """Whether a straight line explains the window better than one step (two flat segments).

    A level shift is abrupt, a drift gradual; the window often starts before the change (labels
    and detected intervals are rarely tight), so a test on the window's halves reads a late step
    as a ramp. The best single split is found in one pass over cumulative sums.
    """
    y = np.asarray(window, dtype=np.float64)
    n = len(y)
    if n < 6:
        return False
    t = np.arange(n, dtype=np.float64)
    slope, intercept = np.polyfit(t, y, 1)
    line_sse = float(np.sum((y - (slope * t + intercept)) ** 2))
    csum, csum2 = np.cumsum(y), np.cumsum(y * y)
    k = np.arange(1, n)  # left segment y[:k]
    left = csum2[k - 1] - csum[k - 1] ** 2 / k
    right = (csum2[-1] - csum2[k - 1]) - (csum[-1] - csum[k - 1]) ** 2 / (n - k)
    step_sse = float(np.min(left + right))
    return line_sse < step_sse


def _normal_run(x: np.ndarray, lo: int, start: int, end: int, hi: int) -> int:
    """The longest run of equal values in the context ``lo..start-1`` and ``end+1..hi-1``, leaving out
    the runs that touch the window: a stuck stretch often begins before the labelled rows or ends
    after them, and its continuation is the same fault, not the channel's normal behaviour."""
    left, right = x[lo:start], x[end + 1 : hi]
    if len(left) and start < len(x):
        left = left[: len(left) - _edge_run(left[::-1], x[start])]
    if len(right):
        right = right[_edge_run(right, x[end]):]
    return max(_longest_run(left), _longest_run(right))


def _edge_run(x: np.ndarray, value: float) -> int:
    """How many leading values of ``x`` equal ``value``."""
    differs = np.flatnonzero(x != value)
    return int(differs[0]) if len(differs) else len(x)


def _longest_run(x: np.ndarray) -> int:
    """The longest run of identical consecutive values."""
    if len(x) == 0:
        return 0
    breaks = np.flatnonzero(np.diff(x) != 0)
    edges = np.concatenate(([-1], breaks, [len(x) - 1]))
    return int(np.max(np.diff(edges)))


def seasonal_residual(x: np.ndarray, rows: np.ndarray, reference: np.ndarray, period: int) -> np.ndarray:
    """``x[rows]`` minus the median of ``x`` at the same phase (whole periods away) among ``reference`` rows."""
    allowed = np.zeros(len(x), dtype=bool)
    allowed[reference] = True
    k = np.arange(1, len(x) // period + 1)
    offsets = np.concatenate([-k[::-1], k]) * period
    idx = rows[:, None] + offsets[None, :]
    valid = (idx >= 0) & (idx < len(x))
    idx = np.where(valid, idx, 0)
    valid &= allowed[idx]
    same_phase = np.where(valid, x[idx], np.nan)
    has = valid.any(axis=1)
    baseline = np.full(len(rows), np.nan)
    baseline[has] = np.nanmedian(same_phase[has], axis=1)
    return np.where(has, x[rows] - baseline, np.nan)


def explain_window(series: TimeSeries, start: int, end: int, *, context: int | None = None, top: int = 5,
                   channel: str | None = None) -> WindowExplanation:
    """Compare rows ``start..end`` (inclusive) with ``context`` rows on each side (default 5x the window).

    A seasonal channel is compared phase by phase: each value against the median of the context
    at the same phase of its dominant period, so a quiet night is not mistaken for a drop. With
    ``channel``, only that channel is reported (the question "what shape is it in channel X"
    must not be answered from the channel that deviates most).
    """
    if not 0 <= start <= end < series.length:
        raise DataError(f"window {start}..{end} is outside series '{series.name}' of {series.length} rows")
    if channel is not None and channel not in series.channels:
        shown = ", ".join(series.channels[:20]) + (" ..." if series.n_channels > 20 else "")
        raise DataError(f"series '{series.name}' has no channel '{channel}'; its channels: {shown}")
    length = end - start + 1
    reach = context if context is not None else max(5 * length, 100)
    lo, hi = max(0, start - reach), min(series.length, end + 1 + reach)
    ctx_idx = np.r_[lo:start, end + 1 : hi]
    if len(ctx_idx) < 10:
        raise DataError(f"window {start}..{end} leaves {len(ctx_idx)} context rows; at least 10 are needed")
    deviations = []
    # A tenth of each channel's whole-series spread: the smallest change worth calling a deviation.
    floors = 0.1 * series.values.std(axis=0) + 1e-9
    win_idx = np.arange(start, end + 1)
    for j, name in enumerate(series.channels):
        if channel is not None and name != channel:
            continue
        x = series.values[:, j].astype(np.float64)
        window, ctx = x[win_idx], x[ctx_idx]
        continuous = len(np.unique(ctx[:500])) > 10  # on/off command channels are often flat; not a stuck sensor
        # stuck: the window hardly moves, or repeats one value far longer than the context ever does
        stuck = length >= 3 and ctx.std() > floors[j] and window.std() <= 0.01 * ctx.std()
        if continuous and not stuck and length >= 5:
            run = _longest_run(window)
            stuck = run >= max(5, 0.25 * length) and run >= 3 * max(_normal_run(x, lo, start, end, hi), 1)
        if continuous and stuck:
            # a stuck sensor can sit at a normal level, so it is judged on the raw values first
            deviations.append(ChannelDeviation(channel=name, level_z=0.0, peak_z=0.0, spread_ratio=round(
                float(window.std() / ctx.std()), 4), morphology="flatline"))
            continue
        seasons = periods(x[lo:hi])
        if seasons and seasons[0][0] <= len(ctx_idx) // 2:
            period = seasons[0][0]
            window = seasonal_residual(x, win_idx, ctx_idx, period)
            ctx = seasonal_residual(x, ctx_idx, ctx_idx, period)
            window, ctx = np.nan_to_num(window, nan=0.0), ctx[np.isfinite(ctx)]
            if len(ctx) < 10:
                window, ctx = x[win_idx], x[ctx_idx]
        median, scale = _robust_scale(ctx, float(floors[j]))
        level_z = (float(np.median(window)) - median) / scale
        peak_z = float(np.max(np.abs(window - median))) / scale
        spread = float(window.std()) / max(float(ctx.std()), float(floors[j])) if length > 1 else 0.0
        morph = _morphology(window, ctx, level_z, peak_z, spread, float(floors[j]))
        if morph is not None:
            deviations.append(ChannelDeviation(channel=name, level_z=round(level_z, 2), peak_z=round(peak_z, 2),
                                               spread_ratio=round(spread, 2), morphology=morph))
    deviations.sort(key=lambda d: -max(abs(d.level_z), d.peak_z))
    ts = series.timestamps
    labelled = None if series.labels is None else float(series.labels[start : end + 1].mean())
    if deviations:
        head = ", ".join(f"{d.channel} ({d.morphology}, peak {d.peak_z:.1f} sigma)" for d in deviations[:3])
        text = f"{len(deviations)} of {series.n_channels} channel(s) deviate from their context: {head}"
        if channel is not None:
            d = deviations[0]
            text = f"channel {channel} deviates from its context: {d.morphology}, peak {d.peak_z:.1f} sigma"
    elif channel is not None:
        text = f"channel {channel} does not deviate by more than 3 robust sigmas from rows {lo}..{hi - 1}"
    else:
        text = f"no channel deviates by more than 3 robust sigmas from rows {lo}..{hi - 1}"
    return WindowExplanation(
        series=series.name, start=start, end=end,
        start_time=None if ts is None else str(ts[start]), end_time=None if ts is None else str(ts[end]),
        context_rows=(lo, hi - 1), deviating_channels=deviations[:top], n_channels=series.n_channels,
        labelled_fraction=labelled, top_channel=deviations[0].channel if deviations else None, summary=text,
    )
