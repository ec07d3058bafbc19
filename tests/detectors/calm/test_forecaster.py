"""CALM forecasters: the registry, config and input errors, quantile_mlp's calibration, accuracy and
fine-tuning, persistence, the shipped TTM and TimesFM's refusal without weights."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from anomalygraph.core.errors import ConfigError, DataError, NotFittedError
from anomalygraph.detectors.calm import (
    QuantileForecaster,
    create_forecaster,
    forecaster_names,
    interval_coverage,
)
from anomalygraph.detectors.calm.forecaster import sliding_windows, split_windows
from anomalygraph.detectors.calm.quantile_mlp import QuantileMLPForecaster

PERIOD, NOISE, WARMUP = 32, 0.3, 2000


def sine(length: int, seed: int = 0, level: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return level + np.sin(2 * np.pi * t / PERIOD) + NOISE * rng.standard_normal(length)


def held_out(forecaster: QuantileForecaster, values: np.ndarray, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Forecasts ``[N, H, Q]`` and actuals ``[N, H]`` of every ``step``-th window of ``values``."""
    windows = sliding_windows(values, forecaster.context_length + forecaster.horizon)[::step]
    return forecaster.predict(windows[:, : forecaster.context_length]), windows[:, forecaster.context_length:]


@pytest.fixture(scope="module")
def series() -> np.ndarray:
    return sine(WARMUP + 600)


@pytest.fixture(scope="module")
def mlp(series: np.ndarray) -> QuantileMLPForecaster:
    forecaster = create_forecaster("quantile_mlp", threads=1)
    assert isinstance(forecaster, QuantileMLPForecaster)
    return forecaster.fit(series[:WARMUP])


# ------------------------------------------------------------------ registry and errors
def test_registry_lists_the_forecasters():
    assert {"quantile_mlp", "ttm", "timesfm"} <= set(forecaster_names())
    with pytest.raises(ConfigError, match=r"unknown forecaster 'nope'.*quantile_mlp"):
        create_forecaster("nope")


@pytest.mark.parametrize(("config", "field"), [
    ({"hidden": 0}, "hidden"), ({"colour": "red"}, "colour"), ({"quantiles": (0.8, 0.2)}, "ascending"),
    ({"quantiles": (0.0, 0.5)}, "between 0 and 1"), ({"horizon": 0}, "horizon"),
])
def test_bad_config_is_one_config_error_naming_the_field(config: dict, field: str):
    with pytest.raises(ConfigError, match=rf"forecaster 'quantile_mlp'.*{field}"):
        create_forecaster("quantile_mlp", **config)


def test_bad_input_is_a_clear_data_error(mlp: QuantileMLPForecaster):
    fresh = create_forecaster("quantile_mlp", threads=1)
    with pytest.raises(NotFittedError, match=r"fitted before predicting"):
        fresh.predict(np.zeros((1, fresh.context_length)))
    bad = sine(500)
    bad[123] = np.nan
    with pytest.raises(DataError, match=r"1 NaN or infinite values .*index \[123\]"):
        fresh.fit(bad)
    with pytest.raises(DataError, match=r"at least 96 warm-up points"):
        fresh.fit(sine(50))
    contexts = np.zeros((2, mlp.context_length))
    contexts[1, 3] = np.inf
    with pytest.raises(DataError, match=r"NaN or infinite"):
        mlp.predict(contexts)
    with pytest.raises(DataError, match=rf"\[B, {mlp.context_length}\]"):
        mlp.predict(np.zeros((2, mlp.context_length + 1)))
    with pytest.raises(DataError, match=r"windows of 80 points"):
        mlp.fine_tune(sine(40))
    with pytest.raises(ConfigError, match=r"validation_fraction"):
        mlp.fine_tune(sine(400), validation_fraction=1.0)


def test_split_keeps_validation_targets_out_of_training():
    values = np.arange(100.0)
    train, val = split_windows(sliding_windows(values, 10), 0.2, horizon=3)  # 91 windows: 18 validate
    first_target = val[0, 7]  # the first row a validation window forecasts
    assert len(val) == 18 and train.max() < first_target
    assert len(train) == 91 - 18 - 3 + 1  # only horizon - 1 windows between them are lost


