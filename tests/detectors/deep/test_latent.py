"""Latent scoring of window backbones: the kNN distance of embeddings, its calibration, and the fused score."""

from __future__ import annotations

import numpy as np
import pytest

from anomalygraph.core.errors import ConfigError
from anomalygraph.core.stats import median_scale
from anomalygraph.data.series import TimeSeries
from anomalygraph.detectors.ape import APEConfig
from anomalygraph.detectors.base import Detector
from anomalygraph.rulebank.post_training import post_train_detector
from tests.detectors.ape.conftest import TinyAEDetector, seasonal


def _fit(mode: str, **extra: object) -> tuple[TinyAEDetector, np.ndarray]:
    values = seasonal(600)
    return TinyAEDetector(score_with=mode, latent_neighbours=1, **extra).fit(values), values


def test_windows_in_the_reference_score_zero_and_held_out_rows_are_not_in_it() -> None:
    detector, values = _fit("latent")
    window, cut = detector.config.window, round(600 * 0.8)
    assert detector.reference_ is not None and len(detector.reference_) == cut - window + 1
    scores = detector.latent_scores(detector.standardise(values))
    # every window covering these rows is in the reference, so with k = 1 each is its own neighbour
    assert np.abs(scores[: cut - window + 1]).max() < 1e-5
    assert scores[cut:].mean() > 10 * np.abs(scores[: cut - window + 1]).max()


def test_calibration_comes_from_the_held_out_rows() -> None:
    detector, values = _fit("fused")
    window, cut = detector.config.window, round(600 * 0.8)
    held = detector.standardise(values[cut - window + 1:])
    expected_b = median_scale(detector.score_standardised(held)[window - 1:])
    expected_l = median_scale(detector.latent_scores(held)[window - 1:])
    np.testing.assert_allclose(detector.calibration_, [expected_b, expected_l])


def test_fused_is_the_sum_of_the_two_robust_z_scores() -> None:
    detector, _ = _fit("fused")
    test = seasonal(300, seed=3)
    test[150:170] += 2.0
    series = detector.standardise(test)
    (b_med, b_scale), (l_med, l_scale) = detector.calibration_
    expected = (detector.score_standardised(series) - b_med) / b_scale + (detector.latent_scores(series) - l_med) / l_scale
    np.testing.assert_allclose(detector.score(test), expected, rtol=1e-6)
    assert np.argmax(detector.score(test)) in range(140, 180)


def test_save_and_load_keep_the_reference(tmp_path) -> None:
    detector, _ = _fit("fused")
    test = seasonal(200, seed=5)
    loaded = Detector.load(detector.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.score(test), detector.score(test), rtol=1e-6)


def test_a_latent_mode_without_calibration_is_refused() -> None:
    detector, values = _fit("backbone")
    assert detector.reference_ is None
    detector.config = detector.config.model_copy(update={"score_with": "latent"})
    with pytest.raises(ConfigError, match="needs calibrate"):
        detector.score(values)


def test_post_training_recalibrates_the_reference() -> None:
    detector, values = _fit("fused")
    before = detector.reference_.clone()
    post_train_detector(detector, TimeSeries(values, name="s"), "cutaddpaste",
                        APEConfig(epochs=1, steps_per_epoch=5, batch_size=16, lr=1e-2))
    assert not np.allclose(before.numpy(), detector.reference_.numpy())
    assert len(detector.decision_scores_) == len(values)
