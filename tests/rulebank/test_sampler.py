"""The PAG sampler: reproducibility, candidate filtering, placement, channels, effect, augmentation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.data.series import TimeSeries
from anomalygraph.rulebank.sampler import AugmentConfig, PAGSampler, augment
from anomalygraph.rulebank.schema import RuleBank
from anomalygraph.rulebank.store import load_bank


def _series(length: int = 3000, channels: int = 4, seed: int = 0, **kw) -> TimeSeries:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    cols = [np.sin(2 * np.pi * t / 50 + i) * (i + 1) + 0.1 * rng.standard_normal(length) for i in range(channels)]
    return TimeSeries(values=np.stack(cols, axis=1), channels=[f"c{i}" for i in range(channels)], **kw)


def _bank(*rules: dict) -> RuleBank:
    return RuleBank.model_validate({"name": "test", "rules": list(rules)})


def _rule(rid: str, operator: str = "level_shift", **kw) -> dict:
    return {"id": rid, "operator": operator, "duration": {"unit": "steps", "dist": {"kind": "uniform", "low": 3, "high": 10}}, **kw}


def test_same_seed_same_batches_and_different_seed_differs() -> None:
    bank, series = load_bank("generic"), _series()
    a = PAGSampler(bank, series, window=64, seed=7).sample(256, with_augmented=True)
    b = PAGSampler(bank, series, window=64, seed=7).sample(256, with_augmented=True)
    c = PAGSampler(bank, series, window=64, seed=8).sample(256)
    for field in ("x_raw", "x_pa", "x_aug", "mask", "channels", "rule_index", "starts", "effect"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert not np.array_equal(a.x_pa, c.x_pa)


def test_batches_are_windows_of_the_series_changed_only_inside_the_mask() -> None:
    series = _series()
    sampler = PAGSampler(load_bank("generic"), series, window=64, seed=1)
    batch = sampler.sample(300)
    assert batch.x_raw.shape == (300, 64, 4) and batch.x_pa.dtype == np.float32
    for i in range(0, 300, 17):
        assert np.array_equal(batch.x_raw[i], series.values[batch.starts[i] : batch.starts[i] + 64])
    region = batch.mask[:, :, None] & batch.channels[:, None, :]
    assert not (batch.x_pa != batch.x_raw)[~region].any()
    assert batch.mask.any(axis=1).all() and batch.channels.any(axis=1).all()
    assert sampler.stats.drawn == 300


def test_rule_counts_follow_weights() -> None:
    bank = _bank(_rule("a", weight=3), _rule("b", weight=1))
    batch = PAGSampler(bank, _series(), window=64, seed=0).sample(8000)
    share = (batch.rule_index == 0).mean()
    assert 0.72 < share < 0.78
    assert batch.rule_id(0) == "a" and batch.rule_id(7999) == "b"  # rows are grouped by rule


def test_labelled_windows_and_high_scores_are_not_candidates() -> None:
    series = _series()
    labels = np.zeros(series.length, dtype=np.uint8)
    labels[1000:1100] = 1
    labelled = TimeSeries(values=series.values, labels=labels)
    sampler = PAGSampler(load_bank("generic"), labelled, window=50)
    ends = sampler.starts + 50
    assert not ((sampler.starts < 1100) & (ends > 1000)).any()
    scores = np.linspace(0, 1, series.length)  # later windows score higher
    filtered = PAGSampler(load_bank("generic"), series, window=50, scores=scores, keep_fraction=0.5)
    assert filtered.starts.max() <= series.length / 2
    with pytest.raises(DataError, match="scores for series"):
        PAGSampler(load_bank("generic"), series, window=50, scores=scores[:10])


def test_detector_scores_filter_out_suspicious_windows() -> None:
    from anomalygraph.detectors import create_detector

    series = _series(channels=2)
    values = series.values.copy()
    values[1500:1510] += 50.0  # an anomaly hiding in the "normal" rows
    dirty = TimeSeries(values=values, channels=series.channels)
    sampler = PAGSampler.with_detector(load_bank("generic"), dirty, create_detector("robust_z"), keep_fraction=0.9, window=50)
    overlaps = (sampler.starts <= 1509) & (sampler.starts + 50 > 1500)
    assert not overlaps.any()
    assert len(sampler.starts) < len(PAGSampler(load_bank("generic"), dirty, window=50).starts)


def test_named_channels_and_missing_names() -> None:
    bank = _bank(_rule("n", channels={"mode": "named", "names": ["c2", "c3"]}))
    batch = PAGSampler(bank, _series(), window=64).sample(50)
    assert batch.channels[:, [2, 3]].all() and not batch.channels[:, [0, 1]].any()
    with pytest.raises(ConfigError, match=r"rule 'bad': channels\.names: 'pressure' is not a channel"):
        PAGSampler(_bank(_rule("bad", channels={"mode": "named", "names": ["pressure"]})), _series(), window=64)


def test_random_channel_counts_and_correlation_break_keeps_a_channel_free() -> None:
    bank = _bank(_rule("r", channels={"mode": "random", "count": {"kind": "uniform", "low": 2, "high": 3}}))
    counts = PAGSampler(bank, _series(), window=64).sample(200).channels.sum(axis=1)
    assert counts.min() >= 2 and counts.max() <= 3
    bank = _bank(_rule("cb", operator="correlation_break", channels={"mode": "random", "fraction": 1.0}))
    counts = PAGSampler(bank, _series(), window=64).sample(200).channels.sum(axis=1)
    assert counts.max() == 3  # 4 channels, one left to break away from


def test_seconds_need_timestamps() -> None:
    bank = _bank(_rule("s", duration={"unit": "seconds", "dist": 600}))
    with pytest.raises(ConfigError, match="rule 's': duration is in seconds"):
        PAGSampler(bank, _series(), window=64)
    stamped = _series(timestamps=pd.date_range("2024-01-01", periods=3000, freq="1min"))
    batch = PAGSampler(bank, stamped, window=64).sample(20)
    assert (batch.mask.sum(axis=1) == 10).all()  # 600 s at one step a minute


@pytest.mark.parametrize(("location", "sign"), [("peak", 1), ("trough", -1)])
def test_peak_and_trough_placement(location: str, sign: int) -> None:
    series = _series(channels=1)
    bank = _bank(_rule("p", operator="spike", duration={"unit": "steps", "dist": 1}, where={"location": location}))
    batch = PAGSampler(bank, series, window=100, seed=3).sample(400)
    at = batch.x_raw[:, :, 0][batch.mask]
    assert sign * (at.mean() - batch.x_raw.mean()) > 0.5  # one-channel sine of amplitude 1


def test_phase_placement_follows_wall_clock_time() -> None:
    stamps = pd.date_range("2024-01-01", periods=4000, freq="15min")
    series = _series(length=4000, timestamps=stamps)
    rule = _rule("night", duration={"unit": "steps", "dist": 1},
                 where={"location": "phase", "phase": [0.0, 0.24], "period": {"value": 86400, "unit": "seconds"}})
    sampler = PAGSampler(_bank(rule), series, window=200, seed=0)
    batch = sampler.sample(300)
    rows = batch.starts[:, None] + np.arange(200)[None, :]
    hours = stamps.hour.to_numpy()[rows[batch.mask]]
    assert hours.max() < 6 and sampler.stats.placement_fallbacks == 0


def test_regime_filter_picks_high_and_low_windows() -> None:
    t = np.arange(4000)
    level = np.where((t // 500) % 2 == 0, 0.0, 10.0)
    series = TimeSeries(values=np.stack([level + np.sin(t / 5), np.cos(t / 7)], axis=1), channels=["a", "b"])
    means = {}
    for regime in ("high_level", "low_level"):
        rule = _rule(regime.replace("_", ""), channels={"mode": "named", "names": ["a"]}, where={"regime": regime})
        batch = PAGSampler(_bank(rule), series, window=100, seed=0).sample(200)
        means[regime] = batch.x_raw[:, :, 0].mean()
    assert means["high_level"] > 8 and means["low_level"] < 2


def test_ineffective_draws_are_redrawn_or_counted() -> None:
    values = np.zeros((1000, 2), dtype=np.float32)
    values[::40, 0] = 1.0  # a mostly flat channel: flatlines there barely change anything
    values[:, 1] = np.sin(np.arange(1000) / 3)
    bank = _bank(_rule("flat", operator="flatline", channels={"mode": "named", "names": ["ch0"]}))
    sampler = PAGSampler(bank, TimeSeries(values=values), window=64, seed=0, min_effect=0.5)
    batch = sampler.sample(200)
    weak = batch.effect < 0.5
    assert sampler.stats.redrawn > 0
    assert weak.sum() == sampler.stats.ineffective == sampler.stats.per_rule_ineffective.get("flat", 0)


def test_augment_is_small_and_label_preserving() -> None:
    rng = np.random.default_rng(0)
    x = _series().values[None, :100].repeat(8, axis=0)
    y = augment(x, rng, AugmentConfig(jitter=0.05, scale=0.05, max_shift=2))
    assert y.shape == x.shape and y.dtype == x.dtype
    spread = np.ptp(x, axis=1).max()
    assert 0 < np.abs(y - x).max() < 0.6 * spread
    same = augment(x, rng, AugmentConfig(jitter=0, scale=0, max_shift=0))
    assert np.array_equal(same, x) and same is not x


@pytest.mark.filterwarnings("ignore::anomalygraph.core.errors.DataWarning")
def test_real_msl_channel(shared_data) -> None:
    from anomalygraph.data.loaders import load_series

    series = load_series(shared_data / "SMAP_MSL" / "test" / "C-1.npy").train()
    sampler = PAGSampler(load_bank("cutaddpaste"), series, window=100, seed=0)
    batch = sampler.sample(512)
    assert batch.x_pa.shape == (512, 100, 55)
    region = batch.mask[:, :, None] & batch.channels[:, None, :]
    assert not (batch.x_pa != batch.x_raw)[~region].any()
    assert np.isfinite(batch.x_pa).all()
    assert (batch.effect >= sampler.config.min_effect).mean() > 0.95
