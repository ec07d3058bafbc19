"""User feedback on reported intervals: "real anomaly" or "false alarm", kept per series file.

A mark names rows of one file (and, when the series has timestamps, their times), who made it,
when, and on which verdict. Marks are known labels on *that* series: diagnosis selection and the
CALM judge may read them; evaluations never do (their labels are the benchmark's alone).

Storage is one JSON line per mark, appended and fsynced, in one file per series file (named by
the SHA-1 of the resolved path, so any file name is safe). Nothing is ever rewritten: a user who
changes their mind adds a newer mark for the same rows, and :meth:`FeedbackStore.effective`
returns the latest per interval.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from anomalygraph.core.errors import ConfigError, DataError, validation_problems
from anomalygraph.data.series import TimeSeries

Label = Literal["real", "false"]
LABELS: tuple[str, ...] = ("real", "false")
LABEL_TEXT = {"real": "real anomaly", "false": "false alarm"}
STORE_FOLDER = "feedback"
_ROWS = re.compile(r"^\s*(-?\d+)\s*:\s*(-?\d+)\s*$")


class FeedbackMark(BaseModel):
    """One user's judgement of rows ``start..end`` (inclusive) of one file, as it was when marked."""

    model_config = ConfigDict(extra="forbid")

    series: str = Field(description="the TimeSeries name")
    path: str = Field(description="the file's resolved path")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the file's bytes when marked")
    start: int = Field(ge=0, description="first row (inclusive)")
    end: int = Field(ge=0, description="last row (inclusive)")
    start_time: str | None = Field(None, description="timestamp of the first row, when the series has timestamps")
    end_time: str | None = Field(None, description="timestamp of the last row, when the series has timestamps")
    label: Label
    user: str = Field(min_length=1, max_length=100)
    at: datetime = Field(description="when it was marked (UTC)")
    verdict: str | None = Field(None, description="the verdict file or run the mark was made on")
    interval_rank: int | None = Field(None, ge=1, description="the interval's rank in that verdict")
    note: str | None = Field(None, max_length=500)

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # a naive time is read as UTC; an aware one is converted, so marks compare and print alike
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _ordered(self) -> FeedbackMark:
        if self.end < self.start:
            raise ValueError(f"end row {self.end} is before start row {self.start}")
        return self

    @property
    def rows(self) -> str:
        return f"{self.start}:{self.end}"

    def describe(self) -> str:
        """``false alarm (alice, 2026-12-02 10:14 UTC)``: how a mark is shown beside an interval."""
        return f"{LABEL_TEXT[self.label]} ({self.user}, {self.at:%Y-%m-%d %H:%M} UTC)"


def resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in chunks (series files can be large)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file to mark it ({exc.strerror or exc})") from exc
    return digest.hexdigest()


