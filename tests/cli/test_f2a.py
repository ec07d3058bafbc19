"""``anomalygraph f2a predict`` on a real NAB file: the tool's answer, its evidence and a plot."""

from __future__ import annotations

import pytest

pytest.importorskip("tsfm_public", reason="f2a predict needs the [f2a] extra")

from anomalygraph.cli.main import main
from anomalygraph.tools import ToolContext
from anomalygraph.tools.prediction import PredictArgs, predict_anomaly

JUMPSUP = "NAB/data/artificialWithAnomaly/art_daily_jumpsup.csv"


def test_the_command_prints_the_tools_answer_and_its_evidence(shared_data, tmp_path, capsys):
    assert main(["f2a", "predict", str(shared_data / JUMPSUP), "--at", "3000", "--horizon", "8", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    expected = predict_anomaly(ToolContext(data_roots=[shared_data], output_dir=tmp_path / "again"),
                               PredictArgs(path=JUMPSUP, at=3000, horizon=8))
    assert f"at most {expected.max_probability:.2f}" in printed and expected.neighbours[0].context_rows in printed
    assert "plot: " in printed and list(tmp_path.glob("*.png"))
    assert main(["f2a", "predict", str(shared_data / JUMPSUP), "--horizon", "99"]) == 2
    assert "at most 16 steps ahead" in capsys.readouterr().err
