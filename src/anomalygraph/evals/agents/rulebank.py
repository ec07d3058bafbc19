"""Rule-bank generation scored on TimeAnomalyBench: mined banks against the scenarios' hidden banks.

For each scenario: generate it, run the rule-bank generation graph on its domain text and the
normal (training) rows, and score the stored bank against the hidden bank that injected the
test anomalies (morphology precision / recall / F1, weighted by sampling weight too, channel
and duration agreement of matched rules). The heuristic ``cutaddpaste`` bank is scored the same
way, as the scenario-agnostic baseline APE argues against. Writes ``rulebank_eval.md`` and
``rulebank_eval.json``; each row carries its scenario's fold of the fixed tune/validate split and
the table has mean rows per fold.

    anomalygraph eval rulebank --split validate --out out/evals/rulebank
    anomalygraph eval rulebank --scenario pump --out out/evals/rulebank
    anomalygraph eval rulebank --provider vllm --base-url http://gpu:8000/v1 --model qwen3-vl
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.core.errors import ConfigError
from anomalygraph.core.tables import md_row, table_lines
from anomalygraph.evals.agents.tables import write_eval

HEURISTIC_BANK = "cutaddpaste"
CI_SCENARIOS = ("building_energy",)  # the CI subset: one scenario, two priors (about 2 min on 2 cores)
CI_MAX_PRIORS = 2
HEURISTIC_WINDOW = 100  # cutaddpaste states durations as window shares; the sampler's default window
SPLIT_CHOICES = ("tune", "validate", "all")


def choose_scenarios(subset: str = "all", split: str = "validate", scenarios: Sequence[str] | None = None) -> list[str]:
    """The scenarios an eval runs: those named, else the CI set for ``subset='ci'``, else the fold ``split``.

    ``split`` is a fold of :data:`anomalygraph.rulebank.timeanomalybench.SPLITS` or ``all``; it is
    checked even when scenarios are named, so a typo never passes silently.
    """
    from anomalygraph.rulebank.timeanomalybench import scenario_names, scenarios_in

    if subset not in ("ci", "all"):
        raise ConfigError(f"--subset must be ci or all, got {subset!r}")
    if split not in SPLIT_CHOICES:
        raise ConfigError(f"--split must be tune, validate or all, got {split!r}")
    known = scenario_names()
    unknown = [s for s in scenarios or [] if s not in known]
    if unknown:
        raise ConfigError(f"unknown scenario(s) {unknown}; known: {', '.join(known)}")
    if scenarios:
        return list(scenarios)
    if subset == "ci":
        return list(CI_SCENARIOS)
    return scenarios_in(split)  # type: ignore[arg-type]


class EvalRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: str
    bank: Literal["mined", "heuristic"]
    bank_name: str
    split: Literal["tune", "validate"] | None = Field(None, description="the scenario's fold of TimeAnomalyBench's fixed split")
    status: str
    rules: int = 0
    morphology_precision: float | None = None
    morphology_recall: float | None = None
    morphology_f1: float | None = None
    weighted_precision: float | None = None
    weighted_recall: float | None = None
    channel_jaccard: float | None = None
    duration_overlap: float | None = None
    found: list[str] = Field(default_factory=list)
    missed: list[str] = Field(default_factory=list)
    spurious: list[str] = Field(default_factory=list)
    model_steps: int | None = None
    seconds: float | None = None
    bank_path: str | None = None
    note: str = ""


class RulebankEval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    seed: int
    created_at: datetime
    rows: list[EvalRow]


def _row(scenario: str, kind: Literal["mined", "heuristic"], bank: Any, hidden: Any, *, step_seconds: float,
         channels: list[str], **extra: Any) -> EvalRow:
    from anomalygraph.rulebank.scoring import score_bank
    from anomalygraph.rulebank.timeanomalybench import split_of

    s = score_bank(bank, hidden, step_seconds=step_seconds, window=HEURISTIC_WINDOW, channels=channels)
    return EvalRow(
        scenario=scenario, bank=kind, bank_name=bank.name, split=split_of(scenario), rules=len(bank.rules),
        morphology_precision=s.morphology_precision, morphology_recall=s.morphology_recall, morphology_f1=s.morphology_f1,
        weighted_precision=s.weighted_precision, weighted_recall=s.weighted_recall,
        channel_jaccard=s.channel_jaccard, duration_overlap=s.duration_overlap,
        found=s.found, missed=s.missed, spurious=s.spurious, **extra,
    )


def run_rulebank_eval(
    scenarios: Sequence[str],
    out_dir: str | Path,
    *,
    model: BaseChatModel | None = None,
    llm_settings: Any = None,
    seed: int = 0,
    length: int | None = None,
    max_steps: int = 40,
    max_priors: int = 8,
    on_progress: Callable[[str], None] | None = None,
) -> RulebankEval:
    """Run the graph on each scenario (auto-approved) and score mined and heuristic banks."""
    from anomalygraph.graphs.rulebank_generation import (
        GenerationContext,
        GenerationRequest,
        run_generation,
    )
    from anomalygraph.llm.factory import model_name
    from anomalygraph.rulebank.store import load_bank
    from anomalygraph.rulebank.timeanomalybench import generate, get_scenario, split_of, write_bench

    out = Path(out_dir)
    rows: list[EvalRow] = []
    if model is None and llm_settings is not None:
        from anomalygraph.llm.factory import get_chat_model

        cap = min(llm_settings.max_tokens, GenerationContext.max_answer_tokens)
        model = get_chat_model(llm_settings.model_copy(update={"max_tokens": cap}))
    ctx = GenerationContext(model=model if model is not None else "settings", auto_approve=True, max_steps=max_steps,
                            max_priors=max_priors, seed=seed, data_roots=[str(out)])
    used_model = "unknown"
    for name in scenarios:
        spec = get_scenario(name)
        bench = generate(name, seed=seed, length=length)
        folder = write_bench(bench, out / "bench")
        hidden = load_bank(spec.bank)
        channels = list(bench.series.channels)
        if on_progress:
            on_progress(f"{name}: mining a bank")
        request = GenerationRequest(
            scenario=(folder / "domain.md").read_text(encoding="utf-8"), series_path=str(folder / "series.csv"),
            train_end=bench.series.train_end, out_path=str(out / "banks" / f"{name}_mined.yaml"),
            work_dir=str(out / "runs" / name),
        )
        started = time.perf_counter()
        outcome = run_generation(request, ctx, resume=False)
        seconds = round(time.perf_counter() - started, 1)
        used_model = model_name(ctx.chat_model())
        result = outcome.result
        assert result is not None  # auto-approved runs always finish
        if result.status == "stored" and result.bank_path:
            rows.append(_row(name, "mined", load_bank(result.bank_path), hidden, step_seconds=spec.step_seconds,
                             channels=channels, status="stored", model_steps=result.model_steps, seconds=seconds,
                             bank_path=result.bank_path, note="; ".join(result.notes)[:500]))
        else:
            rows.append(EvalRow(scenario=name, bank="mined", bank_name=f"{name}_mined", split=split_of(name), status=result.status,
                                morphology_precision=0.0, morphology_recall=0.0, morphology_f1=0.0,
                                model_steps=result.model_steps, seconds=seconds, note="; ".join(result.notes)[:500]))
        rows.append(_row(name, "heuristic", load_bank(HEURISTIC_BANK), hidden, step_seconds=spec.step_seconds,
                         channels=channels, status="built-in"))
    report = RulebankEval(model=used_model, seed=seed, created_at=datetime.now(UTC).replace(microsecond=0), rows=rows)
    write_tables(report, out)
    return report


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


_MEAN_KEYS = ("morphology_precision", "morphology_recall", "morphology_f1", "weighted_precision", "weighted_recall",
              "channel_jaccard", "duration_overlap")


def _mean_cells(rows: list[EvalRow]) -> list[str]:
    cells = []
    for key in _MEAN_KEYS:
        vals = [v for v in (getattr(r, key) for r in rows) if v is not None]
        cells.append(_fmt(sum(vals) / len(vals) if vals else None))
    return cells


def markdown_table(report: RulebankEval) -> str:
    head = ["scenario", "bank", "split", "status", "rules", "morph. P", "morph. R", "morph. F1", "weighted P", "weighted R",
            "channel J", "duration overlap", "model calls", "seconds"]
    lines = [f"Rule-bank generation on TimeAnomalyBench (seed {report.seed}), model `{report.model}`, "
             f"scored against the hidden banks.", "", *table_lines(head)]
    for r in report.rows:
        lines.append(md_row([
            r.scenario, f"{r.bank} ({r.bank_name})", r.split or "-", r.status, r.rules, _fmt(r.morphology_precision),
            _fmt(r.morphology_recall), _fmt(r.morphology_f1), _fmt(r.weighted_precision), _fmt(r.weighted_recall),
            _fmt(r.channel_jaccard), _fmt(r.duration_overlap), r.model_steps if r.model_steps is not None else "-",
            r.seconds if r.seconds is not None else "-",
        ]))
    # means per fold (the validate fold is the one to report), then over every row when folds mix
    splits = sorted({r.split for r in report.rows if r.split is not None}, key=lambda s: s != "validate")
    for kind in ("mined", "heuristic"):
        rows = [r for r in report.rows if r.bank == kind]
        for split in splits:
            part = [r for r in rows if r.split == split]
            if len(part) > 1:
                lines.append(md_row([f"**mean ({split})**", kind, split, "", "", *_mean_cells(part), "", ""]))
        if len(rows) > 1 and (len(splits) != 1 or any(r.split is None for r in rows)):
            lines.append(md_row(["**mean**", kind, "all", "", "", *_mean_cells(rows), "", ""]))
    lines.append("")
    for r in report.rows:
        if r.bank == "mined":
            lines.append(f"- {r.scenario}: found {', '.join(r.found) or '-'}; missed {', '.join(r.missed) or '-'}; "
                         f"spurious {', '.join(r.spurious) or '-'}")
    return "\n".join(lines) + "\n"


def write_tables(report: RulebankEval, out_dir: Path) -> tuple[Path, Path]:
    return write_eval(report, markdown_table(report), Path(out_dir), "rulebank_eval")