# ------------------------------------------------------------------ quantile_mlp
def test_predict_shape_dtype_and_monotone_quantiles(mlp: QuantileMLPForecaster, series: np.ndarray):
    out = mlp.predict(series[WARMUP: WARMUP + 3 * mlp.context_length].reshape(3, mlp.context_length))
    assert out.shape == (3, mlp.horizon, 4) and out.dtype == np.float64
    assert (np.diff(out, axis=-1) > 0).all()
    assert mlp.predict(series[:mlp.context_length]).shape == (1, mlp.horizon, 4)  # one context is a batch of one


def test_held_out_coverage_is_calibrated_and_median_beats_the_mean(mlp: QuantileMLPForecaster, series: np.ndarray):
    forecast, actual = held_out(mlp, series[WARMUP:])
    coverage = interval_coverage(actual, forecast[..., 0], forecast[..., 3])  # [q20, q80]: 0.6 if calibrated
    inner = interval_coverage(actual, forecast[..., 1], forecast[..., 2])  # [q30, q70]: 0.4 if calibrated
    assert 0.45 <= coverage <= 0.75, coverage
    assert 0.25 <= inner < coverage, inner
    median = forecast[..., 1:3].mean(axis=-1)
    mae, mean_mae = np.abs(median - actual).mean(), np.abs(series[:WARMUP].mean() - actual).mean()
    assert mae < 0.6 * mean_mae, (mae, mean_mae)
    report = mlp.warmup_report_
    assert report is not None and report.epochs >= 2 and report.val_windows > 0 and report.val_loss_after is not None


def test_fit_is_deterministic():
    values = sine(600, seed=3)
    a = create_forecaster("quantile_mlp", threads=1, epochs=3).fit(values)
    b = create_forecaster("quantile_mlp", threads=1, epochs=3).fit(values)
    c = create_forecaster("quantile_mlp", threads=1, epochs=3, seed=1).fit(values)
    contexts = values[-2 * a.context_length:].reshape(2, -1)
    np.testing.assert_array_equal(a.predict(contexts), b.predict(contexts))
    assert not np.array_equal(a.predict(contexts), c.predict(contexts))


def test_fine_tune_on_a_level_shift_moves_forecasts_to_the_new_level(mlp: QuantileMLPForecaster):
    tuned = copy.deepcopy(mlp)
    shifted = sine(900, seed=7, level=2.5)
    adapt, later = shifted[:500], shifted[500:]
    before, actual = held_out(tuned, later)
    report = tuned.fine_tune(adapt, epochs=1)
    after, _ = held_out(tuned, later)
    assert report.epochs == 1 and report.val_windows == int(421 * 0.2) and report.train_windows > 300
    assert report.val_loss_before is not None and report.val_loss_after is not None
    assert report.val_loss_after < report.val_loss_before
    err_before = np.abs(before[..., 1:3].mean(-1) - actual).mean()
    err_after = np.abs(after[..., 1:3].mean(-1) - actual).mean()
    assert err_after < 0.7 * err_before, (err_before, err_after)
    assert after[..., 1:3].mean() > before[..., 1:3].mean() + 0.5  # towards 2.5
    # the warm-up's standardisation is kept, not refitted on the new points
    assert (tuned.mean_, tuned.scale_) == (mlp.mean_, mlp.scale_)


def test_fine_tune_with_noise_and_on_windows(mlp: QuantileMLPForecaster):
    windows = sliding_windows(sine(400, seed=9, level=1.0), mlp.context_length + mlp.horizon)
    plain, noisy, again = copy.deepcopy(mlp), copy.deepcopy(mlp), copy.deepcopy(mlp)
    report = plain.fine_tune(windows)
    assert (report.train_windows, report.val_windows) == (len(windows) - int(len(windows) * 0.2), int(len(windows) * 0.2))
    noisy.fine_tune(windows, noise_level=0.5, seed=4)
    again.fine_tune(windows, noise_level=0.5, seed=4)
    contexts = windows[:3, : mlp.context_length]
    np.testing.assert_array_equal(noisy.predict(contexts), again.predict(contexts))
    assert not np.array_equal(noisy.predict(contexts), plain.predict(contexts))


