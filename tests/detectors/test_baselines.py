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


# ------------------------------------------------------------------- Sub-PCA scores
def _standardised_windows(x: np.ndarray, fit_rows: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    windows = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), w)
    train = windows[: fit_rows - w + 1]
    mean, std = train.mean(axis=0), train.std(axis=0)
    return (train - mean) / std, (windows - mean) / std


def test_sub_pca_mahalanobis_is_the_eigenvalue_weighted_distance_over_all_components():
    from anomalygraph.data.windows import windows_to_scores

    x, _ = generated(1)
    w = 10
    det = create_detector("sub_pca", window=w, ridge=0.0).fit(x[:1000])
    z_train, z = _standardised_windows(x, 1000, w)
    inverse = np.linalg.inv(np.cov(z_train.T, bias=True))
    expected = np.einsum("ij,jk,ik->i", z, inverse, z)
    np.testing.assert_allclose(det.score(x), windows_to_scores(expected, np.arange(len(z)), w, len(x)), rtol=1e-4)
    # A huge ridge leaves the plain distance from the mean window.
    far = create_detector("sub_pca", window=w, ridge=1e6).fit(x[:1000])
    plain = windows_to_scores(np.sum(z**2, axis=1), np.arange(len(z)), w, len(x))
    assert np.corrcoef(far.score(x), plain)[0, 1] > 0.99999


def test_sub_pca_tsbad_score_is_pyods_formula_placed_like_tsbad():
    from scipy.spatial.distance import cdist
    from sklearn.decomposition import PCA

    x, _ = generated(2)
    w = 12
    det = create_detector("sub_pca", window=w, score="tsbad", reduce="centre").fit(x)
    _, z = _standardised_windows(x, len(x), w)
    pca = PCA(svd_solver="full").fit(z)
    expected = np.sum(cdist(z, pca.components_) / pca.explained_variance_ratio_, axis=1)
    scores = det.score(x)
    lead = w // 2  # TSB-AD pads ceil((w - 1) / 2) copies of the first score in front
    np.testing.assert_allclose(scores[lead : lead + len(expected)], expected, rtol=1e-6)
    assert np.all(scores[:lead] == scores[lead]) and np.all(scores[lead + len(expected) - 1 :] == scores[-1])


def test_sub_pca_mahalanobis_sees_a_level_excursion_that_reconstruction_misses():
    """On a wandering level the level direction is a principal one: its residual stays small."""
    rng = np.random.default_rng(0)
    t = np.arange(4000)
    x = np.sin(2 * np.pi * t / 700) + 0.5 * np.sin(2 * np.pi * t / 290) + 0.05 * rng.normal(size=4000)
    x[3000:3400] += 4.0  # far above any level seen in training
    labels = np.zeros(4000, dtype=np.uint8)
    labels[3000:3400] = 1
    auc = {
        score: roc_auc_score(labels[2000:], create_detector("sub_pca", window=20, score=score).fit(x[:2000]).score(x)[2000:])
        for score in ("mahalanobis", "reconstruction", "tsbad")
    }
    assert auc["mahalanobis"] > 0.95 and auc["tsbad"] > 0.95 and auc["reconstruction"] < 0.7, auc


def test_sub_pca_finds_the_ucr_anomaly(shared_data):
    series = load_series(shared_data / "UCR" / "135_UCR_Anomaly_InternalBleeding16_1200_4187_4199.txt")
    det = create_detector("sub_pca").fit(series.train())
    scores = det.score(series)
    peak = int(np.argmax(scores[series.train_end :])) + series.train_end
    assert 4186 - det.window_ <= peak <= 4199 + det.window_, peak


def test_sub_pca_saved_before_the_score_option_loads_as_reconstruction(tmp_path):
    import json

    x, _ = generated(0)
    det = create_detector("sub_pca", window=20, score="reconstruction").fit(x[:1000])
    det.save(tmp_path / "old")
    header = json.loads((tmp_path / "old" / "detector.json").read_text())
    for key in ("score", "ridge"):
        del header["config"][key]
    (tmp_path / "old" / "detector.json").write_text(json.dumps(header))
    with np.load(tmp_path / "old" / "state.npz") as data:
        state = {k: data[k] for k in data.files if k != "eigen"}
    np.savez(tmp_path / "old" / "state.npz", **state)
    loaded = Detector.load(tmp_path / "old")
    assert loaded.config.score == "reconstruction"
    np.testing.assert_array_equal(loaded.score(x), det.score(x))


def test_sub_pca_bad_settings():
    for bad in ({"score": "pyod"}, {"ridge": -1.0}, {"reduce": "median"}, {"variance": 1.0}):
        with pytest.raises(ConfigError, match="invalid configuration for detector 'sub_pca'"):
            create_detector("sub_pca", **bad)
