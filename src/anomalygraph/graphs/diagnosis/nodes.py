"""Nodes of the diagnosis graph: small functions that read the state and return partial updates.

Every LLM step has a rule-based fallback, so the graph finishes unattended when the model is
missing, slow or answers garbage; the report says which path was taken.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.messages import HumanMessage
from langgraph.runtime import Runtime
from langgraph.types import Send

from anomalygraph.core.errors import AnomalyGraphError
from anomalygraph.data.cache import cached_series
from anomalygraph.data.series import TimeSeries
from anomalygraph.detectors import affordable_detectors, detector_names, get_detector_class
from anomalygraph.detectors.fusion import (
    FusedInterval,
    FusionResult,
    fuse_scores,
    masks_from_intervals,
)
from anomalygraph.detectors.run import FitOn, run_detector
from anomalygraph.graphs.context import context_of
from anomalygraph.graphs.diagnosis.state import (
    DetectorPlan,
    DetectorRecord,
    DetectorTask,
    DiagnosisContext,
    DiagnosisState,
    Explanation,
    PlanRecord,
)
from anomalygraph.llm.grounding import invented_numbers
from anomalygraph.prompts import load_prompt
from anomalygraph.rulebank.names import WINDOW_SHAPES
from anomalygraph.tools.context import resolve_in_roots
from anomalygraph.tools.explain import WindowExplanation, explain_window
from anomalygraph.tools.profile import SeriesProfile, profile_series

PROMPT_PLAN = "diagnosis/choose_detectors"
PROMPT_EXPLAIN = "diagnosis/explain_interval"
PROMPT_DATA = "diagnosis/interval_data"
MAX_EXPLANATION_CHARS = 800


def series_of(path: str, ctx: DiagnosisContext) -> TimeSeries:
    return cached_series(resolve_in_roots(path, ctx.roots()))


# ------------------------------------------------------------------ profile
def profile(state: DiagnosisState, runtime: Runtime[DiagnosisContext]) -> dict[str, Any]:
    series = series_of(state["path"], context_of(runtime, DiagnosisContext))
    return {"profile": profile_series(series).model_dump(mode="json")}


# ------------------------------------------------------------------- choose
def rule_based_plan(prof: SeriesProfile, *, gpu: bool, limit: int) -> DetectorPlan:
    """What an experienced user would run first, from length, width and seasonality."""
    summary = prof.summary
    chosen = ["iforest", "sub_pca"]
    reasons = ["IForest and Sub-PCA are the strongest cheap baselines (TSB-AD)"]
    if summary.n_channels <= 8 and summary.length <= 100_000:
        chosen.append("matrix_profile")
        reasons.append("matrix profile suits few channels with recurring shapes")
    # robust_z is left out: on NAB and SMAP/MSL it is the weakest by VUS-PR (0.14 on NAB) and, fused
    # in, it pulled the mean fused VUS-PR of `eval diagnosis` from 0.436 down to 0.388.
    deep = [d for d in affordable_detectors(gpu) if get_detector_class(d).heavy]
    if gpu and deep and (summary.train_length or summary.length) >= 2000:
        chosen.append(deep[0])
        reasons.append(f"a GPU is present for {deep[0]}")
    return DetectorPlan(detectors=chosen[:limit], reason="; ".join(reasons) + ".")


def _detector_menu(names: list[str]) -> str:
    lines = []
    for name in names:
        cls = get_detector_class(name)
        lines.append(f"- {name}: {cls.summary}" + (f" (caution: {cls.caveat})" if cls.caveat else ""))
    return "\n".join(lines)


def _profile_text(prof: SeriesProfile) -> str:
    s = prof.summary
    lines = [f"{s.length} rows x {s.n_channels} channels; training split: {s.train_length or 'none'}; sampling: {s.sampling or 'row index'}"]
    for ch in prof.channels_profiled[:6]:
        lines.append(f"- {ch.name}: trend {ch.trend}, periods {ch.periods or 'none'}, {len(ch.change_points)} level changes")
    if prof.omitted_channels:
        lines.append(f"- ... and {prof.omitted_channels} less variable channels")
    return "\n".join(lines)


def choose_detectors(state: DiagnosisState, runtime: Runtime[DiagnosisContext]) -> dict[str, Any]:
    ctx = context_of(runtime, DiagnosisContext)
    known = set(detector_names())
    if state.get("requested"):
        unknown = [d for d in state["requested"] or [] if d not in known]
        if unknown:
            raise AnomalyGraphError(f"unknown detector(s) {unknown}; registered: {', '.join(sorted(known))}")
        plan = PlanRecord(detectors=list(dict.fromkeys(state["requested"] or [])), reason="chosen by the user", source="user")
        return {"plan": plan.model_dump(mode="json")}
    prof = SeriesProfile.model_validate(state["profile"])
    gpu = ctx.has_gpu()
    fallback = rule_based_plan(prof, gpu=gpu, limit=ctx.max_detectors)
    menu = affordable_detectors(gpu)
    note = None
    model = ctx.chat_model()
    if model is None:
        note = "no language model configured"
    else:
        from anomalygraph.llm.structured import structured

        prompt = load_prompt(PROMPT_PLAN).render(
            profile=_profile_text(prof), detectors=_detector_menu(menu), hardware="a GPU" if gpu else "CPU only"
        )
        try:
            answer = structured(model, DetectorPlan, prompt)
            picked = list(dict.fromkeys(d for d in answer.detectors if d in menu))[: ctx.max_detectors]
            dropped = [d for d in answer.detectors if d not in menu]
            if len(picked) >= 1:
                plan = PlanRecord(
                    detectors=picked, reason=answer.reason, source="llm",
                    note=f"ignored detector(s) {dropped}: unknown, or too slow without a GPU" if dropped else None,
                )
                return {"plan": plan.model_dump(mode="json")}
            note = f"the model named no usable detector ({answer.detectors})"
        except AnomalyGraphError as exc:
            note = f"the model's plan was unusable: {exc}"
    plan = PlanRecord(**fallback.model_dump(), source="rules", note=note)
    return {"plan": plan.model_dump(mode="json"), "notes": [f"detector choice fell back to rules: {note}"]}


def route_detectors(state: DiagnosisState) -> list[Send]:
    """Fan out: one branch per chosen detector, run in parallel."""
    return [
        Send("run_detector", DetectorTask(path=state["path"], out_dir=state["out_dir"], detector=name))
        for name in state["plan"]["detectors"]
    ]


# ---------------------------------------------------------------------- run
FUSED = "fused"


def scores_file(out_dir: str | Path, track: str) -> Path:
    """Where a run keeps one track's scores: a detector's name, or :data:`FUSED`."""
    return Path(out_dir) / "scores" / f"{track}.npy"


def run_one(task: DetectorTask, runtime: Runtime[DiagnosisContext]) -> dict[str, Any]:
    ctx = context_of(runtime, DiagnosisContext)
    series = series_of(task["path"], ctx)
    name = task["detector"]
    try:
        run = run_detector(series, name, config={"contamination": ctx.contamination}, fit_on=FitOn.train)
    except AnomalyGraphError as exc:
        record = DetectorRecord(detector=name, status="error", error=str(exc))
        return {"records": [record.model_dump(mode="json")], "notes": [f"{name} failed: {exc}"]}
    scores_path = scores_file(task["out_dir"], name)
    scores_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(scores_path, run.scores, allow_pickle=False)
    record = DetectorRecord(
        detector=name, status="ok", fitted_on=run.fitted_on, threshold=run.threshold, n_flagged=run.n_flagged,
        intervals=[(iv.start, iv.end) for iv in run.intervals], fit_seconds=run.fit_seconds,
        score_seconds=run.score_seconds, scores_path=str(scores_path),
    )
    return {"records": [record.model_dump(mode="json")]}


# --------------------------------------------------------------------- fuse
def _ok_records(state: DiagnosisState) -> list[DetectorRecord]:
    latest = {r["detector"]: DetectorRecord.model_validate(r) for r in state.get("records", [])}
    return [r for r in latest.values() if r.status == "ok"]


def fuse(state: DiagnosisState, runtime: Runtime[DiagnosisContext]) -> dict[str, Any]:
    ctx = context_of(runtime, DiagnosisContext)
    series = series_of(state["path"], ctx)
    records = _ok_records(state)
    if not records:
        return {"notes": ["no detector finished, so there is nothing to fuse"]}
    scores = {r.detector: np.load(r.scores_path, allow_pickle=False) for r in records if r.scores_path}
    masks = masks_from_intervals({r.detector: r.intervals for r in records}, series.length)
    fit_rows = slice(0, series.train_end) if series.train_end else slice(None)
    fused, result = fuse_scores(scores, masks, fit_rows=fit_rows, contamination=ctx.contamination)
    result, notes = demote_uncorroborated(result)
    fused_path = scores_file(state["out_dir"], FUSED)
    np.save(fused_path, fused, allow_pickle=False)
    return {"fusion": result.model_dump(mode="json"), "fused_path": str(fused_path), "notes": notes}


def demote_uncorroborated(result: FusionResult) -> tuple[FusionResult, list[str]]:
    """Intervals only caveated detectors flag go last, with a note: never trust such a detector alone."""
    caveats = {name: get_detector_class(name).caveat for name in result.detectors if get_detector_class(name).caveat}
    if not caveats:
        return result, []

    def alone(iv: FusedInterval) -> bool:
        return bool(iv.detectors) and set(iv.detectors) <= set(caveats)

    ordered = sorted(result.intervals, key=alone)  # stable: keeps agreement order within each group
    notes = [
        f"rows {iv.start}..{iv.end} are flagged only by {', '.join(iv.detectors)}, which "
        f"{'; '.join(caveats[d] for d in iv.detectors)}; listed after the corroborated intervals"
        for iv in ordered if alone(iv)
    ]
    return result.model_copy(update={"intervals": ordered}), notes[:5]


# ------------------------------------------------------------------ explain
def _statistics_text(expl: WindowExplanation) -> str:
    if not expl.deviating_channels:
        return expl.summary
    rows = [
        f"- {d.channel}: {d.morphology}, level {d.level_z:+.1f} sigma, peak {d.peak_z:.1f} sigma, spread x{d.spread_ratio:.1f}"
        for d in expl.deviating_channels
    ]
    return f"{expl.summary}.\n" + "\n".join(rows)


def explain(state: DiagnosisState, runtime: Runtime[DiagnosisContext]) -> dict[str, Any]:
    ctx = context_of(runtime, DiagnosisContext)
    if "fusion" not in state:
        return {"explanations": []}
    from anomalygraph.plots.detection import plot_detection

    series = series_of(state["path"], ctx)
    fusion = FusionResult.model_validate(state["fusion"])
    fused = np.load(state["fused_path"], allow_pickle=False)
    out = Path(state["out_dir"])
    explanations, notes = [], []
    for k, iv in enumerate(fusion.intervals[: ctx.max_explanations]):
        expl = explain_window(series, iv.start, iv.end)
        stats = _statistics_text(expl)
        pad = max(3 * (iv.end - iv.start + 1), 50)
        window = (max(0, iv.start - pad), min(series.length, iv.end + 1 + pad))
        plot_path = plot_detection(
            series, {"fused": fused}, path=out / f"interval_{k + 1}.png", window=window,
            thresholds={"fused": fusion.threshold.value}, title=f"{series.name}: interval {k + 1}",
        )
        text, source = _ask_model(ctx, series, iv, expl, stats, plot_path, window, notes)
        explanations.append(
            Explanation(interval=iv, start_time=expl.start_time, end_time=expl.end_time, statistics=stats,
                        text=text, source=source, plot_path=str(plot_path)).model_dump(mode="json")
        )
    return {"explanations": explanations, "notes": notes}


def _ask_model(ctx: DiagnosisContext, series: TimeSeries, iv: Any, expl: WindowExplanation, stats: str,
               plot_path: Path, window: tuple[int, int], notes: list[str]) -> tuple[str, str]:
    fallback = f"{stats.splitlines()[0]}" if stats else expl.summary
    model = ctx.chat_model()
    if model is None:
        return fallback, "statistics"
    from anomalygraph.llm.factory import capabilities_or_text_only
    from anomalygraph.llm.messages import plot_message, text_of

    caps = capabilities_or_text_only(model)
    prompt = load_prompt(PROMPT_EXPLAIN).render(
        series=series.name, channels=", ".join(series.channels[:20]), start=expl.start_time or f"row {iv.start}", end=expl.end_time or f"row {iv.end}",
        start_row=iv.start, end_row=iv.end, detectors=", ".join(iv.detectors) or "none on their own",
        agreement=iv.agreement, peak=iv.peak_score, statistics=stats,
    )
    view = series.slice(*window)
    local = [(iv.start - window[0], iv.end - window[0])]
    try:
        # The data first, the question last: small models answer the last thing they read.
        data = plot_message(load_prompt(PROMPT_DATA).render(series=series.name, first=window[0], last=window[1] - 1),
                            capabilities=caps, image=plot_path, series=view, intervals=local)
        reply = model.invoke([data, HumanMessage(content=prompt)])
    except AnomalyGraphError as exc:  # the client turns transport failures into LLMError
        notes.append(f"explanation of rows {iv.start}..{iv.end} fell back to statistics: {exc}")
        return fallback, "statistics"
    text = text_of(reply)
    text = _first_sentences(" ".join(text.split()).replace("**", ""), 3)
    problem = explanation_problem(text, f"{text_of(data)}\n{prompt}")
    if problem:
        notes.append(f"explanation of rows {iv.start}..{iv.end} fell back to statistics: {problem}")
        return fallback, "statistics"
    return text[:MAX_EXPLANATION_CHARS], "llm"


def explanation_problem(text: str, prompt: str = "") -> str | None:
    """Why a model's explanation is unusable, or None.

    Empty; a list of every shape instead of the measured one (the embedded 0.5B model answered
    "The shape is spike, dip, level shift, drift, variance burst, flatline" for a level shift);
    or numbers that are nowhere in the statistics it was given ("moved from 1 to 2, ... [0.4e+04,
    7643]"), which the prompt forbids.
    """
    if len(text) < 10:
        return "the model's answer was empty"
    low = text.lower()
    named = {s.replace("_", " ") for s in WINDOW_SHAPES if s in low or s.replace("_", " ") in low}
    if len(named) >= 4:
        return f"the model's answer listed {len(named)} shapes instead of describing the measured one"
    if prompt:
        invented = invented_numbers(text, prompt)
        if invented:
            return f"the model's answer has numbers that are not in the statistics ({', '.join(invented[:5])})"
    return None


def _first_sentences(text: str, n: int) -> str:
    """Small models run on; the prompt asks for three sentences and this holds them to it."""
    parts = re.split(r"(?<=[.!?])\s+", text)
    return " ".join(parts[:n])


# ------------------------------------------------------------------- report
def report(state: DiagnosisState, runtime: Runtime[DiagnosisContext]) -> dict[str, Any]:
    from anomalygraph.graphs.diagnosis.report import write_report

    ctx = context_of(runtime, DiagnosisContext)
    verdict = write_report(state, series_of(state["path"], ctx), ctx)
    return {"verdict": json.loads(verdict.model_dump_json())}
