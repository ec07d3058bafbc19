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
from anomalygraph.core.intervals import scored_intervals
from anomalygraph.core.thresholds import percentile_threshold
from anomalygraph.data.cache import cached_series
from anomalygraph.data.channels import channel_roles, describe_roles, scored_channels
from anomalygraph.data.feedback import FeedbackMark, feedback_masks, file_sha256, mark_rows
from anomalygraph.data.periods import estimate_period
from anomalygraph.data.series import TimeSeries
from anomalygraph.detectors import affordable_detectors, detector_names, get_detector_class
from anomalygraph.detectors.candidates import (
    candidate_name,
    fit_slice,
    parse_candidate,
    pool_detectors,
    run_candidates,
)
from anomalygraph.detectors.fusion import agreeing
from anomalygraph.detectors.ranking import rank_intervals
from anomalygraph.detectors.run import FitOn, fit_rows
from anomalygraph.detectors.selection import (
    DEFAULT_STRATEGY,
    MODEL_STRATEGY,
    PLAN_DETECTORS,
    Selection,
    check_strategy,
    feedback_utility,
    fixed_candidate,
    marks_right,
    surrogate_table,
)
from anomalygraph.detectors.selection import (
    select as select_track,
)
from anomalygraph.graphs.context import context_of
from anomalygraph.graphs.diagnosis.state import (
    FEEDBACK_PREFIX,
    DetectorPlan,
    DetectorRecord,
    DetectorTask,
    DiagnosisContext,
    DiagnosisState,
    Explanation,
    PlanRecord,
    RankedFinding,
    SelectionRecord,
)
from anomalygraph.llm.grounding import invented_numbers
from anomalygraph.prompts import load_prompt
from anomalygraph.rulebank.injection import inject, load_injection, save_injection
from anomalygraph.rulebank.names import WINDOW_SHAPES
from anomalygraph.tools.context import resolve_in_roots
from anomalygraph.tools.explain import WindowExplanation, explain_window
from anomalygraph.tools.profile import SeriesProfile, profile_series

PROMPT_PLAN = "diagnosis/choose_detectors"
PROMPT_EXPLAIN = "diagnosis/explain_interval"
PROMPT_DATA = "diagnosis/interval_data"
MAX_EXPLANATION_CHARS = 800
MAX_CANDIDATES = 20


def series_of(path: str, ctx: DiagnosisContext) -> TimeSeries:
    return cached_series(resolve_in_roots(path, ctx.roots()))


# ------------------------------------------------------------------ profile
def profile(state: DiagnosisState, runtime: Runtime[DiagnosisContext]) -> dict[str, Any]:
    """Profile the series and plant the synthetic anomalies every detector branch will score (one copy for all)."""
    series = series_of(state["path"], context_of(runtime, DiagnosisContext))
    path = injection_file(state["out_dir"])
    save_injection(path, inject(series.unlabelled(), scored_channels(series), seed=0))
    return {"profile": profile_series(series).model_dump(mode="json"), "injection_path": str(path)}


# ------------------------------------------------------------------- choose
def needed_detectors(selection: str, gpu: bool) -> list[str]:
    """Detectors a selection strategy needs: its fixed candidate's, the planned three, or the whole CPU pool."""
    name = fixed_candidate(selection)
    if name is not None:
        return [parse_candidate(name)[0]]
    if selection.startswith("fusion"):
        return list(PLAN_DETECTORS)
    return pool_detectors(gpu)