class FeedbackStore:
    """Marks under ``root``, one JSONL file per series file; appends are fsynced so a mark is never lost."""

    _lock = threading.Lock()  # one process may add from several threads (the web UI)

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def file_for(self, path: str | Path) -> Path:
        """The JSONL file of a series file: the SHA-1 of its resolved path, so any name is safe."""
        return self.root / f"{hashlib.sha1(str(resolved(path)).encode('utf-8')).hexdigest()}.jsonl"

    def add(self, mark: FeedbackMark) -> Path:
        """Append ``mark`` as one line and fsync it (and the folder, for a new file); returns the file."""
        file = self.file_for(mark.path)
        line = (mark.model_dump_json() + "\n").encode("utf-8")
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            new = not file.exists()
            with open(file, "ab") as fh:
                if not new and fh.tell() > 0 and not _ends_with_newline(file):
                    line = b"\n" + line  # a torn last line (a crash mid-write) must not swallow this mark
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            if new:
                _fsync_dir(self.root)
        return file

    def marks(self, path: str | Path) -> list[FeedbackMark]:
        """Every mark on ``path``, in the order they were made; :class:`DataError` names a corrupt line."""
        file = self.file_for(path)
        if not file.is_file():
            return []
        out = []
        with open(file, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    out.append(FeedbackMark.model_validate_json(line))
                except ValidationError as exc:
                    raise DataError(f"feedback file {file}, line {number}: not a valid mark "
                                    f"({validation_problems(exc, root='mark')})") from exc
        return out

    def effective(self, path: str | Path) -> list[FeedbackMark]:
        """The latest mark per (start, end) interval (a user can change their mind), ordered by rows."""
        latest: dict[tuple[int, int], FeedbackMark] = {}
        for mark in self.marks(path):
            latest[(mark.start, mark.end)] = mark
        return [latest[k] for k in sorted(latest)]


def _ends_with_newline(file: Path) -> bool:
    with open(file, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _fsync_dir(folder: Path) -> None:
    """Make a new file's directory entry durable too (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def default_store() -> FeedbackStore:
    """The store under the settings' output folder: ``<output.dir>/feedback``."""
    from anomalygraph.core.settings import get_settings

    return FeedbackStore(get_settings().output.dir / STORE_FOLDER)


def marks_digest(marks: Sequence[FeedbackMark]) -> str:
    """A short digest of marks, so a run that used other marks is another run (graph thread ids)."""
    payload = json.dumps([m.model_dump(mode="json") for m in marks], sort_keys=True)
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()[:12]


# ------------------------------------------------------------------ intervals
def _check_rows(start: int, end: int, series: TimeSeries) -> tuple[int, int]:
    if start < 0 or end < 0:
        raise DataError(f"interval {start}:{end}: rows are counted from 0")
    if end < start:
        raise DataError(f"interval {start}:{end}: the end row is before the start row")
    if end >= series.length:
        raise DataError(f"interval {start}:{end} is outside series '{series.name}' (rows 0..{series.length - 1})")
    return start, end


def _timestamp(text: str, index: pd.DatetimeIndex, whole: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(text.strip())
    except (ValueError, TypeError) as exc:
        raise DataError(f"interval {whole!r}: {text.strip()!r} is not a timestamp") from exc
    if ts is pd.NaT or pd.isna(ts):
        raise DataError(f"interval {whole!r}: {text.strip()!r} is not a timestamp")
    if index.tz is not None and ts.tzinfo is None:
        ts = ts.tz_localize(index.tz)
    elif index.tz is None and ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _rows_between(index: pd.DatetimeIndex, first: pd.Timestamp, last: pd.Timestamp) -> np.ndarray:
    return np.flatnonzero((index >= first) & (index <= last))


def parse_interval(text: str, series: TimeSeries) -> tuple[int, int]:
    """Rows ``(start, end)`` (inclusive) from ``START:END`` row indices or ``T1..T2`` timestamps.

    Timestamps map to the first and last row inside ``[T1, T2]``. :class:`DataError` for rows
    outside the series, an end before the start, timestamps on a series without any, no row
    inside the times, or text that is neither form.
    """
    raw = str(text).strip()
    if ".." in raw:
        parts = raw.split("..")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise DataError(f"interval {raw!r}: give two timestamps separated by '..', e.g. "
                            "2014-02-01T10:00..2014-02-01T14:00")
        if series.timestamps is None:
            raise DataError(f"interval {raw!r}: series '{series.name}' has no timestamps; give rows as START:END")
        first, last = (_timestamp(p, series.timestamps, raw) for p in parts)
        if last < first:
            raise DataError(f"interval {raw!r}: the end time is before the start time")
        rows = _rows_between(series.timestamps, first, last)
        if rows.size == 0:
            raise DataError(f"interval {raw!r}: no row of series '{series.name}' lies inside it "
                            f"(the series runs {series.timestamps[0]} .. {series.timestamps[-1]})")
        return int(rows[0]), int(rows[-1])
    match = _ROWS.match(raw)
    if match is None:
        raise DataError(f"interval {raw!r}: expected START:END row indices (e.g. 120:140) or "
                        "timestamps T1..T2 (e.g. 2014-02-01T10:00..2014-02-01T14:00)")
    return _check_rows(int(match.group(1)), int(match.group(2)), series)


def mark_rows(mark: FeedbackMark, series: TimeSeries) -> tuple[int, int] | None:
    """The rows ``mark`` covers in ``series`` as it is now, or None when none of them is left.

    By time when both have timestamps (rows stay put under appends or repairs); else the row
    indices, clipped to the series.
    """
    if series.timestamps is not None and mark.start_time and mark.end_time:
        try:
            first = _timestamp(mark.start_time, series.timestamps, mark.rows)
            last = _timestamp(mark.end_time, series.timestamps, mark.rows)
        except DataError:
            first = last = None
        if first is not None and last is not None:
            rows = _rows_between(series.timestamps, first, last)
            return (int(rows[0]), int(rows[-1])) if rows.size else None
    if mark.start >= series.length:
        return None
    return mark.start, min(mark.end, series.length - 1)


def feedback_masks(marks: Sequence[FeedbackMark], length: int, *, series: TimeSeries | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(real_mask, false_mask)``: boolean ``[length]`` arrays of the rows marked each way.

    Rows are the marks' own indices (clipped), or, with ``series``, located by :func:`mark_rows`.
    """
    real = np.zeros(length, dtype=bool)
    false = np.zeros(length, dtype=bool)
    for mark in marks:
        rows = mark_rows(mark, series) if series is not None else (
            (mark.start, min(mark.end, length - 1)) if mark.start < length else None)
        if rows is None:
            continue
        (real if mark.label == "real" else false)[rows[0] : rows[1] + 1] = True
    return real, false


def make_mark(path: str | Path, series: TimeSeries, start: int, end: int, label: str, user: str,
              verdict: str | None = None, rank: int | None = None, note: str | None = None) -> FeedbackMark:
    """A mark on rows ``start..end`` of the file at ``path`` (loaded as ``series``), stamped now.

    Fills the resolved path, the file's SHA-256, the rows' timestamps and the time; a bad label,
    user or note is a :class:`ConfigError`, rows outside the series a :class:`DataError`.
    """
    if label not in LABELS:
        raise ConfigError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
    real = resolved(path)
    if not real.is_file():
        raise DataError(f"{path}: no such file")
    start, end = _check_rows(int(start), int(end), series)
    times = series.timestamps
    try:
        return FeedbackMark(
            series=series.name, path=str(real), sha256=file_sha256(real), start=start, end=end,
            start_time=None if times is None else times[start].isoformat(),
            end_time=None if times is None else times[end].isoformat(),
            label=label, user=user, at=datetime.now(UTC), verdict=verdict, interval_rank=rank, note=note,  # type: ignore[arg-type]
        )
    except ValidationError as exc:
        raise ConfigError(f"invalid feedback mark: {validation_problems(exc, root='mark')}") from exc


__all__ = [
    "LABELS",
    "LABEL_TEXT",
    "FeedbackMark",
    "FeedbackStore",
    "default_store",
    "feedback_masks",
    "file_sha256",
    "make_mark",
    "mark_rows",
    "marks_digest",
    "parse_interval",
]