def test_save_and_load_give_identical_predictions(mlp: QuantileMLPForecaster, series: np.ndarray, tmp_path: Path):
    mlp.version = 4
    try:
        path = mlp.save(tmp_path / "model")
    finally:
        mlp.version = 0
    loaded = QuantileForecaster.load(path)
    assert isinstance(loaded, QuantileMLPForecaster) and loaded.version == 4
    contexts = series[-3 * mlp.context_length:].reshape(3, -1)
    np.testing.assert_array_equal(loaded.predict(contexts), mlp.predict(contexts))
    (path / "weights.pt").write_bytes(b"not torch")
    with pytest.raises(DataError, match=r"weights.pt"):
        QuantileForecaster.load(path)
    with pytest.raises(DataError, match=r"no forecaster.json"):
        QuantileForecaster.load(tmp_path)


# ------------------------------------------------------------------ ttm
def _ttm_or_skip() -> None:
    from anomalygraph.detectors.calm.ttm import ttm_unavailable

    problem = ttm_unavailable()
    if problem:
        pytest.skip(f"the shipped TTM backbone cannot run here: {problem}")


@pytest.fixture(scope="module")
def ttm() -> QuantileForecaster:
    _ttm_or_skip()
    return create_forecaster("ttm", threads=1).fit(sine(700))


def test_ttm_predicts_monotone_quantiles_of_the_right_shape(ttm: QuantileForecaster):
    assert (ttm.context_length, ttm.horizon) == (512, 16)
    forecast, actual = held_out(ttm, sine(700, seed=5), step=8)
    assert forecast.shape == (len(actual), 16, 4) and forecast.dtype == np.float64
    assert (np.diff(forecast, axis=-1) >= 0).all()
    assert 0.4 <= interval_coverage(actual, forecast[..., 0], forecast[..., 3]) <= 0.8  # conformal on the warm-up


def test_ttm_save_load_round_trips_and_fine_tune_reports(ttm: QuantileForecaster, tmp_path: Path):
    tuned = copy.deepcopy(ttm)
    report = tuned.fine_tune(sine(800, seed=6, level=1.0), epochs=1)
    assert report.train_windows > 0 and report.val_windows > 0 and report.val_loss_after is not None
    contexts = sine(3 * 512, seed=8).reshape(3, 512)
    loaded = QuantileForecaster.load(tuned.save(tmp_path / "ttm"))
    np.testing.assert_allclose(loaded.predict(contexts), tuned.predict(contexts), rtol=0, atol=1e-9)


def test_ttm_config_errors_name_the_problem(tmp_path: Path):
    _ttm_or_skip()
    with pytest.raises(ConfigError, match=r"horizon 99 exceeds the backbone's 16"):
        create_forecaster("ttm", horizon=99)
    with pytest.raises(ConfigError, match=r"no TTM weights at .*f2a.pt"):
        create_forecaster("ttm", weights=tmp_path)
    from anomalygraph.detectors.f2a.detector import SHIPPED

    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(SHIPPED / "backbone.json", broken)
    (broken / "f2a.pt").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match=r"cannot load TTM weights .*broken/f2a.pt"):
        create_forecaster("ttm", weights=broken)


# ------------------------------------------------------------------ timesfm
def test_timesfm_without_its_weights_says_what_is_missing(tmp_path: Path):
    missing = tmp_path / "nowhere" / "torch_model.ckpt"
    with pytest.raises(ConfigError, match=rf"no weights at {re.escape(str(missing))}.*nothing is downloaded.*'quantile_mlp'"):
        create_forecaster("timesfm", checkpoint=missing)
    import importlib.util

    if importlib.util.find_spec("timesfm") is None:
        with pytest.raises(ConfigError, match=r"'timesfm' package is not installed"):
            create_forecaster("timesfm")