def rule_based_plan(prof: SeriesProfile, *, gpu: bool, limit: int, selection: str = "best_on_tune") -> DetectorPlan:
    """What an experienced user would run first: the strong cheap baselines plus what the selection needs."""
    summary = prof.summary
    chosen = ["iforest", "sub_pca"]
    reasons = ["IForest and Sub-PCA are strong cheap baselines (TSB-AD)"]
    if summary.length <= 100_000:
        chosen.append("matrix_profile")
        reasons.append("matrix profile finds discords of recurring shapes")
    extra = [d for d in needed_detectors(selection, gpu) if d not in chosen]
    if extra:
        chosen += extra
        reasons.append(f"selection '{selection}' needs {', '.join(extra)}")
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
    check_strategy(ctx.selection)
    needed = needed_detectors(ctx.selection, gpu)
    fallback = rule_based_plan(prof, gpu=gpu, limit=max(ctx.max_detectors, len(needed)), selection=ctx.selection)
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
                # the selection strategy's detectors always run: the model adds to them, it cannot remove them
                added = [d for d in needed if d not in picked]
                notes = [f"ignored detector(s) {dropped}: unknown, or too slow without a GPU"] if dropped else []
                if added:
                    notes.append(f"added {', '.join(added)} for selection '{ctx.selection}'")
                plan = PlanRecord(detectors=picked + added, reason=answer.reason, source="llm",
                                  note="; ".join(notes) or None)
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
SELECTED = "selected"


def scores_file(out_dir: str | Path, track: str) -> Path:
    """Where a run keeps one track's scores: a detector's name, or :data:`SELECTED` (the track the verdict rests on)."""
    return Path(out_dir) / "scores" / f"{track}.npy"


def injection_file(out_dir: str | Path) -> Path:
    """Where a run keeps the planted copy of the fit rows that every detector branch scores."""
    return Path(out_dir) / "scores" / "injection.npz"


def run_one(task: DetectorTask, runtime: Runtime[DiagnosisContext]) -> dict[str, Any]:
    """One detector, every view: its candidate tracks and their scores on the planted rows, saved to one file."""
    ctx = context_of(runtime, DiagnosisContext)
    series = series_of(task["path"], ctx)
    name = task["detector"]
    injected = load_injection(injection_file(task["out_dir"]))
    config = {"contamination": ctx.contamination}
    try:
        run = run_candidates(series, name, injected.values if injected is not None else None, config=config)
    except AnomalyGraphError as exc:
        run = None
        error = str(exc)
    if run is None or name not in run.scores:
        error = error if run is None else run.errors.get(name, "no joint track")
        record = DetectorRecord(detector=name, status="error", error=error)
        return {"records": [record.model_dump(mode="json")], "notes": [f"{name} failed: {error}"]}
    out = Path(task["out_dir"]) / "scores"
    out.mkdir(parents=True, exist_ok=True)
    tracks_path = out / f"{name}.tracks.npz"
    arrays = {f"s::{n}": v for n, v in run.scores.items()} | {f"i::{n}": v for n, v in run.injected.items()}
    arrays |= {f"z::{n}": z for n, (_, z) in run.per_channel.items()}
    arrays |= {f"c::{n}": np.asarray(cols) for n, (cols, _) in run.per_channel.items()}
    arrays |= {f"a::{n}": np.asarray(original) for n, original in run.aliases.items()}
    np.savez(tracks_path, **arrays)
    joint = run.scores[name]
    scores_path = scores_file(task["out_dir"], name)
    np.save(scores_path, joint, allow_pickle=False)
    rows = fit_slice(series)
    threshold = percentile_threshold(joint[rows], ctx.contamination)
    mask = joint > threshold.value
    record = DetectorRecord(
        detector=name, status="ok", fitted_on=fit_rows(series, FitOn.train)[1], threshold=threshold, n_flagged=int(mask.sum()),
        intervals=[(iv.start, iv.end) for iv in scored_intervals(mask, joint)], scores_path=str(scores_path),
        candidates=list(run.scores), candidate_errors=run.errors, tracks_path=str(tracks_path),
        fit_seconds=round(run.seconds, 2),
    )
    notes = [f"{cand} failed: {err}" for cand, err in run.errors.items()]
    notes += [f"{name}: {note}" for note in dict.fromkeys(n for ns in run.notes.values() for n in ns)]
    return {"records": [record.model_dump(mode="json")], "notes": notes}


# ------------------------------------------------------------------- select
def _ok_records(state: DiagnosisState) -> list[DetectorRecord]:
    latest = {r["detector"]: DetectorRecord.model_validate(r) for r in state.get("records", [])}
    return [r for r in latest.values() if r.status == "ok"]


