"""NAB: ``data/<category>/<file>.csv`` with label windows in ``labels/combined_windows.json``."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from anomalygraph.core.errors import DataError
from anomalygraph.data.loaders.common import LoadOptions
from anomalygraph.data.loaders.tabular import frame_to_series, read_csv
from anomalygraph.data.series import TimeSeries
from anomalygraph.data.validation import row_where

WINDOWS_FILE = Path("labels") / "combined_windows.json"


def find_nab_labels(path: Path) -> Path | None:
    """``<root>/labels/combined_windows.json`` for a file at ``<root>/data/<category>/<file>.csv``."""
    path = path.resolve()
    if len(path.parents) < 3 or path.parents[1].name != "data":
        return None
    candidate = path.parents[2] / WINDOWS_FILE
    return candidate if candidate.is_file() else None


@lru_cache(maxsize=4)
def _read_windows(labels_path: Path, mtime: float) -> dict[str, list[list[str]]]:
    try:
        return json.loads(labels_path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{labels_path}: not valid JSON ({exc})") from exc


def load_nab(path: Path, options: LoadOptions) -> TimeSeries:
    labels_path = find_nab_labels(path)
    if labels_path is None:
        raise DataError(f"{path}: not inside a NAB tree (<root>/data/<category>/<file>.csv with <root>/{WINDOWS_FILE})")
    resolved = path.resolve()
    key = f"{resolved.parent.name}/{resolved.name}"
    windows = _read_windows(labels_path, labels_path.stat().st_mtime)
    if key not in windows:
        raise DataError(f"{labels_path}: has no entry for '{key}'")
    opts = options.model_copy(update={"timestamp_col": options.timestamp_col or "timestamp"})
    # NAB's labels and scorer follow file order, and one of its files steps back an hour: keep the rows.
    series = frame_to_series(read_csv(path), opts, source=path, where=row_where(first_line=2), strict_time=False)
    assert series.timestamps is not None  # timestamp_col was set above
    labels = np.zeros(series.length, dtype=np.uint8)
    for start, end in windows[key]:
        inside = (series.timestamps >= pd.Timestamp(start)) & (series.timestamps <= pd.Timestamp(end))
        labels[np.asarray(inside)] = 1
    series.labels = labels
    series.name = resolved.stem
    series.meta.update(dataset="NAB", category=resolved.parent.name, label_windows=windows[key])
    return series
