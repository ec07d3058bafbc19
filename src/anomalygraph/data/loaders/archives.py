"""Benchmark archives whose labels live beside the data or in the file name.

- telemanom (SMAP/MSL): ``train/<chan>.npy``, ``test/<chan>.npy``, ``labeled_anomalies.csv``
  with inclusive 0-based ranges into the test array.
- SMD: comma-separated ``train/``, ``test/``, ``test_label/`` and ``interpretation_label/`` text
  files named ``machine-<g>-<i>.txt``.
- UCR anomaly archive: ``<id>_UCR_Anomaly_<name>_<trainEnd>_<start>_<end>.txt``, one value per
  line, one anomaly at 1-based inclusive positions ``start..end``.

Each returns train and test concatenated with ``train_end`` at the boundary, so that "fit on
the training part, score the whole file" is the same call for every format.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd

from anomalygraph.core.errors import DataError, warn_data
from anomalygraph.data.loaders.common import LoadOptions
from anomalygraph.data.series import TimeSeries
from anomalygraph.data.validation import repair_values, row_where, warn_constant_channels

_UCR_NAME = re.compile(r"^(?P<id>\d+)_UCR_Anomaly_(?P<name>.+)_(?P<train>\d+)_(?P<start>\d+)_(?P<end>\d+)\.txt$")
TELEMANOM_LABELS = "labeled_anomalies.csv"


def _split_root(path: Path) -> Path | None:
    """The folder holding ``train/`` and ``test/`` for a file in one of them."""
    path = path.resolve()
    return path.parents[1] if path.parent.name in {"train", "test"} else None


def looks_like_telemanom(path: Path) -> bool:
    root = _split_root(path)
    return root is not None and (root / TELEMANOM_LABELS).is_file()


def looks_like_smd(path: Path) -> bool:
    root = _split_root(path)
    return root is not None and (root / "test_label").is_dir()


def _load_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from exc
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: expected a 2-D numeric array, got shape {arr.shape} of {arr.dtype}")
    return arr


def _concat(
    name: str,
    train: np.ndarray | None,
    test: np.ndarray,
    test_labels: np.ndarray,
    channels: list[str],
    options: LoadOptions,
    sources: tuple[Path | None, Path],
    meta: dict,
) -> TimeSeries:
    parts, repairs = [], []
    for arr, src in ((train, sources[0]), (test, sources[1])):
        if arr is None:
            continue
        if arr.shape[1] != len(channels):
            raise DataError(f"{src}: {arr.shape[1]} channels, expected {len(channels)} like its pair")
        values, fixed = repair_values(
            arr, channels, source=str(src), policy=options.nan, where=row_where(), check_constant=False
        )
        parts.append(values)
        repairs += fixed
    train_end = None if train is None else len(train)
    labels = test_labels if train is None else np.concatenate([np.zeros(len(train), np.uint8), test_labels])
    values = np.concatenate(parts)
    warn_constant_channels(values, channels, source=f"{sources[1]} (train and test)")
    return TimeSeries(
        values=values,
        labels=labels,
        channels=channels,
        name=name,
        train_end=train_end,
        meta={**meta, "repairs": repairs},
    )


def _pair(path: Path) -> tuple[Path | None, Path]:
    """(train, test) files for a path in either folder; a missing train file is warned about."""
    root = _split_root(path)
    assert root is not None
    test = root / "test" / path.name
    train = root / "train" / path.name
    if not test.is_file():
        raise DataError(f"{test}: file not found (the test part of {path.name})")
    if not train.is_file():
        warn_data(f"{train}: not found; loading the test part alone, with no train split")
        return None, test
    return train, test


def load_telemanom(path: Path, options: LoadOptions) -> TimeSeries:
    root = _split_root(path)
    if root is None or not (root / TELEMANOM_LABELS).is_file():
        raise DataError(f"{path}: not in the telemanom layout (<root>/train|test/<chan>.npy and <root>/{TELEMANOM_LABELS})")
    train_path, test_path = _pair(path)
    chan = path.stem
    test = _load_npy(test_path)
    train = None if train_path is None else _load_npy(train_path)
    table = pd.read_csv(root / TELEMANOM_LABELS)
    needed = {"chan_id", "spacecraft", "anomaly_sequences", "num_values"}
    if not needed <= set(table.columns):
        raise DataError(f"{root / TELEMANOM_LABELS}: needs columns {sorted(needed)}, has {list(table.columns)}")
    rows = table[(table["chan_id"] == chan) & (table["num_values"] == len(test))]
    if rows.empty:
        raise DataError(f"{root / TELEMANOM_LABELS}: no row for channel '{chan}' with num_values {len(test)}")
    row = rows.iloc[0]
    labels = np.zeros(len(test), dtype=np.uint8)
    try:
        sequences = ast.literal_eval(row["anomaly_sequences"])
    except (ValueError, SyntaxError) as exc:
        raise DataError(f"{root / TELEMANOM_LABELS}: anomaly_sequences of '{chan}' is not a list of pairs") from exc
    for start, end in sequences:
        if not 0 <= start <= end < len(test):
            raise DataError(f"{root / TELEMANOM_LABELS}: range [{start}, {end}] of '{chan}' is outside its {len(test)} test rows")
        labels[start : end + 1] = 1
    channels = ["value"] + [f"cmd{i}" for i in range(1, test.shape[1])]
    meta = {
        "dataset": str(row["spacecraft"]),
        "anomaly_sequences": sequences,
        "classes": str(row.get("class", "")),
    }
    return _concat(chan, train, test, labels, channels, options, (train_path, test_path), meta)


def _read_text_matrix(path: Path) -> np.ndarray:
    try:
        frame = pd.read_csv(path, header=None, skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: file is empty") from exc
    for col in frame.columns:
        numbers = pd.to_numeric(frame[col], errors="coerce")
        bad = numbers.isna() & frame[col].notna()
        if bad.any():
            i = int(bad.to_numpy().argmax())
            raise DataError(f"{path}: column {col} is not numeric: {frame[col].iloc[i]!r} at line {i + 1}")
    return frame.to_numpy(dtype=np.float64)


def load_smd(path: Path, options: LoadOptions) -> TimeSeries:
    root = _split_root(path)
    if root is None or not (root / "test_label").is_dir():
        raise DataError(f"{path}: not in the SMD layout (<root>/train|test|test_label/<machine>.txt)")
    train_path, test_path = _pair(path)
    test = _read_text_matrix(test_path)
    train = None if train_path is None else _read_text_matrix(train_path)
    label_path = root / "test_label" / path.name
    if not label_path.is_file():
        raise DataError(f"{label_path}: file not found (labels of {path.name})")
    labels = _read_text_matrix(label_path)
    if labels.shape[1] != 1:
        raise DataError(f"{label_path}: expected one label per line, got {labels.shape[1]} columns")
    labels = labels[:, 0]
    if len(labels) != len(test):
        raise DataError(f"{label_path}: {len(labels)} labels for {len(test)} test rows (label length mismatch)")
    bad = ~np.isin(labels, (0, 1))
    if bad.any():
        i = int(bad.argmax())
        raise DataError(f"{label_path}: labels must be 0 or 1, got {labels[i]:g} at line {i + 1}")
    meta: dict = {"dataset": "SMD"}
    interpretation = root / "interpretation_label" / path.name
    if interpretation.is_file():
        meta["interpretation"] = _read_interpretation(interpretation, test.shape[1])
    channels = [f"m{i}" for i in range(test.shape[1])]
    return _concat(path.stem, train, test, labels.astype(np.uint8), channels, options, (train_path, test_path), meta)


def _read_interpretation(path: Path, n_channels: int) -> list[dict]:
    """Lines ``start-end:c1,c2,...`` (1-based channel numbers) as 0-based channel lists."""
    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            span, chans = line.split(":")
            start, end = (int(v) for v in span.split("-"))
            channels = [int(c) - 1 for c in chans.split(",") if c.strip()]
        except ValueError as exc:
            raise DataError(f"{path}: line {lineno} is not 'start-end:c1,c2,...': {line!r}") from exc
        if any(not 0 <= c < n_channels for c in channels):
            raise DataError(f"{path}: line {lineno} names a channel outside 1..{n_channels}")
        out.append({"start": start, "end": end, "channels": channels})
    return out


def parse_ucr_name(name: str) -> dict[str, int | str] | None:
    match = _UCR_NAME.match(name)
    if match is None:
        return None
    return {"id": int(match["id"]), "name": match["name"], "train_end": int(match["train"]),
            "start": int(match["start"]), "end": int(match["end"])}


def load_ucr(path: Path, options: LoadOptions) -> TimeSeries:
    info = parse_ucr_name(path.name)
    if info is None:
        raise DataError(f"{path}: not a UCR archive name (<id>_UCR_Anomaly_<name>_<trainEnd>_<start>_<end>.txt)")
    try:
        raw = np.loadtxt(path, dtype=np.float64).ravel()
    except ValueError as exc:
        raise DataError(f"{path}: not a list of numbers ({exc})") from exc
    if raw.size == 0:
        raise DataError(f"{path}: no values")
    train_end, start, end = int(info["train_end"]), int(info["start"]), int(info["end"])
    if not (0 < train_end < start <= end <= raw.size):
        raise DataError(
            f"{path}: name says train 1..{train_end}, anomaly {start}..{end}, which does not fit {raw.size} values"
        )
    values, repairs = repair_values(raw, ["value"], source=str(path), policy=options.nan, where=row_where(first_line=1))
    labels = np.zeros(raw.size, dtype=np.uint8)
    labels[start - 1 : end] = 1  # the archive counts from 1, both ends inclusive
    return TimeSeries(
        values=values,
        labels=labels,
        channels=["value"],
        name=path.stem,
        train_end=train_end,
        meta={"dataset": "UCR", "repairs": repairs, "ucr": info},
    )
