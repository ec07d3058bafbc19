"""The F2A eval's protocol: labels shifted by the horizon, and nothing the predictor scores uses row t."""

from __future__ import annotations

import numpy as np

from anomalygraph.evals.f2a import VARIANTS, next_h


def test_next_h_marks_the_rows_whose_next_h_steps_hold_an_anomaly():
    labels = np.zeros(10, np.int8)
    labels[6] = 1
    # rows 3..6 have row 6 within [t, t + 4)
    assert next_h(labels, 4).tolist() == [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]


def test_each_variant_changes_the_settings_it_names_only():
    assert VARIANTS["f2a k=0 (no RAG)"] == {"rag_k": 0}
    assert VARIANTS["f2a focal only, k=4"] == {"rag_k": 4, "loss": "focal"}
    assert VARIANTS["f2a wMAE only, k=4"] == {"rag_k": 4, "loss": "wmae"}
    assert VARIANTS["ttm_error (zero-shot)"]["fine_tune"] is False


def test_a_failed_method_survives_the_json_and_leaves_its_series_out_of_the_means():
    from datetime import UTC, datetime

    from anomalygraph.evals.f2a import F2AEval, MethodResult, SeriesF2A, markdown

    def ok(v: float) -> MethodResult:
        return MethodResult(prediction_vus_pr=v, detection_vus_pr=v, fit_seconds=1.0, score_seconds=1.0)

    failed = MethodResult(prediction_vus_pr=None, detection_vus_pr=None, fit_seconds=0.0, score_seconds=0.0,
                          note="failed: too short")
    rows = [SeriesF2A(dataset="d", series="a", fold="validate", status="ok", methods={"f2a": ok(0.2), "iforest": ok(0.4)}),
            SeriesF2A(dataset="d", series="b", fold="validate", status="ok", methods={"f2a": failed, "iforest": ok(0.9)})]
    report = F2AEval.model_validate_json(F2AEval(created_at=datetime.now(UTC), protocol="paper", horizon=16, weights="w", rows=rows).model_dump_json())
    text = markdown(report)
    assert "left out: d/b (failed: too short)" in text
    assert "| iforest | 1 | 0.400 |" in text  # b's 0.9 is not in the mean: both rows are on the same series
