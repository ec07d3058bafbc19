"""Putting an irregular series on a regular grid, explicitly and with a record of what changed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from anomalygraph.core.errors import DataError
from anomalygraph.data.series import TimeSeries
from anomalygraph.data.validation import NanPolicy, repair_values


def resample(series: TimeSeries, freq: str, *, nan_policy: NanPolicy = NanPolicy.interpolate) -> TimeSeries:
    """Mean of values per bin, max of labels per bin; empty bins go through the NaN policy."""
    if series.timestamps is None:
        raise DataError(f"series '{series.name}' has no timestamps, so it cannot be resampled")
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except ValueError as exc:
        raise DataError(f"'{freq}' is not a pandas frequency (examples: 30s, 5min, 1h)") from exc
    frame = pd.DataFrame(series.values.astype(np.float64), index=series.timestamps, columns=series.channels)
    binned = frame.resample(offset).mean()
    empty = int(binned.isna().all(axis=1).sum())
    values, repairs = repair_values(
        binned.to_numpy(),
        series.channels,
        source=f"series '{series.name}' resampled to {freq}",
        policy=nan_policy,
        where=lambda i: f"bin {binned.index[i]}",
    )
    labels = None
    if series.labels is not None:
        labels = pd.Series(series.labels, index=series.timestamps).resample(offset).max()
        labels = labels.fillna(0).to_numpy().astype(np.uint8)
    note = f"resampled from {series.length} irregular rows to {len(binned)} bins of {freq} ({empty} empty bins)"
    meta = {**series.meta, "repairs": [*series.meta.get("repairs", []), note, *repairs]}
    return replace(
        series,
        values=values,
        timestamps=binned.index,
        labels=labels,
        train_end=None if series.train_end is None else int(
            np.searchsorted(binned.index, series.timestamps[series.train_end - 1], side="right")
        ) or None,
        meta=meta,
    )


