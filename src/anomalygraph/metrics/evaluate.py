"""Metrics of a scored :class:`TimeSeries`: every metric on its evaluated rows, one definition.

The benchmark, the demo report, the diagnosis eval and the agents' ``evaluate`` tool all call
this, so a number means the same thing wherever it is shown.
"""

from __future__ import annotations

import numpy as np

from anomalygraph.core.errors import DataError
from anomalygraph.data.periods import estimate_period
from anomalygraph.data.series import TimeSeries
from anomalygraph.metrics.suite import MetricReport, all_metrics


def vus_window(series: TimeSeries) -> int:
    """TSB-AD's VUS buffer: the autocorrelation period of the whole file's first channel."""
    return estimate_period(series.values[:, 0])


def evaluate_scores(series: TimeSeries, scores: np.ndarray, threshold: float, window: int | None = None) -> MetricReport:
    """Every metric on the rows after the training split, with TSB-AD's VUS buffer.

    One definition for the benchmark, the demo report and the agents' ``evaluate`` tool, so a
    number means the same thing wherever it is shown.
    """
    test = series.test()
    if test.labels is None or not test.labels.any():
        raise DataError(f"series '{series.name}' has no labelled anomaly in its evaluated rows, so accuracy is undefined")
    start = series.length - test.length
    return all_metrics(test.labels, scores[start:], sliding_window=window or vus_window(series), threshold=threshold)


def has_labelled_events(series: TimeSeries) -> bool:
    test = series.test()
    return test.labels is not None and bool(test.labels.any())
