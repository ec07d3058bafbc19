"""Synthetic anomalies planted in the fit rows: apart from each other, on the named channels, labels unread."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from anomalygraph.core.intervals import mask_to_intervals
from anomalygraph.data import TimeSeries
from anomalygraph.rulebank.injection import inject


def series(length: int = 4000, labels: np.ndarray | None = None, train_end: int | None = None) -> TimeSeries:
    rng = np.random.default_rng(0)
    t = np.arange(length)
    values = np.column_stack([np.sin(2 * np.pi * t / 50), rng.integers(0, 2, length), 0.1 * rng.normal(size=length)])
    return TimeSeries(values=values.astype(np.float32), labels=labels, train_end=train_end, name="s")


def test_events_are_apart_within_the_fit_rows_and_only_on_the_given_channels():
    s = series(train_end=3000)
    planted = inject(s, [0, 2], seed=1)
    assert planted is not None and len(planted.values) == 3000  # the fit rows only
    spans = mask_to_intervals(planted.mask)
    assert 3 <= len(spans) <= 12
    gaps = [b[0] - a[1] for a, b in pairwise(spans)]
    assert min(gaps) > planted.window  # each planted window is its own event
    assert np.array_equal(planted.values[:, 1], s.values[:3000, 1])  # the flag channel is never touched


def test_labels_are_never_read():
    labels = np.zeros(4000, np.uint8)
    labels[::7] = 1  # labels everywhere: a sampler that excluded labelled windows would find none left
    a, b = inject(series(), [0], seed=2), inject(series(labels=labels), [0], seed=2)
    assert a is not None and b is not None
    assert np.array_equal(a.values, b.values) and np.array_equal(a.kinds, b.kinds)


def test_too_short_a_series_plants_nothing():
    assert inject(series(length=100), [0]) is None  # fewer than four windows of 32 rows
