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
