"""Files replayed as streams: one key per series channel, event time from the file's timestamps.

A multichannel file becomes one key per channel (``name:channel``): CALM's forecaster and judge are
univariate, as in the paper. Files without timestamps get one second per row. ``disorder`` shuffles
points within a bounded delay and repeats some, to exercise the ordering policy the way a real
source (Kafka, Pub/Sub) delivers points. :func:`feedback_spans` turns users' marks on a file
(rows) into event-time spans on its keys, for the judge to take as answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from anomalygraph.agents.judge import FeedbackSpan
from anomalygraph.core.errors import DataError
from anomalygraph.data.feedback import FeedbackStore, mark_rows
from anomalygraph.data.loaders import load_series
from anomalygraph.data.series import TimeSeries
from anomalygraph.streaming.records import Point

SUFFIXES = (".csv", ".parquet", ".npy", ".txt", ".out")


def source_files(source: Path) -> list[Path]:
    """``source`` itself, or the loadable files directly inside a folder (sorted)."""
    if source.is_file():
        return [source]
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise DataError(f"{source}: no {', '.join(SUFFIXES)} files in this folder")
        return files
    raise DataError(f"{source}: no such file or folder")


def event_seconds(series: TimeSeries) -> np.ndarray:
    """Event time of each row in seconds since the epoch (one second per row without timestamps)."""
    if series.timestamps is not None:
        return series.timestamps.asi8.astype(np.float64) / 1e9
    return np.arange(series.length, dtype=np.float64)


def series_keys(series: TimeSeries) -> list[str]:
    """The stream key of each channel: the series' name, or ``name:channel`` for a multichannel file."""
    multi = series.values.shape[1] > 1
    channels = series.channels or [f"c{c}" for c in range(series.values.shape[1])]
    return [f"{series.name}:{channel}" if multi else series.name for channel in channels]


def series_points(series: TimeSeries) -> list[Point]:
    """Every value of every channel as a point, in file order."""
    seconds = event_seconds(series)
    labels = series.labels
    points: list[Point] = []
    for c, key in enumerate(series_keys(series)):
        column = series.values[:, c].astype(np.float64)
        points += [Point(key=key, timestamp=float(t), value=float(v), label=None if labels is None else int(labels[i]))
                   for i, (t, v) in enumerate(zip(seconds, column, strict=True))]
    return points


def file_points(paths: Sequence[Path]) -> list[Point]:
    return [p for path in paths for p in series_points(load_series(path))]


def feedback_spans(paths: Sequence[Path], store: FeedbackStore) -> list[FeedbackSpan]:
    """The effective marks on each file as event-time spans on every key the file streams as.

    A mark's rows are located in the file as it is now (by time where it has timestamps, see
    :func:`~anomalygraph.data.feedback.mark_rows`) and become the event seconds of its first and
    last row, as :func:`event_seconds` gives them to the points.
    """
    spans: list[FeedbackSpan] = []
    for path in paths:
        marks = store.effective(path)
        if not marks:
            continue
        series = load_series(path)
        seconds = event_seconds(series)
        for mark in marks:
            rows = mark_rows(mark, series)
            if rows is None:
                continue
            spans += [FeedbackSpan(key=key, start=float(seconds[rows[0]]), end=float(seconds[rows[1]]), label=mark.label,
                                   mark=f"{mark.describe()}, rows {rows[0]}:{rows[1]} of {path.name}", at=mark.at)
                      for key in series_keys(series)]
    return spans


def disorder(points: Iterable[Point], *, max_delay: int = 0, duplicates: float = 0.0, seed: int = 0) -> list[Point]:
    """Points in a shuffled arrival order: each arrives at most ``max_delay`` places late; a
    ``duplicates`` share is delivered a second time, also at most ``max_delay`` places late."""
    rng = np.random.default_rng(seed)
    items = list(points)
    arrivals = [(i + rng.uniform(0, max_delay + 1), p) for i, p in enumerate(items)]
    twice = rng.random(len(items)) < duplicates
    arrivals += [(i + rng.uniform(0, max_delay + 1), items[i]) for i in np.flatnonzero(twice)]
    arrivals.sort(key=lambda pair: pair[0])
    return [p for _, p in arrivals]
