"""The picture behind "will it go anomalous next?": recent rows, the forecast band, the evidence.

Three panels: the whole past with the retrieved neighbour windows shaded (where the model found
situations like now), the last context rows with the point forecast and its 20-80 % band, and
the predicted anomaly probability of each coming step.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from anomalygraph.data.series import TimeSeries
from anomalygraph.plots.detection import DETECTION_COLOUR, LABEL_COLOUR, pick_channels

NEIGHBOUR_COLOUR = "#2ca02c"


def plot_forecast(series: TimeSeries, at: int, forecast: Any, *, path: str | Path, context: int,
                  neighbours: Sequence[tuple[int, int]] = (), max_channels: int = 3) -> Path:
    """Write a PNG for a forecast issued at row ``at`` (``forecast``: an F2A ``Forecast``)."""
    point = np.asarray(forecast.point)  # [h, C]
    low, high = np.asarray(forecast.quantiles["0.2"]), np.asarray(forecast.quantiles["0.8"])
    h = len(point)
    past = series.slice(0, at)
    channels = pick_channels(past, max_channels)
    fig, axes = plt.subplots(2 + len(channels), 1, figsize=(11, 2.1 * (2 + len(channels))),
                             gridspec_kw={"height_ratios": [1.2] + [1.6] * len(channels) + [0.9]})
    top = axes[0]
    top.plot(np.arange(at), past.values[:, channels[0]], lw=0.6, color="#1f77b4")
    for k, (start, end) in enumerate(neighbours):
        top.axvspan(start, end + 1, color=NEIGHBOUR_COLOUR, alpha=0.25, lw=0, label="nearest past windows" if k == 0 else None)
    top.axvspan(max(0, at - context), at, color="#7f7f7f", alpha=0.15, lw=0, label="context now")
    if series.labels is not None and series.labels[:at].any():
        rows = np.flatnonzero(series.labels[:at])
        top.scatter(rows, past.values[rows, channels[0]], s=2, color=LABEL_COLOUR, label="labelled anomaly")
    top.set_title(f"{series.name}: {series.channels[channels[0]]}, all {at} past rows")
    top.legend(loc="upper left", fontsize=7)
    start = max(0, at - context)
    x_past, x_next = np.arange(start, at), np.arange(at, at + h)
    for ax, c in zip(axes[1:-1], channels, strict=True):
        ax.plot(x_past, past.values[start:, c], lw=0.8, color="#1f77b4", label="observed")
        ax.plot(x_next, point[:, c], lw=1.2, color=DETECTION_COLOUR, label="forecast")
        ax.fill_between(x_next, low[:, c], high[:, c], color=DETECTION_COLOUR, alpha=0.25, lw=0, label="20-80% band")
        ax.axvline(at, color="#7f7f7f", lw=0.8, ls="--")
        ax.set_ylabel(series.channels[c], fontsize=8)
    axes[1].legend(loc="upper left", fontsize=7)
    bottom = axes[-1]
    bottom.bar(x_next, forecast.anomaly_probability, color=LABEL_COLOUR, width=0.8)
    bottom.set_xlim(start, at + h)
    bottom.set_ylim(0, max(0.05, 1.1 * max(forecast.anomaly_probability)))
    bottom.set_ylabel("P(anomaly)", fontsize=8)
    bottom.set_xlabel("row")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
