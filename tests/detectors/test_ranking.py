"""Ranked candidate intervals: planted bumps come back in height order, thresholds mark them."""

from __future__ import annotations

import itertools
from typing import get_args

import numpy as np
import pytest

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.core.stats import median_sigma
from anomalygraph.core.thresholds import ThresholdMethod
from anomalygraph.detectors.ranking import RankedInterval, candidate_intervals, rank_intervals

PERIOD = 50
PLANTS = {400: 5.0, 1100: 4.0, 1800: 3.0, 2300: 2.5, 2700: 2.0}  # peak row -> bump height, tallest first


def planted(seed: int = 7, length: int = 3000) -> np.ndarray:
    """A noisy periodic score track with five Gaussian bumps of different heights."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    scores = 0.3 * np.sin(2 * np.pi * t / PERIOD) + rng.normal(0, 0.1, length)
    for row, height in PLANTS.items():
        scores += height * np.exp(-0.5 * ((t - row) / 4) ** 2)
    return scores


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_planted_bumps_come_first_in_height_order(seed: int) -> None:
    found = candidate_intervals(planted(seed), fit_rows=slice(None), separation=PERIOD)
    top = found[:5]
    assert [c.rank for c in found] == list(range(1, len(found) + 1))
    for candidate, plant in zip(top, PLANTS, strict=True):  # same order as the heights
        assert abs(candidate.peak - plant) <= 3
        assert candidate.start <= candidate.peak <= candidate.end
    z = [c.robust_z for c in found]
    assert z == sorted(z, reverse=True)
    assert found[5].robust_z < top[-1].robust_z / 2  # the background is well below the weakest plant
    assert not any(c.passes for c in found)  # no threshold applied yet
    spans = sorted((c.start, c.end) for c in found)
    assert all(a_end < b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))


def test_interval_is_the_half_height_run_around_the_peak() -> None:
    scores = np.zeros(60)
    scores[20:29] = [1, 2, 3, 4, 6, 4, 3, 2, 1]  # fit median 0: half height is 3, rows strictly above it
    best = candidate_intervals(scores, fit_rows=slice(None), separation=10)[0]
    assert (best.start, best.end, best.peak, best.peak_score) == (23, 25, 24, 6.0)


def test_a_wide_excursion_is_one_capped_candidate() -> None:
    scores = np.zeros(1000)
    scores[300:600] = 5.0 + 0.01 * np.sin(np.arange(300))  # 300 rows high, wiggling: many local maxima
    found = candidate_intervals(scores, fit_rows=slice(None), separation=48)
    inside = [c for c in found if c.end >= 300 and c.start < 600]
    assert len(inside) == 1
    assert inside[0].end - inside[0].start + 1 <= 2 * 48 + 1


def test_top_k_passes_exactly_the_k_strongest() -> None:
    threshold, ranked = rank_intervals(planted(), fit_rows=slice(None), method="top_k", k=3, separation=PERIOD)
    assert [c.passes for c in ranked[:5]] == [True, True, True, False, False]
    assert sum(c.passes for c in ranked) == 3
    assert {min(PLANTS, key=lambda p, c=c: abs(p - c.peak)) for c in ranked if c.passes} == {400, 1100, 1800}
    assert threshold.method == "top_k" and threshold.params["k"] == 3
    assert threshold.value == ranked[2].peak_score
    assert len(ranked) > 5  # the strongest non-passing candidates come back too


def test_top_k_with_fewer_candidates_than_k_passes_them_all() -> None:
    threshold, ranked = rank_intervals(np.arange(10.0), fit_rows=slice(None), method="top_k", k=3, separation=48)
    assert len(ranked) == 1 and ranked[0].passes and ranked[0].peak == 9
    assert threshold.params["n_candidates"] == 1


def test_percentile_between_the_second_and_third_bump_passes_two() -> None:
    threshold, ranked = rank_intervals(
        planted(), fit_rows=slice(None), method="percentile", contamination=0.004, separation=PERIOD
    )
    assert ranked[2].peak_score < threshold.value < ranked[1].peak_score  # the setup this test is about
    assert [c.passes for c in ranked[:3]] == [True, True, False]
    assert sum(c.passes for c in ranked) == 2
    assert threshold.method == "percentile" and threshold.fitted_on == "scores of the fit rows"


def test_pot_threshold_is_fitted_on_the_fit_rows() -> None:
    scores = planted()
    threshold, ranked = rank_intervals(scores, fit_rows=slice(0, 1500), method="pot", risk=1e-3, separation=PERIOD)
    moved = scores.copy()
    moved[1500:] += 100.0  # rows outside the fit rows do not move a fitted threshold
    again, _ = rank_intervals(moved, fit_rows=slice(0, 1500), method="pot", risk=1e-3, separation=PERIOD)
    assert threshold.method == "pot" and again.value == pytest.approx(threshold.value)
    assert all(c.passes == (c.peak_score > threshold.value) for c in ranked)


def test_robust_z_uses_the_fit_rows_only() -> None:
    scores = planted()
    fit_rows = slice(0, 1500)
    median, sigma = median_sigma(scores[fit_rows])
    first = candidate_intervals(scores, fit_rows=fit_rows, separation=PERIOD)
    assert first[0].peak == 400
    assert first[0].robust_z == pytest.approx((first[0].peak_score - median) / sigma)

    outside = scores.copy()
    outside[1500:] = outside[1500:] * 10 + 3  # a different scale and level after the fit rows
    again = {
        c.peak: c.robust_z
        for c in candidate_intervals(outside, fit_rows=fit_rows, separation=PERIOD, max_candidates=200)
    }
    assert again[400] == pytest.approx(first[0].robust_z)

    inside = scores.copy()
    inside[600:1500] *= 3  # wider background in the fit rows, row 400 untouched: its z shrinks
    moved = {c.peak: c.robust_z for c in candidate_intervals(inside, fit_rows=fit_rows, separation=PERIOD)}
    assert moved[400] < 0.8 * first[0].robust_z


def test_separation_suppresses_a_second_peak_in_the_same_bump() -> None:
    t = np.arange(400)
    scores = 4 * np.exp(-0.5 * ((t - 200) / 1.5) ** 2) + 3 * np.exp(-0.5 * ((t - 212) / 1.5) ** 2)
    near = lambda found: sorted(c.peak for c in found if 180 <= c.peak <= 230)  # noqa: E731
    assert near(candidate_intervals(scores, fit_rows=slice(None), separation=48)) == [200]
    assert near(candidate_intervals(scores, fit_rows=slice(None), separation=5)) == [200, 212]


def test_max_candidates_caps_the_list() -> None:
    found = candidate_intervals(planted(), fit_rows=slice(None), separation=PERIOD, max_candidates=4)
    assert len(found) == 4 and all(isinstance(c, RankedInterval) for c in found)


@pytest.mark.parametrize(
    ("scores", "kwargs", "error", "message"),
    [
        (np.array([1.0, np.nan, 2.0]), {}, DataError, "NaN or inf at 1 rows"),
        (np.array([1.0, np.inf]), {}, DataError, "NaN or inf"),
        (np.array([]), {}, DataError, "empty score track"),
        (np.ones((10, 2)), {}, DataError, r"one score track \[T\]"),
        (np.ones(10), {"fit_rows": slice(5, 5)}, DataError, "selects no rows"),
        (np.ones(10), {"separation": 0}, ConfigError, "separation must be"),
        (np.ones(10), {"separation": 2.5}, ConfigError, "separation must be"),
        (np.ones(10), {"max_candidates": 0}, ConfigError, "max_candidates must be"),
        (np.ones(10), {"method": "top_k", "k": 0}, ConfigError, "k must be a whole number"),
        (np.ones(10), {"method": "top_k", "k": 21}, ConfigError, "k must be a whole number"),
        (np.ones(10), {"method": "top_k", "k": True}, ConfigError, "k must be a whole number"),
        (np.ones(10), {"method": "median"}, ConfigError, "threshold method must be"),
    ],
)
def test_bad_inputs_say_what_is_wrong(scores: np.ndarray, kwargs: dict, error: type, message: str) -> None:
    args = {"fit_rows": slice(None), "method": "percentile", "separation": 3, **kwargs}
    with pytest.raises(error, match=message):
        rank_intervals(scores, **args)


def test_every_threshold_method_named_is_accepted() -> None:
    for method in get_args(ThresholdMethod):
        threshold, ranked = rank_intervals(planted(), fit_rows=slice(None), method=method, separation=PERIOD)
        assert threshold.method == method and ranked[0].passes  # the tallest bump passes every rule
