"""F2A's ablations on held-out real series: retrieval k, the loss terms, the TTM baseline, detectors.

Protocol (the paper's *prediction* setting, on this project's data):

* series: the *validate* fold (:mod:`anomalygraph.evals.folds`), so nothing here was in the
  shipped weights' corpus; only the value channels (:func:`~anomalygraph.data.channels.scored_channels`).
  The *tune* fold is for choosing settings (the focal sensitivity grid runs there);
* fit rows and labels, by ``protocol``:

  - ``paper``: the training split (NAB, which has none: its probationary first 15 %) plus the
    first 30 % of the test split, with that 30 %'s **real labels**; every method is measured on
    the last 70 %, as the paper does on TSB-AD-M (fine-tuned F2A is supervised there; the
    detectors fit the same rows without labels; zero-shot variants see no label);
  - ``pseudo``: the training split only, and no real label at all: F2A fine-tunes on
    **pseudo-labels**, anomalies planted in the fit rows by the rule bank
    (:func:`~anomalygraph.rulebank.injection.inject`); measured on the whole test split;
* prediction VUS-PR: at each test row ``t`` the target is "an anomaly within ``[t, t + h)``"
  (labels shifted by the horizon, as the paper does). F2A's score is its highest predicted
  probability for those steps from the context before ``t``; a detector, which can only say
  how unusual the present is, is scored by its score at ``t - 1`` (nothing at or after ``t``);
* detection VUS-PR: each row's own score against its own label, for reference.

Every F2A variant changes one setting of the same detector (``VARIANTS``), so a row's
difference from the next is that setting alone.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.core.tables import md_row, table_lines
from anomalygraph.data.channels import scored_channels
from anomalygraph.data.loaders import load_series
from anomalygraph.data.series import TimeSeries
from anomalygraph.detectors import create_detector
from anomalygraph.detectors.f2a.training import residual_per_timestamp
from anomalygraph.evals.agents.tables import write_eval
from anomalygraph.evals.folds import Fold
from anomalygraph.metrics import vus_pr
from anomalygraph.metrics.evaluate import vus_window
from anomalygraph.rulebank.injection import inject

NAB_FIT_SHARE = 0.15
PSEUDO_EVENTS = 40
PAPER_FIT_SHARE = 0.3  # of the test split, labelled, in the paper protocol
Protocol = Literal["paper", "pseudo"]
PROTOCOLS: dict[str, str] = {
    "paper": "fit rows: the training split plus the first 30% of the test split, with that 30%'s real labels "
             "(fine-tuned F2A is supervised, as in the paper); measured on the last 70%",
    "pseudo": "fit rows: the training split, no real label: F2A fine-tunes on rule-bank pseudo-labels planted there; "
              "measured on the whole test split",
}

# name -> F2A settings that differ from the detector's defaults
VARIANTS: dict[str, dict[str, Any]] = {
    "ttm_error (zero-shot)": {"score": "forecast_error", "fine_tune": False, "rag_k": 0},
    "f2a zero-shot, k=4": {"fine_tune": False, "rag_k": 4},
    "f2a k=0 (no RAG)": {"rag_k": 0},
    "f2a k=1": {"rag_k": 1},
    "f2a k=4": {"rag_k": 4},
    "f2a k=16": {"rag_k": 16},
    "f2a focal only, k=4": {"rag_k": 4, "loss": "focal"},
    "f2a wMAE only, k=4": {"rag_k": 4, "loss": "wmae"},
    "f2a zero-shot, k=4, joint score": {"fine_tune": False, "rag_k": 4, "score": "joint"},
    "f2a k=4, joint score": {"rag_k": 4, "score": "joint"},
}
SENSITIVITY: dict[str, dict[str, Any]] = {
    f"f2a focal gamma={g:g} alpha={a:g}, k=4": {"rag_k": 4, "focal_gamma": g, "focal_alpha": a}
    for g in (1.0, 2.0, 3.0) for a in (0.25, 0.5, 0.75)
}
"""The focal loss's gamma x alpha grid (the paper's "next checks"); gamma 2, alpha 0.25 is the default."""
DETECTORS = ("iforest", "sub_pca", "anomaly_transformer")
ALL_VARIANTS = VARIANTS | SENSITIVITY
FAST = {"epochs": 5, "max_windows": 1500}
"""Fine-tuning budget per variant in this eval (CPU); the detector's own defaults are larger."""


class MethodResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prediction_vus_pr: float | None  # None: the method failed on the series (``note`` says why)
    detection_vus_pr: float | None
    fit_seconds: float
    score_seconds: float
    note: str = ""


