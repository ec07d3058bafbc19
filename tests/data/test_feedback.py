"""Feedback marks: the append-only store, the latest mark per interval, corrupt lines, intervals as rows or times."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.data import TimeSeries
from anomalygraph.data.feedback import (
    FeedbackMark,
    FeedbackStore,
    default_store,
    feedback_masks,
    make_mark,
    mark_rows,
    marks_digest,
    parse_interval,
)
from anomalygraph.data.loaders import load_series

START = pd.Timestamp("2024-03-01 00:00")


@pytest.fixture
def series_file(tmp_path: Path) -> Path:
    """60 rows at one-minute steps, in a file whose name needs no escaping to be unsafe elsewhere."""
    path = tmp_path / "odd name (v2) ü.csv"
    pd.DataFrame({"timestamp": pd.date_range(START, periods=60, freq="1min"), "cpu": np.arange(60.0)}).to_csv(path, index=False)
    return path


def timed(n: int = 60) -> TimeSeries:
    return TimeSeries(values=np.arange(n, dtype=float), timestamps=pd.date_range(START, periods=n, freq="1min"), name="timed")


def untimed(n: int = 50) -> TimeSeries:
    return TimeSeries(values=np.arange(n, dtype=float), name="rows")


def test_marks_round_trip_in_order_one_file_per_series_named_by_path_hash(series_file, tmp_path) -> None:
    store = FeedbackStore(tmp_path / "store")
    series = load_series(series_file)
    first = make_mark(series_file, series, 10, 20, "false", "alice", verdict="out/diagnosis/verdict.json", rank=1,
                      note="a planned load test")
    second = make_mark(series_file, series, 30, 31, "real", "bob")
    file = store.add(first)
    assert store.add(second) == file
    assert file.name == hashlib.sha1(str(series_file.resolve()).encode()).hexdigest() + ".jsonl"
    assert store.marks(series_file) == [first, second]
    assert store.marks(str(series_file.parent / "." / series_file.name)) == [first, second]  # any spelling of the path
    assert len(file.read_text(encoding="utf-8").splitlines()) == 2
    assert store.marks(tmp_path / "other.csv") == [] and store.effective(tmp_path / "other.csv") == []
    # what make_mark filled in
    assert first.sha256 == hashlib.sha256(series_file.read_bytes()).hexdigest()
    assert first.path == str(series_file.resolve()) and first.series == series.name
    assert (first.start_time, first.end_time) == ("2024-03-01T00:10:00", "2024-03-01T00:20:00")
    assert first.interval_rank == 1 and first.verdict == "out/diagnosis/verdict.json"
    assert first.at.tzinfo is not None and abs(datetime.now(UTC) - first.at) < timedelta(minutes=1)
    assert first.describe() == f"false alarm (alice, {first.at:%Y-%m-%d %H:%M} UTC)"


def test_effective_keeps_the_latest_mark_per_interval(series_file, tmp_path) -> None:
    store = FeedbackStore(tmp_path / "store")
    series = load_series(series_file)
    wrong = make_mark(series_file, series, 10, 20, "false", "alice")
    other = make_mark(series_file, series, 40, 45, "real", "alice")
    changed = make_mark(series_file, series, 10, 20, "real", "alice", note="it was a real outage after all")
    for mark in (wrong, other, changed):
        store.add(mark)
    assert store.effective(series_file) == [changed, other]  # ordered by rows; the earlier 10:20 mark is replaced
    assert store.marks(series_file) == [wrong, other, changed]  # nothing is ever rewritten
    assert marks_digest(store.effective(series_file)) != marks_digest([wrong, other])


def test_a_corrupt_line_names_the_file_and_line(series_file, tmp_path) -> None:
    store = FeedbackStore(tmp_path / "store")
    mark = make_mark(series_file, load_series(series_file), 1, 2, "real", "alice")
    file = store.add(mark)
    with file.open("a", encoding="utf-8") as fh:
        fh.write("\n")  # blank lines are fine
        fh.write(json.dumps({**mark.model_dump(mode="json"), "label": "maybe"}) + "\n")
    with pytest.raises(DataError, match=rf"feedback file {file}, line 3: not a valid mark \(label: "):
        store.marks(series_file)
    file.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1"):
        store.effective(series_file)


def test_a_torn_last_line_does_not_swallow_the_next_mark(series_file, tmp_path) -> None:
    store = FeedbackStore(tmp_path / "store")
    mark = make_mark(series_file, load_series(series_file), 1, 2, "real", "alice")
    file = store.file_for(series_file)
    file.parent.mkdir(parents=True)
    file.write_text('{"series": "half a line', encoding="utf-8")  # a crash mid-write
    store.add(mark)
    lines = file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and FeedbackMark.model_validate_json(lines[1]) == mark
    with pytest.raises(DataError, match="line 1"):
        store.marks(series_file)


def test_default_store_is_under_the_output_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ANOMALYGRAPH_OUTPUT_DIR", str(tmp_path / "runs"))
    assert default_store().root == tmp_path / "runs" / "feedback"


def test_mark_fields_are_validated() -> None:
    base = {"series": "s", "path": "/x.csv", "sha256": "0" * 64, "start": 5, "end": 9, "label": "real", "user": "alice",
            "at": "2026-12-02T10:14:00+02:00"}
    mark = FeedbackMark.model_validate(base)
    assert mark.at == datetime(2026, 12, 2, 8, 14, tzinfo=UTC) and mark.at.utcoffset() == timedelta(0)
    assert FeedbackMark.model_validate({**base, "at": "2026-12-02T10:14:00"}).at.tzinfo == UTC  # naive is UTC
    for bad in ({"start": 9, "end": 5}, {"start": -1}, {"label": "maybe"}, {"user": ""}, {"user": "x" * 101},
                {"note": "n" * 501}, {"sha256": "abc"}, {"interval_rank": 0}, {"extra": 1}):
        with pytest.raises(ValidationError):
            FeedbackMark.model_validate({**base, **bad})
    assert mark.at.astimezone(timezone(timedelta(hours=2))).hour == 10


def test_make_mark_refuses_bad_input(series_file, tmp_path) -> None:
    series = load_series(series_file)
    with pytest.raises(ConfigError, match="label must be one of real, false"):
        make_mark(series_file, series, 1, 2, "maybe", "alice")
    with pytest.raises(ConfigError, match="user"):
        make_mark(series_file, series, 1, 2, "real", "")
    with pytest.raises(DataError, match="outside series"):
        make_mark(series_file, series, 50, 60, "real", "alice")
    with pytest.raises(DataError, match="no such file"):
        make_mark(tmp_path / "gone.csv", series, 1, 2, "real", "alice")


def test_parse_interval_as_rows() -> None:
    s = untimed(50)
    assert parse_interval("3:7", s) == (3, 7)
    assert parse_interval(" 5 : 5 ", s) == (5, 5)
    assert parse_interval("0:49", s) == (0, 49)


def test_parse_interval_as_timestamps_maps_to_the_rows_inside() -> None:
    s = timed(60)
    assert parse_interval("2024-03-01T00:10..2024-03-01T00:20", s) == (10, 20)
    assert parse_interval("2024-03-01 00:10:30 .. 2024-03-01 00:12:30", s) == (11, 12)  # first and last row inside
    assert parse_interval("2024-02-28..2024-03-01T00:02", s) == (0, 2)  # a start before the series is clipped
    aware = TimeSeries(values=np.arange(60.0), timestamps=pd.date_range(START, periods=60, freq="1min", tz="UTC"))
    assert parse_interval("2024-03-01T01:10+01:00..2024-03-01T00:20", aware) == (10, 20)


@pytest.mark.parametrize(("text", "series", "message"), [
    ("7:3", untimed(), "end row is before the start row"),
    ("0:50", untimed(), r"outside series 'rows' \(rows 0..49\)"),
    ("-1:3", untimed(), "rows are counted from 0"),
    ("2024-03-01T00:10..2024-03-01T00:20", untimed(), "has no timestamps; give rows as START:END"),
    ("ten to twenty", untimed(), "expected START:END row indices"),
    ("3-7", untimed(), "expected START:END row indices"),
    ("2024-03-01T00:10", timed(), "expected START:END row indices"),
    ("2024-03-01T00:20..2024-03-01T00:10", timed(), "end time is before the start time"),
    ("2025-01-01..2025-01-02", timed(), "no row of series 'timed' lies inside it"),
    ("yesterday..today-ish", timed(), "is not a timestamp"),
    ("2024-03-01..", timed(), "give two timestamps separated by '..'"),
    ("a..b..c", timed(), "give two timestamps"),
])
def test_parse_interval_errors_say_what_is_wrong(text, series, message) -> None:
    with pytest.raises(DataError, match=message):
        parse_interval(text, series)


def test_masks_mark_each_kind_and_follow_timestamps_when_rows_moved(series_file) -> None:
    series = load_series(series_file)
    real = make_mark(series_file, series, 10, 14, "real", "alice")
    false = make_mark(series_file, series, 30, 31, "false", "alice")
    beyond = real.model_copy(update={"start": 70, "end": 80, "start_time": None, "end_time": None})
    real_mask, false_mask = feedback_masks([real, false, beyond], 60)
    assert real_mask.dtype == bool and np.flatnonzero(real_mask).tolist() == list(range(10, 15))
    assert np.flatnonzero(false_mask).tolist() == [30, 31]
    # five rows prepended since the marks were made: by time, the marks still cover the same minutes
    longer = TimeSeries(values=np.arange(65.0), timestamps=pd.date_range(START - pd.Timedelta("5min"), periods=65, freq="1min"))
    assert mark_rows(real, longer) == (15, 19)
    real_mask, false_mask = feedback_masks([real, false], longer.length, series=longer)
    assert np.flatnonzero(real_mask).tolist() == list(range(15, 20)) and np.flatnonzero(false_mask).tolist() == [35, 36]
    # without timestamps, rows are the marks' own indices, clipped to the series
    assert mark_rows(real.model_copy(update={"end": 99}), untimed(12)) == (10, 11)
    assert mark_rows(beyond, untimed(12)) is None
