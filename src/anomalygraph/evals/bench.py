"""The benchmark runner: every detector on every series, honest metrics, resumable.

Each (dataset, series, detector) cell is fitted on the series' training split (the whole
series where the format has none, as TSB-AD does for unsupervised methods), scored, and
evaluated on the rows after the split. The VUS buffer is the series' autocorrelation period
(TSB-AD's choice). Finished cells are cached on disk and skipped on the next run.
"""

from __future__ import annotations

import hashlib
import json
import platform
import traceback
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from anomalygraph.core.errors import AnomalyGraphError, ConfigError
from anomalygraph.core.tables import md_row, table_lines
from anomalygraph.data.datasets import dataset_files
from anomalygraph.data.loaders import load_series
from anomalygraph.data.series import TimeSeries
from anomalygraph.detectors.run import FitOn, run_detector, settings_for
from anomalygraph.metrics.evaluate import evaluate_scores, has_labelled_events, vus_window

HEADLINE = "vus_pr"
SUMMARY_METRICS = ("vus_pr", "auc_pr", "vus_roc", "auc_roc", "range_f1", "f1_point_adjusted")


class BenchCell(BaseModel):
    """One row of results.csv."""

    dataset: str
    series: str
    detector: str
    status: str = Field(description="ok, skipped: <why> or error: <what>")
    n_timestamps: int
    n_channels: int
    train_rows: int | None
    test_rows: int
    sliding_window: int
    label_ratio: float | None
    fit_seconds: float | None = None
    score_seconds: float | None = None
    device: str | None = None
    threshold: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("anomalygraph", "numpy", "scikit-learn", "stumpy", "torch"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # a package missing from this install is recorded as such
            out[pkg] = "absent"
    return out


def _cell_dir(out: Path, dataset: str, series: str, detector: str, config: dict[str, Any]) -> Path:
    tag = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8] if config else "default"
    return out / "cells" / dataset / series / f"{detector}-{tag}"


def run_cell(dataset: str, series: TimeSeries, detector: str, config: dict[str, Any], cell_dir: Path) -> BenchCell:
    """Fit, score, evaluate and cache one cell; errors become a row, not a crash of the whole run."""
    test = series.test()
    window = vus_window(series)
    base = {
        "dataset": dataset, "series": series.name, "detector": detector,
        "n_timestamps": series.length, "n_channels": series.n_channels, "train_rows": series.train_end,
        "test_rows": test.length, "sliding_window": window,
        "label_ratio": None if test.labels is None else float(test.labels.mean()),
        "config": config, "versions": _versions(),
    }
    if not has_labelled_events(series):
        cell = BenchCell(status="skipped: no labelled anomaly in the evaluated rows", **base)
    else:
        try:
            run = run_detector(series, detector, config=config, fit_on=FitOn.train)
            report = evaluate_scores(series, run.scores, run.threshold.value, window)
            cell = BenchCell(
                status="ok", fit_seconds=run.fit_seconds, score_seconds=run.score_seconds, device=run.device,
                threshold=run.threshold.describe(), metrics=report.summary(), **base,
            )
            cell_dir.mkdir(parents=True, exist_ok=True)
            np.save(cell_dir / "scores.npy", run.scores, allow_pickle=False)
        except AnomalyGraphError as exc:
            cell = BenchCell(status=f"error: {exc}", **base)
        except Exception as exc:  # a detector bug must not lose the other cells; its trace is kept
            cell = BenchCell(status=f"error: {type(exc).__name__}: {exc}", **base)
            cell_dir.mkdir(parents=True, exist_ok=True)
            (cell_dir / "traceback.txt").write_text(traceback.format_exc())
    cell_dir.mkdir(parents=True, exist_ok=True)
    (cell_dir / "cell.json").write_text(cell.model_dump_json(indent=2))
    return cell


