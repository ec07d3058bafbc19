"""The command line end to end on real files from ../shared/data."""

from __future__ import annotations

import pandas as pd
import pytest

from anomalygraph.cli.main import main

NAB_FILE = "NAB/data/realAWSCloudwatch/ec2_network_in_257a54.csv"
MSL_FILE = "SMAP_MSL/test/C-1.npy"


@pytest.mark.parametrize("detector", ["iforest", "matrix_profile"])
@pytest.mark.parametrize(("rel", "rows", "channels_in_file"), [(MSL_FILE, 2158 + 2264, 55), (NAB_FILE, 4032, 1)])
def test_score_writes_one_row_per_timestamp(shared_data, tmp_path, capsys, detector, rel, rows, channels_in_file):
    out_csv = tmp_path / "scores.csv"
    assert main(["score", "--detector", detector, str(shared_data / rel), "--out", str(out_csv)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote scores to {out_csv}" in printed
    frame = pd.read_csv(out_csv)
    assert len(frame) == rows
    assert frame[f"score_{detector}"].notna().all()
    assert set(frame[f"anomaly_{detector}"].unique()) <= {0, 1}
    assert "label" in frame.columns
    if rel == MSL_FILE:
        assert (frame["split"] == "train").sum() == 2158
        assert "training split" in printed
    else:
        assert "timestamp" in frame.columns and "no training split" in printed


def test_saved_model_scores_like_the_fitted_one(shared_data, tmp_path):
    path = str(shared_data / NAB_FILE)
    assert main(["score", "-d", "sub_pca", path, "--out", str(tmp_path / "a.csv"), "--save-model", str(tmp_path / "m")]) == 0
    assert main(["score", path, "--load-model", str(tmp_path / "m"), "--out", str(tmp_path / "b.csv")]) == 0
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_series_equal(a["score_sub_pca"], b["score_sub_pca"])


def test_inspect_reports_shape_split_and_labels(shared_data, capsys):
    assert main(["data", "inspect", str(shared_data / MSL_FILE)]) == 0
    printed = capsys.readouterr().out
    assert "4422 timestamps x 55 channels" in printed
    assert "rows 0..2157" in printed and "2 events" in printed


def test_detectors_lists_the_baselines(capsys):
    assert main(["detectors"]) == 0
    printed = capsys.readouterr().out
    for name in ("iforest", "matrix_profile", "sub_pca", "robust_z"):
        assert name in printed


def test_demo_writes_scores_report_and_plot(shared_data, tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", str(shared_data / "NAB/data/artificialWithAnomaly/art_daily_jumpsup.csv"), "--out", str(out)]) == 0
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == 4032 and {"score_iforest", "score_sub_pca", "score_matrix_profile", "score_robust_z"} <= set(scores.columns)
    report = (out / "report.md").read_text()
    assert "VUS-PR" in report and "optimistic" in report and "![detections](plot.png)" in report
    png = (out / "plot.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_help_has_examples(capsys):
    for args in (["score", "--help"], ["data", "inspect", "--help"], ["demo", "--help"]):
        assert main(args) == 0
        assert "Example: anomalygraph" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error_without_traceback(capsys):
    assert main(["nosuchcmd"]) == 2
    captured = capsys.readouterr()
    assert "No such command 'nosuchcmd'" in captured.err and "Traceback" not in captured.err
