"""Baselines must actually detect: performance floors on seeded generated data and a real series."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.data import load_series
from anomalygraph.detectors import Detector, create_detector, detector_names, get_detector_class

BASELINES = ["iforest", "sub_pca", "matrix_profile", "robust_z"]


def generated(seed: int, t: int = 3000, period: int = 50):
    """A noisy seasonal series with a spike, a level shift and a shape change, and their labels."""
    rng = np.random.default_rng(seed)
    x = np.sin(2 * np.pi * np.arange(t) / period) + 0.1 * rng.normal(size=t)
    labels = np.zeros(t, dtype=np.uint8)
    for start, length, kind in ((1500, 5, "spike"), (2000, 60, "shift"), (2500, 100, "shape")):
        sl = slice(start, start + length)
        if kind == "spike":
            x[sl] += 4
        elif kind == "shift":
            x[sl] += 2.5
        else:
            x[sl] = np.sin(2 * np.pi * np.arange(length) / (period / 4))
        labels[sl] = 1
    return x.astype(np.float32), labels


@pytest.mark.parametrize(("name", "floor"), [("iforest", 0.85), ("sub_pca", 0.85), ("matrix_profile", 0.7)])
def test_auc_floor_on_generated_data(name, floor):
    # z-normalised matrix-profile distances ignore a level shift inside a window, hence its lower floor.

    aucs = []
    for seed in range(3):
        x, labels = generated(seed)
        det = create_detector(name, window=50).fit(x[:1200])
        aucs.append(roc_auc_score(labels[1200:], det.score(x)[1200:]))
    assert min(aucs) >= floor, aucs
    random = roc_auc_score(labels[1200:], np.random.default_rng(0).random(1800))
    assert min(aucs) > random + 0.1


def test_robust_z_catches_spikes_in_noise():
    """The moving-statistics baseline is for point anomalies on non-seasonal signals."""
    rng = np.random.default_rng(0)
    x = np.cumsum(0.05 * rng.normal(size=3000)) + 0.2 * rng.normal(size=3000)
    labels = np.zeros(3000, dtype=np.uint8)
    for at in (1400, 1800, 2100, 2600):
        x[at] += 3.0
        labels[at] = 1
    det = create_detector("robust_z", window=32).fit(x[:1000])
    scores = det.score(x)
    assert roc_auc_score(labels[1000:], scores[1000:]) >= 0.99
    assert set(np.flatnonzero(det.predict(x)[1000:] == 1) + 1000) >= {1400, 1800, 2100, 2600}


def test_matrix_profile_finds_the_ucr_anomaly(shared_data):
    series = load_series(shared_data / "UCR" / "135_UCR_Anomaly_InternalBleeding16_1200_4187_4199.txt")
    det = create_detector("matrix_profile").fit(series.train())
    scores = det.score(series)
    peak = int(np.argmax(scores[series.train_end :])) + series.train_end
    assert 4186 - det.window_ <= peak <= 4199 + det.window_, peak


def test_auto_window_is_the_period():
    x, _ = generated(0, period=40)
    assert create_detector("iforest").fit(x[:1200]).window_ == 40


def test_registry():
    assert set(BASELINES) <= set(detector_names())
    with pytest.raises(ConfigError, match="unknown detector 'nope'"):
        get_detector_class("nope")
    with pytest.raises(DataError, match="window must be an integer >= 2"):
        create_detector("iforest", window=1)


def test_load_rejects_other_kinds_and_foreign_folders(tmp_path):
    x, _ = generated(0)
    create_detector("sub_pca", window=20).fit(x[:500]).save(tmp_path / "pca")
    with pytest.raises(DataError, match="holds a 'sub_pca' detector, not 'iforest'"):
        get_detector_class("iforest").load(tmp_path / "pca")
    with pytest.raises(DataError, match="not a saved detector"):
        Detector.load(tmp_path)
