"""POLY: block residual against a polynomial through the neighbours, TSB-AD's warm-up, channels."""

from __future__ import annotations

import numpy as np
import pytest

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.detectors import Detector, create_detector
from anomalygraph.detectors.poly import block_residuals, warmup_rows


def seasonal(t: int = 3000, period: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sin(2 * np.pi * np.arange(t) / period) + 0.05 * rng.normal(size=t)


def test_planted_spike_gets_the_top_score():
    """POLY models a smooth local trend; a few points off it make their block stand out."""
    x = seasonal(period=1000)
    x[2210:2214] += 1.0
    det = create_detector("poly", window=50).fit(x[:1000])
    scores = det.score(x)
    assert 2200 <= int(np.argmax(scores)) < 2250  # the block holding the spike
    assert scores[2200] > 3 * np.median(scores[1000:])


def test_a_polynomial_is_predicted_exactly_and_a_step_is_not():
    t = np.arange(2000, dtype=np.float64)
    x = 1e-9 * (t - 1000) ** 3 + 1e-3 * t
    scores = block_residuals(x, 20, 3, 200)
    assert scores.max() < 1e-9
    x[1000:1020] += 1.0
    scores = block_residuals(x, 20, 3, 200)
    assert int(np.argmax(scores)) == 1000 and scores[1000] > 0.5
    assert np.all(scores[1000:1020] == scores[1000])  # every row of a block shares its score


def test_warmup_is_tsbads_min_500_or_10_percent_in_whole_blocks():
    assert warmup_rows(3000, 50, "auto") == 300
    assert warmup_rows(20_000, 60, "auto") == 540  # 500 rounded up to whole blocks
    assert warmup_rows(3000, 50, 0) == 0
    x = seasonal()
    warm = create_detector("poly", window=50).fit(x)
    assert np.all(warm.decision_scores_[:300] == 0) and np.all(warm.decision_scores_[300:] > 0)
    cold = create_detector("poly", window=50, warmup=0).fit(x)
    assert np.all(cold.decision_scores_ > 0)
    np.testing.assert_allclose(cold.decision_scores_[600:-600], warm.decision_scores_[600:-600])


def test_scores_are_in_units_of_the_training_range():
    x = seasonal()
    a = create_detector("poly", window=50).fit(x).score(x)
    b = create_detector("poly", window=50).fit(10 * x + 3).score(10 * x + 3)
    np.testing.assert_allclose(a, b, rtol=1e-5)  # float32 input


def test_channels_constant_ones_are_left_out_and_scores_are_averaged(tmp_path):
    x = seasonal(period=1000)
    values = np.stack([x, np.full_like(x, 2.0), seasonal(period=700, seed=3)], axis=1).astype(np.float32)
    values[2210:2214, 2] += 1.0
    det = create_detector("poly", window=50).fit(values[:1000])
    assert list(det.channels_) == [0, 2]
    scores = det.score(values)
    assert 2200 <= int(np.argmax(scores)) < 2250
    det.save(tmp_path / "m")
    np.testing.assert_array_equal(Detector.load(tmp_path / "m").score(values), scores)


def test_bad_settings_are_clear_errors():
    for bad in ({"power": -1}, {"power": 11}, {"window": 1}, {"warmup": -3}, {"neighbourhood": 2}):
        with pytest.raises(ConfigError, match="invalid configuration for detector 'poly'"):
            create_detector("poly", **bad)
    with pytest.raises(DataError, match="has 53 timestamps, shorter than poly's window of 54"):
        create_detector("poly", window=50).fit(seasonal(t=53))
    with pytest.raises(DataError, match="non-constant channel"):
        create_detector("poly", window=5).fit(np.ones(100))
