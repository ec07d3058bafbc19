from __future__ import annotations

import numpy as np
import pytest

from anomalygraph.data.series import TimeSeries
from anomalygraph.llm.rendering import (  # re-exported from data
    BLOCKS,
    change_points,
    periods,
    render_series,
    sketch,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_change_points_find_a_level_shift(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.r_[rng.normal(0, 1, 700), rng.normal(4, 1, 500)]
    found = change_points(x)
    assert len(found) == 1
    assert abs(found[0].index - 700) <= 15
    assert found[0].before == pytest.approx(0, abs=0.3) and found[0].after == pytest.approx(4, abs=0.3)


def test_no_change_points_in_noise_or_seasonality() -> None:
    rng = np.random.default_rng(7)
    assert change_points(rng.normal(0, 1, 2000)) == []
    seasonal = np.sin(np.arange(3000) * 2 * np.pi / 50) * 5 + rng.normal(0, 0.2, 3000)
    assert change_points(seasonal, period=50) == []


def test_a_single_spike_is_not_a_level_shift() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 1000)
    x[500] = 30
    assert change_points(x) == []


def test_periods_fundamental_and_strongest() -> None:
    t = np.arange(24 * 7 * 8)
    rng = np.random.default_rng(0)
    x = np.sin(2 * np.pi * t / 24) + 1.5 * np.sin(2 * np.pi * t / (24 * 7)) + rng.normal(0, 0.1, len(t))
    found = periods(x)
    assert found[0][0] == pytest.approx(24, abs=1)
    assert found[-1][0] == pytest.approx(168, abs=3)


def test_no_period_for_a_trend_with_noise() -> None:
    rng = np.random.default_rng(0)
    x = np.linspace(0, 10, 2000) + rng.normal(0, 1, 2000)
    assert periods(x) == []


def test_sketch_rows_and_marks() -> None:
    x = np.zeros(600)
    x[300:310] = 10
    rows = sketch(x, width=60, intervals=[(300, 309)])
    assert [r[:5] for r in rows] == ["max  ", "mean ", "min  ", "mark "]
    assert all(len(r) == 65 for r in rows)
    maxima = rows[0][5:]
    assert maxima[30] == BLOCKS[-1] and maxima.count(BLOCKS[0]) == 59
    assert rows[3][5:].index("^") == 30 and rows[3].count("^") == 1


def test_multichannel_rendering_keeps_the_most_variable() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0, 1, (300, 6)) * np.array([1, 1, 1, 1, 1, 50])
    ts = TimeSeries(values=values, channels=[f"s{i}" for i in range(6)], name="plant")
    text = render_series(ts, max_channels=2)
    assert "2 most variable of 6 channels" in text
    assert "[s5]" in text
    assert len(text.splitlines()) < 25  # compact enough for a small model's context


def test_real_series_nyc_taxi(shared_data) -> None:
    from anomalygraph.data.loaders import load_series

    ts = load_series(shared_data / "NAB" / "data" / "realKnownCause" / "nyc_taxi.csv")
    text = render_series(ts)
    assert "median step 0 days 00:30:00" in text
    assert "periods: 48 steps" in text  # daily cycle of half-hourly data
    assert "336 steps" in text  # and the weekly one
    assert len(text) < 1500
