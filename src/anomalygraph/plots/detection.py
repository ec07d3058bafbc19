"""One figure people can read at a glance: the series, where labels say, where detectors say.

Channels are stacked panels (the most variable ones first when there are many), label spans
are shaded in every panel, and each detector gets a score track with its threshold and
detected intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np

from anomalygraph.core.intervals import Interval, mask_to_intervals
from anomalygraph.data.series import TimeSeries

LABEL_COLOUR = "#d62728"
DETECTION_COLOUR = "#ff7f0e"
TRAIN_COLOUR = "#7f7f7f"


def pick_channels(series: TimeSeries, limit: int) -> list[int]:
    """All channels when they fit; otherwise the most variable ones, in their original order."""
    if series.n_channels <= limit:
        return list(range(series.n_channels))
    order = np.argsort(-series.values.std(axis=0), kind="stable")[:limit]
    return sorted(int(i) for i in order)


def _shade(ax: plt.Axes, x: np.ndarray, spans: Sequence[tuple[int, int]], colour: str, alpha: float, label: str | None) -> None:
    for k, (start, end) in enumerate(spans):
        right = x[end + 1] if end + 1 < len(x) else x[end]
        ax.axvspan(x[start], right, color=colour, alpha=alpha, lw=0, label=label if k == 0 else None)


def plot_detection(
    series: TimeSeries,
    scores: Mapping[str, np.ndarray] | None = None,
    *,
    path: str | Path,
    thresholds: Mapping[str, float] | None = None,
    intervals: Mapping[str, Sequence[Interval]] | None = None,
    title: str | None = None,
    max_channels: int = 6,
    window: tuple[int, int] | None = None,
) -> Path:
    """Write a PNG of ``series`` (optionally rows ``window``) with labels, scores and detections."""
    scores = dict(scores or {})
    start, stop = window or (0, series.length)
    view = series.slice(start, stop)
    x: np.ndarray = (
        view.timestamps.to_numpy() if view.timestamps is not None else np.arange(start, stop)
    )
    channels = pick_channels(view, max_channels)
    n_panels = len(channels) + len(scores)
    height = 1.7 * n_panels + 1.0
    fig, axes = plt.subplots(
        n_panels, 1, figsize=(13, height), sharex=True, squeeze=False,
        gridspec_kw={"hspace": 0.12, "top": 1 - 0.75 / height, "bottom": 0.55 / height},
    )
    axes = axes[:, 0]
    label_spans = [] if view.labels is None else mask_to_intervals(view.labels)
    train_edge = None
    if series.train_end is not None and start < series.train_end < stop:
        train_edge = x[series.train_end - start]

    for ax, ch in zip(axes, channels, strict=False):
        ax.plot(x, view.values[:, ch], lw=0.7, color="#1f77b4")
        ax.set_ylabel(view.channels[ch], rotation=0, ha="right", va="center", fontsize=8)
        _shade(ax, x, label_spans, LABEL_COLOUR, 0.18, "labelled anomaly")
    for ax, (name, sc) in zip(axes[len(channels):], scores.items(), strict=True):
        sc = np.asarray(sc)[start:stop]
        ax.plot(x, sc, lw=0.7, color="#2ca02c")
        ax.set_ylabel(f"{name}\nscore", rotation=0, ha="right", va="center", fontsize=8)
        if thresholds and name in thresholds:
            ax.axhline(thresholds[name], color=DETECTION_COLOUR, lw=0.8, ls="--", label="threshold")
        spans = [
            (max(iv.start, start) - start, min(iv.end, stop - 1) - start)
            for iv in (intervals or {}).get(name, [])
            if iv.end >= start and iv.start < stop
        ]
        _shade(ax, x, spans, DETECTION_COLOUR, 0.3, "detected")
        _shade(ax, x, label_spans, LABEL_COLOUR, 0.12, None)
    for ax in axes:
        if train_edge is not None:
            ax.axvline(train_edge, color=TRAIN_COLOUR, lw=1.0, ls=":")
        ax.tick_params(labelsize=8)
        ax.margins(x=0)
    if train_edge is not None:
        axes[0].text(train_edge, 1.02, " test →", transform=axes[0].get_xaxis_transform(), fontsize=8, color=TRAIN_COLOUR)
    if view.timestamps is not None:
        axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(axes[-1].xaxis.get_major_locator()))
        axes[-1].set_xlabel("time")
    else:
        axes[-1].set_xlabel("row")
    handles, names = [], []
    for ax in axes:
        for h, n in zip(*ax.get_legend_handles_labels(), strict=True):
            if n not in names:
                handles.append(h)
                names.append(n)
    if handles:
        fig.legend(handles, names, loc="upper right", bbox_to_anchor=(0.99, 1 - 0.1 / height), fontsize=8,
                   ncol=len(names), frameon=False)
    shown = "" if len(channels) == series.n_channels else f" ({len(channels)} of {series.n_channels} channels, most variable)"
    fig.suptitle((title or series.name) + shown, x=0.01, y=1 - 0.15 / height, ha="left", va="top", fontsize=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
