"""Checks and explicit repairs applied while loading, each with a message that names the place.

Messages name the source, the column and the row (``line N`` for text files, counted as an
editor shows them, header included), so a user can open the file and look.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum

import numpy as np
import pandas as pd

from anomalygraph.core.errors import DataError, warn_data

Where = Callable[[int], str]


class NanPolicy(StrEnum):
    """How missing or infinite values are handled; there is no silent default in between."""

    interpolate = "interpolate"
    ffill = "ffill"
    error = "error"


def row_where(first_line: int | None = None) -> Where:
    """Format a 0-based data row as ``line N`` (text files) or ``row N`` (arrays)."""
    if first_line is None:
        return lambda i: f"row {i}"
    return lambda i: f"line {i + first_line}"


def numeric_columns(frame: pd.DataFrame, columns: Sequence[str], *, source: str, where: Where) -> pd.DataFrame:
    """Columns as float64, refusing any cell that is present but not a number."""
    out = {}
    for col in columns:
        raw = frame[col]
        if pd.api.types.is_bool_dtype(raw):
            raise DataError(f"{source}: column '{col}' holds booleans, not numbers")
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna() & raw.notna()
        if pd.api.types.is_object_dtype(raw) or pd.api.types.is_string_dtype(raw):
            stripped = raw.astype("string").str.strip().str.lower()
            missing_words = stripped.isin(["", "nan", "na", "null", "none"])
            bad &= ~missing_words.fillna(False).astype(bool)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{source}: column '{col}' is not numeric: {raw.iloc[i]!r} at {where(i)}"
                f" ({int(bad.sum())} such cells)"
            )
        out[col] = values.astype("float64")
    return pd.DataFrame(out, index=frame.index)


def repair_values(
    values: np.ndarray,
    channels: Sequence[str],
    *,
    source: str,
    policy: NanPolicy,
    where: Where,
    check_constant: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """Apply the NaN/inf policy; return float32 values and a line per repair made."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if len(values) == 0:
        raise DataError(f"{source}: no data rows")
    repairs: list[str] = []
    missing = ~np.isfinite(values)
    for j, ch in enumerate(channels):
        if missing[:, j].all():
            raise DataError(f"{source}: column '{ch}' has no finite value (all {len(values)} rows are NaN/inf)")
    if missing.any():
        n_inf = int(np.isinf(values).sum())
        rows, cols = np.nonzero(missing)
        first = f"column '{channels[cols[0]]}' at {where(int(rows[0]))}"
        what = f"{int(missing.sum())} missing or infinite values ({n_inf} infinite), first in {first}"
        if policy == NanPolicy.error:
            raise DataError(f"{source}: {what}; choose --nan interpolate or --nan ffill to repair them")
        frame = pd.DataFrame(np.where(missing, np.nan, values))
        if policy == NanPolicy.interpolate:
            frame = frame.interpolate(method="linear", limit_direction="both")
            how = "linearly interpolated (edges take the nearest value)"
        else:
            frame = frame.ffill().bfill()
            how = "forward-filled (leading gaps take the first value)"
        values = frame.to_numpy()
        message = f"{source}: {what}; {how}"
        repairs.append(message)
        warn_data(message)
    out = values.astype(np.float32)
    if not np.isfinite(out).all():
        j = int(np.nonzero(~np.isfinite(out).all(axis=0))[0][0])
        raise DataError(f"{source}: column '{channels[j]}' has values beyond float32 range")
    if check_constant:
        warn_constant_channels(out, channels, source=source)
    return out, repairs


def warn_constant_channels(values: np.ndarray, channels: Sequence[str], *, source: str) -> None:
    """Constant channels are legal (one-hot command channels) but carry no signal: say which."""
    constant = [ch for ch, s in zip(channels, values.std(axis=0), strict=True) if s == 0]
    if constant:
        shown = ", ".join(f"'{c}'" for c in constant[:5]) + (" ..." if len(constant) > 5 else "")
        warn_data(f"{source}: {len(constant)} of {len(channels)} channels are constant: {shown}")


def parse_timestamps(
    raw: pd.Series, *, source: str, column: str, where: Where, strict: bool = True
) -> pd.DatetimeIndex:
    """Datetimes from strings or epoch seconds; unparseable cells are errors, not NaT."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = pd.to_datetime(raw)
    elif pd.api.types.is_numeric_dtype(raw):
        parsed = pd.to_datetime(raw, unit="s", errors="coerce")
    else:
        parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
    bad = parsed.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{source}: column '{column}' has a value that is not a timestamp: {raw.iloc[i]!r} at {where(i)}"
        )
    index = pd.DatetimeIndex(parsed)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    index = index.as_unit("ns")
    check_timestamps(index, source=source, where=where, strict=strict)
    return index


def check_timestamps(index: pd.DatetimeIndex, *, source: str, where: Where, strict: bool = True) -> None:
    """Reject unsorted or duplicated timestamps; warn about irregular sampling.

    ``strict=False`` is for benchmark files whose labels are defined in file order (NAB's
    machine_temperature file steps back an hour): the rows stay as they are and a warning says where.
    """
    if len(index) < 2:
        return
    steps = np.diff(index.as_unit("ns").asi8)
    problems = []
    if (steps < 0).any():
        i = int(np.argmax(steps < 0)) + 1
        problems.append(
            f"timestamps are not sorted: {index[i]} at {where(i)} comes before "
            f"{index[i - 1]} at {where(i - 1)} ({int((steps < 0).sum())} backward steps)"
        )
    if (steps == 0).any():
        i = int(np.argmax(steps == 0)) + 1
        problems.append(f"duplicate timestamp {index[i]} at {where(i - 1)} and {where(i)}")
    if problems and strict:
        raise DataError(f"{source}: {problems[0]}; sort the file and remove duplicates first")
    if problems:
        warn_data(f"{source}: {'; '.join(problems)}; rows kept in file order")
        return
    median = np.median(steps)
    irregular = steps != median
    if irregular.any():
        gap = int(np.argmax(steps)) + 1
        warn_data(
            f"{source}: irregular sampling: {int(irregular.sum())} of {len(steps)} steps differ from the "
            f"median step {pd.Timedelta(int(median), unit='ns')} (largest gap "
            f"{pd.Timedelta(int(steps[gap - 1]), unit='ns')} before {where(gap)}); "
            f"use --resample to put it on a regular grid"
        )


def check_length(length: int, needed: int, *, what: str, name: str) -> None:
    """A series too short for a window gets one message naming both lengths."""
    if length < needed:
        raise DataError(f"series '{name}' has {length} timestamps, shorter than {what} of {needed}")
