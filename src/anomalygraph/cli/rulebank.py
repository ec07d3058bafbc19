"""``anomalygraph rulebank``: list, show, validate, diff, sample, generate and score rule banks; export their schema.

Bad input raises ``ConfigError``/``DataError``; the main CLI prints it on one line and exits 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from anomalygraph.core.errors import ConfigError

app = typer.Typer(
    help="Rule banks: anomaly priors compiled into validated pseudo-anomaly rules.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

BankArg = Annotated[str, typer.Argument(help="A bank file (YAML/JSON) or a built-in bank name (see `rulebank list`).", show_default=False)]


def _pct(weight: float, total: float) -> str:
    return f"{100 * weight / total:.0f}%"


@app.command("list")
def list_cmd() -> None:
    """Built-in banks and what they hold.

    Example: anomalygraph rulebank list
    """
    from anomalygraph.rulebank.store import builtin_banks, load_bank

    table = Table(title="Built-in rule banks")
    for col in ("name", "version", "rules", "operators", "made by"):
        table.add_column(col)
    for name in builtin_banks():
        bank = load_bank(name)
        ops = sorted({r.operator for r in bank.rules})
        table.add_row(name, bank.version, str(len(bank.rules)), ", ".join(ops), bank.origin.made_by)
    out.print(table)


@app.command("show")
def show_cmd(
    bank: BankArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole bank as JSON.")] = False,
) -> None:
    """The bank's provenance and its rules: operator, parameters, duration, placement, weight.

    Example: anomalygraph rulebank show cutaddpaste
    """
    from anomalygraph.rulebank.store import dump_bank, load_bank

    loaded = load_bank(bank)
    if as_json:
        out.print_json(dump_bank(loaded, "json"))
        return
    origin = loaded.origin
    out.print(f"[bold]{loaded.name}[/] {loaded.version}  ({len(loaded.rules)} rules, made by {origin.made_by}"
              + (f", model {origin.model}" if origin.model else "")
              + (f", prompt {origin.prompt_version}" if origin.prompt_version else "")
              + (f", {origin.created_at:%Y-%m-%d %H:%M}" if origin.created_at else "") + ")", highlight=False)
    if loaded.description:
        out.print(loaded.description, highlight=False)
    total = sum(r.weight for r in loaded.rules)
    table = Table(show_lines=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("weight", justify="right")
    table.add_column("parameters")
    table.add_column("duration · where · channels")
    for r in loaded.rules:
        kind = r.operator if r.morphology == r.operator else f"{r.operator} ({r.morphology})"
        params = "\n".join(f"{k}={v.describe()}" for k, v in r.params.items())
        where = r.where.location
        if r.where.phase:
            where += f" {r.where.phase[0]:g}-{r.where.phase[1]:g}"
        if r.where.regime != "any":
            where += f", {r.where.regime} ({r.where.regime_share:g})"
        table.add_row(f"[bold]{r.id}[/]\n{kind}", _pct(r.weight, total), params,
                      f"{r.duration.describe()}\n{where}\nchannels: {r.channels.describe()}")
    out.print(table)
    if loaded.report is not None:
        state = "ok" if loaded.report.ok else "PROBLEMS"
        out.print(f"last validated {loaded.report.checked_at:%Y-%m-%d %H:%M} ({state})")


@app.command("validate")
def validate_cmd(
    bank: BankArg,
    window: Annotated[int, typer.Option(help="Probe window length.")] = 100,
    write: Annotated[bool, typer.Option("--write", help="Store the report in the bank file.")] = False,
) -> None:
    """Check a bank: the schema and bounds on load, then every rule run on seeded probe windows.

    Fails (exit 2) on schema errors or rules that break; warns about rules whose anomalies barely show.
    Example: anomalygraph rulebank validate my_bank.yaml
    """
    from anomalygraph.rulebank.checks import check_bank
    from anomalygraph.rulebank.store import load_bank, save_bank

    loaded = load_bank(bank)
    report = check_bank(loaded, window=window)
    table = Table(title=f"{loaded.name} {loaded.version}: {len(loaded.rules)} rules on probe windows of {window}")
    table.add_column("rule")
    table.add_column("median effect (local scales)", justify="right")
    table.add_column("finite")
    for check in report.rules:
        table.add_row(check.id, f"{check.effect:.2f}", "yes" if check.finite else "NO")
    out.print(table)
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if write:
        path = Path(bank)
        if not path.is_file():
            raise ConfigError(f"--write needs a bank file, not the built-in bank '{bank}'")
        save_bank(loaded.model_copy(update={"report": report}), path)
        out.print(f"wrote the report into {path}")
    if not report.ok:
        raise ConfigError(f"{bank}: {len(report.problems)} rule(s) failed: " + "; ".join(report.problems))
    out.print(f"[green]ok[/]: {len(loaded.rules)} rules valid, {len(report.warnings)} warning(s)")


@app.command("diff")
def diff_cmd(a: BankArg, b: BankArg) -> None:
    """Rules added, removed and changed (down to the field) from bank A to bank B.

    Example: anomalygraph rulebank diff cutaddpaste mined.yaml
    """
    from anomalygraph.rulebank.store import diff_banks, load_bank

    for line in diff_banks(load_bank(a), load_bank(b)).lines():
        out.print(line, highlight=False, markup=False)


@app.command("schema")
def schema_cmd(
    prior: Annotated[bool, typer.Option("--prior", help="The schema of anomaly priors instead of rule banks.")] = False,
) -> None:
    """JSON Schema that constrains an LLM writing a bank (each operator's parameter bounds built in).

    Example: anomalygraph rulebank schema > rulebank.schema.json
    """
    from anomalygraph.rulebank.schema import prior_json_schema, rule_bank_json_schema

    typer.echo(json.dumps(prior_json_schema() if prior else rule_bank_json_schema(), indent=2))


@app.command("sample")
def sample_cmd(
    bank: BankArg,
    file: Annotated[Path, typer.Argument(help="Series file (any format `data inspect` reads).", show_default=False)],
    n: Annotated[int, typer.Option("--n", help="Number of pseudo-anomalous windows.")] = 16,
    window: Annotated[int, typer.Option(help="Window length L.")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same windows.")] = 0,
    split: Annotated[str, typer.Option(help="train: draw from the file's training part (if it has one); all: every row.")] = "train",
    plot: Annotated[Path | None, typer.Option("--plot", help="PNG grid of normal vs pseudo-anomalous windows (up to 32 shown).")] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Save the batch as .npz (x_raw, x_pa, mask, channels, rule_index, starts, effect).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="File format: auto, csv, parquet, nab, telemanom, smd, ucr, tsbad.")] = "auto",
) -> None:
    """Draw pseudo-anomalous windows from a real series with a bank, and plot or save them.

    Example: anomalygraph rulebank sample cutaddpaste ../shared/data/SMAP_MSL/test/C-1.npy --n 16 --plot out.png
    """
    from anomalygraph.data.loaders import load_series
    from anomalygraph.plots.rulebank import plot_pseudo_anomalies
    from anomalygraph.rulebank.sampler import PAGSampler, PseudoAnomalyBatch
    from anomalygraph.rulebank.store import load_bank

    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    if split not in ("train", "all"):
        raise ConfigError(f"--split must be 'train' or 'all', got {split!r}")
    loaded = load_bank(bank)
    series = load_series(file, format=fmt)
    source = series.train() if split == "train" else series
    sampler = PAGSampler(loaded, source, window=window, seed=seed)
    chunk = 4096
    parts: list[PseudoAnomalyBatch] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err, transient=True, disable=n <= chunk) as progress:
        task = progress.add_task(f"sampling {loaded.name} on {source.name}", total=n)
        done = 0
        while done < n:
            size = min(chunk, n - done)
            parts.append(sampler.sample(size))
            done += size
            progress.update(task, completed=done)
    batch = parts[0] if len(parts) == 1 else _concat(parts)
    counts = np.bincount(batch.rule_index, minlength=len(loaded.rules))
    table = Table(title=f"{n} windows of {window} x {source.n_channels} from {source.name} ({len(sampler.starts)} normal candidates)")
    for col in ("rule", "windows", "median effect", "median length"):
        table.add_column(col, justify="right" if col != "rule" else "left")
    for i, rid in enumerate(loaded.rule_ids):
        rows = batch.rule_index == i
        if counts[i]:
            table.add_row(rid, str(counts[i]), f"{np.median(batch.effect[rows]):.2f}",
                          f"{np.median(batch.mask[rows].sum(axis=1)):.0f}")
    out.print(table)
    stats = sampler.stats
    out.print(f"redrawn for too small an effect: {stats.redrawn}; kept although small: {stats.ineffective}; "
              f"placement fallbacks: {stats.placement_fallbacks}", highlight=False)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(output, x_raw=batch.x_raw, x_pa=batch.x_pa, mask=batch.mask, channels=batch.channels,
                            rule_index=batch.rule_index, rule_ids=np.array(batch.rule_ids), starts=batch.starts,
                            effect=batch.effect)
        out.print(f"wrote {output}")
    if plot is not None:
        shown = _spread_rows(len(batch), 32)
        view = PseudoAnomalyBatch(batch.x_raw[shown], batch.x_pa[shown], batch.mask[shown], batch.channels[shown],
                                  batch.rule_index[shown], batch.rule_ids, batch.starts[shown], batch.effect[shown])
        plot_pseudo_anomalies(view, plot, channel_names=source.channels,
                              title=f"bank '{loaded.name}' on {source.name} (L={window}, seed {seed})")
        out.print(f"wrote {plot}")


def _spread_rows(n: int, limit: int) -> np.ndarray:
    """Up to ``limit`` row indices spread over the batch (rows are grouped by rule)."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def _concat(parts: list) -> object:
    from anomalygraph.rulebank.sampler import PseudoAnomalyBatch

    return PseudoAnomalyBatch(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("x_raw", "x_pa", "mask", "channels", "rule_index")),
        parts[0].rule_ids,
        np.concatenate([p.starts for p in parts]),
        np.concatenate([p.effect for p in parts]),
    )


