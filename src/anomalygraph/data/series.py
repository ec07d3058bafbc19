"""The one container every part of AnomalyGraph passes around."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from anomalygraph.core.errors import DataError


class ChannelSummary(BaseModel):
    name: str
    mean: float
    std: float
    min: float
    max: float
    constant: bool


class SeriesSummary(BaseModel):
    """What ``anomalygraph data inspect`` prints and what agents see instead of raw arrays."""

    name: str
    length: int
    n_channels: int
    start: str | None
    end: str | None
    sampling: str | None
    irregular_steps: int
    train_length: int | None
    label_ratio: float | None
    n_label_events: int | None
    repairs: list[str]
    channels: list[ChannelSummary]


@dataclass(eq=False)
class TimeSeries:
    """Values ``[T, D]`` (float32, finite) with optional timestamps, 0/1 labels and a train split.

    ``train_end`` marks rows ``[0, train_end)`` as the format's training part (UCR, TSB-AD,
    SMAP/MSL); ``None`` means the format has none. Loaders repair or reject non-finite values
    before building one, so detectors can rely on finite input.
    """

    values: np.ndarray
    timestamps: pd.DatetimeIndex | None = None
    labels: np.ndarray | None = None
    channels: list[str] = field(default_factory=list)
    name: str = "series"
    train_end: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        values = np.asarray(self.values)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2:
            raise DataError(f"series '{self.name}': values must be 1-D or 2-D, got shape {values.shape}")
        if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating):
            raise DataError(f"series '{self.name}': values must be real numbers, got dtype {values.dtype}")
        values = np.ascontiguousarray(values, dtype=np.float32)
        if values.shape[0] == 0:
            raise DataError(f"series '{self.name}' is empty (0 timestamps)")
        if values.shape[1] == 0:
            raise DataError(f"series '{self.name}' has no value channels")
        bad = ~np.isfinite(values)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataError(
                f"series '{self.name}': {int(bad.sum())} non-finite values "
                f"(first at row {row}, channel {col}); load with a NaN policy to repair them"
            )
        self.values = values
        t, d = values.shape
        if not self.channels:
            self.channels = [f"ch{i}" for i in range(d)] if d > 1 else ["value"]
        self.channels = [str(c) for c in self.channels]
        if len(self.channels) != d:
            raise DataError(f"series '{self.name}': {len(self.channels)} channel names for {d} channels")
        if self.timestamps is not None:
            # One resolution everywhere, so integer steps (asi8) are always nanoseconds.
            self.timestamps = pd.DatetimeIndex(self.timestamps).as_unit("ns")
            if len(self.timestamps) != t:
                raise DataError(
                    f"series '{self.name}': {len(self.timestamps)} timestamps for {t} values"
                )
        if self.labels is not None:
            self.labels = _check_labels(self.labels, t, self.name)
        if self.train_end is not None and not 0 < self.train_end <= t:
            raise DataError(
                f"series '{self.name}': train split {self.train_end} outside 1..{t}"
            )

    @property
    def length(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.values.shape[1])

    def __len__(self) -> int:
        return self.length

    def slice(self, start: int, stop: int, *, name: str | None = None) -> TimeSeries:
        """Rows ``[start, stop)``; the train split is kept only where it still falls inside."""
        start, stop, _ = slice(start, stop).indices(self.length)
        train_end = None
        if self.train_end is not None and self.train_end > start:
            train_end = min(self.train_end, stop) - start
        return replace(
            self,
            values=self.values[start:stop],
            timestamps=None if self.timestamps is None else self.timestamps[start:stop],
            labels=None if self.labels is None else self.labels[start:stop],
            name=name or self.name,
            train_end=train_end or None,
            meta=dict(self.meta),
        )

    def unlabelled(self) -> TimeSeries:
        """The same series without labels: what an unsupervised step may see."""
        return replace(self, labels=None, meta=dict(self.meta))

    def train(self) -> TimeSeries:
        """The format's training part; the whole series where the format has no split."""
        if self.train_end is None:
            return self
        return self.slice(0, self.train_end, name=f"{self.name}[train]")

    def test(self) -> TimeSeries:
        """Rows after the training part; the whole series where the format has no split."""
        if self.train_end is None or self.train_end == self.length:
            return self
        return self.slice(self.train_end, self.length, name=f"{self.name}[test]")

    def summary(self) -> SeriesSummary:
        from anomalygraph.core.intervals import mask_to_intervals

        steps = None if self.timestamps is None else np.diff(self.timestamps.asi8)
        sampling = None
        irregular = 0
        if steps is not None and len(steps):
            median = int(np.median(steps))
            sampling = str(pd.Timedelta(median, unit="ns"))
            irregular = int((steps != median).sum())
        std = self.values.std(axis=0)
        return SeriesSummary(
            name=self.name,
            length=self.length,
            n_channels=self.n_channels,
            start=None if self.timestamps is None else str(self.timestamps[0]),
            end=None if self.timestamps is None else str(self.timestamps[-1]),
            sampling=sampling,
            irregular_steps=irregular,
            train_length=self.train_end,
            label_ratio=None if self.labels is None else float(self.labels.mean()),
            n_label_events=None if self.labels is None else len(mask_to_intervals(self.labels)),
            repairs=list(self.meta.get("repairs", [])),
            channels=[
                ChannelSummary(
                    name=c,
                    mean=float(self.values[:, i].mean()),
                    std=float(std[i]),
                    min=float(self.values[:, i].min()),
                    max=float(self.values[:, i].max()),
                    constant=bool(std[i] == 0),
                )
                for i, c in enumerate(self.channels)
            ],
        )


def _check_labels(labels: Any, length: int, name: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise DataError(f"series '{name}': labels must be 1-D, got shape {arr.shape}")
    if len(arr) != length:
        raise DataError(f"series '{name}': {len(arr)} labels for {length} values (label length mismatch)")
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"series '{name}': labels must be 0/1 numbers, got dtype {arr.dtype}")
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"series '{name}': labels must be 0 or 1, got {arr[row]} at row {row}")
    return arr.astype(np.uint8)


RowStyle = Literal["time", "time_and_row", "t"]


def row_label(row: int, timestamps: pd.DatetimeIndex | None, style: RowStyle = "time") -> str:
    """How a row is named to a reader: its timestamp when there is one, else its index.

    ``time``: ``2015-01-26 00:30:00`` or ``row 12`` (tables of intervals); ``time_and_row``:
    ``2015-01-26 00:30:00 (row 12)`` (reports that are read beside the file); ``t``:
    ``t=12 (2015-01-26 00:30:00)`` (the text rendering a model reads instead of a plot).
    """
    if style == "t":
        return f"t={row}" if timestamps is None else f"t={row} ({timestamps[row]})"
    if timestamps is None:
        return f"row {row}"
    return f"{timestamps[row]} (row {row})" if style == "time_and_row" else f"{timestamps[row]}"