def select(state: DiagnosisState, runtime: Runtime[DiagnosisContext]) -> dict[str, Any]:
    """Choose the track the verdict rests on (no labels), then rank its candidate intervals by severity."""
    ctx = context_of(runtime, DiagnosisContext)
    series = series_of(state["path"], ctx)
    records = _ok_records(state)
    if not records:
        return {"notes": ["no detector finished, so there is nothing to select from"],
                "feedback": [m.model_dump(mode="json") for m in feedback_marks(state["path"], ctx)]}
    tracks, planted, per_channel, aliases = {}, {}, {}, {}
    for r in records:
        data = np.load(r.tracks_path, allow_pickle=False)
        for key in data.files:
            kind, _, cand = key.partition("::")
            if kind == "s":
                tracks[cand] = data[key]
            elif kind == "i":
                planted[cand] = data[key]
            elif kind == "z":
                per_channel[cand] = (data[f"c::{cand}"].tolist(), data[key])
            elif kind == "a":
                aliases[cand] = str(data[key])
    injected = load_injection(state["injection_path"])
    surrogates = surrogate_table(tracks, planted, injected, window=injected.window if injected is not None else 1,
                                 aliases=aliases)
    rows = fit_slice(series)
    strategy, notes = ctx.selection, []
    if strategy == MODEL_STRATEGY:
        strategy, note = _model_strategy(ctx, state, series, surrogates, aliases)
        notes += [note] if note else []
    needed = fixed_candidate(strategy)
    if needed is not None and needed not in tracks:
        notes.append(f"selection '{strategy}' needs {needed}, which did not run; fused the detectors that ran instead")
        strategy = "fusion"
    final, chosen = select_track(strategy, tracks, fit_rows=rows, surrogates=surrogates, aliases=aliases,
                                 contamination=ctx.contamination)
    marks = feedback_marks(state["path"], ctx)
    located = [(m, mark_rows(m, series)) for m in marks]
    if marks:
        final, chosen, feedback_notes = feedback_choice(
            {n: t for n, t in tracks.items() if n not in aliases}, final, chosen, marks, series,
            fit_rows=rows, contamination=ctx.contamination)
        notes += feedback_notes
    separation = max(2, estimate_period(series.values[:, scored_channels(series)[0]]))
    threshold, ranked = rank_intervals(final, fit_rows=rows, method=ctx.threshold_method, contamination=ctx.contamination,
                                       k=min(ctx.top_k, MAX_CANDIDATES), separation=separation, max_candidates=3 * MAX_CANDIDATES)
    # With a training split the diagnosed rows are the ones after it (the fit rows are normal by definition).
    first = series.train_end or 0
    ranked = [iv for iv in ranked if iv.end >= first][:MAX_CANDIDATES]
    view = parse_candidate(chosen.chosen[0])[1]
    masks = {}
    for r in records:
        name = candidate_name(r.detector, view) if candidate_name(r.detector, view) in tracks else r.detector
        own = tracks[name]
        masks[r.detector] = own > percentile_threshold(own[rows], ctx.contamination).value
    findings = []
    for rank, iv in enumerate(ranked, start=1):
        who = agreeing(masks, iv.start, iv.end)
        passes = rank <= ctx.top_k if ctx.threshold_method == "top_k" else iv.passes
        overlapping = sorted((m for m, r in located if r is not None and r[0] <= iv.end and r[1] >= iv.start),
                             key=lambda m: m.at)
        # the latest overlapping mark decides: a false alarm unflags, a real anomaly keeps the threshold's call
        if passes and overlapping and overlapping[-1].label == "false":
            passes = False
            notes.append(f"rows {iv.start}..{iv.end} (rank {rank}) are not flagged: marked as a "
                         f"{overlapping[-1].describe()}")
        findings.append(RankedFinding(
            start=iv.start, end=iv.end, peak=iv.peak, peak_score=iv.peak_score, detectors=who,
            agreement=len(who) / len(records), rank=rank, robust_z=iv.robust_z, passes=passes,
            channels=_drivers(series, chosen.chosen, per_channel, iv.start, iv.end),
            marks=[m.describe() for m in overlapping],
        ))
    record = SelectionRecord(
        strategy=chosen.strategy, chosen=chosen.chosen, weights=chosen.weights, reason=chosen.reason, threshold=threshold,
        roles=describe_roles(channel_roles(series)), candidates=list(tracks),
        surrogates={n: s for n, s in surrogates.items() if n not in aliases},
        detectors=[r.detector for r in records], intervals=findings,
    )
    record, demoted = demote_uncorroborated(record)
    notes += demoted
    fused_path = scores_file(state["out_dir"], SELECTED)
    np.save(fused_path, final, allow_pickle=False)
    return {"selection": record.model_dump(mode="json"), "fused_path": str(fused_path), "notes": notes,
            "feedback": [m.model_dump(mode="json") for m in marks]}


