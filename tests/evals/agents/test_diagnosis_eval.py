"""The diagnosis-graph eval on real data: rows recomputed independently, oracle choice, tables, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from anomalygraph.cli import eval as eval_cli
from anomalygraph.core.errors import ConfigError
from anomalygraph.data.loaders import load_series
from anomalygraph.detectors.candidates import parse_candidate
from anomalygraph.detectors.selection import BEST_ON_TUNE
from anomalygraph.evals.agents import diagnosis as ev
from anomalygraph.graphs.diagnosis import DiagnosisContext
from anomalygraph.llm.scripted import ScriptedChatModel, tool_call
from anomalygraph.metrics import auc_pr, vus_pr
from anomalygraph.metrics.evaluate import vus_window


def test_ci_subset_and_named_series_are_found_and_typos_named(shared_data):
    assert [f"{ds}/{p.stem}" for ds, p in ev.select_series(shared_data, "ci")] == list(ev.CI_SERIES)
    pool = ev.select_series(shared_data, "all")
    # "all" is every NAB series and every SMAP/MSL channel on disk, however many the folder holds.
    nab = sorted((shared_data / "NAB" / "data").glob("*/*.csv"))
    channels = sorted((shared_data / "SMAP_MSL" / "test").glob("*.npy"))
    assert nab and channels
    assert pool == [("nab", p) for p in nab] + [("smap_msl", p) for p in channels]
    with pytest.raises(ConfigError, match=r"no series 'nab/nyc_taxis'.*nab/nyc_taxi"):
        ev.select_series(shared_data, "all", ["nab/nyc_taxis"])
    with pytest.raises(ConfigError, match="subset must be ci or all"):
        ev.select_series(shared_data, "most")


@pytest.mark.slow
def test_rows_match_metrics_recomputed_from_the_saved_scores(shared_data, tmp_path):
    """MSL C-1 with the rule-based plan: every number in the row is recomputed here from the .npy files."""
    [(dataset, path)] = ev.select_series(shared_data, "all", ["smap_msl/C-1"])
    context = DiagnosisContext(model=None, data_roots=[shared_data])
    report = ev.run_diagnosis_eval([(dataset, path)], tmp_path, context, model="none", subset="selected")
    [row] = report.rows
    assert row.status == "ok" and row.plan_source == "rules" and set(row.singles) == set(row.detectors)
    series = load_series(path)
    test = slice(series.train_end, None)
    labels, window = series.labels[test], vus_window(series)
    run_dir = tmp_path / "runs" / "smap_msl__C-1"
    fused = np.load(run_dir / "scores" / "selected.npy")[test]
    assert row.fused.vus_pr == pytest.approx(vus_pr(labels, fused, sliding_window=window), abs=1e-9)
    assert row.fused.auc_pr == pytest.approx(auc_pr(labels, fused), abs=1e-9)
    for name, scores in row.singles.items():
        own = np.load(run_dir / "scores" / f"{name}.npy")[test]
        assert scores.vus_pr == pytest.approx(vus_pr(labels, own, sliding_window=window), abs=1e-9)
    assert row.best_single == max(row.singles, key=lambda d: row.singles[d].vus_pr)
    table = (tmp_path / "diagnosis_eval.md").read_text()
    assert f"| smap_msl/C-1 | rules | {', '.join(row.detectors)} | {row.fused.vus_pr:.3f} | {row.best_single} |" in table
    means = ev.means(report.rows)
    assert means["fused"]["vus_pr"] == pytest.approx(row.fused.vus_pr)
    assert means["best single (oracle)"]["vus_pr"] == pytest.approx(row.best.vus_pr)
    saved = json.loads((tmp_path / "diagnosis_eval.json").read_text())
    assert saved["rows"][0]["best_single"] == row.best_single


def test_means_use_the_oracle_per_series_and_each_detector_run_everywhere():
    def s(v: float) -> ev.Scores:
        return ev.Scores(vus_pr=v, auc_pr=v, range_f1=v, event_f1=v)

    rows = [
        ev.SeriesRow(dataset="d", series="a", status="ok", fused=s(0.5), singles={"x": s(0.4), "y": s(0.6)}, best_single="y"),
        ev.SeriesRow(dataset="d", series="b", status="ok", fused=s(0.3), singles={"x": s(0.2), "z": s(0.1)}, best_single="x"),
        ev.SeriesRow(dataset="d", series="c", status="skipped: no labelled anomaly in the evaluated rows"),
    ]
    means = ev.means(rows)
    assert means["fused"]["vus_pr"] == pytest.approx(0.4)
    assert means["best single (oracle)"]["vus_pr"] == pytest.approx(0.4)
    assert set(means) == {"fused", "best single (oracle)", "x"}  # y and z did not run on both series
    report = ev.DiagnosisEval(model="m", subset="all", created_at="2026-01-01T00:00:00Z", rows=rows)
    table = ev.markdown_table(report)
    assert "Fused VUS-PR at least the oracle best single's on 1 of 2 series." in table
    assert "| d/c | skipped: no labelled anomaly" in table


@pytest.mark.slow
def test_cli_runs_the_graph_with_the_configured_model(shared_data, tmp_path, monkeypatch):
    from anomalygraph.llm import factory

    plan = tool_call("DetectorPlan", {"detectors": ["iforest", "robust_z"], "reason": "cheap and strong"})
    model = ScriptedChatModel(script=[plan, *["A short explanation of the interval."] * 3])
    monkeypatch.setattr(factory, "get_chat_model", lambda settings=None: model)
    app = typer.Typer()
    app.add_typer(eval_cli.app, name="eval")
    result = CliRunner().invoke(app, ["eval", "diagnosis-graph", "--data", str(shared_data), "--out", str(tmp_path), "-s", "smap_msl/C-1"])
    assert result.exit_code == 0, result.output
    [row] = json.loads((tmp_path / "diagnosis_eval.json").read_text())["rows"]
    default = parse_candidate(BEST_ON_TUNE)[0]  # the default selection's detector is always added
    assert row["plan_source"] == "llm" and row["detectors"] == list(dict.fromkeys(["iforest", "robust_z", default]))
    assert set(row["explained_by"]) == {"llm"}
    assert "best single" in result.output


@pytest.mark.llm
@pytest.mark.slow
def test_ci_subset_with_the_embedded_model(shared_data, tmp_path):
    """Integration: the real embedded model on the CI subset (about a minute on 2 cores)."""
    from tests.llm.conftest import embedded_skip_reason

    if reason := embedded_skip_reason():
        pytest.skip(reason)
    app = typer.Typer()
    app.add_typer(eval_cli.app, name="eval")
    result = CliRunner().invoke(app, ["eval", "diagnosis-graph", "--subset", "ci", "--data", str(shared_data), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "diagnosis_eval.json").read_text())["rows"]
    assert [f"{r['dataset']}/{r['series']}" for r in rows] == list(ev.CI_SERIES)
    for row in rows:
        assert row["status"] == "ok" and row["plan_source"] in ("llm", "rules")
        assert 0 <= row["fused"]["vus_pr"] <= 1 and row["best_single"] in row["detectors"]
    print((tmp_path / "diagnosis_eval.md").read_text())
