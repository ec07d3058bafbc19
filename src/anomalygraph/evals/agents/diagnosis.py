"""The diagnosis graph scored against the detectors it ran: is the fused verdict worth having?

For each labelled real series the graph runs end to end (profile, plan, detectors, fusion,
explanations, report) with the configured model, then its fused scores and every single
detector's scores are evaluated on the same rows with the same sliding window: VUS-PR
(headline), AUC-PR, and at each one's own threshold (never chosen with labels) range F1 and
event F1. The comparison that matters is against the *best single detector on that series*,
an oracle choice made with the labels; beating it is hard, matching it without knowing which
detector to pick is the graph's job. Writes ``diagnosis_eval.md`` and ``diagnosis_eval.json``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.core.errors import AnomalyGraphError, ConfigError
from anomalygraph.core.tables import md_row, table_lines
from anomalygraph.data.datasets import dataset_files
from anomalygraph.data.loaders import load_series
from anomalygraph.evals.agents.tables import write_eval
from anomalygraph.evals.selection import METRICS, Scores
from anomalygraph.graphs.diagnosis import DiagnosisContext, run_diagnosis
from anomalygraph.graphs.diagnosis.nodes import SELECTED, scores_file
from anomalygraph.metrics.evaluate import evaluate_scores, has_labelled_events, vus_window

FUSED = "fused"  # the graph's verdict track in these tables

# The CI subset: one NAB series (no training split) and one MSL channel (with one), so both
# fitting rules and both the univariate and multivariate paths are exercised.
CI_SERIES = ("nab/nyc_taxi", "smap_msl/C-1")


class SeriesRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str
    series: str
    status: str
    plan_source: str | None = None
    detectors: list[str] = Field(default_factory=list)
    intervals: int = 0
    top_agreement: float | None = None
    explained_by: list[str] = Field(default_factory=list, description="'llm' or 'statistics' per explanation")
    fused: Scores | None = None
    singles: dict[str, Scores] = Field(default_factory=dict)
    best_single: str | None = None
    seconds: float | None = None
    notes: list[str] = Field(default_factory=list)

    @property
    def best(self) -> Scores | None:
        return self.singles.get(self.best_single) if self.best_single else None


class DiagnosisEval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    subset: str
    created_at: datetime
    rows: list[SeriesRow]


def select_series(data_root: Path, subset: str, names: Sequence[str] | None = None) -> list[tuple[str, Path]]:
    """``(dataset, path)`` pairs: the CI subset, every series of nab and smap_msl, or ``dataset/series`` names."""
    wanted = list(names or (CI_SERIES if subset == "ci" else ()))
    if subset not in ("ci", "all"):
        raise ConfigError(f"subset must be ci or all, got {subset!r}")
    pool = [(ds, path) for ds in ("nab", "smap_msl") for path in dataset_files(ds, data_root)]
    if not wanted:
        return pool
    chosen = []
    for name in wanted:
        dataset, _, stem = name.partition("/")
        hits = [(ds, p) for ds, p in pool if ds == dataset and p.stem == stem]
        if not hits:
            known = ", ".join(f"{ds}/{p.stem}" for ds, p in pool)
            raise ConfigError(f"no series {name!r} in the eval pool; known: {known}")
        chosen.extend(hits)
    return chosen


def evaluate_run(dataset: str, path: Path, out_dir: Path, context: DiagnosisContext) -> SeriesRow:
    """Run the graph on one series and score its fused and single-detector tracks.

    Feedback marks are turned off: they are labels on the series, and an evaluation's only labels
    are the benchmark's (a mark on an eval file would otherwise leak into the score).
    """
    context = dataclasses.replace(context, use_feedback=False)
    series = load_series(path)
    if not has_labelled_events(series):
        return SeriesRow(dataset=dataset, series=series.name, status="skipped: no labelled anomaly in the evaluated rows")
    started = time.perf_counter()
    try:
        verdict, _ = run_diagnosis(str(path), out_dir, context, resume=False)
    except AnomalyGraphError as exc:
        return SeriesRow(dataset=dataset, series=series.name, status=f"error: {exc}")
    seconds = round(time.perf_counter() - started, 1)
    window = vus_window(series)
    singles = {}
    for record in verdict.detectors:
        if record.status == "ok" and record.scores_path and record.threshold is not None:
            scores = np.load(record.scores_path, allow_pickle=False)
            singles[record.detector] = Scores.of(evaluate_scores(series, scores, record.threshold.value, window).summary())
    fused = None
    if verdict.selection is not None:
        scores = np.load(scores_file(out_dir, SELECTED), allow_pickle=False)
        fused = Scores.of(evaluate_scores(series, scores, verdict.selection.threshold.value, window).summary())
    intervals = verdict.selection.flagged if verdict.selection else []
    return SeriesRow(
        dataset=dataset, series=series.name, status="ok" if fused else "no fused scores",
        plan_source=verdict.plan.source, detectors=verdict.plan.detectors, intervals=len(intervals),
        top_agreement=intervals[0].agreement if intervals else None,
        explained_by=[e.source for e in verdict.explanations], fused=fused, singles=singles,
        best_single=max(singles, key=lambda d: singles[d].vus_pr) if singles else None,
        seconds=seconds, notes=verdict.notes,
    )


def run_diagnosis_eval(
    series: Sequence[tuple[str, Path]],
    out_dir: Path,
    context: DiagnosisContext,
    *,
    model: str,
    subset: str,
    on_row: Callable[[SeriesRow], None] | None = None,
) -> DiagnosisEval:
    rows = []
    for dataset, path in series:
        row = evaluate_run(dataset, path, out_dir / "runs" / f"{dataset}__{path.stem}", context)
        rows.append(row)
        if on_row:
            on_row(row)
    report = DiagnosisEval(model=model, subset=subset, created_at=datetime.now(UTC).replace(microsecond=0), rows=rows)
    write_tables(report, out_dir)
    return report


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def means(rows: Sequence[SeriesRow]) -> dict[str, dict[str, float]]:
    """Mean of each metric for the fused track, the per-series best single, and each detector run everywhere."""
    scored = [r for r in rows if r.fused is not None and r.best is not None]
    if not scored:
        return {}
    tracks: dict[str, list[Scores]] = {FUSED: [r.fused for r in scored if r.fused], "best single (oracle)": [r.best for r in scored if r.best]}
    everywhere = set.intersection(*(set(r.singles) for r in scored))
    for name in sorted(everywhere):
        tracks[name] = [r.singles[name] for r in scored]
    return {name: {m: float(np.mean([getattr(s, m) for s in values])) for m in METRICS} for name, values in tracks.items()}


def markdown_table(report: DiagnosisEval, *, compact: bool = False) -> str:
    """The full table for the file; ``compact`` keeps VUS-PR and event F1 for an 80-column terminal."""
    lines = [
        f"# Diagnosis graph eval: model `{report.model}`, subset `{report.subset}`, {report.created_at:%Y-%m-%d %H:%M} UTC",
        "",
        "Fused = the graph's verdict. Best single = the detector with the highest VUS-PR on that series among those "
        "the graph ran (chosen with the labels, so an oracle). Range and event F1 at each track's own threshold "
        "(a percentile of its training-row scores).",
        "",
    ]
    if compact:
        head = ["series", "plan", "fused VUS-PR", "best single", "its VUS-PR", "fused event F1", "its event F1", "s"]
    else:
        head = ["series", "plan", "detectors", "fused VUS-PR", "best single", "its VUS-PR", "fused AUC-PR", "its AUC-PR",
                "fused range F1", "its range F1", "fused event F1", "its event F1", "intervals", "top agreement",
                "explained by", "s"]
    lines += table_lines(head)
    for r in report.rows:
        if r.fused is None or r.best is None:
            lines.append(md_row([f"{r.dataset}/{r.series}", r.status] + [""] * (len(head) - 2)))
            continue
        f, b = r.fused, r.best
        if compact:
            cells = [r.plan_source, _f(f.vus_pr), r.best_single, _f(b.vus_pr), _f(f.event_f1), _f(b.event_f1), r.seconds]
        else:
            explained = ", ".join(f"{n} {s}" for s, n in _counts(r.explained_by)) or "-"
            cells = [r.plan_source, ", ".join(r.detectors), _f(f.vus_pr), r.best_single, _f(b.vus_pr), _f(f.auc_pr),
                     _f(b.auc_pr), _f(f.range_f1), _f(b.range_f1), _f(f.event_f1), _f(b.event_f1), r.intervals,
                     _f(r.top_agreement), explained, r.seconds]
        lines.append(md_row([f"{r.dataset}/{r.series}", *cells]))
    table = means(report.rows)
    if table:
        scored = [r for r in report.rows if r.fused is not None and r.best is not None]
        lines += ["", f"Means over {len(scored)} series:", "", *table_lines(
            ["track", "VUS-PR", "AUC-PR", "range F1", "event F1"],
            [[name, *(_f(values[m]) for m in METRICS)] for name, values in table.items()],
        )]
        wins = sum(r.fused.vus_pr >= r.best.vus_pr for r in scored if r.fused and r.best)
        lines += ["", f"Fused VUS-PR at least the oracle best single's on {wins} of {len(scored)} series."]
    notes = [f"- {r.dataset}/{r.series}: {note}" for r in report.rows for note in r.notes]
    if notes and not compact:
        lines += ["", "Notes from the runs:", "", *notes]
    return "\n".join(lines) + "\n"


def _counts(items: Sequence[str]) -> list[tuple[str, int]]:
    return [(item, items.count(item)) for item in dict.fromkeys(items)]


def write_tables(report: DiagnosisEval, out_dir: Path) -> tuple[Path, Path]:
    return write_eval(report, markdown_table(report), Path(out_dir), "diagnosis_eval")
