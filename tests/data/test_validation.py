"""Every bad input gets one message naming the problem; from the CLI, exit 2 and one line."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from anomalygraph.cli.main import main
from anomalygraph.core.errors import DataError, DataWarning
from anomalygraph.data import TimeSeries, load_series

from .test_loaders import write_smd

GOOD_ROWS = "".join(f"2024-01-01 00:{m:02d}:00,{m}.5,{m % 3}\n" for m in range(60))

# name: (file text, options, fragments the message must contain)
BAD_CSV = {
    "non_numeric": ("timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,abc\n", {}, ["column 'value'", "'abc'", "line 3"]),
    "all_nan": ("timestamp,value,other\n2024-01-01 00:00:00,,1\n2024-01-01 00:01:00,,2\n", {}, ["column 'value'", "no finite value"]),
    "nan_policy_error": ("timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,nan\n2024-01-01 00:02:00,3\n", {"nan": "error"}, ["1 missing", "column 'value'", "line 3", "--nan"]),
    "unsorted": ("timestamp,value\n2024-01-01 00:01:00,1\n2024-01-01 00:00:00,2\n", {}, ["not sorted", "line 3"]),
    "duplicate": ("timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:00:00,2\n", {}, ["duplicate timestamp", "line 2", "line 3"]),
    "bad_timestamp": ("timestamp,value\n2024-01-01 00:00:00,1\nyesterday-ish,2\n", {}, ["column 'timestamp'", "not a timestamp", "line 3"]),
    "labels_not_binary": ("timestamp,value,label\n2024-01-01 00:00:00,1,0\n2024-01-01 00:01:00,2,7\n", {}, ["label column 'label'", "0 or 1", "7", "line 3"]),
    "header_only": ("timestamp,value\n", {}, ["no data rows"]),
    "unknown_column": ("timestamp,value\n2024-01-01 00:00:00,1\n", {"value_cols": ["cpu"]}, ["no value column", "cpu"]),
}


def _write(tmp_path, text, name="bad.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", BAD_CSV)
def test_bad_csv_message_names_problem(tmp_path, case):
    text, options, fragments = BAD_CSV[case]
    path = _write(tmp_path, text)
    with pytest.raises(DataError) as info:
        load_series(path, **options)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def _cli_args(options):
    args = []
    if "nan" in options:
        args += ["--nan", options["nan"]]
    if "value_cols" in options:
        args += ["--columns", ",".join(options["value_cols"])]
    return args


@pytest.mark.parametrize("case", BAD_CSV)
def test_bad_csv_cli_exits_2_with_one_line(tmp_path, capsys, case):
    text, options, fragments = BAD_CSV[case]
    path = _write(tmp_path, text)
    code = main(["data", "inspect", str(path), *_cli_args(options)])
    captured = capsys.readouterr()
    assert code == 2
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error:") and fragments[0] in lines[0]
    assert "Traceback" not in captured.err + captured.out


def test_missing_and_empty_files(tmp_path, capsys):
    with pytest.raises(DataError, match="file not found"):
        load_series(tmp_path / "nope.csv")
    empty = _write(tmp_path, "", "empty.csv")
    with pytest.raises(DataError, match="file is empty"):
        load_series(empty)
    for path, fragment in ((tmp_path / "nope.csv", "file not found"), (empty, "file is empty")):
        assert main(["score", str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment in err[0]


def test_nan_interpolate_warns_with_count_and_repairs(tmp_path):
    path = _write(tmp_path, "timestamp,value\n" + "".join(
        f"2024-01-01 00:{m:02d}:00,{'' if m in (3, 4) else 'inf' if m == 7 else m}\n" for m in range(10)))
    with pytest.warns(DataWarning, match=r"3 missing or infinite values \(1 infinite\)"):
        series = load_series(path)
    np.testing.assert_allclose(series.values[:, 0], np.arange(10))
    assert "interpolated" in series.meta["repairs"][0]
    with pytest.warns(DataWarning, match="forward-filled"):
        ff = load_series(path, nan="ffill")
    np.testing.assert_allclose(ff.values[[3, 4, 7], 0], [2, 2, 6])


def test_constant_channel_and_irregular_sampling_warn(tmp_path):
    rows = [f"2024-01-01 00:{m:02d}:00,{m},5\n" for m in range(0, 30) if m != 10]
    path = _write(tmp_path, "timestamp,value,flat\n" + "".join(rows))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        series = load_series(path)
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert any("channels are constant" in m and "'flat'" in m for m in messages)
    assert any("irregular sampling: 1 of 28 steps" in m and "line 12" in m for m in messages)
    assert series.length == 29  # nothing dropped


def test_series_shorter_than_window(tmp_path, capsys):
    path = _write(tmp_path, "timestamp,value\n" + GOOD_ROWS.replace(",0\n", "\n").replace(",1\n", "\n").replace(",2\n", "\n"))
    assert main(["score", str(path), "-d", "iforest", "--set", "window=500", "--out", str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "60 timestamps" in err[0] and "500" in err[0]


def test_label_length_mismatch(tmp_path, capsys):
    with pytest.raises(DataError, match="3 labels for 4 values"):
        TimeSeries(values=np.zeros(4), labels=np.zeros(3))
    write_smd(tmp_path)
    (tmp_path / "test_label" / "machine-1-1.txt").write_text("0\n" * 39)
    assert main(["data", "inspect", str(tmp_path / "test" / "machine-1-1.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "39 labels for 40 test rows" in err[0]


def test_smd_labels_not_binary(tmp_path):
    write_smd(tmp_path, bad_label=True)
    with pytest.raises(DataError, match=r"labels must be 0 or 1, got 2 at line 4"):
        load_series(tmp_path / "test" / "machine-1-1.txt")


def test_bad_config_value(tmp_path, capsys):
    path = _write(tmp_path, "timestamp,value\n" + "".join(f"2024-01-01 00:{m:02d}:00,{m}\n" for m in range(60)))
    assert main(["score", str(path), "-d", "iforest", "--set", "n_estimators=-3"]) == 2
    assert "n_estimators" in capsys.readouterr().err
    assert main(["score", str(path), "-d", "no_such_detector"]) == 2
    assert "unknown detector 'no_such_detector'" in capsys.readouterr().err


def test_console_script_has_no_traceback(tmp_path):
    """The installed entry point itself, in a fresh process, exits 2 with one line."""
    exe = [sys.executable, "-c", "import sys; from anomalygraph.cli.main import main; sys.exit(main())"]
    proc = subprocess.run([*exe, "score", str(tmp_path / "missing.csv")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "file not found" in proc.stderr
    assert "Traceback" not in proc.stderr