# ------------------------------------------------------------------ generate
def _scenario_text(value: str) -> str:
    """The scenario: the file's text when ``value`` names an existing file, else ``value`` itself."""
    path = Path(value).expanduser()
    try:
        is_file = len(value) < 4096 and "\n" not in value and path.is_file()
    except OSError:
        is_file = False
    if is_file:
        text = path.read_text(encoding="utf-8")
    elif len(value) < 260 and path.suffix.lower() in {".md", ".txt", ".rst"}:
        raise ConfigError(f"--scenario: {value} looks like a file name but no such file exists")
    else:
        text = value
    if not text.strip():
        raise ConfigError("--scenario: the scenario text is empty")
    return text


def _rules_table(rules: list, title: str) -> Table:
    table = Table(title=title, show_lines=True)
    for col in ("rule", "shape", "channels", "duration", "critique"):
        table.add_column(col)
    for r in rules:
        critique = r.critique or ""
        if len(critique) > 140:
            critique = critique[:137] + "..."
        table.add_row(f"[bold]{r.id}[/]\n{r.fault}", r.morphology if r.morphology == r.operator else f"{r.morphology} ({r.operator})",
                      r.channels, r.duration, critique)
    return table


def _ask_decision(pending: object) -> object:
    from anomalygraph.graphs.rulebank_generation import ApprovalDecision

    answer = typer.prompt("Approve this bank? yes / no / drop RULE_ID[,RULE_ID...]", default="yes").strip()
    low = answer.lower()
    if low in {"y", "yes"}:
        return ApprovalDecision(action="approve")
    if low in {"n", "no"}:
        return ApprovalDecision(action="reject", note="rejected at the prompt")
    if low.startswith("drop"):
        ids = [x.strip() for x in answer[4:].replace(",", " ").split() if x.strip()]
        if not ids:
            raise ConfigError("drop needs at least one rule id")
        return ApprovalDecision(action="approve", drop=ids, note="left out at the prompt")
    raise ConfigError(f"answer {answer!r}: expected yes, no, or drop RULE_ID[,RULE_ID...]")


