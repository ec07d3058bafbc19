"""Generic CSV and Parquet tables, and TSB-AD's CSV flavour (values, then a ``Label`` column)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from anomalygraph.core.errors import DataError
from anomalygraph.data.loaders.common import LoadOptions
from anomalygraph.data.series import TimeSeries
from anomalygraph.data.validation import (
    Where,
    numeric_columns,
    parse_timestamps,
    repair_values,
    row_where,
)

TIMESTAMP_NAMES = ("timestamp", "time", "date", "datetime", "ts")
LABEL_NAMES = ("label", "labels", "is_anomaly", "anomaly")
_TSBAD_NAME = re.compile(r"^\d+_(?P<dataset>.+)_id_(?P<id>\d+)_(?P<domain>.+)_tr_(?P<train>\d+)_1st_(?P<first>\d+)\.csv$")


def read_csv(path: Path) -> pd.DataFrame:
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        frame = pd.read_csv(path, sep=sep, skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: file is empty (no header)") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from exc
    if frame.empty:
        raise DataError(f"{path}: no data rows below the header")
    return frame


def _pick(frame: pd.DataFrame, asked: str | None, names: tuple[str, ...], *, source: str, role: str) -> str | None:
    if asked is not None:
        if asked not in frame.columns:
            raise DataError(f"{source}: no {role} column '{asked}'; columns are {list(frame.columns)}")
        return asked
    lower = {str(c).lower(): c for c in frame.columns}
    for name in names:
        if name in lower:
            return lower[name]
    return None


def frame_to_series(
    frame: pd.DataFrame,
    options: LoadOptions,
    *,
    source: Path,
    where: Where,
    label_col: str | None = None,
    strict_time: bool = True,
) -> TimeSeries:
    """Column roles from options or names, then numeric checks, NaN policy and timestamp checks."""
    src = str(source)
    ts_col = _pick(frame, options.timestamp_col, TIMESTAMP_NAMES, source=src, role="timestamp")
    if ts_col is None and options.timestamp_col is None and len(frame.columns) > 1:
        first = frame.columns[0]
        if pd.api.types.is_datetime64_any_dtype(frame[first]) or (
            frame[first].dtype == object and pd.to_datetime(frame[first], errors="coerce", format="mixed").notna().all()
        ):
            ts_col = first
    label_col = label_col or _pick(frame, options.label_col, LABEL_NAMES, source=src, role="label")
    if options.value_cols:
        missing = [c for c in options.value_cols if c not in frame.columns]
        if missing:
            raise DataError(f"{src}: no value column(s) {missing}; columns are {list(frame.columns)}")
        value_cols = list(options.value_cols)
    else:
        value_cols = [c for c in frame.columns if c not in (ts_col, label_col)]
    if not value_cols:
        raise DataError(f"{src}: no value columns (columns are {list(frame.columns)})")
    numbers = numeric_columns(frame, value_cols, source=src, where=where)
    values, repairs = repair_values(
        numbers.to_numpy(), [str(c) for c in value_cols], source=src, policy=options.nan, where=where
    )
    timestamps = None
    if ts_col is not None:
        timestamps = parse_timestamps(frame[ts_col], source=src, column=str(ts_col), where=where, strict=strict_time)
    labels = None
    if label_col is not None:
        labels = _labels(frame[label_col], source=src, column=str(label_col), where=where)
    return TimeSeries(
        values=values,
        timestamps=timestamps,
        labels=labels,
        channels=[str(c) for c in value_cols],
        name=source.stem,
        meta={
            "repairs": repairs,
            "timestamp_column": None if ts_col is None else str(ts_col),
            "label_column": None if label_col is None else str(label_col),
        },
    )


def _labels(raw: pd.Series, *, source: str, column: str, where: Where) -> np.ndarray:
    numbers = pd.to_numeric(raw, errors="coerce")
    bad = numbers.isna() | ~numbers.isin((0, 1))
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise DataError(f"{source}: label column '{column}' must hold 0 or 1, got {raw.iloc[i]!r} at {where(i)}")
    return numbers.astype("uint8").to_numpy()


def load_csv(path: Path, options: LoadOptions) -> TimeSeries:
    return frame_to_series(read_csv(path), options, source=path, where=row_where(first_line=2))


def load_parquet(path: Path, options: LoadOptions) -> TimeSeries:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    if frame.empty:
        raise DataError(f"{path}: no data rows")
    if not isinstance(frame.index, pd.RangeIndex) and isinstance(frame.index, pd.DatetimeIndex):
        frame = frame.reset_index()
    return frame_to_series(frame, options, source=path, where=row_where())


def looks_like_tsbad(path: Path) -> bool:
    if _TSBAD_NAME.match(path.name):
        return True
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            header = fh.readline().strip().split(",")
    except OSError:
        return False
    return len(header) >= 2 and header[-1] == "Label"


def load_tsbad(path: Path, options: LoadOptions) -> TimeSeries:
    """All columns but the last are values; ``tr_<n>`` in the name marks the training rows."""
    frame = read_csv(path)
    if len(frame.columns) < 2 or frame.columns[-1] != "Label":
        raise DataError(f"{path}: a TSB-AD file has value columns then a last column 'Label'; got {list(frame.columns)}")
    opts = options.model_copy(update={"value_cols": options.value_cols or list(frame.columns[:-1])})
    series = frame_to_series(frame, opts, source=path, where=row_where(first_line=2), label_col="Label")
    match = _TSBAD_NAME.match(path.name)
    if match:
        train_end = int(match["train"])
        if not 0 < train_end <= series.length:
            raise DataError(f"{path}: train end {train_end} in the file name is outside 1..{series.length}")
        series.train_end = train_end
        series.meta.update(dataset=match["dataset"], domain=match["domain"], first_anomaly=int(match["first"]))
    return series
