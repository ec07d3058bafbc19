"""The fixed registry of injection operators, vectorised over a batch of windows.

Each operator turns windows ``x[B, L, D]`` into pseudo-anomalous copies. The caller says where
(``start[B]``, ``length[B]``: the segment, which becomes the mask) and on which channels
(``channels[B, D]``); the operator computes replacement values, and :func:`apply_batch` keeps
them only inside ``segment × channels``, so nothing outside the mask ever changes. Magnitudes are
in units of the local robust scale (``scale[B, D]``, 1.4826 × MAD of each window's channel), so
one rule means the same thing on a 0–1 ratio and on a 0–10,000 request count.

Post-training draws millions of windows, so every operator is a handful of whole-array numpy
expressions over the batch; there is no per-window Python loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anomalygraph.core.errors import ConfigError
from anomalygraph.core.stats import robust_scale
from anomalygraph.rulebank.distributions import (
    Choice,
    DistributionModel,
    Fixed,
    LogUniform,
    Uniform,
)
from anomalygraph.rulebank.names import OPERATOR_NAMES, Morphology, OperatorName

_TOL = 1e-9
_DIRECTIONS = ("up", "down")


# ------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class ParamSpec:
    """One operator parameter: numeric with hard bounds, or a category from a fixed list."""

    name: str
    description: str
    default: DistributionModel
    low: float | None = None
    high: float | None = None
    integer: bool = False
    choices: tuple[str, ...] | None = None

    def check(self, dist: DistributionModel) -> None:
        """Raise ``ValueError('params.<name>: ...')`` when ``dist`` can draw a value this parameter forbids."""
        where = f"params.{self.name}"
        if self.choices is not None:
            cats = dist.categories()
            if cats is None:
                raise ValueError(f"{where}: takes one of {list(self.choices)}, got the number distribution {dist.describe()}")
            bad = [c for c in cats if c not in self.choices]
            if bad:
                raise ValueError(f"{where}: {bad[0]!r} is not one of {list(self.choices)}")
            return
        support = dist.support()
        if support is None:
            raise ValueError(f"{where}: takes a number in [{self.low:g}, {self.high:g}], got categories {dist.categories()}")
        lo, hi = support
        if self.low is not None and lo < self.low - _TOL:
            raise ValueError(f"{where}: {dist.describe()} reaches {lo:g}, below the operator's bound {self.low:g}")
        if self.high is not None and hi > self.high + _TOL:
            raise ValueError(f"{where}: {dist.describe()} reaches {hi:g}, above the operator's bound {self.high:g}")

    def check_values(self, values: np.ndarray, operator: str) -> None:
        """Drawn or given values: the same bounds, checked on arrays."""
        if self.choices is not None:
            bad = ~np.isin(values, self.choices)
            if bad.any():
                raise ConfigError(
                    f"operator '{operator}': parameter '{self.name}' = {values[bad][0]!r} is not one of {list(self.choices)}"
                )
            return
        values = np.asarray(values, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ConfigError(f"operator '{operator}': parameter '{self.name}' must be finite")
        lo, hi = values.min(initial=np.inf), values.max(initial=-np.inf)
        if (self.low is not None and lo < self.low - _TOL) or (self.high is not None and hi > self.high + _TOL):
            bad_value = lo if self.low is not None and lo < self.low - _TOL else hi
            raise ConfigError(
                f"operator '{operator}': parameter '{self.name}' = {bad_value:g} outside [{self.low:g}, {self.high:g}]"
            )


# ---------------------------------------------------------------------- inputs
@dataclass
class OpInput:
    """Everything an operator kernel may read; kernels never modify ``x`` in place."""

    x: np.ndarray  # [B, L, D], float32 or float64
    start: np.ndarray  # [B] int64
    length: np.ndarray  # [B] int64, >= 1, start + length <= L
    channels: np.ndarray  # [B, D] bool
    scale: np.ndarray  # [B, D], > 0
    params: dict[str, np.ndarray]  # each [B]: float64, or str for categories
    rng: np.random.Generator
    donor: np.ndarray | None = None  # [B, L, D] windows to cut from (segment_transplant)
    period: np.ndarray | None = None  # [B] seasonal period in steps (contextual)
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        b, n, d = self.x.shape
        return b, n, d

    @property
    def offset(self) -> np.ndarray:
        """``t - start`` for every step, ``[B, L]``."""
        if "offset" not in self._cache:
            self._cache["offset"] = np.arange(self.shape[1])[None, :] - self.start[:, None]
        return self._cache["offset"]

    @property
    def segment(self) -> np.ndarray:
        """``[B, L]`` bool: inside ``[start, start + length)``; this is the returned mask."""
        if "segment" not in self._cache:
            k = self.offset
            self._cache["segment"] = (k >= 0) & (k < self.length[:, None])
        return self._cache["segment"]

    def segment_mean(self) -> np.ndarray:
        """Mean of each channel over the segment, ``[B, D]``."""
        if "mean" not in self._cache:
            seg = self.segment[:, :, None]
            self._cache["mean"] = (np.where(seg, self.x, 0).sum(axis=1) / self.length[:, None]).astype(self.x.dtype)
        return self._cache["mean"]

    def sign(self, name: str = "direction") -> np.ndarray:
        return np.where(self.params[name] == "down", -1.0, 1.0)


def _rows(b: int) -> np.ndarray:
    return np.arange(b)[:, None]


def _reflect(q: np.ndarray, n: int) -> np.ndarray:
    """Fold real positions into ``[0, n - 1]`` by mirroring at both ends (no wrap-around jumps)."""
    if n == 1:
        return np.zeros_like(q)
    span = 2.0 * (n - 1)
    q = np.mod(q, span)
    return np.where(q > n - 1, span - q, q)


def _gather(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``x[B, L, D]`` at real positions ``q[B, L]`` in ``[0, L - 1]``."""
    n = x.shape[1]
    i0 = np.clip(np.floor(q).astype(np.int64), 0, n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (q - i0).astype(x.dtype)[:, :, None]
    rows = _rows(x.shape[0])
    return x[rows, i0] * (1 - w) + x[rows, i1] * w


def _take(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``x[b, idx[b, t], :]`` for integer positions ``idx[B, L]``."""
    return x[_rows(x.shape[0]), np.clip(idx, 0, x.shape[1] - 1)]


def _scaled(values: np.ndarray, op: OpInput) -> np.ndarray:
    """``values[B]`` or ``[B, L]`` times the local scale, as ``[B, L|1, D]`` in the window's dtype."""
    v = (values if values.ndim == 2 else values[:, None]).astype(op.x.dtype)
    return v[:, :, None] * op.scale[:, None, :]


# --------------------------------------------------------------------- kernels
def _spike(op: OpInput) -> np.ndarray:
    # A smooth bump that is non-zero on every step of the segment and peaks at ~1 in its middle;
    # a one-step segment is a single point outlier.
    k = np.clip(op.offset, 0, None)
    bump = np.sin(np.pi * (k + 0.5) / op.length[:, None])
    return op.x + _scaled(op.sign() * op.params["magnitude"], op) * bump[:, :, None].astype(op.x.dtype)


def _level_shift(op: OpInput) -> np.ndarray:
    return op.x + _scaled(op.sign() * op.params["magnitude"], op)


def _drift(op: OpInput) -> np.ndarray:
    u = np.clip((op.offset + 1) / op.length[:, None], 0, 1)  # 1 after the segment: no overflow there
    c = op.params["curvature"][:, None]
    safe = np.where(c < 1e-6, 1.0, c)
    profile = np.where(c < 1e-6, u, np.expm1(safe * u) / np.expm1(safe))
    return op.x + _scaled((op.sign() * op.params["magnitude"])[:, None] * profile, op)


def _variance_burst(op: OpInput) -> np.ndarray:
    noise = op.rng.standard_normal(op.x.shape, dtype=np.float32).astype(op.x.dtype, copy=False)
    return op.x + noise * _scaled(op.params["noise"], op)


def _frequency_change(op: OpInput) -> np.ndarray:
    # Replay the window around the segment's centre faster (factor > 1) or slower (< 1).
    n = op.shape[1]
    centre = op.start[:, None] + (op.length[:, None] - 1) / 2.0
    q = centre + (np.arange(n)[None, :] - centre) * op.params["factor"][:, None]
    return _gather(op.x, _reflect(q, n))


def _flatline(op: OpInput) -> np.ndarray:
    b, _, _ = op.shape
    previous = op.x[np.arange(b), np.maximum(op.start - 1, 0)]  # last value before the fault
    held = np.where((op.params["value"] == "segment_mean")[:, None], op.segment_mean(), previous)
    out = np.broadcast_to(held[:, None, :], op.x.shape).astype(op.x.dtype)
    jitter = op.params["jitter"]
    if (jitter > 0).any():
        noise = op.rng.standard_normal(op.x.shape, dtype=np.float32).astype(op.x.dtype, copy=False)
        out = out + noise * _scaled(jitter, op)
    return out


def _dropout(op: OpInput) -> np.ndarray:
    b, n, _ = op.shape
    fill = np.where((op.params["fill"] == "window_min")[:, None], op.x.min(axis=1), 0).astype(op.x.dtype)
    fraction = op.params["fraction"][:, None]
    dropped = (op.rng.random((b, n)) < fraction) | (op.offset == 0)  # at least the first step drops
    return np.where(dropped[:, :, None], fill[:, None, :], op.x)


def _contextual(op: OpInput) -> np.ndarray:
    # Values taken from another phase of the same cycle: globally ordinary, wrong for their time.
    b, n, _ = op.shape
    period = op.period if op.period is not None else np.full(b, float(n))
    shift = np.maximum(np.rint(op.params["phase"] * period), 1)
    q = np.arange(n)[None, :] + shift[:, None]
    return _take(op.x, _reflect(q, n).astype(np.int64))


def _segment_transplant(op: OpInput) -> np.ndarray:
    # CutAddPaste: cut a segment from another window (or elsewhere in this one), add a trend, paste.
    b, _, d = op.shape
    same = op.params["source"] == "same_window"
    if same.all():
        donor = op.x
    else:
        other = op.donor if op.donor is not None else op.x[op.rng.permutation(b)]  # another window of the batch
        donor = np.where(same[:, None, None], op.x, other) if same.any() else other
    room = op.shape[1] - op.length  # the cut may start at 0..room
    u = op.rng.random(b)
    cut_other = np.floor(u * (room + 1)).astype(np.int64)
    cut_same = np.floor(u * np.maximum(room, 1)).astype(np.int64)
    cut_same = np.where(room > 0, cut_same + (cut_same >= op.start), 0)  # never the segment itself
    cut = np.where(same, cut_same, cut_other)
    pos = cut[:, None] + np.clip(op.offset, 0, None)
    pasted = _take(donor, pos)
    if (op.params["align"] == "level").any():
        donor_mean = (np.where(op.segment[:, :, None], pasted, 0).sum(axis=1) / op.length[:, None]).astype(op.x.dtype)
        level = np.where((op.params["align"] == "level")[:, None], op.segment_mean() - donor_mean, 0)
        pasted = pasted + level[:, None, :].astype(op.x.dtype)
    slope = op.params["trend"] * op.sign()
    if (slope != 0).any():
        # each touched channel trends with probability trend_share; at least one always does
        keys = np.where(op.channels, op.rng.random((b, d)), 2.0)
        share = op.params["trend_share"][:, None]
        trended = (keys < share) | ((keys == keys.min(axis=1, keepdims=True)) & (share > 0) & op.channels)
        ramp = (slope[:, None] * np.clip(op.offset, 0, None)).astype(op.x.dtype)
        pasted = pasted + ramp[:, :, None] * np.where(trended, op.scale, 0)[:, None, :]
    return pasted


def _amplitude_scaling(op: OpInput) -> np.ndarray:
    mean = op.segment_mean()[:, None, :]
    return mean + op.params["factor"][:, None, None].astype(op.x.dtype) * (op.x - mean)


def _time_warp(op: OpInput) -> np.ndarray:
    # A monotone warp that keeps both segment ends fixed: w(u) = u - s/π · sin(πu), |s| < 1.
    span = np.maximum(op.length - 1, 1)[:, None]
    u = np.clip(op.offset / span, 0, 1)
    s = op.params["strength"][:, None]
    q = op.start[:, None] + span * (u - s / np.pi * np.sin(np.pi * u))
    return _gather(op.x, q)


def _correlation_break(op: OpInput) -> np.ndarray:
    # Decouple the chosen channels from the rest: mirror them around their level, or lag them.
    n = op.shape[1]
    mirrored = 2 * op.segment_mean()[:, None, :] - op.x
    lag = np.maximum(np.rint(op.params["lag"] * n), 1)
    lagged = _take(op.x, _reflect(np.arange(n)[None, :] + lag[:, None], n).astype(np.int64))
    return np.where((op.params["mode"] == "invert")[:, None, None], mirrored, lagged)


# -------------------------------------------------------------------- registry
@dataclass(frozen=True)
class OperatorSpec:
    name: OperatorName
    summary: str
    morphologies: tuple[Morphology, ...]
    params: tuple[ParamSpec, ...]
    kernel: Callable[[OpInput], np.ndarray]
    min_length: int = 1
    min_channels: int = 1
    scale_param: str | None = None
    uses_donor: bool = False
    uses_period: bool = False

    def has_param(self, name: str) -> bool:
        return any(p.name == name for p in self.params)

    def param(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def complete_params(self, params: Mapping[str, DistributionModel]) -> dict[str, DistributionModel]:
        """Check every given distribution against its bounds and fill in defaults; unknown names fail."""
        known = {p.name for p in self.params}
        for name in params:
            if name not in known:
                takes = ", ".join(sorted(known)) or "no parameters"
                raise ValueError(f"params.{name}: operator '{self.name}' has no parameter '{name}' (it takes {takes})")
        out: dict[str, DistributionModel] = {}
        for p in self.params:
            dist = params.get(p.name, p.default)
            p.check(dist)
            out[p.name] = dist
        return out


def _direction(default: DistributionModel | None = None) -> ParamSpec:
    return ParamSpec(
        "direction", "up or down", default or Choice(values=list(_DIRECTIONS)), choices=_DIRECTIONS
    )


OPERATORS: dict[str, OperatorSpec] = {
    spec.name: spec
    for spec in (
        OperatorSpec(
            "spike", "Short bump (or dip) added to the signal; one step long, it is a point outlier.",
            ("spike", "dip"),
            (ParamSpec("magnitude", "peak height in local robust scales", Uniform(low=3, high=6), 0, 100), _direction()),
            _spike, scale_param="magnitude",
        ),
        OperatorSpec(
            "level_shift", "The level jumps by a constant for the segment.",
            ("level_shift",),
            (ParamSpec("magnitude", "size of the jump in local robust scales", Uniform(low=2, high=5), 0, 100), _direction()),
            _level_shift, scale_param="magnitude",
        ),
        OperatorSpec(
            "drift", "A ramp (linear, or exponential with curvature > 0) that reaches magnitude at the segment's end.",
            ("drift",),
            (
                ParamSpec("magnitude", "change at the end of the segment in local robust scales", Uniform(low=2, high=6), 0, 100),
                _direction(),
                ParamSpec("curvature", "0: linear; larger: slow start then fast growth (exponential)", Fixed(value=0.0), 0, 10),
            ),
            _drift, min_length=2, scale_param="magnitude",
        ),
        OperatorSpec(
            "variance_burst", "Gaussian noise added for the segment (vibration, jitter, instability).",
            ("variance_burst",),
            (ParamSpec("noise", "standard deviation of the added noise in local robust scales", Uniform(low=2, high=5), 0, 100),),
            _variance_burst, min_length=2, scale_param="noise",
        ),
        OperatorSpec(
            "frequency_change", "The segment replays the surrounding signal faster (factor > 1) or slower (< 1).",
            ("frequency_change",),
            (ParamSpec("factor", "speed-up of the oscillation", LogUniform(low=2, high=5), 0.05, 20),),
            _frequency_change, min_length=4, scale_param="factor",
        ),
        OperatorSpec(
            "flatline", "The signal sticks at one value (a frozen sensor or a stuck process).",
            ("flatline",),
            (
                ParamSpec("value", "previous: the last value before the segment; segment_mean: the segment's mean",
                          Fixed(value="previous"), choices=("previous", "segment_mean")),
                ParamSpec("jitter", "residual noise in local robust scales", Fixed(value=0.0), 0, 10),
            ),
            _flatline, min_length=2,
        ),
        OperatorSpec(
            "dropout", "Readings drop to zero or to the window's minimum (lost packets, a disconnected sensor).",
            ("dropout",),
            (
                ParamSpec("fill", "zero, or the window minimum of each channel", Fixed(value="zero"), choices=("zero", "window_min")),
                ParamSpec("fraction", "share of the segment's steps that drop (1: all)", Fixed(value=1.0), 0.01, 1),
            ),
            _dropout,
        ),
        OperatorSpec(
            "contextual", "Values from another phase of the cycle: normal globally, wrong for their time.",
            ("contextual",),
            (ParamSpec("phase", "shift in fractions of the seasonal period (0.5: opposite phase)", Uniform(low=0.3, high=0.7), 0.05, 0.95),),
            _contextual, min_length=2, uses_period=True,
        ),
        OperatorSpec(
            "segment_transplant", "CutAddPaste: a segment cut from another window (or elsewhere in this one), plus a trend, pasted in.",
            ("segment_transplant",),
            (
                ParamSpec("source", "other_window or same_window", Fixed(value="other_window"), choices=("other_window", "same_window")),
                ParamSpec("align", "none, or level: match the pasted segment's mean to the one it replaces",
                          Fixed(value="none"), choices=("none", "level")),
                ParamSpec("trend", "slope added per step, in local robust scales", Fixed(value=0.0), 0, 10),
                ParamSpec("trend_share", "share of the touched channels that get the trend", Fixed(value=1.0), 0, 1),
                _direction(),
            ),
            _segment_transplant, min_length=2, uses_donor=True,
        ),
        OperatorSpec(
            "amplitude_scaling", "Deviations from the segment's mean are multiplied by a factor (swelling or damping).",
            ("amplitude_scaling",),
            (ParamSpec("factor", "multiplier of the deviations (below 1 damps)", Uniform(low=2, high=4), 0, 20),),
            _amplitude_scaling, min_length=3, scale_param="factor",
        ),
        OperatorSpec(
            "time_warp", "The segment is locally sped up then slowed down (or the reverse); its ends stay in place.",
            ("time_warp",),
            (ParamSpec("strength", "warp strength; the sign picks speed-up-first or slow-down-first",
                       Choice(values=[-0.8, 0.8]), -0.95, 0.95),),
            _time_warp, min_length=4,
        ),
        OperatorSpec(
            "correlation_break", "Some channels stop following the others: mirrored around their level, or lagged.",
            ("correlation_break",),
            (
                ParamSpec("mode", "invert or lag", Fixed(value="invert"), choices=("invert", "lag")),
                ParamSpec("lag", "for lag: delay as a share of the window", Uniform(low=0.2, high=0.5), 0.05, 0.95),
            ),
            _correlation_break, min_length=3, min_channels=2,
        ),
    )
}

if tuple(OPERATORS) != OPERATOR_NAMES:  # pragma: no cover - guards the fixed registry
    raise RuntimeError("operator registry and names.OPERATOR_NAMES disagree")


def operator_names() -> list[str]:
    return list(OPERATORS)


def get_operator(name: str) -> OperatorSpec:
    try:
        return OPERATORS[name]
    except KeyError:
        raise ConfigError(f"unknown operator '{name}'; the registry has: {', '.join(OPERATORS)}") from None


# ---------------------------------------------------------------------- apply
def _as_param_array(spec: ParamSpec, value: Any, b: int) -> np.ndarray:
    if spec.choices is not None:
        arr = np.asarray(value).astype(str)
    else:
        arr = np.asarray(value, dtype=np.float64)
        if spec.integer:
            arr = np.rint(arr)
    if arr.ndim == 0:
        arr = np.full(b, arr.item(), dtype=arr.dtype)
    if arr.shape != (b,):
        raise ConfigError(f"parameter '{spec.name}' has shape {arr.shape}; expected one value or {b} values")
    return arr


def apply_batch(
    name: str,
    x: np.ndarray,
    *,
    start: np.ndarray | int,
    length: np.ndarray | int,
    channels: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    params: Mapping[str, Any] | None = None,
    rng: np.random.Generator | None = None,
    donor: np.ndarray | None = None,
    period: np.ndarray | float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply operator ``name`` to every window of ``x[B, L, D]``; returns ``(x', mask[B, L])``.

    ``x'`` has the shape and dtype of ``x`` and differs from it only inside ``mask × channels``.
    Unset parameters are drawn from the operator's defaults; given ones are checked against its
    bounds (``ConfigError`` naming the parameter otherwise). ``scale`` defaults to the windows'
    robust scale; ``donor`` (segment_transplant) to a shuffle of the batch; ``period``
    (contextual) to the window length.
    """
    out, mask, _ = apply_with_effect(
        name, x, start=start, length=length, channels=channels, scale=scale, params=params, rng=rng,
        donor=donor, period=period,
    )
    return out, mask


def apply_with_effect(
    name: str,
    x: np.ndarray,
    *,
    start: np.ndarray | int,
    length: np.ndarray | int,
    channels: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    params: Mapping[str, Any] | None = None,
    rng: np.random.Generator | None = None,
    donor: np.ndarray | None = None,
    period: np.ndarray | float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`apply_batch` plus each window's effect: the largest change inside the mask, in local scales.

    Kernels run only on the channels some window of the batch touches, so a rule on one of 55
    channels costs about what it costs on a univariate series.
    """
    spec = get_operator(name)
    x = np.asarray(x)
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.floating):
        raise ConfigError(f"operator '{name}': windows must be a float array [B, L, D], got {x.dtype} {x.shape}")
    b, n, d = x.shape
    rng = rng if rng is not None else np.random.default_rng()
    start_arr = np.broadcast_to(np.asarray(start, dtype=np.int64), (b,)).copy()
    length_arr = np.broadcast_to(np.asarray(length, dtype=np.int64), (b,)).copy()
    if (length_arr < 1).any() or (start_arr < 0).any() or (start_arr + length_arr > n).any():
        raise ConfigError(f"operator '{name}': segments must satisfy 0 <= start, 1 <= length, start + length <= {n}")
    chan = np.ones((b, d), dtype=bool) if channels is None else np.broadcast_to(np.asarray(channels, dtype=bool), (b, d))
    if spec.min_channels > d:
        raise ConfigError(f"operator '{name}' needs at least {spec.min_channels} channels; the windows have {d}")
    if donor is not None and donor.shape != x.shape:
        raise ConfigError(f"operator '{name}': donor windows {donor.shape} do not match {x.shape}")
    given = dict(params or {})
    unknown = set(given) - {p.name for p in spec.params}
    if unknown:
        raise ConfigError(f"operator '{name}' has no parameter '{sorted(unknown)[0]}'; it takes {[p.name for p in spec.params]}")
    values: dict[str, np.ndarray] = {}
    for p in spec.params:
        raw = given[p.name] if p.name in given else p.default.sample(rng, b)
        values[p.name] = _as_param_array(p, raw, b)
        p.check_values(values[p.name], name)
    if scale is None:
        scale = robust_scale(x)
    scale_arr = np.broadcast_to(np.asarray(scale, dtype=x.dtype), (b, d))
    period_arr = None if period is None else np.broadcast_to(np.asarray(period, dtype=np.float64), (b,))

    cols = np.flatnonzero(chan.any(axis=0))
    subset = len(cols) < d  # kernels are channel-wise, so untouched channels can be skipped
    if subset:
        xs, cs, ss = x[:, :, cols], chan[:, cols], scale_arr[:, cols]
        ds = None if donor is None else donor[:, :, cols]
    else:
        xs, cs, ss, ds = x, chan, scale_arr, donor
    op = OpInput(x=xs, start=start_arr, length=length_arr, channels=cs, scale=ss, params=values,
                 rng=rng, donor=ds, period=period_arr)
    target = spec.kernel(op)
    mask = op.segment
    region = mask[:, :, None] if cs.all() else mask[:, :, None] & cs[:, None, :]
    changed = np.where(region, target, xs).astype(x.dtype, copy=False)
    # outside the region changed == xs, so the largest step change per channel is the in-mask one
    diff = changed - xs
    np.abs(diff, out=diff)
    per_channel = diff.max(axis=1) / ss
    effect = np.where(cs, per_channel, 0).max(axis=1, initial=0.0)
    if subset:
        out = x.copy()
        out[:, :, cols] = changed
    else:
        out = changed
    return out, mask, effect.astype(np.float64)


def apply_operator(
    name: str,
    window: np.ndarray,
    params: Mapping[str, Any] | None = None,
    rng: np.random.Generator | None = None,
    *,
    start: int | None = None,
    length: int | None = None,
    channels: np.ndarray | None = None,
    **kwargs: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """One window ``[L, D]`` (or ``[L]``) in, ``(window', mask[L])`` out; the segment is random when unset."""
    rng = rng if rng is not None else np.random.default_rng()
    w = np.asarray(window)
    flat = w.ndim == 1
    x = w[None, :, None] if flat else w[None]
    n = x.shape[1]
    spec = get_operator(name)
    if length is None:
        length = int(rng.integers(min(spec.min_length, n), max(min(spec.min_length, n), n // 4) + 1))
    if start is None:
        start = int(rng.integers(0, n - length + 1))
    out, mask = apply_batch(
        name, x, start=start, length=length, channels=None if channels is None else np.asarray(channels)[None],
        params=params, rng=rng, **kwargs,
    )
    return (out[0, :, 0] if flat else out[0]), mask[0]


def describe_operators() -> list[dict[str, Any]]:
    """Operator names, summaries and parameter bounds, as plain data for prompts and docs."""
    rows = []
    for spec in OPERATORS.values():
        rows.append({
            "operator": spec.name,
            "summary": spec.summary,
            "morphologies": list(spec.morphologies),
            "min_length": spec.min_length,
            "params": [
                {"name": p.name, "description": p.description, "choices": list(p.choices) if p.choices else None,
                 "low": p.low, "high": p.high, "default": p.default.describe()}
                for p in spec.params
            ],
        })
    return rows


__all__ = [
    "OPERATORS",
    "OpInput",
    "OperatorSpec",
    "ParamSpec",
    "apply_batch",
    "apply_operator",
    "apply_with_effect",
    "describe_operators",
    "get_operator",
    "operator_names",
]