CHOSEN_TRACK = "\0chosen"  # the strategy's own scores among the candidates (never a candidate's name)


def feedback_marks(path: str, ctx: DiagnosisContext) -> list[FeedbackMark]:
    """The effective marks on the file a run diagnoses (none when the context turns feedback off)."""
    store = ctx.feedback_store()
    if store is None:
        return []
    return store.effective(resolve_in_roots(path, ctx.roots()))


def feedback_choice(tracks: dict[str, np.ndarray], final: np.ndarray, chosen: Selection, marks: list[FeedbackMark],
                    series: TimeSeries, *, fit_rows: slice, contamination: float) -> tuple[np.ndarray, Selection, list[str]]:
    """The strategy's choice, or the candidate that ranks the marked intervals strictly better.

    Marks are known labels on this series: a candidate whose scores put the real anomalies high and
    the false alarms low (:func:`feedback_utility`) replaces the strategy's track, never on a tie.
    """
    real, false = feedback_masks(marks, series.length, series=series)
    n_real, n_false = (sum(m.label == kind for m in marks) for kind in ("real", "false"))
    counts = f"{n_real} real-anomaly and {n_false} false-alarm mark(s)"
    notes = []
    current = file_sha256(marks[0].path)  # the store holds one file's marks: all share the path
    if any(m.sha256 != current for m in marks):
        notes.append("feedback marks were made on another version of the file; their rows are located by time "
                     "where the series has timestamps")
    if not (real.any() or false.any()):
        return final, chosen, [*notes, f"{counts} on this file, none inside the series' rows: selection unchanged"]
    everything = {CHOSEN_TRACK: final, **tracks}
    utility = feedback_utility(everything, real, false)
    thresholds = {name: percentile_threshold(np.asarray(s, dtype=np.float64)[fit_rows], contamination)
                  for name, s in everything.items()}
    right = marks_right(everything, {name: t.value for name, t in thresholds.items()}, real, false)
    mine, mine_right = utility.pop(CHOSEN_TRACK), right.pop(CHOSEN_TRACK)
    # a switch must get more of the user's marks right at the candidate's own threshold; the utility
    # (how high the real marks and how low the false ones rank) only orders candidates that do
    best = max(utility, key=lambda n: (right[n], utility[n])) if utility else None
    was = " + ".join(chosen.chosen)
    total = n_real + n_false
    if best is None or right[best] <= mine_right:
        return final, chosen, [*notes, f"feedback ({counts}) kept {was}: it gets {mine_right} of {total} mark(s) right at "
                                       f"its threshold and no candidate gets more (utility {mine:.2f})"]
    scores, threshold = np.asarray(tracks[best], dtype=np.float64), thresholds[best]
    switched = Selection(
        strategy=f"{FEEDBACK_PREFIX}{chosen.strategy}", chosen=[best], weights={best: 1.0},
        reason=(f"{counts} on this series: {best} gets {right[best]} of {total} right at its threshold and ranks them "
                f"better (feedback utility {utility[best]:.2f}) than {was} ({mine_right} right, utility {mine:.2f}), which "
                f"'{chosen.strategy}' chose ({chosen.reason})"),
        threshold=threshold.model_copy(update={"fitted_on": "the selected scores of the fit rows"}),
    )
    return scores, switched, [*notes, f"selection switched from {was} to {best} because of feedback ({counts}; "
                                      f"right {mine_right} -> {right[best]} of {total}, utility {mine:.2f} -> {utility[best]:.2f})"]