@app.command("generate")
def generate_cmd(
    scenario: Annotated[str, typer.Option("--scenario", help="Scenario text, or a file holding it (e.g. a TimeAnomalyBench domain.md).", show_default=False)],
    series: Annotated[Path, typer.Option("--series", help="Series file with normal data (any format `data inspect` reads).", show_default=False)],
    output: Annotated[Path, typer.Option("--out", help="Bank file to write (.yaml or .json).", show_default=False)],
    approve: Annotated[bool, typer.Option("--approve", help="Store the bank without asking for approval.")] = False,
    train_end: Annotated[int | None, typer.Option(help="Rows before this one are normal (default: the file's split, else all rows).")] = None,
    name: Annotated[str | None, typer.Option(help="Bank name (default: from the --out file name).")] = None,
    max_priors: Annotated[int, typer.Option(help="Most faults to write a prior for.")] = 8,
    max_attempts: Annotated[int, typer.Option(help="Proposals per prior when it fails to compile (the error goes back to the model).")] = 3,
    max_revisions: Annotated[int, typer.Option(help="Critique-driven revision rounds per rule.")] = 1,
    max_steps: Annotated[int, typer.Option(help="Budget of structured model calls for the whole run.")] = 40,
    critique: Annotated[bool, typer.Option("--critique/--no-critique", help="Review each rule's samples (--no-critique keeps every rule that compiles).")] = True,
    critic: Annotated[str, typer.Option("--critic", help="checks (measured: visible, plausible, distinct; no model call) or model (the model's keep/revise/reject).")] = "checks",
    form: Annotated[str, typer.Option(help="Prior form: compact (small models) or full (the whole AnomalyPrior schema).")] = "compact",
    seed: Annotated[int, typer.Option(help="Seed of the pseudo-anomaly samples.")] = 0,
    work_dir: Annotated[Path | None, typer.Option(help="Plots, run record and checkpoints (default: <out stem>_run/).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over instead of resuming an earlier run of the same inputs.")] = False,
    llm_config: Annotated[Path | None, typer.Option("--llm-config", help="LLM settings file (default: $ANOMALYGRAPH_LLM_CONFIG_FILE, else the embedded model).")] = None,
) -> None:
    """Mine a scenario rule bank with the configured LLM (Agentic-PAG): scenario text + normal series -> priors -> rules.

    The model lists the faults the text names; each fault's wording and the data's measurements leave a few candidate shapes; the model writes one prior per fault from them (invalid ones go back with the error); sampled pseudo-anomalies of each rule are checked (visible, plausible, distinct) and failing rules revised; you approve the bank (or pass --approve). Re-running the same command resumes an interrupted or pending run.

    Example: anomalygraph rulebank generate --scenario bench/pump/domain.md --series bench/pump/series.csv --train-end 7200 --out pump_mined.yaml --approve
    """
    import sys

    from anomalygraph.core.errors import AnomalyGraphError
    from anomalygraph.graphs.rulebank_generation import (
        GenerationContext,
        GenerationRequest,
        run_generation,
    )

    if form not in ("compact", "full"):
        raise ConfigError(f"--form must be 'compact' or 'full', got {form!r}")
    if critic not in ("checks", "model"):
        raise ConfigError(f"--critic must be 'checks' or 'model', got {critic!r}")
    for flag, value, low in (("--max-priors", max_priors, 1), ("--max-attempts", max_attempts, 1),
                             ("--max-revisions", max_revisions, 0), ("--max-steps", max_steps, 2)):
        if value < low:
            raise ConfigError(f"{flag} must be at least {low}, got {value}")
    if output.suffix.lower() not in {".yaml", ".yml", ".json"}:
        raise ConfigError(f"--out {output}: the bank file must end in .yaml, .yml or .json")
    if not series.is_file():
        raise ConfigError(f"--series {series}: file not found")
    if llm_config is not None:
        from anomalygraph.core.settings import get_settings

        get_settings(llm_config)  # a bad file fails here, before any work
    request = GenerationRequest(scenario=_scenario_text(scenario), series_path=str(series), out_path=str(output),
                                train_end=train_end, name=name, work_dir=str(work_dir) if work_dir else None)
    ctx = GenerationContext(auto_approve=approve, max_priors=max_priors, max_attempts=max_attempts,
                            max_revisions=max_revisions, max_steps=max_steps, critique=critique, seed=seed,
                            critic=critic, form=form, llm_config=str(llm_config) if llm_config else None,
                            data_roots=[str(p) for p in _data_roots(series)])

    def run(decision: object = None, resume: bool = True) -> object:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} model calls"),
                      TimeElapsedColumn(), console=err, transient=True) as progress:
            task = progress.add_task("preparing (the embedded model may take a moment to start)", total=max_steps)

            def update(node: str, data: dict) -> None:
                trace = (data.get("trace") or [{}])[-1]
                steps = data.get("steps")
                if steps is not None:
                    progress.update(task, completed=steps)
                detail = trace.get("detail") or ""
                progress.update(task, description=f"{node} done{': ' + detail if detail else ''} ({trace.get('seconds', 0):.1f} s)")
                err.print(f"[dim]{node}[/] {detail} [dim]({trace.get('seconds', 0):.1f} s)[/]", highlight=False)

            return run_generation(request, ctx, decision=decision, resume=resume, on_update=update)  # type: ignore[arg-type]

    outcome = run(resume=not fresh)
    while outcome.status == "awaiting_approval":  # type: ignore[attr-defined]
        pending = outcome.pending  # type: ignore[attr-defined]
        out.print(_rules_table(pending.rules, f"bank '{pending.bank}' awaits approval ({len(pending.rules)} rules)"))
        for plot in pending.plots:
            out.print(f"plot: {plot}", highlight=False)
        if not sys.stdin.isatty():
            out.print("the run is paused for approval; re-run this command in a terminal to answer, or with --approve to accept")
            return
        outcome = run(decision=_ask_decision(pending))
    result = outcome.result  # type: ignore[attr-defined]
    if outcome.resumed:  # type: ignore[attr-defined]
        err.print(f"[dim]resumed run {outcome.thread_id} (use --fresh to start over)[/]", highlight=False)  # type: ignore[attr-defined]
    for dropped in result.dropped:
        err.print(f"[yellow]dropped[/] {dropped.rule_id} ({dropped.stage}): {dropped.reason}", highlight=False, soft_wrap=True)
    for note in result.notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    if result.status == "rejected":
        out.print("bank rejected; nothing was written")
        return
    if result.status == "failed":
        raise AnomalyGraphError(f"no rule bank written: {result.notes[-1] if result.notes else 'no rule survived'}")
    out.print(_rules_table(result.rules, f"bank '{result.bank_name}': {len(result.rules)} rules from model {result.model}"))
    out.print(f"wrote {result.bank_path} ({result.model_steps} model calls, {result.seconds:.0f} s); "
              f"samples: {result.plots[-1]}; run record: {request.folder() / 'run.json'}", highlight=False)


