"""One contract test over every registered detector: shapes, alignment, errors, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from anomalygraph.core.errors import ConfigError, DataError, NotFittedError
from anomalygraph.data import TimeSeries
from anomalygraph.detectors import Detector, create_detector, detector_names, get_detector_class

# Small settings so the whole matrix stays fast; a detector not listed runs with its defaults.
TINY: dict[str, dict] = {
    "iforest": {"window": 16, "n_estimators": 20},
    "sub_pca": {"window": 16},
    "matrix_profile": {"window": 16},
    "robust_z": {"window": 16},
    "poly": {"window": 16},
    "kshape": {"window": 16},
    "series2graph": {"window": 16},
    "anomaly_transformer": {"window": 16, "d_model": 16, "n_heads": 2, "e_layers": 1, "d_ff": 16, "epochs": 1, "threads": 1},
    "f2a": {"weights": "none", "context_length": 32, "patch_length": 8, "horizon": 4, "adaptive_patching_levels": 1, "d_model": 16,
            "num_layers": 1, "decoder_d_model": 8, "decoder_num_layers": 1, "epochs": 1, "encoder_epochs": 1, "rag_k": 2,
            "max_windows": 200},
    "tspulse": {"weights": "none", "context_length": 64, "patch_length": 8, "d_model": 16, "num_layers": 1,
                "decoder_num_layers": 1, "epochs": 1, "masked_tail": 16, "stride": 8, "max_windows": 200, "threads": 1},
    "tranad": {"epochs": 1, "threads": 1},
    "timesnet": {"window": 16, "d_ff": 8, "num_kernels": 3, "epochs": 1, "threads": 1},
    "donut": {"window": 16, "hidden_sizes": [16], "latent_dim": 4, "mc_samples": 16, "epochs": 2, "threads": 1},
}


def tiny(name: str) -> Detector:
    return create_detector(name, **TINY.get(name, {}))


def seasonal(t: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, size=d)
    return (np.sin(2 * np.pi * np.arange(t)[:, None] / 32 + phase) + 0.05 * rng.normal(size=(t, d))).astype(np.float32)


# The package's own detectors; test modules register deliberately broken ones, which must not
# enter this list when collection order puts those modules first.
SHIPPED = [n for n in detector_names() if get_detector_class(n).__module__.startswith("anomalygraph.")]


@pytest.fixture(params=SHIPPED)
def name(request):
    return request.param


@pytest.mark.parametrize("d", [1, 3])
def test_scores_are_finite_aligned_and_deterministic(name, d):
    train, test = seasonal(400, d, 0), seasonal(300, d, 1)
    a, b = tiny(name).fit(train), tiny(name).fit(train)
    scores = a.score(test)
    assert scores.shape == (300,) and scores.dtype == np.float64
    assert np.isfinite(scores).all()
    np.testing.assert_array_equal(scores, b.score(test))
    assert a.decision_scores_.shape == (400,)
    assert a.threshold_.method == "percentile" and a.threshold_.fitted_on == "train scores"
    assert set(np.unique(a.predict(test))) <= {0, 1}


def test_score_follows_the_anomaly_in_time(name):
    """score[t] is about timestamp t: a spike moved by 50 rows moves the peak by 50 rows."""
    train = seasonal(600, 1, 0)
    det = tiny(name).fit(train)
    peaks = []
    for where in (150, 200):
        test = seasonal(400, 1, 1)
        test[where : where + 3] += 6.0
        peaks.append(int(np.argmax(det.score(test))))
    assert abs((peaks[1] - peaks[0]) - 50) <= 3, peaks
    assert 140 <= peaks[0] <= 170, peaks


def test_save_load_round_trips_bit_for_bit(name, tmp_path):
    train, test = seasonal(400, 2, 0), seasonal(300, 2, 1)
    det = tiny(name).fit(train)
    det.save(tmp_path / "model")
    loaded = Detector.load(tmp_path / "model")
    assert type(loaded) is type(det)
    np.testing.assert_array_equal(loaded.score(test), det.score(test))
    assert loaded.threshold_ == det.threshold_
    assert loaded.config == det.config


def test_channel_mismatch_and_short_series_are_clear_errors(name):
    det = tiny(name).fit(seasonal(400, 1, 0))
    with pytest.raises(DataError, match=r"has 3 channels, but .* was fitted on 1"):
        det.score(seasonal(300, 3, 1))
    if det.min_length > 5:  # causal point-wise detectors score any length
        with pytest.raises(DataError, match=rf"has 5 timestamps, shorter than .*window of {det.min_length}"):
            det.score(seasonal(5, 1, 1))


def test_unfitted_and_bad_config(name, tmp_path):
    with pytest.raises(NotFittedError):
        tiny(name).score(seasonal(100, 1, 0))
    with pytest.raises(NotFittedError):
        tiny(name).save(tmp_path / "x")
    with pytest.raises(ConfigError, match=f"invalid configuration for detector '{name}': no_such_field"):
        create_detector(name, no_such_field=1)
    with pytest.raises(ConfigError, match="contamination"):
        create_detector(name, contamination=0.9)


def test_time_series_input_equals_array_input(name):
    values = seasonal(400, 2, 0)
    series = TimeSeries(values=values, name="s")
    det = tiny(name).fit(series)
    np.testing.assert_array_equal(det.score(series), det.score(values))
