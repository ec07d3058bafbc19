"""Context profiling: local scale, channel choice, and where in a window an anomaly goes.

A rule's contextual prior (peak, trough, rising or falling edge, a seasonal phase, a regime)
becomes a choice of segment start per window. Everything works on whole batches: the
position preferences are ranked per row with one ``argsort``, never a per-window loop.
"""

from __future__ import annotations

import numpy as np

from anomalygraph.core.errors import ConfigError
from anomalygraph.core.stats import robust_scale
from anomalygraph.rulebank.schema import ChannelTarget, Placement

TOP_SHARE = 0.1  # peak/trough/edge: the segment centre is one of the top 10 % positions


def series_scale(values: np.ndarray) -> np.ndarray:
    """Series-wide robust scale per channel ``[D]`` (the fallback for flat windows)."""
    return robust_scale(np.asarray(values)[None])[0]


# ------------------------------------------------------------------- channels
def choose_channels(
    x: np.ndarray,
    target: ChannelTarget,
    rng: np.random.Generator,
    *,
    named: list[int] | None = None,
    keep_free: int = 0,
    spread: np.ndarray | None = None,
) -> np.ndarray:
    """``[B, D]`` bool: the channels each window's anomaly touches.

    ``keep_free`` leaves at least that many varying channels untouched (a correlation break
    needs a channel to break away from). ``spread[B, D]`` is each window's max - min per
    channel when the caller has it already (the sampler precomputes it for all candidates).
    """
    b, _, d = x.shape
    if target.mode == "all":
        return np.ones((b, d), dtype=bool)
    if target.mode == "named":
        chosen = np.zeros((b, d), dtype=bool)
        chosen[:, named or []] = True
        return chosen
    eligible = np.ones((b, d), dtype=bool)
    if target.varying_only:
        eligible = (np.ptp(x, axis=1) if spread is None else spread) > 0
        eligible[~eligible.any(axis=1)] = True  # a flat window: any channel will do
    n_eligible = eligible.sum(axis=1)
    if target.fraction is not None:
        k = np.ceil(target.fraction.sample(rng, b) * n_eligible)
    elif target.count is not None:
        k = np.rint(target.count.sample(rng, b))
    else:
        k = np.ones(b)
    cap = np.where(n_eligible > keep_free, n_eligible - keep_free, 1)
    k = np.clip(k, 1, cap).astype(np.int64)
    keys = np.where(eligible, rng.random((b, d)), 2.0)
    kth = np.take_along_axis(np.sort(keys, axis=1), (k - 1)[:, None], axis=1)
    return keys <= kth


def reference_channel(x: np.ndarray, channels: np.ndarray, spread: np.ndarray | None = None) -> np.ndarray:
    """``[B]``: the touched channel that varies most in each window; placement reads its shape."""
    if spread is None:
        cols = np.flatnonzero(channels.any(axis=0))
        spread = np.zeros(channels.shape, dtype=x.dtype)
        spread[:, cols] = np.ptp(x[:, :, cols], axis=1)
    return np.argmax(np.where(channels, spread, -1.0), axis=1)


def window_spread(values: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """Max - min of every channel over each window ``[N, D]``, by running max/min filters (O(T·D))."""
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    origin = -(window // 2)  # puts the filter's window at [t, t + window)
    hi = maximum_filter1d(values, window, axis=0, origin=origin, mode="nearest")
    lo = minimum_filter1d(values, window, axis=0, origin=origin, mode="nearest")
    return (hi - lo)[starts]


# ------------------------------------------------------------------- placement
def in_phase(phase: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    lo, hi = window
    return (phase >= lo) & (phase <= hi) if lo <= hi else (phase >= lo) | (phase <= hi)


def choose_starts(
    signal: np.ndarray,
    length: np.ndarray,
    placement: Placement,
    rng: np.random.Generator,
    *,
    phase: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Segment starts ``[B]`` for ``signal[B, L]`` (the reference channel) and how many fell back to anywhere.

    The segment is placed by its centre: on one of the highest (peak), lowest (trough),
    steepest up/down (rising/falling) positions, or at a position whose seasonal phase lies in
    ``placement.phase``. A window with no such position gets a uniform start.
    """
    b, n = signal.shape
    n_valid = n - length + 1
    u = rng.random(b)
    anywhere = np.floor(u * n_valid).astype(np.int64)
    if placement.location == "anywhere":
        return anywhere, 0
    pos = np.arange(n)[None, :]
    valid = pos < n_valid[:, None]
    centre = np.minimum(pos + (length // 2)[:, None], n - 1)
    if placement.location == "phase":
        if phase is None:
            raise ConfigError("placement at a phase needs the phase of each window step")
        ok = valid & in_phase(np.take_along_axis(phase, centre, axis=1), placement.phase or (0.0, 1.0))
        keys = np.where(ok, rng.random((b, n)), -1.0)
        found = ok.any(axis=1)
        return np.where(found, np.argmax(keys, axis=1), anywhere), int((~found).sum())
    s = signal.astype(np.float64)
    if placement.location in ("rising", "falling"):
        smooth = (np.roll(s, 1, axis=1) + s + np.roll(s, -1, axis=1)) / 3.0
        smooth[:, 0], smooth[:, -1] = s[:, 0], s[:, -1]
        s = np.gradient(smooth, axis=1)
    if placement.location in ("trough", "falling"):
        s = -s
    value = np.take_along_axis(s, centre, axis=1)
    spread = np.ptp(value, axis=1, keepdims=True) + 1e-12
    keys = np.where(valid, value + 1e-6 * spread * rng.random((b, n)), -np.inf)  # random tie-break
    order = np.argsort(-keys, axis=1, kind="stable")
    top = np.maximum(np.ceil(TOP_SHARE * n_valid), 1)
    rank = np.minimum(np.floor(rng.random(b) * top), n_valid - 1).astype(np.int64)
    return order[np.arange(b), rank], 0


# --------------------------------------------------------------------- regimes
def window_stats(values: np.ndarray, starts: np.ndarray, window: int, channel: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of one channel over each window, from cumulative sums (O(T))."""
    x = values[:, channel].astype(np.float64)
    c1 = np.concatenate(([0.0], np.cumsum(x)))
    c2 = np.concatenate(([0.0], np.cumsum(x * x)))
    s1 = c1[starts + window] - c1[starts]
    s2 = c2[starts + window] - c2[starts]
    mean = s1 / window
    var = np.maximum(s2 / window - mean * mean, 0.0)
    return mean, np.sqrt(var)


def regime_filter(values: np.ndarray, starts: np.ndarray, window: int, channel: int, placement: Placement) -> np.ndarray:
    """``[N]`` bool: candidate windows in the placement's regime (top/bottom ``regime_share`` of the series)."""
    if placement.regime == "any":
        return np.ones(len(starts), dtype=bool)
    mean, std = window_stats(values, starts, window, channel)
    stat = mean if placement.regime.endswith("level") else std
    if placement.regime.startswith("high"):
        return stat >= np.quantile(stat, 1.0 - placement.regime_share)
    return stat <= np.quantile(stat, placement.regime_share)
