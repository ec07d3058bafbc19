"""Label-free thresholds: each recovers what it promises on data whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.core.intervals import Interval
from anomalygraph.core.thresholds import (
    Threshold,
    fit_gpd,
    intervals_above,
    k_sigma_threshold,
    percentile_threshold,
    pot_threshold,
    spot,
)


def test_percentile_threshold_is_the_training_quantile() -> None:
    scores = np.arange(1000.0)
    t = percentile_threshold(scores, 0.05)
    assert t.value == pytest.approx(np.quantile(scores, 0.95))
    assert (t.method, t.params) == ("percentile", {"contamination": 0.05})


def test_k_sigma_and_its_robust_form() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(10, 2, 5000)
    t = k_sigma_threshold(scores, 3)
    assert t.value == pytest.approx(scores.mean() + 3 * scores.std())
    assert t.method == "k_sigma" and t.params["k"] == 3
    polluted = np.concatenate((scores, np.full(100, 1e4)))  # 2% huge training outliers
    assert k_sigma_threshold(polluted, 3).value > 500
    robust = k_sigma_threshold(polluted, 3, robust=True)
    assert robust.method == "k_sigma_robust" and robust.value == pytest.approx(16, abs=0.5)
    with pytest.raises(ConfigError, match="k must be a positive number"):
        k_sigma_threshold(scores, 0)


@pytest.mark.parametrize(("shape", "scale"), [(-0.2, 1.0), (0.0, 2.0), (0.3, 0.5)])
def test_fit_gpd_recovers_known_parameters(shape: float, scale: float) -> None:
    sample = stats.genpareto.rvs(shape, scale=scale, size=20_000, random_state=np.random.default_rng(1))
    xi, sigma = fit_gpd(sample)
    assert xi == pytest.approx(shape, abs=0.05)
    assert sigma == pytest.approx(scale, rel=0.05)


def test_pot_extrapolates_to_the_requested_risk() -> None:
    rng = np.random.default_rng(2)
    train = rng.exponential(1.0, 20_000)
    t = pot_threshold(train, risk=1e-4, level=0.98)
    # Exponential tail: the exceedance-1e-4 quantile is ln(1e4) = 9.21, beyond most training scores.
    assert t.value == pytest.approx(math.log(1e4), rel=0.1)
    assert abs(t.params["gpd_shape"]) < 0.1 and t.params["n_peaks"] == pytest.approx(400, abs=2)
    fresh = rng.exponential(1.0, 2_000_000)
    assert 0.4e-4 < np.mean(fresh > t.value) < 2.5e-4
    assert t.method == "pot" and "risk=0.0001" in t.describe()


def test_pot_sees_a_heavy_tail() -> None:
    train = stats.pareto.rvs(3.0, size=20_000, random_state=np.random.default_rng(3))
    t = pot_threshold(train, risk=1e-3)
    assert t.params["gpd_shape"] == pytest.approx(1 / 3, abs=0.12)
    assert t.value == pytest.approx(1e3 ** (1 / 3), rel=0.15)  # Pareto(3) quantile at 1 - 1e-3


def test_pot_refuses_what_it_cannot_fit() -> None:
    rng = np.random.default_rng(4)
    with pytest.raises(DataError, match="at least 10 training scores above"):
        pot_threshold(rng.random(200), level=0.98)
    with pytest.raises(ConfigError, match="risk must be in"):
        pot_threshold(rng.random(5000), risk=0.05, level=0.98)
    with pytest.raises(ConfigError, match="level"):
        pot_threshold(rng.random(5000), level=1.0)
    coarse = np.concatenate((np.zeros(4900), np.ones(100)))
    with pytest.raises(DataError, match="are equal"):
        pot_threshold(coarse, level=0.97)
    with pytest.raises(DataError, match="NaN"):
        pot_threshold(np.array([1.0, np.nan, 2.0]))


def test_spot_alarms_on_extremes_and_adapts_to_a_heavier_stream() -> None:
    rng = np.random.default_rng(5)
    train = rng.exponential(1.0, 5000)
    stream = rng.exponential(1.0, 1500)
    stream[1000] = 40.0
    result = spot(train, stream, risk=1e-3)
    assert result.thresholds.shape == (1500,)
    assert result.thresholds[0] == pytest.approx(pot_threshold(train, risk=1e-3).value)
    assert 1000 in result.alarms
    assert result.thresholds[1001] == result.thresholds[1000]  # an alarm does not move the tail
    assert len(result.alarms) < 10
    assert result.final.method == "spot" and result.final.params["n_alarms"] == len(result.alarms)

    heavier = rng.exponential(2.0, 800)  # the stream's scale doubles: new peaks lift the tail
    drifted = spot(train, heavier, risk=1e-3)
    assert drifted.final.params["n_peaks"] > 150
    assert drifted.thresholds[-1] > drifted.thresholds[0] + 0.2


def test_intervals_above_a_threshold() -> None:
    scores = np.array([0.0, 2.0, 3.0, 1.0, 0.5, 5.0, 5.0, 0.0])
    expected = [Interval(start=1, end=2, peak=2, peak_score=3.0), Interval(start=5, end=6, peak=5, peak_score=5.0)]
    assert intervals_above(scores, 1.0) == expected  # strictly above: the 1.0 at index 3 is not flagged
    assert intervals_above(scores, Threshold(value=1.0, method="k_sigma")) == expected
    per_step = np.array([9, 9, 2, 9, 0.1, 9, 4, 9.0])
    assert intervals_above(scores, per_step) == [
        Interval(start=2, end=2, peak=2, peak_score=3.0),
        Interval(start=4, end=4, peak=4, peak_score=0.5),
        Interval(start=6, end=6, peak=6, peak_score=5.0),
    ]
    with pytest.raises(DataError, match="3 thresholds for 8 scores"):
        intervals_above(scores, np.ones(3))
    with pytest.raises(DataError, match="NaN or inf"):
        intervals_above(np.array([1.0, np.nan]), 0.5)
