"""Feedback utility: a track that ranks real-anomaly marks high and false alarms low is preferred."""

from __future__ import annotations

import numpy as np
import pytest

from anomalygraph.core.errors import DataError
from anomalygraph.core.intervals import intervals_to_mask
from anomalygraph.detectors.selection import feedback_utility, percentile_ranks

N = 200


def masks(real: list[tuple[int, int]], false: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    return intervals_to_mask(real, N).astype(bool), intervals_to_mask(false, N).astype(bool)


def test_the_track_that_ranks_the_real_mark_high_and_the_false_mark_low_wins() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=N)
    finds_real = base.copy()
    finds_real[50:55] += 10  # high on the real anomaly
    finds_false = base.copy()
    finds_false[120:125] += 10  # high on the false alarm
    both = finds_real.copy()
    both[120:125] += 10
    real, false = masks([(50, 54)], [(120, 124)])
    u = feedback_utility({"finds_real": finds_real, "finds_false": finds_false, "both": both}, real, false)
    assert u["finds_real"] > u["both"] > u["finds_false"]
    # the spike is the top rank; the other interval counts its noise's highest rank
    assert u["finds_real"] == pytest.approx(1.0 - percentile_ranks(finds_real)[120:125].max())
    assert u["finds_false"] == pytest.approx(percentile_ranks(finds_false)[50:55].max() - 1.0)
    assert u["finds_real"] > 0 > u["finds_false"]
    # both spikes share the top ranks: their maxima differ by at most the five rows of the other spike
    assert u["both"] == pytest.approx(0.0, abs=6 / (N - 1))


def test_utility_is_per_interval_not_per_row_and_one_kind_uses_one_term() -> None:
    ramp = np.arange(N, dtype=float)  # row i has percentile rank i / (N - 1)
    real, none = masks([(0, 4), (100, 199)], [])
    # a long interval counts once: the mean over intervals of each one's highest rank
    assert feedback_utility({"ramp": ramp}, real, none)["ramp"] == pytest.approx((4 + 199) / 2 / (N - 1))
    _, false = masks([], [(10, 19)])
    assert feedback_utility({"ramp": ramp}, none, false)["ramp"] == pytest.approx(-19 / (N - 1))
    assert feedback_utility({"ramp": ramp}, none, none) == {"ramp": 0.0}


def test_utility_ignores_the_scale_of_a_track_and_ties_share_ranks() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=N)
    real, false = masks([(5, 9), (60, 61)], [(150, 160)])
    u = feedback_utility({"raw": scores, "scaled": 1000 * scores + 7, "flat": np.ones(N)}, real, false)
    assert u["raw"] == pytest.approx(u["scaled"])
    assert u["flat"] == 0.0  # a constant track says nothing: every row at the middle rank
    assert percentile_ranks(np.array([3.0, 1.0, 2.0])).tolist() == [1.0, 0.0, 0.5]


def test_mismatched_lengths_are_refused() -> None:
    real, false = masks([(1, 2)], [])
    with pytest.raises(DataError, match="track 'short' has 10 rows"):
        feedback_utility({"short": np.zeros(10)}, real, false)
    with pytest.raises(DataError, match="masks differ in length"):
        feedback_utility({"x": np.zeros(N)}, real, false[:10])
