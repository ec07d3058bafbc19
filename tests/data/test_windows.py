"""Window round-trip properties: every timestamp covered, per-step scores recovered exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomalygraph.core.errors import DataError
from anomalygraph.data import sliding_windows, window_starts, windows_to_scores

shapes = st.tuples(st.integers(1, 300), st.integers(1, 4)).flatmap(
    lambda td: st.tuples(st.just(td[0]), st.just(td[1]), st.integers(1, td[0]), st.integers(1, 50))
)


@settings(max_examples=200, deadline=None)
@given(shapes, st.integers(0, 2**32 - 1))
def test_windows_are_the_rows_they_claim(shape, seed):
    t, d, window, stride = shape
    values = np.random.default_rng(seed).normal(size=(t, d)).astype(np.float32)
    windows, starts = sliding_windows(values, window, stride)
    assert windows.shape == (len(starts), window, d)
    assert starts[0] == 0 and starts[-1] == t - window
    assert np.all(np.diff(starts) > 0) and np.all(np.diff(starts) <= stride)
    for k in (0, len(starts) // 2, len(starts) - 1):
        np.testing.assert_array_equal(windows[k], values[starts[k] : starts[k] + window])


@settings(max_examples=200, deadline=None)
@given(shapes, st.integers(0, 2**32 - 1), st.sampled_from(["mean", "max"]))
def test_per_step_scores_round_trip(shape, seed, reduce):
    t, _, window, stride = shape
    stride = min(stride, window)  # a stride beyond the window leaves gaps (tested below)
    scores = np.random.default_rng(seed).normal(size=t)
    windows, starts = sliding_windows(scores, window, stride)
    back = windows_to_scores(windows[:, :, 0], starts, window, t, reduce=reduce)
    np.testing.assert_allclose(back, scores, rtol=1e-12, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(shapes, st.integers(0, 2**32 - 1))
def test_window_scores_mean_and_max_bounds(shape, seed):
    t, _, window, stride = shape
    stride = min(stride, window)
    starts = window_starts(t, window, stride)
    per_window = np.random.default_rng(seed).normal(size=len(starts))
    mean = windows_to_scores(per_window, starts, window, t, "mean")
    peak = windows_to_scores(per_window, starts, window, t, "max")
    assert mean.shape == peak.shape == (t,)
    assert np.all(mean <= peak + 1e-12)
    assert mean.min() >= per_window.min() - 1e-12 and peak.max() == per_window.max()


def test_a_single_high_window_marks_exactly_its_rows():
    starts = window_starts(20, 5, 5)
    scores = windows_to_scores(np.array([0.0, 1.0, 0.0, 0.0]), starts, 5, 20, "max")
    np.testing.assert_array_equal(np.flatnonzero(scores), np.arange(5, 10))


def test_bad_windows_are_errors():
    with pytest.raises(DataError, match="shorter than the window of 10"):
        window_starts(5, 10)
    with pytest.raises(DataError, match="must be at least 1"):
        window_starts(5, 0)
    with pytest.raises(DataError, match="timestamp 2 is covered by no window"):
        windows_to_scores(np.zeros(3), window_starts(10, 2, 4), 2, 10)
    with pytest.raises(DataError, match="do not match"):
        windows_to_scores(np.zeros(3), np.arange(4), 2, 5)
