"""Time-series container, loaders for common formats, validation and windowing."""

from anomalygraph.data.loaders import FORMATS, load_series
from anomalygraph.data.periods import estimate_period
from anomalygraph.data.series import TimeSeries
from anomalygraph.data.validation import NanPolicy
from anomalygraph.data.windows import sliding_windows, window_starts, windows_to_scores

__all__ = [
    "FORMATS",
    "NanPolicy",
    "TimeSeries",
    "estimate_period",
    "load_series",
    "sliding_windows",
    "window_starts",
    "windows_to_scores",
]
