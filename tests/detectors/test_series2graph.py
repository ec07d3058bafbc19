"""Series2Graph: ray crossings, the graph of a cycle, planted anomalies, both reference modes."""

from __future__ import annotations

import numpy as np
import pytest

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.detectors import Detector, create_detector
from anomalygraph.detectors.series2graph import crossings


def seasonal(t: int = 3000, period: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sin(2 * np.pi * np.arange(t) / period) + 0.05 * rng.normal(size=t)


@pytest.mark.parametrize("direction", [1, -1])
def test_a_circle_crosses_every_ray_once_per_turn_in_its_own_order(direction):
    angles = direction * (np.arange(201) * 2 * np.pi / 100 + 0.01)  # two turns, 100 points each
    xy = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    segment, ray, radius, count = crossings(xy, 10)
    assert len(ray) == 20 and count.sum() == 20
    np.testing.assert_array_equal(np.bincount(ray, minlength=10), 2)
    steps = np.mod(np.diff(ray), 10)
    assert set(steps) == ({1} if direction == 1 else {9})  # trajectory order, both ways round
    assert np.all(np.diff(segment) > 0)
    np.testing.assert_allclose(radius, 2.0, rtol=1e-3)


def test_a_clean_cycle_makes_a_ring_graph():
    det = create_detector("series2graph", window=50, reference="train").fit(seasonal(t=2000))
    state = det.states_[0]
    n_nodes = int(state["node_offsets"][-1])
    assert len(state["edge_keys"]) <= 2 * 30 and n_nodes <= 2 * 30
    assert state["edge_weights"].sum() >= 30 * 30  # ~40 turns over 30 rays


def test_planted_shape_anomaly_gets_the_top_score():
    x = seasonal()
    x[2200:2250] = 0.9 * np.sign(np.sin(2 * np.pi * np.arange(50) / 12.5))
    scores = create_detector("series2graph", window=50).fit(x[:1500]).score(x)
    assert 2150 <= int(np.argmax(scores)) <= 2300, int(np.argmax(scores))
    assert scores[2200:2250].min() > np.percentile(scores, 95)


def test_train_reference_sees_the_anomaly_more_weakly():
    """Crossings snap to the nearest training node, however far: the documented weakness."""
    x = seasonal()
    x[2200:2250] = 0.9 * np.sign(np.sin(2 * np.pi * np.arange(50) / 12.5))
    scores = create_detector("series2graph", window=50, reference="train").fit(x[:1500]).score(x)
    assert scores[2200:2250].mean() > np.percentile(scores[1500:2100], 99)


def test_train_reference_saves_the_graph(tmp_path):
    x = seasonal()
    det = create_detector("series2graph", window=50, reference="train").fit(x[:1500])
    det.save(tmp_path / "m")
    loaded = Detector.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score(x), det.score(x))
    assert {"edge_keys", "edge_weights", "degree", "projection"} <= set(loaded.states_[0])


def test_self_reference_scores_a_series_against_its_own_graph():
    x = seasonal()
    a = create_detector("series2graph", window=50).fit(x[:1500])
    b = create_detector("series2graph", window=50).fit(seasonal(seed=7)[:1500])
    np.testing.assert_array_equal(a.score(x), b.score(x))  # only the window was learnt


def test_bad_settings_are_clear_errors():
    for bad in ({"rate": 2}, {"query_factor": 1.0}, {"window": 5}, {"reference": "test"}):
        with pytest.raises(ConfigError, match="invalid configuration for detector 'series2graph'"):
            create_detector("series2graph", **bad)
    with pytest.raises(DataError, match="embedding dimensions"):
        create_detector("series2graph", window=8, latent=6).fit(seasonal(t=500))
    with pytest.raises(DataError, match="has 100 timestamps, shorter than series2graph's window of 102"):
        create_detector("series2graph", window=50).fit(seasonal(t=100))