def _model_strategy(ctx: DiagnosisContext, state: DiagnosisState, series: TimeSeries,
                    surrogates: dict[str, Any], aliases: dict[str, str]) -> tuple[str, str | None]:
    """The model's pick among the strategies and candidates, seeing the surrogate metrics; the default without a model."""
    from anomalygraph.agents.track_chooser import choose_track

    model = ctx.chat_model()
    if model is None:
        return DEFAULT_STRATEGY, f"selection 'llm' without a language model: used the default '{DEFAULT_STRATEGY}'"
    shown = {n: s for n, s in surrogates.items() if n not in aliases}
    chosen = choose_track(model, profile=_profile_text(SeriesProfile.model_validate(state["profile"])).splitlines()[0],
                          roles=describe_roles(channel_roles(series)), surrogates=shown, candidates=list(shown),
                          default=DEFAULT_STRATEGY)
    note = f"the model chose '{chosen.strategy}': {chosen.reason}" if chosen.source == "llm" else chosen.note
    return chosen.strategy, note


def _drivers(series: TimeSeries, chosen: list[str], per_channel: dict[str, tuple[list[int], np.ndarray]],
             start: int, end: int, limit: int = 3) -> list[str]:
    """Channels whose own z inside the interval is at least half the strongest one's, from the chosen detectors' per-channel views."""
    peaks: dict[int, float] = {}
    for name in chosen:
        detector, _ = parse_candidate(name)
        view = per_channel.get(f"{detector}@channels")
        if view is None:
            continue
        columns, z = view
        for k, column in enumerate(columns):
            peaks[column] = max(peaks.get(column, -np.inf), float(z[start : end + 1, k].max()))
    if not peaks:
        return []
    top = max(peaks.values())
    ordered = sorted((c for c in peaks if peaks[c] >= top / 2), key=lambda c: -peaks[c])
    return [series.channels[c] for c in ordered[:limit]]


def demote_uncorroborated(result: SelectionRecord) -> tuple[SelectionRecord, list[str]]:
    """Intervals only caveated detectors flag go after the others, with a note: never trust such a detector alone."""
    caveats = {name: get_detector_class(name).caveat for name in result.detectors if get_detector_class(name).caveat}
    if not caveats:
        return result, []

    def alone(iv: RankedFinding) -> bool:
        return bool(iv.detectors) and set(iv.detectors) <= set(caveats)

    ordered = sorted(result.intervals, key=lambda iv: (not iv.passes, alone(iv)))  # stable: keeps the rank order
    notes = [
        f"rows {iv.start}..{iv.end} are flagged only by {', '.join(iv.detectors)}, which "
        f"{'; '.join(caveats[d] for d in iv.detectors)}; listed after the corroborated intervals"
        for iv in ordered if alone(iv) and iv.passes
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
    if "selection" not in state:
        return {"explanations": []}
    from anomalygraph.plots.detection import plot_detection

    series = series_of(state["path"], ctx)
    selection = SelectionRecord.model_validate(state["selection"])
    fused = np.load(state["fused_path"], allow_pickle=False)
    out = Path(state["out_dir"])
    explanations, notes = [], []
    # flagged intervals come first; with none flagged the strongest near misses are still described
    for k, iv in enumerate(selection.intervals[: ctx.max_explanations]):
        expl = explain_window(series, iv.start, iv.end)
        stats = _statistics_text(expl)
        pad = max(3 * (iv.end - iv.start + 1), 50)
        window = (max(0, iv.start - pad), min(series.length, iv.end + 1 + pad))
        plot_path = plot_detection(
            series, {SELECTED: fused}, path=out / f"interval_{k + 1}.png", window=window,
            thresholds={SELECTED: selection.threshold.value}, title=f"{series.name}: interval {k + 1}",
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
