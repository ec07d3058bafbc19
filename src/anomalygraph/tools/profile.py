"""A compact profile of a series: what an analyst checks before choosing a detector.

Small enough for a model's context: per-channel statistics for at most ``max_channels``
channels (the most variable), a trend, seasonal periods and change points in row indices.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from anomalygraph.core.durations import human_seconds
from anomalygraph.core.intervals import mask_to_intervals
from anomalygraph.data.changes import change_points
from anomalygraph.data.periods import periods
from anomalygraph.data.series import SeriesSummary, TimeSeries

MAX_LABEL_WINDOWS = 10


class ChannelProfile(BaseModel):
    name: str
    trend: str = Field(description="up, down or flat: the linear fit's change over the series in standard deviations")
    trend_change_in_std: float
    periods: list[int] = Field(description="seasonal periods in rows, strongest first (empty: no clear seasonality)")
    seasonal_strength: list[float] = Field(description="autocorrelation at each period (0..1)")
    change_points: list[int] = Field(description="rows where the mean level shifts (binary segmentation of block medians)")


class LabelWindow(BaseModel):
    rows: str = Field(description="first..last row (inclusive)")
    start: int
    end: int
    start_time: str | None = None
    end_time: str | None = None


class SeriesProfile(BaseModel):
    facts: str = Field(description="the answer to the usual questions in one sentence: rows, channels, sampling, period, labels")
    length: int = Field(description="rows")
    n_channels: int
    sampling: str | None = Field(description="median step between timestamps (None: no timestamps)")
    dominant_period: int | None = Field(description="strongest seasonal period in rows, of the most variable channel")
    n_label_windows: int | None = Field(description="labelled anomaly windows (None: the file has no labels)")
    label_windows: list[LabelWindow] = Field(default_factory=list, description=f"the first {MAX_LABEL_WINDOWS} labelled windows")
    summary: SeriesSummary
    channels_profiled: list[ChannelProfile]
    omitted_channels: int = Field(0, description="channels not profiled (the least variable ones)")


def _trend(x: np.ndarray) -> tuple[str, float]:
    std = float(x.std())
    if std == 0:
        return "flat", 0.0
    t = np.linspace(0.0, 1.0, len(x))
    slope = float(np.polyfit(t, x.astype(np.float64), 1)[0])
    change = slope / std
    return ("up" if change > 1 else "down" if change < -1 else "flat"), round(change, 3)


def profile_series(series: TimeSeries, max_channels: int = 8) -> SeriesProfile:
    order = np.argsort(-series.values.std(axis=0), kind="stable")[:max_channels]
    channels = []
    for j in sorted(int(i) for i in order):
        x = series.values[:, j]
        trend, change = _trend(x)
        seasons = periods(x)
        shifts = change_points(x, period=seasons[0][0] if seasons else None, max_points=10)
        channels.append(
            ChannelProfile(
                name=series.channels[j], trend=trend, trend_change_in_std=change,
                periods=[p for p, _ in seasons], seasonal_strength=[round(a, 3) for _, a in seasons],
                change_points=[c.index for c in shifts],
            )
        )
    summary = series.summary()
    kept = {ch.name for ch in channels}
    most_variable = series.channels[int(order[0])] if len(order) else None
    period = next((ch.periods[0] for ch in channels if ch.name == most_variable and ch.periods), None)
    ts = series.timestamps
    windows = [] if series.labels is None else mask_to_intervals(series.labels)
    labels = [LabelWindow(rows=f"{a}..{b}", start=a, end=b, start_time=None if ts is None else str(ts[a]),
                          end_time=None if ts is None else str(ts[b])) for a, b in windows[:MAX_LABEL_WINDOWS]]
    facts = [f"{series.length} rows", f"{series.n_channels} channel(s)",
             f"sampled every {_step(summary.sampling)}" if summary.sampling else "no timestamps (row index)",
             f"dominant period {period} rows" if period else "no clear seasonal period"]
    if series.labels is not None:
        facts.append(f"{len(windows)} labelled anomaly window(s)"
                     + (": " + ", ".join(f"rows {w.rows}" + (f" ({w.start_time} to {w.end_time})" if w.start_time else "")
                                         for w in labels[:3]) if labels else ""))
    return SeriesProfile(
        facts="; ".join(facts), length=series.length, n_channels=series.n_channels, sampling=summary.sampling,
        dominant_period=period, n_label_windows=None if series.labels is None else len(windows), label_windows=labels,
        summary=summary.model_copy(update={"channels": [c for c in summary.channels if c.name in kept]}),
        channels_profiled=channels,
        omitted_channels=series.n_channels - len(channels),
    )


def _step(sampling: str) -> str:
    """A pandas step ("0 days 01:00:00") as people write it: "1 hour (3600 s)"."""
    seconds = pd.Timedelta(sampling).total_seconds()
    text = human_seconds(seconds)
    return text if text.endswith(" s") else f"{text} ({seconds:g} s)"
