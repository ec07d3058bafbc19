"""KShapeAD: k-Shape clustering, SAND's centroid weights, distance of subsequences to centroids."""

from __future__ import annotations

import numpy as np
import pytest

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.detectors import Detector, create_detector
from anomalygraph.detectors.kshape import _znorm, centroid_weights, kshape, sbd


def seasonal(t: int = 3000, period: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sin(2 * np.pi * np.arange(t) / period) + 0.05 * rng.normal(size=t)


def test_sbd_is_zero_for_scaled_and_shifted_copies():
    rng = np.random.default_rng(0)
    x = np.zeros(64)
    x[20:30] = rng.normal(size=10)
    shifted = np.roll(x, 7)  # the bump moves right; the zero padding keeps it whole
    dist, shift = sbd(np.stack([3 * x, shifted]), x[None, :])
    np.testing.assert_allclose(dist[:, 0], 0.0, atol=1e-9)
    assert list(shift[:, 0]) == [0, -7]  # moving the copy left by 7 aligns it with x
    assert sbd(-x[None, :], x[None, :])[0][0, 0] > 0.3


def test_kshape_separates_two_shapes_and_weights_the_big_cluster_most():
    rng = np.random.default_rng(1)
    t = np.arange(100)
    sines = [np.sin(2 * np.pi * (t + rng.integers(0, 20)) / 50) for _ in range(30)]
    squares = [np.sign(np.sin(2 * np.pi * (t + rng.integers(0, 20)) / 25)) for _ in range(10)]
    data = _znorm(np.array(sines + squares) + 0.05 * rng.normal(size=(40, 100)))
    _, labels = kshape(data, 2, np.random.default_rng(0))
    assert len(set(labels[:30])) == 1 and len(set(labels[30:])) == 1 and labels[0] != labels[30]
    centroids, labels = kshape(data, 2, np.random.default_rng(0))
    weights = centroid_weights(centroids, labels)
    assert weights[labels[0]] > weights[labels[30]]


def test_planted_shape_anomaly_gets_the_top_score():
    x = seasonal()
    x[2200:2250] = 0.9 * np.sign(np.sin(2 * np.pi * np.arange(50) / 12.5))  # one period of another shape
    det = create_detector("kshape", window=50).fit(x[:1500])
    scores = det.score(x)
    assert 2150 <= int(np.argmax(scores)) <= 2300
    assert scores.max() > 2 * np.median(scores)
    assert scores.min() >= 0 and scores.max() <= 1  # distances over their bound 2 * sqrt(window)


def test_seeded_save_load_and_training_rows_only(tmp_path):
    x = seasonal()
    a = create_detector("kshape", window=50, seed=3).fit(x[:1500])
    b = create_detector("kshape", window=50, seed=3).fit(x[:1500])
    np.testing.assert_array_equal(a.score(x), b.score(x))
    centroids = a.states_[0]["centroids"]
    assert centroids.shape[1] == 200 and 1 <= len(centroids) <= 6  # 4 windows long, at most k
    a.save(tmp_path / "m")
    np.testing.assert_array_equal(Detector.load(tmp_path / "m").score(x), a.score(x))


def test_bad_settings_and_short_training_are_clear_errors():
    for bad in ({"n_clusters": 0}, {"subsequence_factor": 0}, {"stride_factor": 0}, {"window": "period"}):
        with pytest.raises(ConfigError, match="invalid configuration for detector 'kshape'"):
            create_detector("kshape", **bad)
    with pytest.raises(DataError, match="leave no subsequence of 200 points"):
        create_detector("kshape", window=50).fit(seasonal(t=200))