# --------------------------------------------------------------------- score
@app.command("score")
def score_cmd(
    mined: BankArg,
    hidden: Annotated[str, typer.Argument(help="The reference bank (file or built-in name, e.g. scenario_pump).", show_default=False)],
    series: Annotated[Path | None, typer.Option("--series", help="Series the banks are for: gives the sampling step and channel names.")] = None,
    step_seconds: Annotated[float | None, typer.Option(help="Sampling step in seconds, to compare durations given in seconds and in steps.")] = None,
    window: Annotated[int, typer.Option(help="Window length, for durations given as a share of the window.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole score as JSON.")] = False,
) -> None:
    """Compare a bank with a reference bank: morphology precision/recall/F1, channel and duration agreement.

    Example: anomalygraph rulebank score pump_mined.yaml scenario_pump --step-seconds 60
    """
    from anomalygraph.rulebank.scoring import score_bank
    from anomalygraph.rulebank.store import load_bank

    channels = None
    if series is not None:
        from anomalygraph.data.loaders import load_series
        from anomalygraph.rulebank.sampler import step_seconds as series_step

        loaded = load_series(series)
        channels = loaded.channels
        step_seconds = step_seconds or series_step(loaded)
    result = score_bank(load_bank(mined), load_bank(hidden), step_seconds=step_seconds, window=window, channels=channels)
    if as_json:
        out.print_json(result.model_dump_json())
        return
    out.print(f"[bold]{result.mined}[/] ({result.mined_rules} rules) against [bold]{result.hidden}[/] ({result.hidden_rules} rules)")
    table = Table()
    for col in ("", "precision", "recall", "F1"):
        table.add_column(col, justify="right" if col else "left")
    table.add_row("morphology", f"{result.morphology_precision:.2f}", f"{result.morphology_recall:.2f}", f"{result.morphology_f1:.2f}")
    table.add_row("morphology, by weight", f"{result.weighted_precision:.2f}", f"{result.weighted_recall:.2f}", "")
    table.add_row("operator", f"{result.operator_precision:.2f}", f"{result.operator_recall:.2f}", "")
    out.print(table)
    out.print(f"found: {', '.join(result.found) or '-'}; spurious: {', '.join(result.spurious) or '-'}; "
              f"missed: {', '.join(result.missed) or '-'}", highlight=False)
    if result.matches:
        matches = Table(title="matched rules")
        for col in ("mined", "hidden", "morphology", "channel Jaccard", "duration overlap"):
            matches.add_column(col)
        for m in result.matches:
            matches.add_row(m.mined, m.hidden, m.morphology, "-" if m.channel_jaccard is None else f"{m.channel_jaccard:.2f}",
                            "-" if m.duration_overlap is None else f"{m.duration_overlap:.2f}")
        out.print(matches)


def _data_roots(series: Path) -> list[Path]:
    """The configured roots plus the folder of the series the user named on the command line."""
    from anomalygraph.core.settings import get_settings

    return [*get_settings().data.roots, series.resolve().parent]
