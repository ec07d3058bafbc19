"""The selection eval on a real series: numbers recomputed from the cached tracks, the cache reused, tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anomalygraph.data.loaders import load_series
from anomalygraph.evals import selection as ev
from anomalygraph.evals.folds import fold_series
from anomalygraph.metrics import vus_pr
from anomalygraph.metrics.evaluate import vus_window


@pytest.mark.slow
def test_rows_match_metrics_recomputed_from_the_cache(shared_data, tmp_path):
    [row_in] = [r for r in fold_series(shared_data, ("validate",)) if r[1].stem == "exchange-2_cpm_results"]
    report = ev.run_selection_eval([row_in], tmp_path, detectors=["iforest", "robust_z"], strategies=["fusion", "surrogate"])
    [row] = report.rows
    assert row.status == "ok" and row.fold == "validate"
    series = load_series(row_in[1])
    labels, window = series.labels, vus_window(series)
    cached = np.load(tmp_path / "cache" / "nab__exchange-2_cpm_results" / "iforest.npz")
    assert row.candidates["iforest"].vus_pr == pytest.approx(vus_pr(labels, cached["s::iforest"].astype(np.float64), window), abs=1e-6)
    assert row.oracle == max(row.candidates, key=lambda n: row.candidates[n].vus_pr)
    chosen = row.strategies["surrogate"].chosen[0]
    assert row.strategies["surrogate"].scores.vus_pr == pytest.approx(row.candidates[chosen].vus_pr, abs=1e-9)
    # a second run reuses the cache: same numbers
    again = ev.run_selection_eval([row_in], tmp_path, detectors=["iforest", "robust_z"], strategies=["fusion", "surrogate"])
    assert again.rows[0].candidates == row.candidates
    text = (tmp_path / "diagnosis_eval.md").read_text()
    assert "## validate (headline)" in text and ev.ORACLE in text
    saved = json.loads((tmp_path / "diagnosis_eval.json").read_text())
    assert saved["rows"][0]["strategies"]["fusion"]["chosen"] == row.strategies["fusion"].chosen


def test_summary_and_verdict_use_the_best_fixed_in_hindsight():
    def s(v):
        return ev.Scores(vus_pr=v, auc_pr=v, range_f1=v, event_f1=v)

    rows = [
        ev.SeriesResult(dataset="d", series="a", fold="validate", status="ok", candidates={"x": s(0.4), "y": s(0.6)},
                        strategies={"surrogate": ev.StrategyResult(chosen=["y"], scores=s(0.6))}),
        ev.SeriesResult(dataset="d", series="b", fold="validate", status="ok", candidates={"x": s(0.5), "y": s(0.1)},
                        strategies={"surrogate": ev.StrategyResult(chosen=["x"], scores=s(0.5))}),
        ev.SeriesResult(dataset="d", series="c", fold="validate", status="skipped: no labelled anomaly in the evaluated rows"),
    ]
    table = ev.summary(rows)
    assert table["fixed:x"]["vus_pr"] == pytest.approx(0.45) and table["fixed:y"]["vus_pr"] == pytest.approx(0.35)
    assert table[ev.ORACLE]["vus_pr"] == pytest.approx(0.55) and table["surrogate"]["vus_pr"] == pytest.approx(0.55)
    assert table["surrogate"]["median_vus_pr"] == pytest.approx(0.55)
    text = ev.verdict(table, "surrogate")
    assert "`x` 0.450 (+0.100)" in text and "closes 100% of the gap" in text and "Goal met" in text
