"""A compact profile of a series: what an analyst checks before choosing a detector.

Small enough for a model's context: per-channel statistics for at most ``max_channels``
channels (the most variable), a trend, seasonal periods and change points in row indices.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from anomalygraph.data.changes import change_points
from anomalygraph.data.periods import periods
from anomalygraph.data.series import SeriesSummary, TimeSeries


class ChannelProfile(BaseModel):
    name: str
    trend: str = Field(description="up, down or flat: the linear fit's change over the series in standard deviations")
    trend_change_in_std: float
    periods: list[int] = Field(description="seasonal periods in rows, strongest first (empty: no clear seasonality)")
    seasonal_strength: list[float] = Field(description="autocorrelation at each period (0..1)")
    change_points: list[int] = Field(description="rows where the mean level shifts (binary segmentation of block medians)")


class SeriesProfile(BaseModel):
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
    return SeriesProfile(
        summary=summary.model_copy(update={"channels": [c for c in summary.channels if c.name in kept]}),
        channels_profiled=channels,
        omitted_channels=series.n_channels - len(channels),
    )
