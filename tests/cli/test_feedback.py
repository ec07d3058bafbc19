"""``anomalygraph feedback``: marks stored and listed through the CLI; bad input is exit 2 in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalygraph.cli.main import main
from anomalygraph.core.thresholds import Threshold
from anomalygraph.data.feedback import default_store
from anomalygraph.graphs.diagnosis.state import (
    DiagnosisVerdict,
    PlanRecord,
    RankedFinding,
    SelectionRecord,
)


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ANOMALYGRAPH_OUTPUT_DIR", str(tmp_path / "out"))
    return tmp_path / "out" / "feedback"


@pytest.fixture
def series_file(tmp_path: Path) -> Path:
    path = tmp_path / "server.csv"
    pd.DataFrame({"timestamp": pd.date_range("2024-03-01", periods=100, freq="1min"), "cpu": np.arange(100.0)}).to_csv(path, index=False)
    return path


def verdict_file(tmp_path: Path, intervals: list[tuple[int, int]]) -> Path:
    """A verdict.json whose ranked intervals are ``intervals``, in rank order."""
    findings = [RankedFinding(start=a, end=b, peak=a, peak_score=1.0, detectors=[], agreement=0.0, rank=k, robust_z=1.0, passes=True)
                for k, (a, b) in enumerate(intervals, start=1)]
    selection = SelectionRecord(strategy="best_on_tune", chosen=["x"], weights={"x": 1.0}, reason="test",
                                threshold=Threshold(value=1.0, method="percentile"), roles="1 value", candidates=["x"],
                                detectors=["x"], intervals=findings)
    verdict = DiagnosisVerdict(series="server", source="server.csv", length=100, n_channels=1,
                               plan=PlanRecord(detectors=["x"], reason="test", source="user"), detectors=[],
                               selection=selection, explanations=[], report_path="report.md", plots=[], model=None,
                               prompt_versions=[], notes=[])
    folder = tmp_path / "diagnosis"
    folder.mkdir()
    (folder / "verdict.json").write_text(verdict.model_dump_json())
    return folder


def test_a_mark_round_trips_through_the_command(series_file, store_dir, tmp_path, capsys) -> None:
    run = verdict_file(tmp_path, [(5, 6), (10, 20)])
    code = main(["feedback", str(series_file), "--interval", "10:20", "--label", "false", "--user", "alice",
                 "--verdict", str(run), "--note", "planned load test"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "stored: false alarm on server rows 10..20 (2024-03-01T00:10:00 .. 2024-03-01T00:20:00) by alice" in printed.out
    assert f"interval #2 of {run.resolve() / 'verdict.json'}" in printed.out
    [mark] = default_store().marks(series_file)
    assert (mark.start, mark.end, mark.label, mark.user, mark.interval_rank) == (10, 20, "false", "alice", 2)
    assert mark.note == "planned load test" and mark.verdict == str(run.resolve() / "verdict.json")
    assert any(store_dir.iterdir()) and str(store_dir) in printed.out

    # by timestamps, and the user changes their mind about the same rows
    code = main(["feedback", str(series_file), "--interval", "2024-03-01T00:10..2024-03-01T00:20", "--label", "real", "--user", "alice"])
    assert code == 0 and "stored: real anomaly on server rows 10..20" in capsys.readouterr().out
    first, second = default_store().marks(series_file)
    assert first == mark and second.label == "real" and default_store().effective(series_file) == [second]

    assert main(["feedback", str(series_file), "--list"]) == 0
    listed = capsys.readouterr().out
    assert "2 mark(s) on" in listed and "| # | rows | start | end | label | by |" in listed
    rows = [line for line in listed.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 2
    assert "| 10:20 | 2024-03-01T00:10:00 | 2024-03-01T00:20:00 | false alarm | alice |" in rows[0]
    assert rows[0].endswith("| 2 | planned load test | no (a later mark on these rows) |")
    assert "| real anomaly | alice |" in rows[1] and rows[1].endswith("| yes |")


def test_the_user_defaults_to_the_login_name(series_file, store_dir, monkeypatch, capsys) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "carol")
    assert main(["feedback", str(series_file), "--interval", "1:2", "--label", "real"]) == 0
    assert "by carol" in capsys.readouterr().out
    assert [m.user for m in default_store().marks(series_file)] == ["carol"]


def test_an_empty_list_says_so(series_file, store_dir, capsys) -> None:
    assert main(["feedback", str(series_file), "--list"]) == 0
    assert f"no feedback on {series_file} yet" in capsys.readouterr().out


def test_bad_input_is_one_line_exit_2_and_stores_nothing(series_file, store_dir, tmp_path, capsys) -> None:
    path = str(series_file)
    cases = [
        (["feedback", path, "--interval", "1:2", "--label", "maybe"], "--label must be real or false, got 'maybe'"),
        (["feedback", path, "--interval", "20:10", "--label", "real"], "end row is before the start row"),
        (["feedback", path, "--interval", "1:100", "--label", "real"], "outside series 'server' (rows 0..99)"),
        (["feedback", path, "--interval", "soon", "--label", "real"], "expected START:END row indices"),
        (["feedback", path, "--interval", "2030-01-01..2030-01-02", "--label", "real"], "no row of series 'server' lies inside it"),
        (["feedback", str(tmp_path / "missing.csv"), "--interval", "1:2", "--label", "real"], "missing.csv"),
        (["feedback", str(tmp_path / "missing.csv"), "--list"], "missing.csv: no such file"),
        (["feedback", path, "--label", "real"], "give --interval START:END (or T1..T2) and --label real|false, or --list"),
        (["feedback", path, "--list", "--label", "real"], "--list shows the marks"),
        (["feedback", path, "--interval", "1:2", "--label", "real", "--verdict", str(tmp_path / "nope")], "no such verdict file"),
        (["feedback", path, "--interval", "1:2", "--label", "real", "--user", "u" * 101], "invalid feedback mark: user"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in " ".join(err.split()) and "Traceback" not in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
    assert default_store().marks(series_file) == [] and not store_dir.exists()


def test_help_explains_with_an_example(capsys) -> None:
    assert main(["feedback", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Example: anomalygraph feedback" in text and "--label false" in text and "--list" in text
