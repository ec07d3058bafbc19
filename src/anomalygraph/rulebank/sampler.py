"""The PAG sampler ``G(X; τ, φ)`` and the augmentation ``A(X; ψ)`` of APE's post-training.

:class:`PAGSampler` picks normal candidate windows from a series (no labelled anomaly inside,
optionally only the lowest-scoring ones by a detector), profiles their context, draws rules by
weight, and applies them batch-wise: every rule's rows go through its operator in one
vectorised call. A draw that leaves its window practically unchanged (a flatline on a channel
that was already flat) is redrawn, so negatives are really different from positives.
:func:`augment` (``A(X; ψ)``, kept with the post-trainer in ``detectors.ape.augment``) makes the
small label-preserving variants for the positive branch of the contrastive loss.

Reproducible: the same bank, series, configuration and seed give the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.core.stats import robust_scale
from anomalygraph.data.periods import estimate_period
from anomalygraph.data.series import TimeSeries
from anomalygraph.data.windows import window_maxima, window_starts
from anomalygraph.detectors.ape.augment import AugmentConfig, augment
from anomalygraph.rulebank.context import (
    choose_channels,
    choose_starts,
    reference_channel,
    regime_filter,
    series_scale,
    window_spread,
)
from anomalygraph.rulebank.operators import OPERATORS, OperatorSpec, apply_with_effect
from anomalygraph.rulebank.schema import Rule, RuleBank

if TYPE_CHECKING:
    from anomalygraph.detectors.base import Detector


class SamplerConfig(BaseModel):
    """φ: how candidate windows are chosen and batches drawn."""

    model_config = ConfigDict(extra="forbid")

    window: int = Field(100, ge=8, le=100_000, description="window length L")
    stride: int = Field(1, ge=1, description="step between candidate windows")
    keep_fraction: float = Field(1.0, gt=0, le=1, description="with detector scores: keep this share of lowest-scoring windows")
    exclude_labelled: bool = Field(True, description="drop windows that contain a labelled anomaly")
    min_effect: float = Field(
        0.1, ge=0, le=100, description="redraw a pseudo-anomaly whose largest change is below this many local scales"
    )
    max_redraws: int = Field(3, ge=0, le=20, description="how often an ineffective draw is retried before it is kept")
    seed: int = 0
    augment: AugmentConfig = Field(default_factory=AugmentConfig)


@dataclass
class PseudoAnomalyBatch:
    """One draw: normal windows, their pseudo-anomalous versions and where the anomaly is.

    Rows are grouped by rule (all rows of a rule are contiguous); shuffle if order matters.
    """

    x_raw: np.ndarray  # [B, L, D] the normal windows
    x_pa: np.ndarray  # [B, L, D] pseudo-anomalous versions
    mask: np.ndarray  # [B, L] bool, the anomalous steps
    channels: np.ndarray  # [B, D] bool, the channels the anomaly touches
    rule_index: np.ndarray  # [B] index into rule_ids
    rule_ids: list[str]
    starts: np.ndarray  # [B] window start in the series
    effect: np.ndarray  # [B] largest change inside the mask, in local robust scales
    x_aug: np.ndarray | None = None  # [B, L, D] augmented normal windows, when asked for

    def __len__(self) -> int:
        return len(self.rule_index)

    def rule_id(self, i: int) -> str:
        return self.rule_ids[int(self.rule_index[i])]


@dataclass
class SamplerStats:
    """Counters a caller can report: how often placement or effect fell short."""

    drawn: int = 0
    redrawn: int = 0
    ineffective: int = 0  # kept after max_redraws although below min_effect
    placement_fallbacks: int = 0  # no position matched the contextual prior; placed anywhere
    per_rule_ineffective: dict[str, int] = field(default_factory=dict)


@dataclass
class PreparedRule:
    """A rule resolved against one series: channel indices, candidate windows, phases."""

    rule: Rule
    spec: OperatorSpec
    named: list[int] | None
    main_channel: int  # the channel regimes and estimated periods are read from
    candidates: np.ndarray  # indices into the sampler's candidate starts
    phase: np.ndarray | None  # [T] phase in [0, 1) of every series step, for location=phase
    period: float | None  # seasonal period in steps, for the contextual operator
    steps_per_unit: float | None  # duration unit -> steps (None for window shares)


def step_seconds(series: TimeSeries) -> float | None:
    """Median sampling step in seconds; ``None`` without timestamps."""
    if series.timestamps is None or series.length < 2:
        return None
    step = float(np.median(np.diff(series.timestamps.as_unit("ns").asi8))) / 1e9
    return step if step > 0 else None


class PAGSampler:
    """``G(X; τ, φ)``: pseudo-anomalous windows drawn from ``series`` with ``bank``.

    ``scores`` (one per timestamp, higher = more anomalous, e.g. a fitted detector's scores on
    the training rows) filters candidates to the ``keep_fraction`` lowest-scoring windows.
    Pass the rows that are meant to be normal (usually ``series.train()``).
    """

    def __init__(
        self,
        bank: RuleBank,
        series: TimeSeries | np.ndarray,
        config: SamplerConfig | None = None,
        *,
        scores: np.ndarray | None = None,
        **overrides: Any,
    ) -> None:
        if config is None:
            config = SamplerConfig(**overrides)
        elif overrides:
            config = SamplerConfig(**{**config.model_dump(), **overrides})
        self.config = config
        self.bank = bank
        self.series = series if isinstance(series, TimeSeries) else TimeSeries(values=series)
        self.values = self.series.values
        self.starts = self._candidate_starts(scores)
        self.global_scale = series_scale(self.values)
        self.spread = window_spread(self.values, self.starts, config.window)  # [N, D]
        self._scale_cache = np.full((len(self.starts), self.values.shape[1]), np.nan, dtype=np.float32)
        self.step_seconds = step_seconds(self.series)
        self._periods: dict[int, float] = {}
        self.prepared = [self._prepare(rule) for rule in bank.rules]
        weights = np.array([r.weight for r in bank.rules], dtype=np.float64)
        self.probabilities = weights / weights.sum()
        self.rng = np.random.default_rng(config.seed)
        self.stats = SamplerStats()

    @classmethod
    def with_detector(
        cls,
        bank: RuleBank,
        series: TimeSeries,
        detector: Detector,
        *,
        keep_fraction: float = 0.9,
        **overrides: Any,
    ) -> PAGSampler:
        """Normal candidate filtering: keep the ``keep_fraction`` windows ``detector`` finds least anomalous.

        An unfitted detector is fitted on ``series`` first (the rows meant to be normal).
        """
        if not detector.is_fitted:
            detector.fit(series)
        return cls(bank, series, scores=detector.score(series), keep_fraction=keep_fraction, **overrides)

    # ---------------------------------------------------------------- preparation
    def _candidate_starts(self, scores: np.ndarray | None) -> np.ndarray:
        t = self.series.length
        window = self.config.window
        if t < window:
            raise DataError(f"series '{self.series.name}' has {t} timestamps, fewer than the window of {window}")
        starts = window_starts(t, window, self.config.stride)
        keep = np.ones(len(starts), dtype=bool)
        labels = self.series.labels
        if self.config.exclude_labelled and labels is not None and labels.any():
            csum = np.concatenate(([0], np.cumsum(labels, dtype=np.int64)))
            keep &= (csum[starts + window] - csum[starts]) == 0
        if scores is not None:
            scores = np.asarray(scores, dtype=np.float64).ravel()
            if scores.shape != (t,):
                raise DataError(f"{len(scores)} scores for series '{self.series.name}' of {t} timestamps")
            if not np.isfinite(scores).all():
                raise DataError("detector scores must be finite")
            win_score = window_maxima(scores, starts, window)
            pool = win_score[keep] if keep.any() else win_score
            keep &= win_score <= np.quantile(pool, self.config.keep_fraction)
        if not keep.any():
            raise DataError(f"series '{self.series.name}': no normal candidate window of {window} steps is left")
        return starts[keep]

    def _channel_index(self, rule: Rule) -> list[int] | None:
        if rule.channels.mode != "named":
            return None
        names = self.series.channels
        index = []
        for name in rule.channels.names:
            if name not in names:
                shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
                raise ConfigError(f"rule '{rule.id}': channels.names: '{name}' is not a channel of '{self.series.name}' ({shown})")
            index.append(names.index(name))
        return index

    def period_steps(self, rule: Rule, channel: int) -> float:
        """The rule's seasonal period in steps: as given, or estimated from ``channel``."""
        period = rule.where.period
        if period is not None:
            if period.unit == "steps":
                return period.value
            if self.step_seconds is None:
                raise ConfigError(f"rule '{rule.id}': where.period is in seconds, but series '{self.series.name}' has no timestamps")
            return period.value / self.step_seconds
        if channel not in self._periods:
            self._periods[channel] = float(estimate_period(self.values[:, channel]))
        return self._periods[channel]

    def _prepare(self, rule: Rule) -> PreparedRule:
        spec = OPERATORS[rule.operator]
        d = self.values.shape[1]
        if spec.min_channels > d:
            raise ConfigError(f"rule '{rule.id}': operator '{rule.operator}' needs {spec.min_channels} channels; "
                              f"series '{self.series.name}' has {d}")
        named = self._channel_index(rule)
        if named is not None and spec.min_channels > 1 and len(named) >= d:
            raise ConfigError(f"rule '{rule.id}': channels: '{rule.operator}' must leave at least one channel untouched")
        main = named[0] if named else int(np.argmax(self.values.std(axis=0)))
        candidates = np.flatnonzero(regime_filter(self.values, self.starts, self.config.window, main, rule.where))
        phase = None
        if rule.where.location == "phase":
            p = rule.where.period
            if p is not None and p.unit == "seconds" and self.series.timestamps is not None:
                seconds = self.series.timestamps.as_unit("ns").asi8.astype(np.float64) / 1e9
                phase = np.mod(seconds, p.value) / p.value
            else:
                steps = self.period_steps(rule, main)
                phase = np.mod(np.arange(self.series.length), steps) / steps
        period = self.period_steps(rule, main) if spec.uses_period else None
        steps_per_unit: float | None = 1.0
        if rule.duration.unit == "seconds":
            if self.step_seconds is None:
                raise ConfigError(f"rule '{rule.id}': duration is in seconds, but series '{self.series.name}' has no timestamps")
            steps_per_unit = 1.0 / self.step_seconds
        elif rule.duration.unit == "window":
            steps_per_unit = None
        return PreparedRule(rule, spec, named, main, candidates, phase, period, steps_per_unit)

    # ------------------------------------------------------------------ drawing
    def _windows(self, index: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        rows = self.starts[index][:, None] + np.arange(self.config.window)[None, :]
        return np.take(self.values, rows, axis=0, out=out)

    def _scales(self, index: np.ndarray, x: np.ndarray) -> np.ndarray:
        cached = self._scale_cache[index]
        missing = np.isnan(cached[:, 0])
        if missing.any():
            cached[missing] = robust_scale(x[missing], self.global_scale)
            self._scale_cache[index[missing]] = cached[missing]
        return cached

    def lengths(self, prep: PreparedRule, n: int, *, window: int | None = None, max_steps: int | None = None) -> np.ndarray:
        """``n`` segment lengths in steps from the rule's duration prior.

        ``window`` is what window shares refer to (default: the sampler's window); lengths are
        clipped to ``[min_length, max_steps]`` (default: the window).
        """
        window = window or self.config.window
        cap = max_steps or window
        raw = prep.rule.duration.dist.sample(self.rng, n)
        steps = raw * window if prep.steps_per_unit is None else raw * prep.steps_per_unit
        return np.clip(np.rint(steps), min(prep.spec.min_length, cap), cap).astype(np.int64)

    def apply_rule(
        self,
        prep: PreparedRule,
        x: np.ndarray,
        origin: np.ndarray,
        length: np.ndarray,
        *,
        scale: np.ndarray | None = None,
        spread: np.ndarray | None = None,
        donor: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Place and apply one rule on windows ``x[B, W, D]`` that start at series rows ``origin[B]``.

        Returns ``(x', mask[B, W], channels[B, D], effect[B], params)``. The windows may have any
        length ``W`` (TimeAnomalyBench injects with windows sized to each anomaly).
        """
        rng = self.rng
        n, w, _ = x.shape
        if scale is None:
            scale = robust_scale(x, self.global_scale)
        channels = choose_channels(x, prep.rule.channels, rng, named=prep.named,
                                   keep_free=prep.spec.min_channels - 1, spread=spread)
        ref = np.full(n, prep.named[0]) if prep.named else reference_channel(x, channels, spread)
        signal = x[np.arange(n), :, ref]
        phase = None
        if prep.phase is not None:
            phase = prep.phase[origin[:, None] + np.arange(w)[None, :]]
        start, fallbacks = choose_starts(signal, length, prep.rule.where, rng, phase=phase)
        self.stats.placement_fallbacks += fallbacks
        params = {name: dist.sample(rng, n) for name, dist in prep.rule.params.items()}
        if prep.spec.uses_donor and donor is None:
            donor = self._windows(rng.integers(0, len(self.starts), size=n))
            if donor.shape[1] != w:
                raise ConfigError(f"rule '{prep.rule.id}': pass donor windows of length {w}")
        x_pa, mask, effect = apply_with_effect(
            prep.rule.operator, x, start=start, length=length, channels=channels, scale=scale,
            params=params, rng=rng, donor=donor, period=prep.period,
        )
        return x_pa, mask, channels, effect, params

    def _draw(self, prep: PreparedRule, n: int, x: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """One rule on ``n`` fresh candidate windows (gathered into ``x`` when given)."""
        index = prep.candidates[self.rng.integers(0, len(prep.candidates), size=n)]
        x = self._windows(index, out=x)
        scale = self._scales(index, x)
        x_pa, mask, channels, effect, _ = self.apply_rule(
            prep, x, self.starts[index], self.lengths(prep, n), scale=scale, spread=self.spread[index]
        )
        return x, x_pa, mask, channels, self.starts[index], scale, effect

    def _draw_effective(self, prep: PreparedRule, n: int, x: np.ndarray) -> list[np.ndarray]:
        """:meth:`_draw` into ``x``, redrawing windows whose anomaly is below ``min_effect``."""
        parts = list(self._draw(prep, n, x))
        weak = np.flatnonzero(parts[-1] < self.config.min_effect)
        for _ in range(self.config.max_redraws):
            if len(weak) == 0:
                break
            self.stats.redrawn += len(weak)
            again = self._draw(prep, len(weak))
            for part, new in zip(parts, again, strict=True):
                part[weak] = new
            weak = weak[again[-1] < self.config.min_effect]
        if len(weak):
            self.stats.ineffective += len(weak)
            rid = prep.rule.id
            self.stats.per_rule_ineffective[rid] = self.stats.per_rule_ineffective.get(rid, 0) + len(weak)
        return parts

    def sample(self, n: int, *, with_augmented: bool = False) -> PseudoAnomalyBatch:
        """Draw ``n`` windows: rule counts by weight, then each rule's rows in one vectorised call."""
        if n < 1:
            raise ConfigError(f"sample size must be at least 1, got {n}")
        counts = self.rng.multinomial(n, self.probabilities)
        window, d = self.config.window, self.values.shape[1]
        x_raw = np.empty((n, window, d), dtype=self.values.dtype)
        rule_index = np.repeat(np.arange(len(counts)), counts)
        bounds = np.concatenate(([0], np.cumsum(counts)))
        # normal windows are gathered straight into x_raw; the other parts are joined once
        parts = [self._draw_effective(self.prepared[r], int(counts[r]), x_raw[bounds[r] : bounds[r + 1]])
                 for r in range(len(counts)) if counts[r]]
        x_pa, mask, channels, starts, scales, effect = (
            np.concatenate([p[k] for p in parts]) if len(parts) > 1 else parts[0][k] for k in range(1, 7)
        )
        self.stats.drawn += n
        x_aug = augment(x_raw, self.rng, self.config.augment, scale=scales) if with_augmented else None
        return PseudoAnomalyBatch(x_raw, x_pa, mask, channels, rule_index, self.bank.rule_ids, starts, effect, x_aug)

    def batches(self, n_batches: int, batch_size: int, *, with_augmented: bool = False) -> Iterator[PseudoAnomalyBatch]:
        """``n_batches`` batches of ``batch_size``, for training loops."""
        for _ in range(n_batches):
            yield self.sample(batch_size, with_augmented=with_augmented)


__all__ = ["AugmentConfig", "PAGSampler", "PreparedRule", "PseudoAnomalyBatch", "SamplerConfig", "SamplerStats", "augment", "step_seconds"]
