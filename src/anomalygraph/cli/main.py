"""The ``anomalygraph`` command: a thin shell over data, detectors and evals.

User errors (``AnomalyGraphError``) become one line on stderr and exit status 2, never a
traceback; data warnings (repairs, constant channels) are printed once each.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from typer._click.exceptions import (
    ClickException,  # typer vendors click; its usage errors are these
)

from anomalygraph.core.errors import AnomalyGraphError, ConfigError, DataWarning
from anomalygraph.data.loaders import FORMATS, load_series
from anomalygraph.data.series import TimeSeries
from anomalygraph.data.validation import NanPolicy
from anomalygraph.detectors.run import FitOn

app = typer.Typer(
    name="anomalygraph",
    help="Agentic time-series anomaly detection: load, score, evaluate and explain anomalies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect and prepare time-series files.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _mount() -> None:
    """Sub-commands owned by their subpackages."""
    from anomalygraph.cli.chat import chat
    from anomalygraph.cli.data import app as synthetic_app
    from anomalygraph.cli.eval import app as eval_app
    from anomalygraph.cli.f2a import app as f2a_app
    from anomalygraph.cli.feedback import feedback_cmd
    from anomalygraph.cli.llm import app as llm_app
    from anomalygraph.cli.rulebank import app as rulebank_app
    from anomalygraph.cli.stream import stream_cmd
    from anomalygraph.cli.train import train_cmd
    from anomalygraph.cli.ui import ui_cmd

    data_app.add_typer(synthetic_app)
    app.add_typer(rulebank_app, name="rulebank")
    app.add_typer(llm_app, name="llm")
    app.command("chat")(chat)
    app.command("train")(train_cmd)
    app.command("stream")(stream_cmd)
    app.command("feedback")(feedback_cmd)
    app.command("ui")(ui_cmd)
    app.add_typer(eval_app, name="eval")
    app.add_typer(f2a_app, name="f2a")


from anomalygraph.cli.common import load_file as _load  # noqa: E402
from anomalygraph.cli.common import parse_sets as _parse_sets  # noqa: E402

_mount()

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

# ------------------------------------------------------------ shared options
FileArg = Annotated[Path, typer.Argument(help="CSV, Parquet, NAB, SMAP/MSL .npy, SMD, UCR or TSB-AD file.", show_default=False)]
FormatOpt = Annotated[str, typer.Option("--format", help=f"File format: auto or one of {', '.join(FORMATS)}.")]
NanOpt = Annotated[NanPolicy, typer.Option("--nan", help="NaN/inf handling: interpolate (warns with the count), ffill, or error.")]
TimestampOpt = Annotated[str | None, typer.Option("--timestamp-col", help="Timestamp column (detected by name when omitted).")]
ColumnsOpt = Annotated[str | None, typer.Option("--columns", help="Comma-separated value columns (default: all others).")]
LabelOpt = Annotated[str | None, typer.Option("--label-col", help="0/1 label column (detected by name when omitted).")]
ResampleOpt = Annotated[str | None, typer.Option("--resample", help="Put the series on a regular grid, e.g. 5min.")]


def _split_names(detector: list[str]) -> list[str]:
    names = [n.strip() for item in detector for n in item.split(",") if n.strip()]
    if not names:
        raise ConfigError("name at least one detector with --detector")
    from anomalygraph.detectors import get_detector_class

    for name in names:
        get_detector_class(name)
    return names


def _progress(*, eta: bool = False) -> Progress:
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn()]
    if eta:
        columns += [TextColumn("eta"), TimeRemainingColumn()]
    return Progress(*columns, console=err, transient=True)


def _plot_runs(series: TimeSeries, runs: list[Any], path: Path, title: str | None = None) -> Path:
    """The series with each run's score track, threshold and detected intervals."""
    from anomalygraph.plots.detection import plot_detection

    return plot_detection(
        series, {r.detector: r.scores for r in runs}, path=path, title=title,
        thresholds={r.detector: r.threshold.value for r in runs},
        intervals={r.detector: r.intervals for r in runs},
    )


