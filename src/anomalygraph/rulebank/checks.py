"""Beyond the schema: run every rule of a bank on probe windows and report what it does.

A bank can be valid and still useless: a rule whose anomalies barely change a window teaches
a detector nothing, and one that produces non-finite values would poison training. The
probe is a seeded synthetic series (two seasonalities, a trend, noise) with one channel per
channel name the bank uses, so named rules run too; it is sampled so that the bank's longest
duration in seconds spans half a probe window (one minute at least).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from anomalygraph.core.errors import AnomalyGraphError
from anomalygraph.data.series import TimeSeries
from anomalygraph.rulebank.sampler import PAGSampler
from anomalygraph.rulebank.schema import BankReport, RuleBank, RuleCheck

WEAK_EFFECT = 0.5  # median largest change below half a local scale: the rule barely shows


def probe_step_seconds(bank: RuleBank, window: int) -> int:
    """A sampling step at which the bank's longest duration in seconds spans half a window (at least 1 min)."""
    longest = max((r.duration.dist.support()[1] for r in bank.rules if r.duration.unit == "seconds"), default=0.0)
    return max(60, int(np.ceil(longest / (0.5 * window) / 60.0)) * 60)


def probe_series(bank: RuleBank, *, length: int = 2000, seed: int = 0, step_seconds: int = 60) -> TimeSeries:
    """A smooth, seasonal, multichannel series carrying every channel name the bank names."""
    names: list[str] = []
    for rule in bank.rules:
        for name in rule.channels.names:
            if name not in names:
                names.append(name)
    while len(names) < 3:
        names.append(f"probe{len(names)}")
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    cols = []
    for i, _ in enumerate(names):
        daily = np.sin(2 * np.pi * (t / 60 + i / len(names)))
        slow = 0.5 * np.sin(2 * np.pi * t / 400 + i)
        cols.append(10 + 0.001 * t + 2 * daily + slow + 0.2 * rng.standard_normal(length))
    stamps = pd.date_range("2024-01-01", periods=length, freq=pd.Timedelta(seconds=step_seconds))
    return TimeSeries(values=np.stack(cols, axis=1), timestamps=stamps, channels=names, name="probe")


def check_bank(bank: RuleBank, *, window: int = 100, n: int = 64, seed: int = 0) -> BankReport:
    """Apply each rule to ``n`` probe windows; flag rules that fail, emit non-finite values or barely show."""
    from anomalygraph import __version__

    series = probe_series(bank, seed=seed, step_seconds=probe_step_seconds(bank, window))
    problems: list[str] = []
    warnings: list[str] = []
    checks: list[RuleCheck] = []
    for rule in bank.rules:
        single = RuleBank(name=bank.name, rules=[rule])
        try:
            sampler = PAGSampler(single, series, window=window, seed=seed, min_effect=0.0, max_redraws=0)
            batch = sampler.sample(n)
        except AnomalyGraphError as exc:
            problems.append(f"rule '{rule.id}': {exc}")
            checks.append(RuleCheck(id=rule.id, effect=0.0, finite=False))
            continue
        finite = bool(np.isfinite(batch.x_pa).all())
        effect = float(np.median(batch.effect))
        checks.append(RuleCheck(id=rule.id, effect=round(effect, 4), finite=finite))
        if not finite:
            problems.append(f"rule '{rule.id}': produced non-finite values")
        if effect < WEAK_EFFECT:
            warnings.append(
                f"rule '{rule.id}': median largest change is {effect:.2f} local scales; its anomalies barely show"
            )
        if sampler.stats.placement_fallbacks > n // 2:
            warnings.append(
                f"rule '{rule.id}': {sampler.stats.placement_fallbacks} of {n} probe windows had no position "
                f"matching location '{rule.where.location}'"
            )
        full = int((batch.mask.sum(axis=1) >= window).sum())
        if full > n // 2:
            warnings.append(f"rule '{rule.id}': {full} of {n} anomalies fill the whole {window}-step window")
    return BankReport(
        checked_at=datetime.now(UTC),
        anomalygraph_version=__version__,
        ok=not problems,
        problems=problems,
        warnings=warnings,
        rules=checks,
    )
