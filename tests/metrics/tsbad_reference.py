"""Runs TSB-AD's reference metrics on a batch of cases; executed by the reference interpreter.

Usage: python tsbad_reference.py JOBS.json ARRAYS.npz OUT.json

Lives apart from the tests because it runs in the isolated TSB-AD environment (numpy<2), never
imported by the project. Each job names its arrays and what to compute; each result is a dict of
numbers, or {"error": "..."} when the reference raised.
"""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")

from TSB_AD.evaluation.affiliation.generics import convert_vector_to_events  # noqa: E402
from TSB_AD.evaluation.affiliation.metrics import pr_from_events  # noqa: E402
from TSB_AD.evaluation.basic_metrics import basic_metricor  # noqa: E402
from TSB_AD.evaluation.metrics import get_metrics  # noqa: E402
from TSB_AD.utils.slidingWindows import find_length_rank  # noqa: E402


def _vus(labels, scores, window):
    # generate_curve(version="opt") is a thin wrapper of this call; one call gives both.
    tpr, fpr, prec, _, vus_roc, vus_pr = basic_metricor().RangeAUC_volume_opt(labels, scores, window, 250)
    # The surface's last slice, with the reference's own area formulas: Range-AUC at `window`.
    t, f, p = tpr[window], fpr[window], prec[window]
    range_roc = float(np.dot(f[1:] - f[:-1], (t[1:] + t[:-1]) / 2))
    range_pr = float(np.dot(t[1:-1] - t[:-2], p[1:]))
    return {"vus_roc": vus_roc, "vus_pr": vus_pr, "range_auc_roc": range_roc, "range_auc_pr": range_pr}


def _grid(labels, scores):
    g = basic_metricor()
    return {
        "auc_roc": g.metric_ROC(labels, scores),
        "auc_pr": g.metric_PR(labels, scores),
        "f1_best": g.metric_PointF1(labels, scores),
        "f1_point_adjusted": g.metric_PointF1PA(labels, scores),
        "event_f1_best": g.metric_EventF1PA(labels, scores),
        "range_f1_best": g.metric_RF1(labels, scores),
        "affiliation_f1_best": g.metric_Affiliation(labels, scores),
    }


def _at(labels, scores, threshold):
    from sklearn.metrics import precision_recall_fscore_support

    g = basic_metricor()
    pred = (scores > threshold).astype(int)
    p, r, f, _ = precision_recall_fscore_support(labels, pred, zero_division=0)
    out = {"precision": p[1], "recall": r[1], "f1": f[1]}
    out["f1_point_adjusted"] = g.metric_PointF1PA(labels, scores, preds=pred)
    out["event_f1"] = g.metric_EventF1PA(labels, scores, preds=pred)
    out["range_recall"] = g.range_recall_new(labels, pred, 0.2)[0]
    out["range_precision"] = g.range_recall_new(pred, labels, 0)[0]
    out["range_f1"] = g.metric_RF1(labels, scores, preds=pred)
    if pred.any():
        aff = pr_from_events(convert_vector_to_events(pred), convert_vector_to_events(labels), (0, len(pred)))
        out["affiliation_precision"] = aff["Affiliation_Precision"]
        out["affiliation_recall"] = aff["Affiliation_Recall"]
    out["affiliation_f1"] = g.metric_Affiliation(labels, scores, preds=pred)
    return out


def run(job, arrays):
    labels = arrays[job["labels"]].astype(int) if "labels" in job else None
    scores = arrays[job["scores"]].astype(np.float64) if "scores" in job else None
    kind = job["kind"]
    if kind == "period":
        window = int(find_length_rank(arrays[job["series"]].reshape(-1, 1), rank=1))
        out = {"window": window}
        if labels is not None:
            out.update(_vus(labels, scores, window))
        return out
    if kind == "vus":
        return _vus(labels, scores, int(job["window"]))
    if kind == "grid":
        return _grid(labels, scores)
    if kind == "at":
        return _at(labels, scores, float(job["threshold"]))
    if kind == "get_metrics":
        return get_metrics(scores, labels, slidingWindow=int(job["window"]), version="opt", thre=250)
    raise ValueError(f"unknown job kind {kind!r}")


def main():
    jobs_path, arrays_path, out_path = sys.argv[1:4]
    with open(jobs_path) as f:
        jobs = json.load(f)
    arrays = np.load(arrays_path)
    results = {}
    for job in jobs:
        try:
            values = run(job, arrays)
            results[job["id"]] = {k: float(v) for k, v in values.items()}
        except Exception as exc:  # the caller checks that we refuse the same inputs
            results[job["id"]] = {"error": f"{type(exc).__name__}: {exc}"}
    with open(out_path, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
