"""Markdown reports of detector runs on one series: what was flagged, how, and how well."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from anomalygraph.core.tables import table_lines
from anomalygraph.data.series import TimeSeries, row_label
from anomalygraph.detectors.run import DetectorRun, top_intervals

REPORT_METRICS = ("vus_pr", "auc_pr", "vus_roc", "auc_roc", "range_f1", "event_f1", "affiliation_f1", "f1_point_adjusted")


def _when(series: TimeSeries, index: int) -> str:
    return row_label(index, series.timestamps, "time_and_row")


def markdown_report(
    series: TimeSeries,
    runs: Sequence[DetectorRun],
    *,
    plot: Path | None = None,
    metrics: Mapping[str, Mapping[str, float]] | None = None,
    headline: str = "vus_pr",
    columns: Sequence[str] = REPORT_METRICS,
) -> str:
    """A report a person reads top to bottom: the data, the detections, the scores against labels."""
    s = series.summary()
    lines = [f"# Anomaly report: {series.name}", ""]
    lines += [
        f"- Source: `{series.meta.get('source', 'in memory')}` (format {series.meta.get('format', 'n/a')})",
        f"- {s.length} timestamps x {s.n_channels} channel(s)"
        + (f", {s.start} to {s.end}, sampled every {s.sampling}" if s.start else ""),
        f"- Training split: {'rows 0..' + str(s.train_length - 1) if s.train_length else 'none (detectors fit on the whole series, unsupervised)'}",
    ]
    if s.label_ratio is not None:
        lines.append(f"- Labels: {s.n_label_events} labelled event(s), {s.label_ratio:.2%} of timestamps")
    lines += [f"- Repair: {r}" for r in s.repairs]
    if plot is not None:
        lines += ["", f"![detections]({plot.name})"]
    lines += ["", "## Detectors", "", *table_lines(
        ["detector", "threshold", "flagged points", "intervals", "fit s", "score s"],
        [[run.detector, run.threshold.describe(), run.n_flagged, len(run.intervals), f"{run.fit_seconds:.2f}",
          f"{run.score_seconds:.2f}"] for run in runs],
    )]
    lines += ["", "Thresholds are computed from each detector's scores on the rows it was fitted on, never from labels."]
    for run in runs:
        lines += ["", f"### {run.detector}: strongest intervals", "", f"Fitted on {run.fitted_on}.", ""]
        best = top_intervals(run.intervals)
        if not best:
            lines.append("No interval above the threshold.")
            continue
        lines += table_lines(
            ["start", "end", "length", "peak at", "peak score"],
            [[_when(series, iv.start), _when(series, iv.end), iv.length, _when(series, iv.peak or iv.start),
              f"{iv.peak_score:.4g}"] for iv in best],
        )
    if metrics:
        first = next(iter(metrics.values()))
        names = [c for c in columns if c in first]
        lines += [
            "",
            "## Accuracy against the labels",
            "",
            f"Headline: {headline.upper().replace('_', '-')}, on the rows after the training split, with a VUS buffer of "
            f"{first.get('sliding_window', 0):.0f} steps; {first.get('label_ratio', 0):.2%} of those rows are labelled "
            "(random scores get a VUS-PR near that ratio). Threshold-free: VUS, AUC. At each detector's own threshold: "
            "range/event/affiliation F1. `f1_point_adjusted` is optimistic (one hit credits a whole event; "
            "its threshold is chosen with the labels) and shown for comparison with papers only.",
            "",
            *table_lines(["detector", *names], [[det, *(_fmt(values[n]) for n in names)] for det, values in metrics.items()]),
        ]
    return "\n".join(lines) + "\n"


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