class SeriesF2A(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str
    series: str
    fold: Fold
    status: str
    fit_rows: int = 0
    test_start: int = 0  # first measured row
    fit_events: int = 0  # anomalous events in the fit rows' labels (pseudo or real, by the protocol)
    methods: dict[str, MethodResult] = Field(default_factory=dict)


class F2AEval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    created_at: datetime
    protocol: Protocol
    horizon: int
    weights: str
    rows: list[SeriesF2A]


def fit_end(series: TimeSeries) -> int:
    return series.train_end or int(NAB_FIT_SHARE * series.length)


def next_h(labels: np.ndarray, h: int) -> np.ndarray:
    """``y[t] = 1`` when an anomaly falls in ``[t, t + h)``."""
    padded = np.concatenate([labels.astype(np.int8), np.zeros(h, np.int8)])
    return np.max(np.lib.stride_tricks.sliding_window_view(padded, h)[: len(labels)], axis=1)


def _measure(labels: np.ndarray, detection: np.ndarray, prediction: np.ndarray, start: int, h: int, window: int) -> tuple[float, float]:
    test = slice(start, len(labels))  # the rows after the fit rows
    return (vus_pr(next_h(labels, h)[test], prediction[test], window),
            vus_pr(labels[test].astype(np.int8), detection[test], window))


def _events(mask: np.ndarray) -> int:
    return int(np.sum(np.diff(np.concatenate([[0], mask.astype(np.int8)])) == 1))


def evaluate_series(dataset: str, path: Path, fold: Fold, *, variants: Sequence[str], detectors: Sequence[str],
                    weights: Path | None, horizon: int, protocol: Protocol = "paper",
                    on_method: Callable[[str, MethodResult], None] | None = None) -> SeriesF2A:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = load_series(path)
    base = {"dataset": dataset, "series": full.name, "fold": fold}
    if full.labels is None:
        return SeriesF2A(**base, status="skipped: no labels")
    columns = scored_channels(full)
    split = fit_end(full)
    end = split + int(PAPER_FIT_SHARE * (full.length - split)) if protocol == "paper" else split
    series = TimeSeries(values=full.values[:, columns], channels=[full.channels[c] for c in columns], name=full.name,
                        train_end=end)
    labels = full.labels
    if not labels[end:].any():
        return SeriesF2A(**base, status="skipped: no labelled anomaly in the measured rows")
    window = vus_window(full)
    train = series.values[:end]
    if protocol == "paper":
        fit_values, fit_labels = train, labels[:end].astype(np.int8)
    else:
        planted = inject(series, list(range(series.n_channels)), seed=0, max_events=PSEUDO_EVENTS)
        fit_values, fit_labels = (train, np.zeros(end, np.int8)) if planted is None else (
            planted.values, planted.mask.astype(np.int8))
    results: dict[str, MethodResult] = {}
    common = {"horizon": horizon, **FAST} | ({"weights": weights} if weights else {})
    for name in variants:
        overrides = ALL_VARIANTS[name]
        started = time.perf_counter()
        try:
            det = create_detector("f2a", **(common | overrides))
            if overrides.get("fine_tune") is False:  # zero-shot: no label of any kind
                det.fit(train)
            else:
                det.fit(fit_values, labels=fit_labels)
            fitted = time.perf_counter()
            windows = det.predict_windows(series.values)
            detection = det.row_scores(windows, series.values)  # its own score, from the same windows
        except Exception as exc:  # one variant failing must not lose the others' figures
            results[name] = MethodResult(prediction_vus_pr=None, detection_vus_pr=None,
                                         fit_seconds=0.0, score_seconds=0.0, note=f"failed: {exc}")
            if on_method:
                on_method(name, results[name])
            continue
        scored = time.perf_counter()
        prediction = np.zeros(series.length)
        inside = windows.issued < series.length  # the last window predicts past the end
        prediction[windows.issued[inside]] = windows.probability[inside].max(axis=1)
        if overrides.get("score") == "forecast_error":
            prediction[1:] = detection[:-1]  # the baseline can only flag the present: its last known score
        elif overrides.get("score") == "joint":  # the probability issued at t with the error known at t - 1
            error = np.concatenate([[0.0], residual_per_timestamp(windows, series.values)[:-1]])
            prediction = det.joint(prediction, error)
        p, d = _measure(labels, detection, prediction, end, horizon, window)
        results[name] = MethodResult(prediction_vus_pr=p, detection_vus_pr=d, fit_seconds=round(fitted - started, 1),
                                     score_seconds=round(scored - fitted, 1), note=det.weights_source_)
        if on_method:
            on_method(name, results[name])
    for name in detectors:
        started = time.perf_counter()
        det = create_detector(name).fit(train)
        fitted = time.perf_counter()
        detection = det.score(series.values)
        scored = time.perf_counter()
        prediction = np.concatenate([[detection.min()], detection[:-1]])
        p, d = _measure(labels, detection, prediction, end, horizon, window)
        results[name] = MethodResult(prediction_vus_pr=p, detection_vus_pr=d, fit_seconds=round(fitted - started, 1),
                                     score_seconds=round(scored - fitted, 1))
        if on_method:
            on_method(name, results[name])
    return SeriesF2A(**base, status="ok", fit_rows=end, test_start=end, fit_events=_events(fit_labels), methods=results)


def run_f2a_eval(series: Sequence[tuple[str, Path, Fold]], out_dir: Path, *, variants: Sequence[str] = tuple(VARIANTS),
                 detectors: Sequence[str] = DETECTORS, weights: Path | None = None, horizon: int = 16,
                 protocol: Protocol = "paper", on_row: Callable[[SeriesF2A], None] | None = None,
                 on_method: Callable[[str, MethodResult], None] | None = None) -> F2AEval:
    from anomalygraph.detectors.f2a import shipped_weights

    rows = []
    for dataset, path, fold in series:
        row = evaluate_series(dataset, path, fold, variants=variants, detectors=detectors, weights=weights,
                              horizon=horizon, protocol=protocol, on_method=on_method)
        rows.append(row)
        if on_row:
            on_row(row)
    used = str(weights or shipped_weights() or "none (encoder trained per series)")
    report = F2AEval(created_at=datetime.now(UTC).replace(microsecond=0), protocol=protocol, horizon=horizon,
                     weights=used, rows=rows)
    write_eval(report, markdown(report), out_dir, "f2a_eval")
    return report


def markdown(report: F2AEval) -> str:
    scored = [r for r in report.rows if r.status == "ok"]
    names = list(dict.fromkeys(n for r in scored for n in r.methods))
    # means over the series every method scored, so each row of the table is on the same series
    ok = [r for r in scored if all(n in r.methods and r.methods[n].prediction_vus_pr is not None for n in names)]
    failed = [f"{r.dataset}/{r.series} ({'; '.join(sorted({m.note for m in r.methods.values() if m.note.startswith('failed')}))})"
              for r in scored if r not in ok]
    datasets = sorted({r.dataset for r in ok})
    head = ["method", "n", "prediction VUS-PR", *(f"prediction {d}" for d in datasets), "detection VUS-PR",
            "fit s (mean)", "score s (mean)"]
    lines = [f"# F2A eval, {report.created_at:%Y-%m-%d %H:%M} UTC", "",
             f"Protocol {report.protocol}: {PROTOCOLS[report.protocol]}. Horizon {report.horizon}; weights: "
             f"{report.weights}. Folds: {', '.join(sorted({r.fold for r in report.rows}))}; value channels only. "
             f"Prediction: 'an anomaly within the next {report.horizon} steps' from rows before t; detectors by their "
             "score at t - 1.",
             *([f"Means over the {len(ok)} series every method scored; left out: {', '.join(failed)}."] if failed else []),
             "", *table_lines(head)]

    def mean(values: list[float | None]) -> str:
        known = [v for v in values if v is not None]
        return f"{np.mean(known):.3f}" if known else "-"

    for name in names:
        got = [r.methods[name] for r in ok if name in r.methods]
        per = [mean([r.methods[name].prediction_vus_pr for r in ok if r.dataset == d and name in r.methods]) for d in datasets]
        lines.append(md_row([name, len(got), mean([m.prediction_vus_pr for m in got]), *per,
                             mean([m.detection_vus_pr for m in got]), mean([m.fit_seconds for m in got]),
                             mean([m.score_seconds for m in got])]))
    lines += ["", "## Per series", "", *table_lines(["series", "status", "fit rows", "fit events", *names])]
    for r in report.rows:
        cells = [f"{r.methods[n].prediction_vus_pr:.3f}" if n in r.methods and r.methods[n].prediction_vus_pr is not None
                 else "-" for n in names]
        lines.append(md_row([f"{r.dataset}/{r.series}", r.status, r.fit_rows, r.fit_events, *cells]))
    return "\n".join(lines) + "\n"
