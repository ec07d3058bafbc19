"""A compact profile of a series: what an analyst checks before choosing a detector.

Small enough for a model's context: per-channel statistics for at most ``max_channels``
channels (the most variable), a trend, seasonal periods and change points in row indices.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from anomalygraph.data.periods import seasonal_periods
from anomalygraph.data.series import SeriesSummary, TimeSeries

MAX_POINTS_FOR_CHANGES = 2000


class ChannelProfile(BaseModel):
    name: str
    trend: str = Field(description="up, down or flat: the linear fit's change over the series in standard deviations")
    trend_change_in_std: float
    periods: list[int] = Field(description="seasonal periods in rows, strongest first (empty: no clear seasonality)")
    seasonal_strength: list[float] = Field(description="autocorrelation at each period (0..1)")
    change_points: list[int] = Field(description="rows where the mean level changes (ruptures, binary segmentation)")


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


def change_points(x: np.ndarray, period: int | None = None, max_points: int = 10) -> list[int]:
    """Sustained mean shifts, by binary segmentation (ruptures) on a de-seasonalised, downsampled copy.

    A moving average over one period removes the seasonal swing first. The penalty admits a
    shift of about one standard deviation lasting at least 5% of the series.
    """
    import ruptures

    x = x.astype(np.float64)
    if x.std() == 0 or len(x) < 40:
        return []
    if period and period < len(x) // 4:
        x = pd.Series(x).rolling(period, center=True, min_periods=1).mean().to_numpy()
    step = max(1, len(x) // MAX_POINTS_FOR_CHANGES)
    y = x[: len(x) - len(x) % step].reshape(-1, step).mean(axis=1) if step > 1 else x
    if y.std() == 0:
        return []
    y = (y - y.mean()) / y.std()
    min_size = max(5, len(y) // 20)
    algo = ruptures.Binseg(model="l2", min_size=min_size, jump=max(1, len(y) // 400)).fit(y[:, None])
    bkps = algo.predict(pen=min_size / 2)[:-1]
    return [int(b * step) for b in bkps[:max_points]]


def profile_series(series: TimeSeries, max_channels: int = 8) -> SeriesProfile:
    order = np.argsort(-series.values.std(axis=0), kind="stable")[:max_channels]
    channels = []
    for j in sorted(int(i) for i in order):
        x = series.values[:, j]
        trend, change = _trend(x)
        seasons = seasonal_periods(x)
        channels.append(
            ChannelProfile(
                name=series.channels[j], trend=trend, trend_change_in_std=change,
                periods=[p for p, _ in seasons], seasonal_strength=[s for _, s in seasons],
                change_points=change_points(x, seasons[0][0] if seasons else None),
            )
        )
    summary = series.summary()
    kept = {ch.name for ch in channels}
    return SeriesProfile(
        summary=summary.model_copy(update={"channels": [c for c in summary.channels if c.name in kept]}),
        channels_profiled=channels,
        omitted_channels=series.n_channels - len(channels),
    )
