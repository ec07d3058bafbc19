from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anomalygraph.core.errors import DataError
from anomalygraph.data import TimeSeries, estimate_period


def make(t=100, d=2, train_end=60):
    labels = np.zeros(t, dtype=int)
    labels[80:85] = 1
    return TimeSeries(
        values=np.arange(t * d, dtype=float).reshape(t, d),
        timestamps=pd.date_range("2024-01-01", periods=t, freq="1min"),
        labels=labels,
        train_end=train_end,
    )


def test_split_keeps_rows_and_labels_aligned():
    s = make()
    train, test = s.train(), s.test()
    assert (train.length, test.length) == (60, 40)
    np.testing.assert_array_equal(np.concatenate([train.values, test.values]), s.values)
    assert test.labels.sum() == 5 and train.labels.sum() == 0
    assert test.timestamps[0] == s.timestamps[60]
    assert train.train_end == 60 and test.train_end is None


def test_without_split_train_and_test_are_the_whole_series():
    s = make(train_end=None)
    assert s.train() is s and s.test() is s


def test_values_are_float32_two_dimensional():
    s = TimeSeries(values=[1, 2, 3])
    assert s.values.shape == (3, 1) and s.values.dtype == np.float32
    assert s.channels == ["value"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": np.array([1.0, np.nan])}, "non-finite"),
        ({"values": np.zeros((0, 1))}, "empty"),
        ({"values": np.zeros(3), "labels": [0, 1]}, "2 labels for 3 values"),
        ({"values": np.zeros(3), "labels": [0, 1, 3]}, "0 or 1, got 3 at row 2"),
        ({"values": np.zeros(3), "train_end": 5}, "outside 1..3"),
        ({"values": np.zeros((3, 2)), "channels": ["a"]}, "1 channel names for 2 channels"),
        ({"values": np.array(["a", "b"])}, "real numbers"),
    ],
)
def test_invalid_series_are_rejected(kwargs, message):
    with pytest.raises(DataError, match=message):
        TimeSeries(**kwargs)


def test_summary_counts_events_and_constant_channels():
    s = TimeSeries(values=np.c_[np.sin(np.arange(50)), np.ones(50)], labels=np.r_[np.zeros(10), np.ones(3), np.zeros(30), np.ones(7)])
    summary = s.summary()
    assert summary.n_label_events == 2 and summary.label_ratio == pytest.approx(0.2)
    assert [c.constant for c in summary.channels] == [False, True]


@pytest.mark.parametrize("period", [24, 50, 144])
def test_estimate_period_finds_the_seasonality(period):
    t = np.arange(5000)
    x = np.sin(2 * np.pi * t / period) + 0.1 * np.random.default_rng(0).normal(size=t.size)
    assert abs(estimate_period(x) - period) <= 1


def test_estimate_period_falls_back_on_noise():
    assert estimate_period(np.random.default_rng(1).normal(size=3000)) in range(3, 304)
    assert estimate_period(np.ones(10)) == 125