def run_benchmark(
    detectors: list[str],
    datasets: list[str],
    *,
    data_root: Path,
    out: Path,
    config: dict[str, Any] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    plots: bool = True,
    series: list[str] | None = None,
) -> pd.DataFrame:
    """Run or resume every cell; write results.csv, summary.md and per-series PNGs under ``out``.

    ``series`` keeps only the files with these names (file stems), e.g. to rerun a few.
    """
    config = config or {}
    for detector in detectors:  # a misspelt scope fails before hours of work, not after
        settings_for(detector, config, detectors)
    files = [(ds, path) for ds in datasets for path in dataset_files(ds, data_root)]
    if series:
        missing = sorted(set(series) - {path.stem for _, path in files})
        if missing:
            raise ConfigError(f"series {missing} not in dataset(s) {', '.join(datasets)}")
        files = [(ds, path) for ds, path in files if path.stem in series]
    total = len(files) * len(detectors)
    cells: list[BenchCell] = []
    done = 0
    for dataset, path in files:
        one = load_series(path)
        for detector in detectors:
            own = settings_for(detector, config, detectors)
            cell_dir = _cell_dir(out, dataset, one.name, detector, own)
            cached = cell_dir / "cell.json"
            if progress:
                progress(f"{detector} on {dataset}/{one.name}", done, total)
            if cached.is_file():
                cells.append(BenchCell.model_validate_json(cached.read_text()))
            else:
                cells.append(run_cell(dataset, one, detector, own, cell_dir))
            done += 1
        if plots:
            _plot_series(one, dataset, detectors, config, out)
    if progress:
        progress("done", total, total)
    frame = _frame(cells)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "results.csv", index=False)
    (out / "summary.md").write_text(summary_markdown(frame))
    return frame


def _frame(cells: list[BenchCell]) -> pd.DataFrame:
    rows = []
    for cell in cells:
        row = cell.model_dump(exclude={"metrics", "config", "versions"})
        row.update(cell.metrics)
        row["config"] = json.dumps(cell.config, sort_keys=True)
        row.update({f"version_{k}": v for k, v in cell.versions.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def summary_markdown(frame: pd.DataFrame) -> str:
    """Mean and median per dataset and detector, VUS-PR first; point adjustment flagged as optimistic."""
    ok = frame[frame["status"] == "ok"]
    lines = [
        "# Benchmark summary",
        "",
        "Headline: VUS-PR (mean / median over series). `f1_point_adjusted` is optimistic "
        "(one hit credits a whole event) and shown only for comparison with papers. "
        "Thresholds come from training scores only.",
    ]
    metrics = [m for m in SUMMARY_METRICS if m in ok.columns]
    for dataset, group in ok.groupby("dataset", sort=True):
        lines += ["", f"## {dataset} ({group['series'].nunique()} series)", ""]
        header = ["detector", "VUS-PR mean", "VUS-PR median", *[m for m in metrics if m != HEADLINE], "fit s", "score s"]
        lines += table_lines(header)
        for detector, rows in group.groupby("detector", sort=False):
            values = [f"{rows[HEADLINE].mean():.3f}", f"{rows[HEADLINE].median():.3f}"]
            values += [f"{rows[m].mean():.3f}" for m in metrics if m != HEADLINE]
            values += [f"{rows['fit_seconds'].mean():.2f}", f"{rows['score_seconds'].mean():.2f}"]
            lines.append(md_row([detector, *values]))
    skipped = frame[frame["status"] != "ok"]
    if len(skipped):
        lines += ["", "## Not scored", ""]
        lines += [f"- {r.dataset}/{r.series} x {r.detector}: {r.status}" for r in skipped.itertuples()]
    return "\n".join(lines) + "\n"


def _plot_series(series: TimeSeries, dataset: str, detectors: list[str], config: dict[str, Any], out: Path) -> None:
    from anomalygraph.plots.detection import plot_detection

    scores = {}
    for detector in detectors:
        path = _cell_dir(out, dataset, series.name, detector, settings_for(detector, config)) / "scores.npy"
        if path.is_file():
            scores[detector] = np.load(path, allow_pickle=False)
    target = out / "plots" / f"{dataset}__{series.name}.png"
    if scores:
        plot_detection(series, scores, path=target, title=f"{dataset}/{series.name}")