# ------------------------------------------------------------------ commands
@app.command("detectors")
def detectors_cmd() -> None:
    """List registered detectors and their settings.

    Example: anomalygraph detectors
    """
    from anomalygraph.detectors import detector_names, get_detector_class

    table = Table(title="Registered detectors")
    table.add_column("name", style="bold")
    table.add_column("what it is")
    table.add_column("settings (--set key=value)")
    for name in detector_names():
        cls = get_detector_class(name)
        fields = ", ".join(f"{k}={f.default!r}" for k, f in cls.config_class.model_fields.items())
        table.add_row(name, cls.summary, fields)
    out.print(table)


@data_app.command("inspect")
def inspect_cmd(
    file: FileArg,
    fmt: FormatOpt = "auto",
    nan: NanOpt = NanPolicy.interpolate,
    timestamp_col: TimestampOpt = None,
    columns: ColumnsOpt = None,
    label_col: LabelOpt = None,
    resample: ResampleOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Shape, sampling, repairs, label ratio and per-channel statistics of a file.

    Example: anomalygraph data inspect ../shared/data/SMAP_MSL/test/A-4.npy
    """
    series = _load(file, fmt, nan, timestamp_col, columns, label_col, resample)
    summary = series.summary()
    if as_json:
        out.print_json(summary.model_dump_json())
        return
    out.print(f"[bold]{summary.name}[/] ({series.meta.get('format')}): {summary.length} timestamps x {summary.n_channels} channels")
    if summary.start:
        out.print(f"time: {summary.start} .. {summary.end}, median step {summary.sampling}, {summary.irregular_steps} irregular steps")
    else:
        out.print("time: no timestamps (row index)")
    out.print(f"train split: {'rows 0..' + str(summary.train_length - 1) if summary.train_length else 'none'}")
    if summary.label_ratio is None:
        out.print("labels: none")
    else:
        out.print(f"labels: {summary.n_label_events} events, ratio {summary.label_ratio:.4f}")
    out.print(f"NaN/inf repaired: {'; '.join(summary.repairs) if summary.repairs else 'none'}")
    table = Table()
    for col in ("channel", "mean", "std", "min", "max", "constant"):
        table.add_column(col)
    for ch in summary.channels[:20]:
        table.add_row(ch.name, f"{ch.mean:.4g}", f"{ch.std:.4g}", f"{ch.min:.4g}", f"{ch.max:.4g}", "yes" if ch.constant else "")
    out.print(table)
    if len(summary.channels) > 20:
        out.print(f"... {len(summary.channels) - 20} more channels (use --json for all)")


def _scores_frame(series: TimeSeries, runs: list[Any]) -> pd.DataFrame:
    frame = pd.DataFrame({"row": np.arange(series.length)})
    if series.timestamps is not None:
        frame["timestamp"] = series.timestamps
    if series.train_end is not None:
        frame["split"] = np.where(np.arange(series.length) < series.train_end, "train", "test")
    if series.labels is not None:
        frame["label"] = series.labels
    for run in runs:
        frame[f"score_{run.detector}"] = run.scores
        frame[f"anomaly_{run.detector}"] = (run.scores > run.threshold.value).astype(np.uint8)
    return frame


@app.command("score")
def score_cmd(
    file: FileArg,
    detector: Annotated[list[str], typer.Option("--detector", "-d", help="Detector name(s); repeat or comma-separate.")] = ["iforest"],  # noqa: B006
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Scores CSV (default: out/<series>.scores.csv).")] = None,
    settings: Annotated[list[str], typer.Option("--set", help="Detector setting key=value (all detectors) or detector.key=value (one), e.g. --set window=100.")] = [],  # noqa: B006
    fit_on: Annotated[FitOn, typer.Option("--fit-on", help="train: the file's training split if it has one, else all rows; all: every row.")] = FitOn.train,
    plot: Annotated[Path | None, typer.Option("--plot", help="Also write a PNG of the series and scores.")] = None,
    save_model: Annotated[Path | None, typer.Option("--save-model", help="Save the fitted detector to this folder (one detector only).")] = None,
    load_model: Annotated[Path | None, typer.Option("--load-model", help="Score with a saved detector instead of fitting.")] = None,
    fmt: FormatOpt = "auto",
    nan: NanOpt = NanPolicy.interpolate,
    timestamp_col: TimestampOpt = None,
    columns: ColumnsOpt = None,
    label_col: LabelOpt = None,
    resample: ResampleOpt = None,
) -> None:
    """Per-timestamp anomaly scores for a file, with thresholds learnt from training scores.

    Example: anomalygraph score --detector iforest ../shared/data/SMAP_MSL/test/A-4.npy --out a4.csv
    """
    from anomalygraph.detectors import Detector
    from anomalygraph.detectors.run import fit_detector, run_detector, settings_for

    series = _load(file, fmt, nan, timestamp_col, columns, label_col, resample)
    config = _parse_sets(settings)
    names = [] if load_model is not None else _split_names(detector)
    if save_model is not None and len(names) != 1:
        raise ConfigError("--save-model takes exactly one detector (and not --load-model)")
    runs = []
    with _progress() as progress:
        task = progress.add_task(f"scoring {series.name}", total=max(len(names), 1))
        if load_model is not None:
            runs.append(run_detector(series, detector=Detector.load(load_model), fitted_on=f"the model saved in {load_model}"))
            progress.advance(task)
        for name in names:
            progress.update(task, description=f"{name} on {series.name}")
            fitted, fitted_on = fit_detector(series, name, config=settings_for(name, config, names), fit_on=fit_on)
            runs.append(run_detector(series, detector=fitted, fitted_on=fitted_on))
            if save_model is not None:
                fitted.save(save_model)
                out.print(f"saved {name} to {save_model}")
            progress.advance(task)
    output = output or Path("out") / f"{series.name}.scores.csv"
    output.parent.mkdir(parents=True, exist_ok=True)
    _scores_frame(series, runs).to_csv(output, index=False)
    for run in runs:
        out.print(
            f"{run.detector}: fitted on {run.fitted_on}; threshold {run.threshold.describe()}; "
            f"{run.n_flagged} points in {len(run.intervals)} intervals above it "
            f"(fit {run.fit_seconds:.2f}s, score {run.score_seconds:.2f}s)"
        )
    out.print(f"wrote scores to {output}")
    if plot is not None:
        _plot_runs(series, runs, plot)
        out.print(f"wrote plot to {plot}")


@app.command("demo")
def demo_cmd(
    file: FileArg,
    output: Annotated[Path, typer.Option("--out", "-o", help="Folder for scores.csv, report.md and plot.png.")] = Path("out/demo"),
    detector: Annotated[list[str], typer.Option("--detector", "-d", help="Detectors to run (default: every baseline).")] = ["iforest,sub_pca,matrix_profile,robust_z"],  # noqa: B006
) -> None:
    """Score a real series with the baseline detectors and write scores, a Markdown report and a plot.

    Example: anomalygraph demo ../shared/data/NAB/data/realKnownCause/nyc_taxi.csv --out out/demo
    """
    from anomalygraph.detectors.run import run_detector
    from anomalygraph.evals.report import markdown_report

    names = _split_names(detector)
    series = load_series(file)
    runs = []
    with _progress() as progress:
        task = progress.add_task("detectors", total=len(names))
        for name in names:
            progress.update(task, description=f"{name} on {series.name}")
            runs.append(run_detector(series, name, fit_on=FitOn.train))
            progress.advance(task)
    output.mkdir(parents=True, exist_ok=True)
    scores_path = output / "scores.csv"
    _scores_frame(series, runs).to_csv(scores_path, index=False)
    plot_path = _plot_runs(series, runs, output / "plot.png", title=f"{series.name}: baseline detectors")
    metrics = _metrics(series, runs)
    report_path = output / "report.md"
    report_path.write_text(markdown_report(series, runs, plot=plot_path, metrics=metrics))
    (output / "verdicts.json").write_text(json.dumps([r.model_dump(mode="json") for r in runs], indent=2))
    for path in (scores_path, report_path, plot_path, output / "verdicts.json"):
        out.print(f"wrote {path}")


def _metrics(series: TimeSeries, runs: list[Any]) -> dict[str, dict[str, float]] | None:
    """Threshold-free accuracy on the test rows, when the file has labels with at least one event."""
    from anomalygraph.metrics.evaluate import evaluate_scores, has_labelled_events, vus_window

    if not has_labelled_events(series):
        return None
    window = vus_window(series)
    return {r.detector: evaluate_scores(series, r.scores, r.threshold.value, window).summary() for r in runs}


@app.command("bench")
def bench_cmd(
    detectors: Annotated[str, typer.Option("--detectors", help="Comma-separated detector names.")] = "iforest,matrix_profile",
    datasets: Annotated[str, typer.Option("--datasets", help="Comma-separated datasets: nab, smap_msl, ucr, tsb_ad_u.")] = "nab,smap_msl",
    data: Annotated[Path | None, typer.Option("--data", help="Dataset root (default: the first of ANOMALYGRAPH_DATA_ROOTS).")] = None,
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Results folder (default: ANOMALYGRAPH_OUTPUT_RESULTS or results/).")] = None,
    settings: Annotated[list[str], typer.Option("--set", help="Detector setting key=value for every detector, or detector.key=value for one (anomaly_transformer.epochs=1).")] = [],  # noqa: B006
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write one PNG per series.")] = True,
    series: Annotated[str | None, typer.Option("--series", help="Comma-separated series names (file stems) to keep, e.g. A-4,nyc_taxi.")] = None,
) -> None:
    """Run detectors on every series of the datasets: results.csv, summary.md, per-series PNGs.

    Finished cells are cached under OUT/cells and skipped when the command is run again.

    Example: anomalygraph bench --detectors iforest,matrix_profile --datasets nab,smap_msl --out results/
    """
    from anomalygraph.core.settings import get_settings
    from anomalygraph.data.datasets import DATASETS
    from anomalygraph.evals.bench import run_benchmark

    names = _split_names([detectors])
    sets = [d.strip() for d in datasets.split(",") if d.strip()]
    unknown = [d for d in sets if d not in DATASETS]
    if unknown or not sets:
        raise ConfigError(f"unknown dataset(s) {unknown}; known: {', '.join(DATASETS)}")
    config = get_settings()
    root, output = data or config.data.benchmark_root, output or config.output.results
    with _progress(eta=True) as progress:
        task = progress.add_task("benchmark", total=None)

        def report(what: str, done: int, total: int) -> None:
            progress.update(task, description=what, completed=done, total=total)

        frame = run_benchmark(names, sets, data_root=root, out=output, config=_parse_sets(settings), progress=report, plots=plots,
                              series=[n.strip() for n in series.split(",") if n.strip()] if series else None)
    ok = frame[frame["status"] == "ok"]
    out.print((output / "summary.md").read_text())
    out.print(f"{len(ok)} of {len(frame)} cells scored; wrote {output / 'results.csv'}, {output / 'summary.md'}"
              + (f", plots in {output / 'plots'}" if plots else ""))


@app.command("diagnose")
def diagnose_cmd(
    file: FileArg,
    output: Annotated[Path, typer.Option("--out", "-o", help="Folder for report.md, verdict.json, PNGs and checkpoints.")] = Path("out/diagnosis"),
    detectors: Annotated[str | None, typer.Option("--detectors", help="Comma-separated detectors (default: chosen from the profile).")] = None,
    llm: Annotated[bool, typer.Option("--llm/--no-llm", help="Use the configured language model (ANOMALYGRAPH_LLM_*) to choose detectors and explain.")] = True,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over instead of resuming an interrupted run of the same file.")] = False,
    selection: Annotated[str | None, typer.Option("--selection", help="How the verdict's track is chosen without labels: best_on_tune (default), fixed:<candidate> (e.g. fixed:iforest, fixed:sub_pca@channels), fusion, fusion@channels, surrogate, surrogate_top3. See `anomalygraph eval diagnosis`.")] = None,
    threshold: Annotated[str, typer.Option("--threshold", help="Which ranked intervals are flagged: percentile (of the fit rows' scores, at --contamination), pot (peaks over threshold) or top_k (the --top-k strongest).")] = "percentile",
    contamination: Annotated[float, typer.Option("--contamination", min=0.0001, max=0.4999, help="Share of fit rows above the percentile threshold.")] = 0.01,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=20, help="How many ranked intervals top_k flags.")] = 5,
) -> None:
    """Autonomous diagnosis: profile, choose detectors, run them in parallel, select a track, rank intervals, explain, report.

    Every step is checkpointed in OUT/checkpoints.sqlite; running the same command again after
    a crash resumes from the last completed step.

    Feedback marks on FILE (`anomalygraph feedback FILE --interval START:END --label real|false`) are read: selection switches to the candidate that ranks them strictly better, an interval marked a false alarm is not flagged, and a new mark makes a new run.

    Example: anomalygraph diagnose ../shared/data/NAB/data/realKnownCause/nyc_taxi.csv --out out/diagnosis
    """
    import time

    from anomalygraph.core.settings import get_settings
    from anomalygraph.detectors.selection import DEFAULT_STRATEGY, check_strategy
    from anomalygraph.graphs.diagnosis import DiagnosisContext, run_diagnosis

    names = _split_names([detectors]) if detectors else None
    strategy = check_strategy(selection or DEFAULT_STRATEGY)
    if threshold not in ("percentile", "pot", "top_k"):
        raise ConfigError(f"--threshold must be percentile, pot or top_k, got {threshold!r}")
    settings = get_settings()
    model = None
    if llm:
        from anomalygraph.llm.factory import get_chat_model

        with err.status("starting the language model"):
            model = get_chat_model()
    roots = [*settings.data.roots, file.resolve().parent]
    context = DiagnosisContext(model=model, data_roots=[str(r) for r in roots], selection=strategy,
                               threshold_method=threshold, contamination=contamination, top_k=top_k)  # type: ignore[arg-type]
    started = time.perf_counter()
    with err.status(f"diagnosing {file.name}"):
        verdict, resumed = run_diagnosis(str(file.resolve()), output, context, detectors=names, resume=not fresh)
    sel = verdict.selection
    found = f"{len(sel.flagged)} flagged of {len(sel.intervals)} ranked interval(s) on {' + '.join(sel.chosen)}" if sel else "no verdict"
    out.print(f"{'resumed and ' if resumed else ''}finished in {time.perf_counter() - started:.1f}s: "
              f"{found}, detectors {', '.join(verdict.plan.detectors)} ({verdict.plan.source})")
    for note in verdict.notes:
        out.print(f"note: {note}")
    out.print(f"wrote {verdict.report_path}, {output / 'verdict.json'}, plots: {', '.join(verdict.plots)}")


# ------------------------------------------------------------------- entry
def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit 2."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        try:
            # without standalone mode, click returns a command's ``typer.Exit`` code instead of raising
            result = app(args=argv, standalone_mode=False)
            code = result if isinstance(result, int) else 0
        except AnomalyGraphError as exc:
            _print_warnings(caught)
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            return 2
        except typer.Exit as exc:
            code = exc.exit_code
        except typer.Abort:
            err.print("aborted")
            return 130
        except ClickException as exc:
            exc.show()
            return exc.exit_code
    _print_warnings(caught)
    return code


def _print_warnings(caught: list[warnings.WarningMessage]) -> None:
    seen = set()
    for w in caught:
        if issubclass(w.category, DataWarning) and str(w.message) not in seen:
            seen.add(str(w.message))
            err.print(f"[yellow]warning:[/] {w.message}", highlight=False, soft_wrap=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
