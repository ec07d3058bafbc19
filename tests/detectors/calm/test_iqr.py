"""CALM's IQR rule on hand-computed numbers: bounds, flags, scores, coverage and width."""

from __future__ import annotations

import numpy as np
import pytest

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.detectors.calm.iqr import (
    flag,
    interval_coverage,
    interval_width,
    iqr_bounds,
    outlier_score,
    quantile_column,
)

LEVELS = (0.2, 0.3, 0.7, 0.8)
# two steps ahead, quantiles q20, q30, q70, q80
FORECAST = np.array([[8.0, 9.0, 11.0, 13.0],
                     [0.0, 2.0, 4.0, 4.0]])


def test_default_bounds_are_the_authors_means_of_q20_q30_and_q70_q80():
    lower, upper = iqr_bounds(FORECAST, LEVELS)
    # step 0: Q1 = (8 + 9) / 2 = 8.5, Q3 = (11 + 13) / 2 = 12, IQR = 3.5 -> [8.5 - 5.25, 12 + 5.25]
    # step 1: Q1 = 1, Q3 = 4, IQR = 3 -> [1 - 4.5, 4 + 4.5]
    np.testing.assert_allclose(lower, [3.25, -3.5])
    np.testing.assert_allclose(upper, [17.25, 8.5])


def test_single_levels_and_k_are_configurable():
    lower, upper = iqr_bounds(FORECAST, LEVELS, q1=0.3, q3=0.7, k=1.0)
    # step 0: Q1 = 9, Q3 = 11, IQR = 2 -> [7, 13]; step 1: Q1 = 2, Q3 = 4 -> [0, 6]
    np.testing.assert_allclose(lower, [7.0, 0.0])
    np.testing.assert_allclose(upper, [13.0, 6.0])
    lower, upper = iqr_bounds(FORECAST, LEVELS, q1=(0.2,), q3=(0.8,), k=0.0)
    np.testing.assert_allclose(lower, [8.0, 0.0])
    np.testing.assert_allclose(upper, [13.0, 4.0])


def test_bounds_broadcast_over_leading_axes():
    batch = np.stack([FORECAST, FORECAST + 10.0])  # [2, 2, 4]
    lower, upper = iqr_bounds(batch, LEVELS)
    assert lower.shape == upper.shape == (2, 2)
    np.testing.assert_allclose(lower[1], [13.25, 6.5])
    np.testing.assert_allclose(upper[1], [27.25, 18.5])


def test_bad_levels_are_config_errors():
    with pytest.raises(ConfigError, match=r"0.25"):
        iqr_bounds(FORECAST, LEVELS, q1=0.25)
    with pytest.raises(ConfigError, match=r"below"):
        iqr_bounds(FORECAST, LEVELS, q1=0.7, q3=0.3)
    with pytest.raises(ConfigError, match=r"k must"):
        iqr_bounds(FORECAST, LEVELS, k=-1.0)
    with pytest.raises(DataError, match=r"levels"):
        iqr_bounds(FORECAST, (0.2, 0.3, 0.7))


def test_flag_marks_exactly_the_points_strictly_outside():
    lower, upper = np.array([0.0, 0.0, 0.0, 0.0, 0.0]), np.array([1.0, 1.0, 1.0, 1.0, 1.0])
    actual = np.array([-0.001, 0.0, 0.5, 1.0, 1.001])
    assert flag(actual, lower, upper).tolist() == [True, False, False, False, True]


def test_flag_refuses_nan_actuals():
    with pytest.raises(DataError, match=r"NaN"):
        flag(np.array([0.5, np.nan]), np.zeros(2), np.ones(2))


def test_outlier_score_is_the_authors_distance_in_iqrs():
    # Q1 = 1, Q3 = 4, IQR = 3, k = 1.5 -> bounds [-3.5, 8.5]
    lower, upper = np.array([-3.5] * 3), np.array([8.5] * 3)
    score = outlier_score(np.array([14.5, -6.5, 2.5]), lower, upper)
    # above: (14.5 - 8.5) / 3 = 2; below: (-3.5 - -6.5) / 3 = 1; inside: nearest bound 6 away -> -2
    np.testing.assert_allclose(score, [2.0, 1.0, -2.0])
    assert np.isfinite(outlier_score(np.array([1.0]), np.array([0.0]), np.array([0.0]))).all()


def test_coverage_and_width_are_exact():
    low, high = np.array([0.0, 0.0, 0.0, 0.0]), np.array([1.0, 2.0, 3.0, 4.0])
    # inside (bounds included): 0.0 yes, 2.0 yes, 3.5 no, -0.1 no
    assert interval_coverage(np.array([0.0, 2.0, 3.5, -0.1]), low, high) == 0.5
    assert interval_width(low, high) == 2.5
    assert quantile_column(FORECAST, LEVELS, 0.7).tolist() == [11.0, 4.0]
    with pytest.raises(DataError):
        interval_coverage(np.array([]), np.array([]), np.array([]))
