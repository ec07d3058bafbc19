"""The tools' logic as plain functions: (context, pydantic arguments) -> pydantic result.

Kept apart from LangChain so graphs, the CLI and tests call them directly; ``registry`` wraps
them as tools for models.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.stats import spearmanr

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.core.intervals import Interval, mask_to_intervals
from anomalygraph.core.thresholds import Threshold, k_sigma_threshold, pot_threshold
from anomalygraph.data.series import SeriesSummary, TimeSeries
from anomalygraph.detectors import affordable_detectors, get_detector_class
from anomalygraph.detectors.fusion import agreeing, masks_from_intervals, robust_z
from anomalygraph.detectors.run import DetectorRun, FitOn, fit_detector, run_detector, top_intervals
from anomalygraph.tools.context import ToolContext
from anomalygraph.tools.explain import WindowExplanation, explain_window
from anomalygraph.tools.profile import SeriesProfile, profile_series

ThresholdRule = Literal["percentile", "pot", "k_sigma"]
MAX_INTERVALS = 10


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- arguments
class SeriesArgs(_Args):
    path: str = Field(description="file path, relative to a data root or absolute inside one")


class PlotArgs(SeriesArgs):
    start: int | None = Field(None, ge=0, description="first row to show (default: 0)")
    end: int | None = Field(None, ge=0, description="last row to show, inclusive (default: the last row)")
    detectors: list[str] = Field(default_factory=list, description="detectors already run whose scores to add")


class DetectArgs(SeriesArgs):
    detector: str = Field("iforest", description="registered detector name, e.g. iforest, sub_pca, matrix_profile")
    threshold: ThresholdRule = Field("percentile", description="how the threshold is set from training scores")
    settings: dict[str, Any] = Field(default_factory=dict, description="leave empty for the detector's defaults; unknown keys are an error")


class CompareArgs(SeriesArgs):
    detectors: list[str] = Field(default_factory=lambda: ["iforest", "sub_pca", "matrix_profile"], min_length=2)
    start: int | None = Field(None, ge=0, description="first row of interest: say which detectors flag rows start..end")
    end: int | None = Field(None, ge=0, description="last row of interest, inclusive")

    @model_validator(mode="after")
    def _rows(self) -> CompareArgs:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end (the rows of interest), or neither")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


class WindowArgs(SeriesArgs):
    start: int = Field(ge=0, description="first row of the window")
    end: int = Field(ge=0, description="last row of the window, inclusive")
    context: int | None = Field(None, ge=10, description="rows of context on each side (default: 5x the window)")
    channel: str | None = Field(None, description="report only this channel (default: every channel that deviates)")


class EvaluateArgs(SeriesArgs):
    detector: str = Field("iforest", description="detector to evaluate against the file's labels")


# ------------------------------------------------------------------ results
class LoadedSeries(BaseModel):
    path: str
    summary: SeriesSummary


class IntervalView(BaseModel):
    """One interval with the facts a question about it needs, in plain fields."""

    rows: str = Field(description="first..last row (inclusive)")
    start: int
    end: int
    length: int = Field(description="rows in the interval")
    start_time: str | None = None
    end_time: str | None = None
    day: str | None = Field(None, description="calendar day (YYYY-MM-DD) of the peak row, or of the start")
    peak: int | None = Field(None, description="row of the highest score")
    peak_time: str | None = None
    peak_score: float | None = None
    severity: float | None = Field(None, description="peak score in robust sigmas above the median score of the series")


class DetectionVerdict(BaseModel):
    summary: str = Field(description="the answer in one sentence: how many intervals, the strongest with its rows and day")
    path: str
    detector: str
    fitted_on: str
    threshold: Threshold
    n_flagged: int
    n_intervals: int
    top_intervals: list[IntervalView] = Field(description=f"strongest first, at most {MAX_INTERVALS}")
    score_quantiles: dict[str, float] = Field(description="p50, p99 and max of the scores")


class AgreedInterval(IntervalView):
    detectors: list[str] = Field(description="detectors whose own intervals overlap this one")
    agreement: float = Field(description="share of the compared detectors that flag it")


class Comparison(BaseModel):
    summary: str = Field(description="the answer in one sentence: the most agreed interval, the strongest, who flags them")
    path: str
    detectors: list[str]
    flagged: dict[str, int]
    intervals: list[AgreedInterval] = Field(description="union of all detectors' intervals, most agreed first")
    rank_correlation: dict[str, float] = Field(description="Spearman correlation of scores per detector pair")
    over_rows: dict[str, bool] | None = Field(None, description="per detector: does it flag any of the rows of interest")


class PlotResult(BaseModel):
    path: str
    rows: tuple[int, int]
    channels_shown: list[str]
    ran_now: list[str] = Field(default_factory=list, description="detectors run for this plot with their defaults (not run before in this process)")


class Evaluation(BaseModel):
    path: str
    detector: str
    evaluated_rows: tuple[int, int]
    metrics: dict[str, float] = Field(description="vus_pr is the headline; f1_point_adjusted is optimistic")


# ---------------------------------------------------------------- functions
def view(series: TimeSeries, iv: Interval | tuple[int, int], scores: np.ndarray | None = None,
         sigmas: np.ndarray | None = None) -> IntervalView:
    """``iv`` with its rows, times and day; its peak from ``scores`` when ``iv`` has none, and its
    severity from ``sigmas`` (each row's score in robust sigmas above the median score)."""
    start, end = (iv.start, iv.end) if isinstance(iv, Interval) else iv
    peak, peak_score = getattr(iv, "peak", None), getattr(iv, "peak_score", None)
    if peak is None and scores is not None:
        peak = start + int(np.argmax(scores[start : end + 1]))
        peak_score = float(scores[peak])
    ts = series.timestamps
    at = peak if peak is not None else start
    return IntervalView(
        rows=f"{start}..{end}", start=start, end=end, length=end - start + 1,
        start_time=None if ts is None else str(ts[start]), end_time=None if ts is None else str(ts[end]),
        day=None if ts is None else str(ts[at].date()), peak=peak,
        peak_time=None if ts is None or peak is None else str(ts[peak]), peak_score=peak_score,
        severity=None if sigmas is None or peak is None else round(float(sigmas[peak]), 1),
    )


def describe(iv: IntervalView) -> str:
    """``rows 4187..4199 (2015-07-10 12:00:00 to 2015-07-10 14:00:00, peak at row 4190, 8.2 sigma)``."""
    parts = [f"{iv.start_time} to {iv.end_time}"] if iv.start_time else []
    if iv.peak is not None:
        parts.append(f"peak at row {iv.peak}" + (f" on {iv.day}" if iv.day else ""))
    if iv.severity is not None:
        parts.append(f"{iv.severity} sigma")
    return f"rows {iv.rows}" + (f" ({', '.join(parts)})" if parts else "")


def load(ctx: ToolContext, args: SeriesArgs) -> LoadedSeries:
    key, series = ctx.load(args.path)
    return LoadedSeries(path=key, summary=series.summary())


def profile(ctx: ToolContext, args: SeriesArgs) -> SeriesProfile:
    return profile_series(ctx.load(args.path)[1])


def ensure_run(ctx: ToolContext, path: str, detector: str, rule: ThresholdRule = "percentile",
               settings: dict[str, Any] | None = None) -> tuple[str, TimeSeries, DetectorRun]:
    """Run a detector once per (series, detector, rule); later calls reuse the result."""
    key, series = ctx.load(path)
    cache_key = (key, f"{detector}:{rule}:{sorted((settings or {}).items())}")
    if cache_key not in ctx.runs:
        if get_detector_class(detector).heavy and not ctx.has_gpu():
            # a deep model takes minutes per series on CPU (measured: 10 min for one comparison)
            raise ConfigError(f"'{detector}' is a deep model that agents run only with a GPU; use "
                              f"{', '.join(affordable_detectors(False))}, or `anomalygraph score -d {detector} FILE`")
        fitted, fitted_on = fit_detector(series, detector, config=settings, fit_on=FitOn.train)
        threshold = None
        assert fitted.decision_scores_ is not None
        if rule == "pot":
            threshold = pot_threshold(fitted.decision_scores_)
        elif rule == "k_sigma":
            threshold = k_sigma_threshold(fitted.decision_scores_)
        ctx.runs[cache_key] = run_detector(series, detector=fitted, fitted_on=fitted_on, threshold=threshold)
        ctx.runs[(key, detector)] = ctx.runs[cache_key]
    return key, series, ctx.runs[cache_key]


def detect(ctx: ToolContext, args: DetectArgs) -> DetectionVerdict:
    key, series, run = ensure_run(ctx, args.path, args.detector, args.threshold, args.settings)
    sigmas = robust_z(run.scores, run.scores)
    top = [view(series, iv, run.scores, sigmas) for iv in top_intervals(run.intervals, MAX_INTERVALS)]
    if top:
        summary = (f"{run.detector} flags {len(run.intervals)} interval(s) ({run.n_flagged} rows); "
                   f"the strongest is {describe(top[0])}")
    else:
        summary = f"{run.detector} flags no interval above its threshold ({run.threshold.describe()})"
    return DetectionVerdict(
        summary=summary, path=key, detector=run.detector, fitted_on=run.fitted_on, threshold=run.threshold,
        n_flagged=run.n_flagged, n_intervals=len(run.intervals), top_intervals=top,
        score_quantiles={k: float(v) for k, v in zip(("p50", "p99", "max"), np.quantile(run.scores, [0.5, 0.99, 1.0]), strict=True)},
    )


def compare(ctx: ToolContext, args: CompareArgs) -> Comparison:
    runs = {}
    for name in dict.fromkeys(args.detectors):
        key, series, runs[name] = ensure_run(ctx, args.path, name)
    names = list(runs)
    masks = masks_from_intervals({n: [(iv.start, iv.end) for iv in r.intervals] for n, r in runs.items()}, series.length)
    union = mask_to_intervals(np.any(list(masks.values()), axis=0))
    # one yardstick for "how strong" across detectors: each one's scores in its own robust sigmas
    strength = np.max([robust_z(r.scores, r.scores) for r in runs.values()], axis=0)
    agreed = []
    for start, end in union:
        who = agreeing(masks, start, end)
        seen = view(series, (start, end), scores=strength, sigmas=strength)
        agreed.append(AgreedInterval(**seen.model_dump(), detectors=who, agreement=len(who) / len(names)))
    agreed.sort(key=lambda a: (-a.agreement, -(a.severity or 0.0), a.start))
    correlation = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            rho = spearmanr(runs[a].scores, runs[b].scores).statistic
            correlation[f"{a}~{b}"] = round(float(np.nan_to_num(rho)), 3)
    if agreed:
        best = agreed[0]
        strongest = max(agreed, key=lambda a: a.severity or 0.0)
        summary = (f"{len(agreed)} interval(s) in all; the most agreed, flagged by {', '.join(best.detectors)} "
                   f"({len(best.detectors)} of {len(names)}), is {describe(best)}")
        if strongest is not best:
            summary += f"; the strongest is {describe(strongest)}, flagged by {', '.join(strongest.detectors)}"
    else:
        summary = f"none of {', '.join(names)} flags an interval above its threshold"
    over = None
    if args.start is not None and args.end is not None:
        if args.end >= series.length:
            raise DataError(f"rows {args.start}..{args.end} are outside series '{series.name}' of {series.length} rows")
        who = agreeing(masks, args.start, args.end)
        over = {n: n in who for n in names}
        rest = [n for n in names if n not in who]
        said = f"over rows {args.start}..{args.end}: " + (f"flagged by {', '.join(who)}" if who else "flagged by none")
        summary = said + (f"; not by {', '.join(rest)}" if who and rest else "") + "; overall: " + summary
    return Comparison(summary=summary, path=key, detectors=names, flagged={n: r.n_flagged for n, r in runs.items()},
                      intervals=agreed[:MAX_INTERVALS], rank_correlation=correlation, over_rows=over)


def explain(ctx: ToolContext, args: WindowArgs) -> WindowExplanation:
    return explain_window(ctx.load(args.path)[1], args.start, args.end, context=args.context, channel=args.channel)


def plot(ctx: ToolContext, args: PlotArgs) -> PlotResult:
    from anomalygraph.plots.detection import pick_channels, plot_detection

    key, series = ctx.load(args.path)
    start = args.start or 0
    end = series.length - 1 if args.end is None else min(args.end, series.length - 1)
    if start > end:
        raise DataError(f"plot window {start}..{end} is empty")
    runs, ran_now = {}, []
    for name in dict.fromkeys(args.detectors):
        # After a restart the cache is empty; detectors are seeded, so running one again with its
        # defaults reproduces what ``detect`` found, and the result says it did so.
        if (key, name) not in ctx.runs:
            ran_now.append(name)
            ensure_run(ctx, args.path, name)
        runs[name] = ctx.runs[(key, name)]
    path = plot_detection(
        series, {n: r.scores for n, r in runs.items()}, path=ctx.plot_path(series, f"{start}_{end}"),
        thresholds={n: r.threshold.value for n, r in runs.items()},
        intervals={n: r.intervals for n, r in runs.items()}, window=(start, end + 1),
    )
    shown = [series.channels[i] for i in pick_channels(series.slice(start, end + 1), 6)]
    return PlotResult(path=str(path), rows=(start, end), channels_shown=shown, ran_now=ran_now)


def evaluate(ctx: ToolContext, args: EvaluateArgs) -> Evaluation:
    from anomalygraph.metrics.evaluate import evaluate_scores

    key, series, run = ensure_run(ctx, args.path, args.detector)
    report = evaluate_scores(series, run.scores, run.threshold.value)
    offset = series.length - series.test().length
    return Evaluation(path=key, detector=args.detector, evaluated_rows=(offset, series.length - 1), metrics=report.summary())
