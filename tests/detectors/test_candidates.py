"""Candidate views: channels that are constant in the training rows are fitted on every row."""

from __future__ import annotations

import numpy as np
import pytest

from anomalygraph.core.errors import DataError
from anomalygraph.data import TimeSeries
from anomalygraph.detectors.candidates import CONSTANT_NOTE, channel_series, run_candidates
from anomalygraph.detectors.run import FitOn, fit_detector


def wave(length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return (np.sin(2 * np.pi * t / 50) + 0.05 * rng.standard_normal(length)).astype(np.float32)


def quiet_then_live(length: int = 3000, train_end: int = 1500, burst: int = 2500) -> np.ndarray:
    """A channel held at 0 through training that comes alive afterwards, with one burst."""
    x = np.zeros(length, dtype=np.float32)
    x[train_end:] = wave(length - train_end, seed=3)
    x[burst : burst + 30] += 6.0
    return x


def test_a_channel_constant_in_training_is_fitted_on_every_row_and_still_scored():
    values = np.column_stack([wave(3000, seed=1), quiet_then_live()])
    series = TimeSeries(values=values, name="m", train_end=1500)
    # the univariate method refuses the constant channel when it may only learn from training
    with pytest.raises(DataError, match="non-constant"):
        fit_detector(channel_series(series, 1), "poly", fit_on=FitOn.train)
    run = run_candidates(series, "poly", None, views=("channels",))
    columns, z = run.per_channel["poly@channels"]
    assert columns == [0, 1]
    assert run.notes["poly@channels"] == [f"{series.channels[1]} {CONSTANT_NOTE}"]
    # the burst in the formerly constant channel is where that channel's z peaks
    assert 2490 <= int(np.argmax(z[:, 1])) <= 2540


def test_a_series_constant_in_training_gets_a_joint_track_with_a_note():
    series = TimeSeries(values=quiet_then_live()[:, None], name="u", train_end=1500)
    run = run_candidates(series, "matrix_profile", None)
    assert "matrix_profile" in run.scores and not run.errors
    assert all(n.endswith(CONSTANT_NOTE) for n in run.notes["matrix_profile"])
    assert 2440 <= int(np.argmax(run.scores["matrix_profile"])) <= 2540


def test_a_channel_that_varies_in_training_is_fitted_on_training_only():
    values = np.column_stack([wave(3000, seed=1), wave(3000, seed=2)])
    run = run_candidates(TimeSeries(values=values, name="m", train_end=1500), "poly", None, views=("channels",))
    assert run.notes == {}
