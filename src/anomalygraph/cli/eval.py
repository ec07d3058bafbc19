"""``anomalygraph eval``: the agent evals, each with the embedded model by default or a served one by flag."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markdown import Markdown

from anomalygraph.core.errors import ConfigError, DataError, validation_problems

app = typer.Typer(help="Agent evals: the analyst, the diagnosis graph, the rule-bank generation graph.", no_args_is_help=True)

ProviderOpt = Annotated[str | None, typer.Option("--provider", help="embedded (default), vllm or openai.")]
BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible server, e.g. http://gpu:8000/v1.")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Model name the server serves.")]
LlmConfigOpt = Annotated[Path | None, typer.Option("--llm-config", help="LLM settings file (YAML/TOML).")]
DataOpt = Annotated[Path | None, typer.Option("--data", help="Data root holding NAB/, SMAP_MSL/, UCR/ (default: the first of $ANOMALYGRAPH_DATA_ROOTS).")]


@app.callback()
def _evals() -> None:
    """Agent evals on the real data and on TimeAnomalyBench; each writes a Markdown table and JSON."""


def model_settings(provider: str | None, base_url: str | None, model: str | None, llm_config: Path | None,
                   vision: bool | None = None) -> Any:
    """LLM settings from the flags over env vars and the config file (the embedded model when none is set)."""
    from anomalygraph.core.settings import get_settings

    if base_url is not None and not model:
        raise ConfigError("--base-url needs --model")
    overrides: dict[str, Any] = {k: v for k, v in {"provider": provider, "base_url": base_url, "model": model}.items() if v is not None}
    if base_url is not None and provider is None:
        overrides["provider"] = "vllm"
    if vision is not None:
        overrides["capabilities"] = {"vision": vision}
    return get_settings(llm_config, llm=overrides).llm


def pick_series(rows: list[Any], wanted: list[str], where: str) -> list[Any]:
    """The ``(dataset, path, fold)`` rows named ``dataset/name`` in ``wanted`` (all rows when empty)."""
    if not wanted:
        return rows
    known = {f"{ds}/{p.stem}": (ds, p, f) for ds, p, f in rows}
    missing = [w for w in wanted if w not in known]
    if missing:
        raise ConfigError(f"no series {missing} in {where}; known: {', '.join(sorted(known))}")
    return [known[w] for w in wanted]


def data_root(data: Path | None) -> Path:
    from anomalygraph.core.settings import get_settings

    root = (data or get_settings().data.benchmark_root).resolve()
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist; pass --data or set ANOMALYGRAPH_DATA_ROOTS (its first folder)")
    return root


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _start_model(settings: Any, console: Console) -> Any:
    from anomalygraph.llm.factory import get_chat_model

    with console.status("[dim]starting the model…[/]"):
        return get_chat_model(settings)


def _progress(console: Console) -> Any:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), console=console)


@app.command("analyst")
def analyst_cmd(
    subset: Annotated[str, typer.Option("--subset", help="ci (the small CI set) or all.")] = "all",
    split: Annotated[str | None, typer.Option("--split", help="validate (default), tune or all: the questions' fixed split, by series; with --subset ci the default is all.")] = None,
    question: Annotated[list[str] | None, typer.Option("--question", "-q", help="Run only this question id (repeatable), whatever its split.")] = None,
    data: DataOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for results.json, table.md, table.csv.")] = None,
    max_steps: Annotated[int, typer.Option("--max-steps", min=1, max=20, help="Tool calls allowed per question.")] = 6,
    tools_per_turn: Annotated[int | None, typer.Option("--tools-per-turn", min=1, max=20, help="Successful tool calls before answering (default: 1 in guided mode, else no limit).")] = None,
    planner: Annotated[str, typer.Option("--planner", help="Guided mode: kinds (name the question's kind, run the tools for it) or steps (the model picks each tool).")] = "kinds",
    strategy: Annotated[str, typer.Option("--strategy", help="auto (native tool choice when the model can choose tools), native or guided.")] = "auto",
    provider: ProviderOpt = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    llm_config: LlmConfigOpt = None,
) -> None:
    """Ask the analyst agent fixed questions about the real data and score its answers and tool calls.

    Report on the validate split; tune prompts and tools on the tune split (--split tune).

    Example: anomalygraph eval analyst --subset ci
    or, with a served model: anomalygraph eval analyst --provider vllm --base-url http://gpu:8000/v1 --model qwen3-vl
    """
    from anomalygraph.core.settings import get_settings
    from anomalygraph.evals.agents import analyst_eval as ev

    if subset not in ("ci", "all"):
        raise ConfigError(f"--subset must be ci or all, got {subset!r}")
    if split is not None and split not in ("validate", "tune", "all"):
        raise ConfigError(f"--split must be validate, tune or all, got {split!r}")
    if strategy not in ("auto", "native", "guided"):
        raise ConfigError(f"--strategy must be auto, native or guided, got {strategy!r}")
    chosen = split or ("all" if subset == "ci" else "validate")
    root = data_root(data)
    questions = ev.load_questions(subset=subset, split=chosen, ids=question)  # type: ignore[arg-type]
    if not questions:
        raise ConfigError(f"no question is in both subset {subset} and split {chosen}")
    settings = model_settings(provider, base_url, model, llm_config)
    console = Console(stderr=True)
    chat_model = _start_model(settings, console)
    name = _slug(str(getattr(chat_model, "model_name", settings.provider.value)))
    label = subset if not question else "selected"
    split_label = chosen if not question else "selected"
    folder = "selected" if question else "ci" if subset == "ci" and split is None else f"{subset}-{chosen}"
    out_dir = out or get_settings().output.dir / "evals" / "analyst" / f"{name}-{folder}"
    with _progress(console) as progress:
        task = progress.add_task("analyst eval", total=len(questions))

        def done(result: ev.QuestionResult) -> None:
            progress.console.print(f"{result.id}: {'correct' if result.correct else 'wrong'} · {result.seconds:.0f} s")
            progress.advance(task)

        report = ev.run_eval(chat_model, root, questions, max_steps=max_steps, tools_per_turn=tools_per_turn, planner=planner, strategy=strategy,
                             out_dir=out_dir, subset=label, split=split_label, on_result=done)
    paths = ev.write_report(report, out_dir)
    Console().print(Markdown(ev.markdown_table(report)))
    Console().print(f"wrote {paths['markdown']}, {paths['csv']}, {paths['json']}")


@app.command("diagnosis")
def selection_cmd(
    fold: Annotated[str, typer.Option("--fold", help="validate, tune or all (both; validate is the headline).")] = "all",
    subset: Annotated[str, typer.Option("--subset", help="ci (nab/nyc_taxi and smap_msl/C-1) or all (every series of the folds).")] = "all",
    series: Annotated[list[str] | None, typer.Option("--series", "-s", help="Only this series, as dataset/name (repeatable), e.g. smap_msl/E-2.")] = None,
    detectors: Annotated[str | None, typer.Option("--detectors", help="Comma-separated detectors (default: every shipped CPU detector).")] = None,
    selection: Annotated[str | None, typer.Option("--selection", help="Comma-separated strategies to compare (default: all measured ones): fixed:<candidate>, best_on_tune, fusion, fusion@channels, surrogate, surrogate_top3, llm (the model picks, seeing the surrogate metrics; needs a model).")] = None,
    data: DataOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for diagnosis_eval.md/.json and the per-series track cache.")] = None,
    provider: ProviderOpt = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    llm_config: LlmConfigOpt = None,
) -> None:
    """Compare detector-selection strategies on the fixed tune / validate folds of the real data (no LLM).

    Every strategy picks a score track without labels; the table puts each beside the best
    fixed candidate in hindsight and the per-series oracle (VUS-PR, AUC-PR, range F1, event F1).
    Tracks are cached under --out, so a rerun only computes what changed.

    Example: anomalygraph eval diagnosis --fold validate
    """
    from anomalygraph.core.settings import get_settings
    from anomalygraph.detectors import detector_names
    from anomalygraph.detectors.candidates import pool_detectors
    from anomalygraph.detectors.selection import STRATEGIES, check_strategy
    from anomalygraph.evals import selection as ev
    from anomalygraph.evals.agents.diagnosis import CI_SERIES
    from anomalygraph.evals.folds import FOLDS, fold_series

    if fold not in ("validate", "tune", "all"):
        raise ConfigError(f"--fold must be validate, tune or all, got {fold!r}")
    if subset not in ("ci", "all"):
        raise ConfigError(f"--subset must be ci or all, got {subset!r}")
    pool = pool_detectors()
    chosen_detectors = [d.strip() for d in detectors.split(",") if d.strip()] if detectors else pool
    unknown = [d for d in chosen_detectors if d not in detector_names()]
    if unknown or not chosen_detectors:
        raise ConfigError(f"--detectors: unknown {unknown or 'empty list'}; registered: {', '.join(detector_names())}")
    strategies = [check_strategy(s.strip()) for s in selection.split(",") if s.strip()] if selection else list(STRATEGIES)
    root = data_root(data)
    rows = fold_series(root, FOLDS if fold == "all" else (fold,))  # type: ignore[arg-type]
    rows = pick_series(rows, list(series or (CI_SERIES if subset == "ci" else ())), f"fold(s) {fold}")
    label = "selected" if series else subset
    out_dir = out or get_settings().output.dir / "evals" / "diagnosis" / f"selection-{fold}-{label}"
    console = Console(stderr=True)
    chat_model = _start_model(model_settings(provider, base_url, model, llm_config), console) if "llm" in strategies else None
    with _progress(console) as progress:
        task = progress.add_task("selection eval", total=len(rows))

        def done(row: ev.SeriesResult) -> None:
            got = " · ".join(f"{s} {r.scores.vus_pr:.3f}" for s, r in row.strategies.items()) if row.status == "ok" else row.status
            progress.console.print(f"[{row.fold}] {row.dataset}/{row.series}: {got}", highlight=False, markup=False)
            progress.advance(task)

        report = ev.run_selection_eval(rows, out_dir, detectors=chosen_detectors, strategies=strategies, on_row=done,
                                       model=chat_model)
    text = ev.markdown_table(report)
    Console().print(Markdown(text.split("## Per series")[0]))
    Console().print(f"wrote {out_dir / 'diagnosis_eval.md'} and {out_dir / 'diagnosis_eval.json'}")


F2A_CI = ("smap_msl/C-1", "nab/ambient_temperature_system_failure")
SAMPLE_EVERY = 4  # --subset sample: every 4th series of the fold, in its listed order


def f2a_variants(text: str | None) -> list[str]:
    """``--variants``: ``;``-separated names (they hold commas), or the preset ``ablation`` or ``sensitivity``."""
    from anomalygraph.evals import f2a as ev

    presets = {"ablation": list(ev.VARIANTS), "sensitivity": list(ev.SENSITIVITY)}
    chosen: list[str] = []
    for name in (v.strip() for v in (text or "ablation").split(";")):
        if name:
            chosen += presets.get(name, [name])
    unknown = [v for v in chosen if v not in ev.ALL_VARIANTS]
    if unknown:
        raise ConfigError(f"--variants: unknown {unknown}; known: ablation, sensitivity, {'; '.join(ev.ALL_VARIANTS)}")
    return list(dict.fromkeys(chosen))


@app.command("f2a")
def f2a_cmd(
    series: Annotated[list[str] | None, typer.Option("--series", "-s", help="Only this series of the fold, as dataset/name (repeatable).")] = None,
    subset: Annotated[str, typer.Option("--subset", help="ci (one SMAP/MSL channel and one NAB series), sample (every 4th series of the fold) or all (every NAB and SMAP/MSL series of the fold).")] = "ci",
    fold: Annotated[str, typer.Option("--fold", help="validate (held out: the figures to report) or tune (where settings are chosen).")] = "validate",
    protocol: Annotated[str, typer.Option("--protocol", help="paper (fit on the first 30% of the test split with its real labels, measure the last 70%) or pseudo (no real label: rule-bank pseudo-labels in the training split).")] = "paper",
    variants: Annotated[str | None, typer.Option("--variants", help="F2A variants separated by ';', or a preset: ablation (default) or sensitivity (focal gamma x alpha); see evals/f2a.py.")] = None,
    detectors: Annotated[str | None, typer.Option("--detectors", help="Comma-separated detection baselines (default: iforest,sub_pca,anomaly_transformer; 'none' for none).")] = None,
    weights: Annotated[Path | None, typer.Option("--weights", help="F2A or official TTM weights folder (default: the shipped ones).")] = None,
    horizon: Annotated[int, typer.Option("--horizon", min=1, max=720, help="Steps ahead to predict.")] = 16,
    data: DataOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for f2a_eval.md/.json.")] = None,
) -> None:
    """F2A ablations on held-out (validate) series: RAG k, loss terms, zero-shot, the TTM baseline and detectors.

    Prediction VUS-PR (labels shifted by the horizon) and detection VUS-PR, with seconds per fit and score.

    Example: anomalygraph eval f2a --subset ci --detectors iforest
    Sensitivity (on tune): anomalygraph eval f2a --fold tune --subset sample --variants sensitivity --detectors none
    """
    from anomalygraph.core.settings import get_settings
    from anomalygraph.detectors import detector_names
    from anomalygraph.evals import f2a as ev
    from anomalygraph.evals.folds import fold_series

    if subset not in ("ci", "sample", "all"):
        raise ConfigError(f"--subset must be ci, sample or all, got {subset!r}")
    if fold not in ("tune", "validate"):
        raise ConfigError(f"--fold must be tune or validate, got {fold!r}")
    if protocol not in ev.PROTOCOLS:
        raise ConfigError(f"--protocol must be one of {', '.join(ev.PROTOCOLS)}, got {protocol!r}")
    chosen = f2a_variants(variants)
    baselines = [] if detectors == "none" else ([d.strip() for d in detectors.split(",") if d.strip()] if detectors else list(ev.DETECTORS))
    bad = [d for d in baselines if d not in detector_names()]
    if bad:
        raise ConfigError(f"--detectors: unknown {bad}; registered: {', '.join(detector_names())}")
    if weights is not None and not weights.is_dir():
        raise ConfigError(f"--weights {weights}: no such folder")
    rows = fold_series(data_root(data), (fold,), ("smap_msl", "nab"))  # type: ignore[arg-type]
    if series:
        rows = pick_series(rows, list(series), f"the {fold} fold")
    elif subset == "ci":
        if fold != "validate":
            raise ConfigError("--subset ci names validate series; on tune use --subset sample or all")
        rows = pick_series(rows, list(F2A_CI), "the validate fold")
    elif subset == "sample":
        rows = rows[::SAMPLE_EVERY]
    out_dir = out or get_settings().output.dir / "evals" / "f2a" / f"{fold}-{protocol}-{'selected' if series else subset}"
    console = Console(stderr=True)
    with _progress(console) as progress:
        task = progress.add_task("f2a eval", total=len(rows))

        def method(name: str, result: ev.MethodResult) -> None:
            if result.prediction_vus_pr is None or result.detection_vus_pr is None:
                progress.console.print(f"  {name}: {result.note}", highlight=False, markup=False)
                return
            progress.console.print(f"  {name}: prediction {result.prediction_vus_pr:.3f}, detection "
                                   f"{result.detection_vus_pr:.3f} (fit {result.fit_seconds:.0f} s, score "
                                   f"{result.score_seconds:.0f} s)", highlight=False, markup=False)

        def done(row: ev.SeriesF2A) -> None:
            progress.console.print(f"{row.dataset}/{row.series}: {row.status}", highlight=False, markup=False)
            progress.advance(task)

        report = ev.run_f2a_eval(rows, out_dir, variants=chosen, detectors=baselines, weights=weights, horizon=horizon,
                                 protocol=protocol, on_row=done, on_method=method)  # type: ignore[arg-type]
    Console().print(Markdown(ev.markdown(report).split("## Per series")[0]))
    Console().print(f"wrote {out_dir / 'f2a_eval.md'} and {out_dir / 'f2a_eval.json'}")


@app.command("meta-selection")
def meta_selection_cmd(
    result: Annotated[Path, typer.Argument(help="diagnosis_eval.json written by `anomalygraph eval diagnosis --fold all`.")],
    data: DataOpt = None,
) -> None:
    """Learn selection from the tune rows of a finished selection eval; measure it on validate.

    Regressors from surrogate metrics to VUS-PR are compared by leave-one-group-out
    cross-validation on tune; each is then refitted on tune and measured once on validate.
    Nothing is recomputed: the eval's own rows are the data.

    Example: anomalygraph eval meta-selection out/evals/diagnosis/selection-all-all/diagnosis_eval.json
    """
    from anomalygraph.evals import meta_selection as meta
    from anomalygraph.evals.folds import fold_series, group_of
    from anomalygraph.evals.selection import SelectionEval

    if not result.is_file():
        raise ConfigError(f"{result}: no such file (run `anomalygraph eval diagnosis --fold all` first)")
    try:
        report = SelectionEval.model_validate_json(result.read_text())
    except ValueError as exc:
        raise ConfigError(f"{result}: not a diagnosis selection eval ({str(exc).splitlines()[0]})") from None
    if {r.fold for r in report.rows if r.status == "ok"} != {"tune", "validate"}:
        raise ConfigError(f"{result}: needs scored rows of both folds (run it with --fold all)")
    groups = {(ds, p.stem): f"{ds}:{group_of(ds, p)}" for ds, p, _ in fold_series(data_root(data))}
    outcome = meta.run_meta_eval(report, groups)
    text = meta.markdown(outcome)
    (result.parent / "meta_selection.md").write_text(text)
    Console().print(Markdown(text))
    Console().print(f"wrote {result.parent / 'meta_selection.md'}")


@app.command("diagnosis-graph")
def diagnosis_cmd(
    subset: Annotated[str, typer.Option("--subset", help="ci (nab/nyc_taxi and smap_msl/C-1) or all (every NAB and SMAP/MSL series).")] = "all",
    series: Annotated[list[str] | None, typer.Option("--series", "-s", help="Only this series, as dataset/name (repeatable), e.g. nab/ec2_cpu_utilization_24ae8d.")] = None,
    data: DataOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for diagnosis_eval.md/.json and one diagnosis run per series.")] = None,
    llm: Annotated[bool, typer.Option("--llm/--no-llm", help="Let the model choose detectors and explain (--no-llm: the rule-based plan).")] = True,
    provider: ProviderOpt = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    llm_config: LlmConfigOpt = None,
) -> None:
    """Run the whole diagnosis graph on labelled real series; compare its verdict with the best single detector.

    Example: anomalygraph eval diagnosis-graph --subset ci
    or: anomalygraph eval diagnosis-graph --provider vllm --base-url http://gpu:8000/v1 --model qwen3-vl
    """

    from anomalygraph.core.settings import get_settings
    from anomalygraph.evals.agents import diagnosis as ev
    from anomalygraph.graphs.diagnosis import DiagnosisContext

    root = data_root(data)
    chosen = ev.select_series(root, subset, series)
    console = Console(stderr=True)
    chat_model, name = None, "none (rule-based plan, statistical explanations)"
    if llm:
        chat_model = _start_model(model_settings(provider, base_url, model, llm_config), console)
        from anomalygraph.llm.factory import model_name

        name = model_name(chat_model)
    label = "selected" if series else subset
    out_dir = out or get_settings().output.dir / "evals" / "diagnosis" / f"{_slug(name if llm else 'rules')}-{label}"
    context = DiagnosisContext(model=chat_model, data_roots=[str(root)])
    with _progress(console) as progress:
        task = progress.add_task("diagnosis eval", total=len(chosen))

        def done(row: ev.SeriesRow) -> None:
            got = f"fused VUS-PR {row.fused.vus_pr:.3f}, best single {row.best_single} {row.best.vus_pr:.3f}" if row.fused and row.best else row.status
            progress.console.print(f"{row.dataset}/{row.series}: {got}", highlight=False)
            progress.advance(task)

        report = ev.run_diagnosis_eval(chosen, out_dir, context, model=name, subset=label, on_row=done)
    Console().print(Markdown(ev.markdown_table(report, compact=True)))
    Console().print(f"wrote {out_dir / 'diagnosis_eval.md'} and {out_dir / 'diagnosis_eval.json'}")


@app.command("ape")
def ape_cmd(
    fold: Annotated[str, typer.Option("--fold", help="validate (held out: the figures to report) or tune (where APE's settings are chosen).")] = "validate",
    subset: Annotated[str, typer.Option("--subset", help="ci (one series per dataset), sample (every 4th SMAP/MSL channel, every UCR file and scenario) or all.")] = "sample",
    datasets: Annotated[str, typer.Option("--datasets", help="Comma-separated: ucr, smap_msl, timeanomalybench.")] = "ucr,smap_msl,timeanomalybench",
    series: Annotated[list[str] | None, typer.Option("--series", "-s", help="Only these series of the fold, as dataset/name (repeatable).")] = None,
    backbones: Annotated[str, typer.Option("--backbones", help="Comma-separated backbones: tranad, donut, timesnet, anomaly_transformer.")] = "tranad,donut,timesnet",
    variants: Annotated[str, typer.Option("--variants", help="Comma-separated: none, rec_only (the same steps with lambda 0: the control), cutaddpaste, ncad, mined.")] = "none,rec_only,cutaddpaste,ncad,mined",
    mined_bank: Annotated[list[str], typer.Option("--mined-bank", help="dataset=BANK_FILE: the mined bank for a dataset's series (repeatable).")] = [],  # noqa: B006
    bench_dir: Annotated[Path | None, typer.Option("--bench-dir", help="Folder of `eval rulebank` (its banks/<scenario>_mined.yaml are the scenarios' mined banks).")] = None,
    ape_settings: Annotated[list[str], typer.Option("--ape-set", help="Post-training setting key=value, e.g. --ape-set weight=1.")] = [],  # noqa: B006
    score_with: Annotated[str, typer.Option("--score-with", help="Comma-separated scoring modes for every model: backbone (its own score), latent (kNN distance of window embeddings), fused (both, robust-standardised).")] = "backbone",
    data: DataOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for rows.jsonl and ape_eval.md.")] = None,
) -> None:
    """APE before/after: every backbone fitted once per series, then post-trained with each pseudo-anomaly source.

    VUS-PR and AUC-PR on the rows after each training split; rows are written as they finish.

    Example: anomalygraph eval ape --subset ci --backbones tranad --variants none,cutaddpaste
    """
    from pydantic import ValidationError

    from anomalygraph.cli.common import parse_sets as _parse_sets
    from anomalygraph.core.settings import get_settings
    from anomalygraph.detectors.ape import APEConfig
    from anomalygraph.evals import ape as ev

    if fold not in ("tune", "validate"):
        raise ConfigError(f"--fold must be tune or validate, got {fold!r}")
    if subset not in ("ci", "sample", "all"):
        raise ConfigError(f"--subset must be ci, sample or all, got {subset!r}")
    names = [d.strip() for d in datasets.split(",") if d.strip()]
    bad = [d for d in names if d not in ev.DATASETS]
    if bad:
        raise ConfigError(f"--datasets: unknown {bad}; known: {', '.join(ev.DATASETS)}")
    chosen_backbones = [b.strip() for b in backbones.split(",") if b.strip()]
    bad = [b for b in chosen_backbones if b not in ev.BACKBONES]
    if bad:
        raise ConfigError(f"--backbones: unknown {bad}; known: {', '.join(ev.BACKBONES)}")
    chosen_variants = [v.strip() for v in variants.split(",") if v.strip()]
    modes = [m.strip() for m in score_with.split(",") if m.strip()]
    bad = [m for m in modes if m not in ev.SCORE_WITH]
    if bad or not modes:
        raise ConfigError(f"--score-with: unknown {bad}; known: {', '.join(ev.SCORE_WITH)}")
    mined: dict[str, str] = {}
    for item in mined_bank:
        key, sep, value = item.partition("=")
        if not sep or key not in ev.DATASETS or not Path(value).is_file():
            raise ConfigError(f"--mined-bank expects dataset=EXISTING_FILE with dataset one of {', '.join(ev.DATASETS)}; got {item!r}")
        mined[key] = value
    try:
        config = APEConfig(**_parse_sets(ape_settings))
    except ValidationError as exc:
        problems = validation_problems(exc)
        raise ConfigError(f"invalid --ape-set: {problems}") from exc
    items = ev.eval_series(data_root(data), fold, subset=subset, datasets=names, mined_banks=mined,  # type: ignore[arg-type]
                           bench_dir=bench_dir)
    if series:
        known = {f"{i.dataset}/{i.name}": i for i in items}
        missing = [s for s in series if s not in known]
        if missing:
            raise ConfigError(f"no series {missing} in the {fold} fold ({subset}); known: {', '.join(sorted(known))}")
        items = [known[s] for s in series]
    out_dir = out or get_settings().output.dir / "evals" / "ape" / f"{fold}-{subset}"
    console = Console(stderr=True)
    with _progress(console) as progress:
        task = progress.add_task("ape eval", total=len(items) * len(chosen_backbones) * len(chosen_variants) * len(modes))

        def row(r: ev.APERow) -> None:
            score = "" if r.vus_pr is None else f" VUS-PR {r.vus_pr:.3f}"
            progress.console.print(f"{r.dataset}/{r.series} {r.backbone} {r.variant} ({r.score_with}):{score} {r.status}",
                                   highlight=False, markup=False)
            progress.advance(task)

        rows = ev.run_ape_eval(items, out_dir, backbones=chosen_backbones, variants=chosen_variants, config=config, on_row=row,
                               score_with=modes)
    Console().print(Markdown(ev.markdown(rows).split("## Per series")[0]))
    Console().print(f"wrote {out_dir / 'ape_eval.md'} and {out_dir / 'rows.jsonl'}")


@app.command("rulebank")
def rulebank_cmd(
    subset: Annotated[str, typer.Option("--subset", help="ci (building_energy, at most 2 priors) or all (the scenarios of --split).")] = "all",
    split: Annotated[str, typer.Option("--split", help="validate (default), tune or all: TimeAnomalyBench's fixed split of its 12 scenarios; "
                                       "used unless --scenario is given or --subset is ci.")] = "validate",
    scenario: Annotated[list[str] | None, typer.Option("--scenario", "-s", help="Scenario (repeatable); default: those of --subset and --split.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the tables, banks, runs and generated data.")] = Path("out/evals/rulebank"),
    seed: Annotated[int, typer.Option(help="Scenario and sampling seed.")] = 0,
    max_steps: Annotated[int, typer.Option(help="Model-call budget per scenario.")] = 40,
    provider: ProviderOpt = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    llm_config: LlmConfigOpt = None,
    vision: Annotated[bool | None, typer.Option("--vision/--no-vision", help="Override the provider's vision capability.")] = None,
) -> None:
    """Mine a bank per TimeAnomalyBench scenario and score it, and the heuristic bank, against the hidden bank.

    Example: anomalygraph eval rulebank --scenario pump
    or: anomalygraph eval rulebank --split tune
    or: anomalygraph eval rulebank --provider vllm --base-url http://gpu:8000/v1 --model qwen3-vl
    """
    from anomalygraph.evals.agents.rulebank import (
        CI_MAX_PRIORS,
        choose_scenarios,
        markdown_table,
        run_rulebank_eval,
    )

    settings = model_settings(provider, base_url, model, llm_config, vision)
    chosen = choose_scenarios(subset, split, scenario)
    console = Console(stderr=True)
    report = run_rulebank_eval(chosen, out, llm_settings=settings, seed=seed, max_steps=max_steps,
                               max_priors=CI_MAX_PRIORS if subset == "ci" else 8,
                               on_progress=lambda m: console.print(m, highlight=False))
    Console().print(Markdown(markdown_table(report)))
    Console().print(f"wrote {out / 'rulebank_eval.md'} and {out / 'rulebank_eval.json'}")


@app.command("calm")
def calm_cmd(
    fold: Annotated[str, typer.Option("--fold", help="validate, tune or all: the fixed split of the real data (nothing is tuned here; the fold only names the series).")] = "validate",
    datasets: Annotated[str, typer.Option("--datasets", help="Comma-separated: nab, ucr, smap_msl (first channel), tsb_ad_u.")] = "nab,ucr",
    series: Annotated[list[str] | None, typer.Option("--series", "-s", help="Only these series, as dataset/name (repeatable).")] = None,
    every: Annotated[int, typer.Option("--every", min=1, help="Keep every k-th series of the fold.")] = 1,
    variants: Annotated[str, typer.Option("--variants", help="Comma-separated: static, rule, keep_all, llm, rule_n1, rule_n50, rule_e3, rule_noise, rule_e3_noise.")] = ",".join(("static", "rule", "keep_all", "rule_n1", "rule_n50", "rule_e3", "rule_noise", "rule_e3_noise")),
    settings: Annotated[list[str], typer.Option("--set", help="Stream setting key=value for every variant (k, neighbours, finetune_history ...).")] = [],  # noqa: B006
    agreement: Annotated[int, typer.Option("--agreement", min=0, help="Also judge this many flagged points under the three prompt paraphrases with the LLM (0: skip).")] = 0,
    data: DataOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for rows.jsonl, calm_eval.md and agreement.json.")] = None,
) -> None:
    """CALM on real series: static forecaster vs CALM with the rule, keep-all and LLM judges; N, epochs, noise.

    Example: anomalygraph eval calm --fold validate --datasets nab --every 4 --variants static,rule,keep_all
    """
    import tempfile

    from pydantic import ValidationError

    from anomalygraph.cli.common import parse_sets as _parse_sets
    from anomalygraph.core.settings import get_settings
    from anomalygraph.data.loaders import load_series as _load_series
    from anomalygraph.evals import calm as ev
    from anomalygraph.evals.folds import FOLDS, fold_series
    from anomalygraph.streaming.config import StreamConfig

    folds = FOLDS if fold == "all" else (fold,)
    if any(f not in FOLDS for f in folds):
        raise ConfigError(f"--fold must be tune, validate or all, got {fold!r}")
    names = [d.strip() for d in datasets.split(",") if d.strip()]
    chosen = [v.strip() for v in variants.split(",") if v.strip()]
    bad = [v for v in chosen if v not in ev.VARIANTS]
    if bad or not chosen:
        raise ConfigError(f"--variants: unknown {bad}; known: {', '.join(ev.VARIANTS)}")
    try:
        base = StreamConfig(**_parse_sets(settings))
    except ValidationError as exc:
        problems = validation_problems(exc)
        raise ConfigError(f"invalid --set: {problems}") from exc
    found = fold_series(data_root(data), folds, names)[::every]  # type: ignore[arg-type]
    items = [(ds, p.stem, p) for ds, p, _ in found]
    if series:
        known = {f"{ds}/{name}": (ds, name, p) for ds, name, p in items}
        missing = [s for s in series if s not in known]
        if missing:
            raise ConfigError(f"no series {missing} in fold {fold} ({', '.join(names)}); known: {', '.join(sorted(known)[:20])} ...")
        items = [known[s] for s in series]
    out_dir = out or get_settings().output.dir / "evals" / "calm" / fold
    console = Console(stderr=True)
    loaded = [(ds, name, _load_series(p)) for ds, name, p in items]
    with _progress(console) as progress:
        task = progress.add_task("calm eval", total=len(loaded) * len(chosen))

        def row(r: ev.CalmRow) -> None:
            roc = "" if r.roc_auc is None else f" ROC AUC {r.roc_auc:.3f} VUS-PR {r.vus_pr:.3f}"
            progress.console.print(f"{r.dataset}/{r.series} {r.variant}:{roc} flagged {r.flagged} KEEP {r.keep} "
                                   f"fine-tunes {r.finetunes} {r.status}", highlight=False, markup=False)
            progress.advance(task)

        rows = ev.run_calm_eval(loaded, out_dir, variants=chosen, base=base, on_row=row)
    text = ev.markdown(rows)
    if agreement:
        from anomalygraph.agents.judge import agreement_rate

        contexts = []
        per = max(1, agreement // max(1, len(loaded)))
        for _, name, s in loaded:
            config = base.model_copy(update={"warmup": ev.warmup_of(s), "batch_size": ev.NEVER})
            with tempfile.TemporaryDirectory() as tmp:
                scored, *_ = ev.run_variant(ev.univariate_points(s, name), config, ev.make_judge("rule"), Path(tmp))
            contexts += ev.flag_contexts([p for p in scored if p.score is not None], base.neighbours, per)
        report = agreement_rate(None, contexts[:agreement], max_workers=1)
        (out_dir / "agreement.json").write_text(report.model_dump_json(indent=2))
        agree = "–" if report.agreement is None else f"{report.agreement:.2f}"
        text += (f"\n**Paraphrase agreement** of the LLM judge: {agree} over {report.answered} of {report.n} flagged "
                 f"points answered under all of {', '.join(report.variants)}; KEEP per variant {report.per_variant_keep}; "
                 f"fallbacks {report.fallbacks}.\n")
        (out_dir / "calm_eval.md").write_text(text)
    Console().print(Markdown(text.split("## Per series")[0]))
    Console().print(f"wrote {out_dir / 'calm_eval.md'} and {out_dir / 'rows.jsonl'}")
