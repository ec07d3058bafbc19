"""Nodes of the rule-bank generation graph: small functions that read the state and return updates.

prepare -> list_faults -> (propose -> compile_rule)* -> sample -> critique -> (revise: propose ...)
-> approve (interrupt) -> store

Every model answer is validated; what cannot be used goes back to the model with the reason
(bounded by ``max_attempts`` per prior and ``max_revisions`` per rule) or is dropped with the
reason recorded. ``max_steps`` bounds the number of structured model calls of a run. Transport
failures propagate, so a run stopped by a dead server resumes from its last completed node.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from langchain_core.language_models import BaseChatModel
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import ValidationError

from anomalygraph.agents.prior_candidates import (
    ChannelMeasure,
    RuleCheckResult,
    candidates_for,
    channel_descriptions,
    check_samples,
    measure_channels,
)
from anomalygraph.agents.prior_miner import (
    MAX_DURATION_SHARE,
    PriorMiner,
    Proposal,
    SeriesFacts,
    describe_duration,
    describe_samples,
    series_facts,
)
from anomalygraph.core.errors import AnomalyGraphError, ConfigError, DataError
from anomalygraph.data.cache import cached_series
from anomalygraph.data.series import TimeSeries
from anomalygraph.graphs.context import context_of
from anomalygraph.graphs.rulebank_generation.state import (
    ApprovalDecision,
    ApprovalRequest,
    DroppedItem,
    GenerationContext,
    GenerationResult,
    GenerationState,
    MinedRule,
    RuleSummary,
    TraceEntry,
    WorkItem,
)
from anomalygraph.llm.errors import LLMContextLengthError, StructuredOutputError
from anomalygraph.rulebank.sampler import PAGSampler, PseudoAnomalyBatch
from anomalygraph.rulebank.schema import BankOrigin, Rule, RuleBank, RuleProvenance, compile_prior

PROBE_SAMPLES = 32
MIN_WINDOW, MAX_WINDOW = 100, 2000
_SLUG = re.compile(r"[^a-z0-9]+")
_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")

Node = Callable[[GenerationState, Runtime[GenerationContext]], dict[str, Any]]


# ------------------------------------------------------------------- helpers
def timed(name: str, fn: Node) -> Node:
    """``fn`` with a trace entry (wall time, model steps used) appended to its update."""

    def node(state: GenerationState, runtime: Runtime[GenerationContext]) -> dict[str, Any]:
        started = time.perf_counter()
        update = fn(state, runtime)
        steps = update.get("steps", state.get("steps", 0)) - state.get("steps", 0)
        entry = TraceEntry(node=name, seconds=round(time.perf_counter() - started, 3), model_steps=steps,
                           detail=str(update.pop("_detail", "")))
        return {**update, "trace": [entry.model_dump()]}

    node.__name__ = name
    return node


_MINERS: dict[tuple[Any, ...], PriorMiner] = {}


def chat_model_of(ctx: GenerationContext) -> BaseChatModel:
    """The run's chat model; the configured one is capped at ``max_answer_tokens``."""
    from anomalygraph.llm.factory import DEFAULT_MODEL, capped

    model = ctx.chat_model()
    if model is None:
        raise ConfigError("rule-bank generation needs a chat model (the context names none)")
    return capped(model, ctx.max_answer_tokens) if ctx.model == DEFAULT_MODEL else model


def miner_of(ctx: GenerationContext) -> PriorMiner:
    """The agent for this run's model and prior form, made once per process."""
    from anomalygraph.llm.factory import capabilities_or_text_only

    model = chat_model_of(ctx)
    key = (id(model), ctx.form)
    miner = _MINERS.get(key)
    if miner is None or miner.model is not model:
        caps = capabilities_or_text_only(model)
        miner = _MINERS[key] = PriorMiner(model=model, capabilities=caps, form=ctx.form)
    return miner


def resolve_series_path(path: str, ctx: GenerationContext) -> Path:
    from anomalygraph.tools.context import resolve_in_roots

    return resolve_in_roots(path, ctx.roots())


def normal_series(state: GenerationState, ctx: GenerationContext) -> TimeSeries:
    """The rows meant to be normal: the training part (``train_end`` or the file's own split), else all."""
    real = resolve_series_path(state["series_path"], ctx)
    series = cached_series(real)
    train_end = state.get("train_end")
    if train_end is not None:
        if not 0 < train_end <= series.length:
            raise DataError(f"{state['series_path']}: train_end {train_end} is outside 1..{series.length}")
        series = replace(series, train_end=train_end)
    return series.train()


def slug(text: str, taken: set[str] | dict[str, Any] = frozenset()) -> str:  # type: ignore[assignment]
    """A rule id from a fault name: lowercase words joined by ``_``, unique among ``taken``."""
    base = _SLUG.sub("_", text.lower()).strip("_")[:48].strip("_") or "rule"
    if not base[0].isalnum():
        base = f"r{base}"
    candidate, k = base, 2
    while candidate in taken:
        candidate = f"{base}_{k}"
        k += 1
    return candidate


def bank_name_from(path: str) -> str:
    return slug(Path(path).stem) or "mined"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def facts_of(state: GenerationState) -> SeriesFacts:
    return SeriesFacts.model_validate(state["facts"])


def measures_of(state: GenerationState) -> list[ChannelMeasure]:
    return [ChannelMeasure.model_validate(m) for m in state.get("measures") or []]


def steps_of_duration(rule: Rule, facts: SeriesFacts) -> float:
    """The longest duration a rule draws, in steps (window shares count as a tenth of the minimum window)."""
    high = (rule.duration.dist.support() or (1.0, 1.0))[1]
    if rule.duration.unit == "seconds":
        return high / facts.step_seconds if facts.step_seconds else high
    if rule.duration.unit == "window":
        return 0.1 * MIN_WINDOW
    return high


def window_for(rules: list[Rule], series: TimeSeries, facts: SeriesFacts, ctx: GenerationContext) -> int:
    """Sample window: 2.5x the longest anomaly, in [100, 2000] steps and at most a quarter of the data."""
    if ctx.window is not None:
        window = ctx.window
    else:
        longest = max((steps_of_duration(r, facts) for r in rules), default=0.0)
        cap = max(MIN_WINDOW, min(MAX_WINDOW, series.length // 4))
        window = int(np.clip(np.ceil(2.5 * longest), MIN_WINDOW, cap))
    if series.length < window:
        raise DataError(f"series '{series.name}' has {series.length} normal rows, fewer than the sample window of {window}")
    return window


def _rules(state: GenerationState) -> dict[str, MinedRule]:
    return {rid: MinedRule.model_validate(r) for rid, r in (state.get("rules") or {}).items()}


def _dump_rules(rules: dict[str, MinedRule]) -> dict[str, dict[str, Any]]:
    return {rid: r.model_dump(mode="json") for rid, r in rules.items()}


def _queue(state: GenerationState) -> list[WorkItem]:
    return [WorkItem.model_validate(i) for i in state.get("queue") or []]


def _dropped(item: WorkItem, stage: Literal["propose", "compile", "critique", "budget", "approval"], reason: str) -> dict[str, Any]:
    return DroppedItem(fault=item.fault, rule_id=item.rule_id, stage=stage, reason=reason[:1000]).model_dump()


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        from anomalygraph.llm.structured import describe_errors

        return describe_errors(exc).replace("\n", "; ")
    return str(exc)


# ------------------------------------------------------------------- prepare
def prepare(state: GenerationState, runtime: Runtime[GenerationContext]) -> dict[str, Any]:
    """Load the normal rows, hash the inputs, plot the data, and meet the model."""
    from anomalygraph.plots.detection import plot_detection

    ctx = context_of(runtime, GenerationContext)
    if not state.get("scenario", "").strip():
        raise ConfigError("the scenario text is empty; describe the system and its known faults")
    name = state.get("bank_name")
    if name is not None and not _ID.fullmatch(name):
        raise ConfigError(f"bank name {name!r}: use lowercase letters, digits, _ and - (at most 64, starting with a letter or digit)")
    real = resolve_series_path(state["series_path"], ctx)
    series = normal_series(state, ctx)
    if series.length < MIN_WINDOW:
        raise DataError(f"{state['series_path']}: {series.length} normal rows; rule-bank generation needs at least {MIN_WINDOW}")
    facts = series_facts(series)
    measures = measure_channels(series)
    notes = []
    if state.get("train_end") is None and cached_series(real).train_end is None:
        notes.append(f"no training split given: all {series.length} rows are treated as normal "
                      "(windows with labelled anomalies are still left out of sampling)")
    work = Path(state["work_dir"])
    work.mkdir(parents=True, exist_ok=True)
    overview = plot_detection(series, path=work / "overview.png", title=f"{series.name}: normal data")
    miner = miner_of(ctx)
    scenario_hash = hashlib.sha256(state["scenario"].encode("utf-8")).hexdigest()
    inputs = [
        f"series {real} sha256={_sha256_file(real)} normal_rows={series.length}"
        + (f" train_end={state['train_end']}" if state.get("train_end") is not None else ""),
        f"scenario text sha256={scenario_hash} ({len(state['scenario'])} characters)",
        f"plot {overview}",
    ]
    return {
        "facts": facts.model_dump(mode="json"), "measures": [m.model_dump(mode="json") for m in measures], "inputs": inputs, "overview_plot": str(overview),
        "model": miner.model_name, "prompt_versions": miner.prompt_versions,
        "bank_name": state.get("bank_name") or bank_name_from(state["out_path"]),
        "steps": 0, "round": 0, "rules": {}, "queue": [], "current": None, "failed": None, "samples": {},
        "notes": notes, "plots": [str(overview)],
    }


# --------------------------------------------------------------- list faults
def list_faults(state: GenerationState, runtime: Runtime[GenerationContext]) -> dict[str, Any]:
    """The faults the scenario names: one work item (prior to write) each."""
    ctx = context_of(runtime, GenerationContext)
    steps = state.get("steps", 0)
    if steps >= ctx.max_steps:
        return {"failed": f"the step budget ({ctx.max_steps}) was spent before any fault was listed"}
    try:
        faults = miner_of(ctx).list_faults(state["scenario"], max_faults=ctx.max_priors)
    except StructuredOutputError as exc:
        return {"steps": steps + 1, "failed": f"the model could not list the scenario's faults: {exc}"}
    taken: set[str] = set()
    queue = []
    found = []
    measures = measures_of(state)
    descriptions = channel_descriptions(state["scenario"], [m.name for m in measures])
    for fault in faults:
        rid = slug(fault, taken)
        taken.add(rid)
        cands = candidates_for(fault, state["scenario"], measures, descriptions)
        found.append(cands.model_dump(mode="json"))
        queue.append(WorkItem(fault=fault, rule_id=rid, shapes=[c.morphology for c in cands.shapes],
                              candidates=cands.describe()).model_dump())
    return {"steps": steps + 1, "faults": faults, "queue": queue, "candidates": found,
            "_detail": f"{len(faults)} faults"}


# -------------------------------------------------------------------- propose
def propose(state: GenerationState, runtime: Runtime[GenerationContext]) -> dict[str, Any]:
    """One prior for the next work item (with the previous answer and its problem, when it is a retry)."""
    ctx = context_of(runtime, GenerationContext)
    queue = _queue(state)
    steps = state.get("steps", 0)
    if not queue:
        return {"current": None}
    if steps >= ctx.max_steps:
        reason = f"the step budget of {ctx.max_steps} model calls was spent"
        return {
            "queue": [], "current": None,
            "dropped": [_dropped(item, "budget", reason) for item in queue],
            "notes": [f"{reason}; {len(queue)} prior(s) not written: {', '.join(i.fault for i in queue)}"],
        }
    item, rest = queue[0], queue[1:]
    miner = miner_of(ctx)
    facts = facts_of(state)
    with_plot = ctx.show_plot and state.get("plot_in_prompt", True)
    update: dict[str, Any] = {"steps": steps + 1, "queue": [i.model_dump() for i in rest], "current": None}
    try:
        try:
            context = miner.context_message(state["scenario"], facts, view=normal_series(state, ctx) if with_plot else None,
                                            plot=state.get("overview_plot") if with_plot else None)
            proposal = miner.propose(context, facts, item.fault, previous=item.previous, problem=item.problem,
                                     candidates=item.candidates, shapes=item.shapes)
        except LLMContextLengthError as exc:
            if not with_plot:
                raise
            # the plot (or its text rendering) is the largest part of the prompt: go on without it
            update["plot_in_prompt"] = False
            update["notes"] = [f"the plot did not fit the model's context window, so priors are written from the "
                               f"scenario text and the data's statistics alone ({exc})"]
            proposal = miner.propose(miner.context_message(state["scenario"], facts), facts, item.fault,
                                     previous=item.previous, problem=item.problem,
                                     candidates=item.candidates, shapes=item.shapes)
    except (StructuredOutputError, LLMContextLengthError) as exc:
        kind = "invalid structured output" if isinstance(exc, StructuredOutputError) else "prompt too long"
        return {**update, "dropped": [_dropped(item, "propose", f"{kind}: {exc}")],
                "_detail": f"{item.rule_id}: invalid answer"}
    update["current"] = {"item": item.model_dump(), "proposal": proposal.model_dump(mode="json")}
    return {**update, "_detail": f"{item.rule_id}: {proposal.prior.morphology}"}


# -------------------------------------------------------------------- compile
def probe_rule(rule: Rule, series: TimeSeries, facts: SeriesFacts, ctx: GenerationContext, bank: str) -> float:
    """Run ``rule`` on the normal data: raises for rules that cannot run there; returns the median effect."""
    window = window_for([rule], series, facts, ctx)
    sampler = PAGSampler(RuleBank(name=bank, rules=[rule]), series, window=window, seed=ctx.seed, min_effect=0.0, max_redraws=0)
    batch = sampler.sample(PROBE_SAMPLES)
    if not np.isfinite(batch.x_pa).all():
        raise ConfigError("it produces non-finite values on this series")
    return float(np.median(batch.effect))


def compile_rule(state: GenerationState, runtime: Runtime[GenerationContext]) -> dict[str, Any]:
    """Prior -> validated rule that runs on this series and visibly changes it; else back to the model."""
    ctx = context_of(runtime, GenerationContext)
    current = state.get("current")
    if not current:
        return {}
    item = WorkItem.model_validate(current["item"])
    proposal = Proposal.model_validate(current["proposal"])
    series = normal_series(state, ctx)
    facts = facts_of(state)
    problem = None
    effect = None
    try:
        rule = compile_prior(proposal.prior, item.rule_id, source="llm")
        longest = steps_of_duration(rule, facts)
        if longest > series.length * MAX_DURATION_SHARE:
            problem = (f"one occurrence lasts up to {longest:.0f} steps, more than {MAX_DURATION_SHARE:.0%} of the "
                       f"{series.length} normal steps; an anomaly is an episode, give a much shorter duration")
        elif (effect := probe_rule(rule, series, facts, ctx, state["bank_name"])) < ctx.min_effect:
            problem = (f"its anomalies barely show on this data (median largest change {effect:.2f} local standard "
                       f"deviations, need {ctx.min_effect:g}); make it larger or longer, or pick the shape that fits")
    except (AnomalyGraphError, ValidationError) as exc:
        problem = _problem(exc)
    queue = _queue(state)
    if problem is not None:
        if item.attempt + 1 < ctx.max_attempts:
            retry = item.model_copy(update={"attempt": item.attempt + 1, "previous": proposal.answer, "problem": problem})
            return {"current": None, "queue": [retry.model_dump(), *(i.model_dump() for i in queue)],
                    "_detail": f"{item.rule_id}: invalid, retry {item.attempt + 1}"}
        reason = f"still invalid after {ctx.max_attempts} proposals: {problem}"
        return {"current": None, "dropped": [_dropped(item, "compile", reason)], "_detail": f"{item.rule_id}: dropped"}
    rules = _rules(state)
    rules[item.rule_id] = MinedRule(
        fault=item.fault, rule=rule.model_dump(mode="json"), revision=item.revision, attempts=item.attempt + 1,
        effect=round(effect, 4) if effect is not None else None, notes=proposal.notes, answer=proposal.answer,
    )
    return {"current": None, "rules": _dump_rules(rules), "_detail": f"{item.rule_id}: {rule.operator}"}


# --------------------------------------------------------------------- sample
def _join(batches: list[PseudoAnomalyBatch], rule_ids: list[str]) -> PseudoAnomalyBatch:
    index = np.concatenate([np.full(len(b), k) for k, b in enumerate(batches)])
    cat = {f: np.concatenate([getattr(b, f) for b in batches]) for f in ("x_raw", "x_pa", "mask", "channels", "starts", "effect")}
    return PseudoAnomalyBatch(cat["x_raw"], cat["x_pa"], cat["mask"], cat["channels"], index, rule_ids, cat["starts"], cat["effect"])


def draw_samples(rules: dict[str, Rule], series: TimeSeries, facts: SeriesFacts, ctx: GenerationContext,
                 bank: str, seed: int) -> dict[str, PseudoAnomalyBatch]:
    """``samples_per_rule`` pseudo-anomalies of each rule on the normal data, in one shared window size."""
    window = window_for(list(rules.values()), series, facts, ctx)
    out = {}
    for k, (rid, rule) in enumerate(rules.items()):
        sampler = PAGSampler(RuleBank(name=bank, rules=[rule]), series, window=window, seed=seed + 7919 * k)
        out[rid] = sampler.sample(ctx.samples_per_rule)
    return out


def plot_samples(batches: dict[str, PseudoAnomalyBatch], series: TimeSeries, path: Path, title: str) -> Path:
    from anomalygraph.plots.rulebank import plot_pseudo_anomalies

    joined = _join(list(batches.values()), list(batches))
    return plot_pseudo_anomalies(joined, path, channel_names=series.channels, title=title)


def sample(state: GenerationState, runtime: Runtime[GenerationContext]) -> dict[str, Any]:
    """Draw and plot pseudo-anomalies of every rule awaiting review; check them by measurement,
    or describe them for the model critic."""
    ctx = context_of(runtime, GenerationContext)
    rules = _rules(state)
    pending = {rid: Rule.model_validate(r.rule) for rid, r in rules.items() if r.status == "proposed"}
    if not pending:
        return {}
    series = normal_series(state, ctx)
    facts = facts_of(state)
    round_ = state.get("round", 0)
    batches = draw_samples(pending, series, facts, ctx, state["bank_name"], ctx.seed + 1000 * (round_ + 1))
    path = plot_samples(batches, series, Path(state["work_dir"]) / f"samples_round{round_ + 1}.png",
                        f"{state['bank_name']}: rules under review, round {round_ + 1}")
    update: dict[str, Any] = {"plots": [str(path)], "_detail": f"{len(pending)} rules"}
    if ctx.critique and ctx.critic == "checks":
        measures = measures_of(state)
        kept = {rid: Rule.model_validate(r.rule) for rid, r in rules.items() if r.status != "proposed"}
        checks = {}
        for rid, rule in pending.items():  # a rule kept earlier in the round counts for the duplicate check
            checks[rid] = check_samples(rule, batches[rid], measures, kept, min_effect=ctx.min_effect)
            if checks[rid].verdict == "keep":
                kept[rid] = rule
        update["checks"] = {rid: c.model_dump(mode="json") for rid, c in checks.items()}
    elif ctx.critique:  # the model critic reads the samples described
        update["samples"] = {rid: describe_samples(b, series.channels, facts.step_seconds, limit=ctx.samples_per_rule)
                             for rid, b in batches.items()}
    return update


# ------------------------------------------------------------------- critique
def critique(state: GenerationState, runtime: Runtime[GenerationContext]) -> dict[str, Any]:
    """Each new rule is kept, revised (back to propose) or rejected: by the checks the sample node
    measured, or by the model judging it against the scenario."""
    ctx = context_of(runtime, GenerationContext)
    rules = _rules(state)
    pending = [rid for rid, r in rules.items() if r.status == "proposed"]
    steps = state.get("steps", 0)
    queue = _queue(state)
    dropped, notes = [], []
    facts = facts_of(state)
    plot = (state.get("plots") or [None])[-1]
    budget_hit = False
    checked = {rid: RuleCheckResult.model_validate(c) for rid, c in (state.get("checks") or {}).items()}
    for rid in pending:
        mined = rules[rid]
        if not ctx.critique:
            rules[rid] = mined.model_copy(update={"status": "kept", "critique": "not reviewed (critique off)"})
            continue
        if ctx.critic == "checks":
            verdict = checked[rid]
        elif steps >= ctx.max_steps:
            budget_hit = True
            rules[rid] = mined.model_copy(update={"status": "unreviewed", "critique": "not reviewed: step budget spent"})
            continue
        else:
            rule = Rule.model_validate(mined.rule)
            try:
                verdict = miner_of(ctx).critique(state["scenario"], mined.fault, rule,
                                                 (state.get("samples") or {}).get(rid, ""),
                                                 step_seconds=facts.step_seconds, plot=plot)
            except (StructuredOutputError, LLMContextLengthError) as exc:
                steps += 1
                rules[rid] = mined.model_copy(update={"status": "unreviewed",
                                                      "critique": f"the critic's answer was unusable: {exc}"})
                notes.append(f"rule '{rid}' kept unreviewed: the critic's answer was unusable")
                continue
            steps += 1
        if verdict.verdict == "keep":
            rules[rid] = mined.model_copy(update={"status": "kept", "critique": verdict.reason, "verdict": "keep"})
        elif verdict.verdict == "reject":
            del rules[rid]
            dropped.append(DroppedItem(fault=mined.fault, rule_id=rid, stage="critique",
                                       reason=f"rejected by the critic: {verdict.reason}").model_dump())
        elif mined.revision < ctx.max_revisions:
            del rules[rid]
            asked = "a check of its samples found it" if ctx.critic == "checks" else "a reviewer who saw its samples asked for a revision"
            queue.append(WorkItem(fault=mined.fault, rule_id=rid, revision=mined.revision + 1, previous=mined.answer,
                                  problem=f"{asked}: {verdict.reason}", **_candidates_of(state, mined.fault)))
        else:
            rules[rid] = mined.model_copy(update={
                "status": "kept", "verdict": "revise",
                "critique": f"revision asked for but the budget ({ctx.max_revisions}) is spent: {verdict.reason}",
            })
    if budget_hit:
        notes.append(f"the step budget of {ctx.max_steps} model calls was spent: some rules are kept unreviewed")
    return {
        "rules": _dump_rules(rules), "queue": [i.model_dump() for i in queue], "steps": steps,
        "round": state.get("round", 0) + 1, "dropped": dropped, "notes": notes,
        "_detail": f"{len(pending)} reviewed, {len(queue)} to revise",
    }


def _candidates_of(state: GenerationState, fault: str) -> dict[str, Any]:
    """The WorkItem fields a fault's candidates fill (a revision keeps the shapes it was limited to)."""
    from anomalygraph.agents.prior_candidates import FaultCandidates

    for raw in state.get("candidates") or []:
        cands = FaultCandidates.model_validate(raw)
        if cands.fault == fault:
            return {"shapes": [c.morphology for c in cands.shapes], "candidates": cands.describe()}
    return {}


# -------------------------------------------------------------------- approve
def summaries(state: GenerationState) -> list[RuleSummary]:
    facts = facts_of(state)
    out = []
    for rid, mined in _rules(state).items():
        rule = Rule.model_validate(mined.rule)
        out.append(RuleSummary(
            id=rid, fault=mined.fault, morphology=str(rule.morphology), operator=rule.operator,
            channels=rule.channels.describe() if rule.channels.mode != "random" else "any one",
            duration=describe_duration(rule.duration, facts.step_seconds), mechanism=rule.mechanism,
            critique=mined.critique,
        ))
    return out


def approve(state: GenerationState, runtime: Runtime[GenerationContext]) -> dict[str, Any]:
    """Human approval (a LangGraph interrupt) unless the run was started with auto-approval."""
    ctx = context_of(runtime, GenerationContext)
    if ctx.auto_approve:
        return {"decision": ApprovalDecision(action="approve", by="auto").model_dump()}
    request = ApprovalRequest(bank=state["bank_name"], rules=summaries(state), plots=list(state.get("plots") or []),
                              notes=list(state.get("notes") or []))
    answer = interrupt(request.model_dump(mode="json"))
    try:
        decision = ApprovalDecision.model_validate(answer)
    except ValidationError as exc:
        raise ConfigError(f"approval answer: {_problem(exc)}") from None
    rules = _rules(state)
    unknown = [rid for rid in decision.drop if rid not in rules]
    notes = [f"approval named unknown rule id(s) {unknown}; ignored"] if unknown else []
    dropped = []
    for rid in decision.drop:
        if rid in rules:
            mined = rules.pop(rid)
            dropped.append(DroppedItem(fault=mined.fault, rule_id=rid, stage="approval",
                                       reason=decision.note or "left out by the approver").model_dump())
    return {"decision": decision.model_dump(), "rules": _dump_rules(rules), "dropped": dropped, "notes": notes}


# ---------------------------------------------------------------------- store
def _provenance_note(mined: MinedRule) -> str:
    parts = [f"fault: {mined.fault}", f"proposals: {mined.attempts}", f"revisions: {mined.revision}"]
    if mined.critique:
        parts.append(f"critique ({mined.verdict or mined.status}): {mined.critique}")
    parts += mined.notes
    note = "; ".join(parts)
    return note if len(note) <= 2000 else note[:1997] + "..."


def store(state: GenerationState, runtime: Runtime[GenerationContext]) -> dict[str, Any]:
    """Write the bank with provenance (model, prompt versions, input hashes) and a run record."""
    from anomalygraph.rulebank.checks import check_bank
    from anomalygraph.rulebank.store import save_bank

    ctx = context_of(runtime, GenerationContext)
    rules = _rules(state)
    decision = ApprovalDecision.model_validate(state["decision"]) if state.get("decision") else None
    work = Path(state["work_dir"])
    base = {
        "bank_name": state.get("bank_name", "mined"), "model": state.get("model", "unknown"),
        "dropped": state.get("dropped") or [], "faults": state.get("faults") or [], "model_steps": state.get("steps", 0),
        "decision": decision, "trace": state.get("trace") or [],
        "seconds": round(sum(t["seconds"] for t in state.get("trace") or []), 3),
    }
    notes = list(state.get("notes") or [])
    plots = list(state.get("plots") or [])
    if state.get("failed") or not rules or (decision is not None and decision.action == "reject"):
        status = "rejected" if decision is not None and decision.action == "reject" else "failed"
        if status == "failed" and not state.get("failed"):
            notes.append("no rule survived validation and review, so no bank was written")
        elif state.get("failed"):
            notes.append(str(state["failed"]))
        result = GenerationResult(status=status, notes=notes, plots=plots, **base)
        _write_run(work, result)
        return {"result": result.model_dump(mode="json")}
    final = {}
    for rid, mined in rules.items():
        rule = Rule.model_validate(mined.rule)
        prior = rule.provenance.prior
        final[rid] = rule.model_copy(update={"provenance": RuleProvenance(source="llm", prior=prior, note=_provenance_note(mined))})
    approved = "automatically (--approve)" if decision is None or decision.by == "auto" else "by a person"
    origin = BankOrigin(
        made_by="llm", model=state.get("model"), prompt_version=", ".join(state.get("prompt_versions") or []),
        created_at=datetime.now(UTC).replace(microsecond=0), inputs=list(state.get("inputs") or []),
        note=(f"Agentic-PAG rule-bank generation: {len(state.get('faults') or [])} faults named, {len(final)} rules kept, "
              f"{len(state.get('dropped') or [])} dropped; {state.get('steps', 0)} model steps; approved {approved}"
              + (f": {decision.note}" if decision and decision.note else ""))[:4000],
    )
    scenario = " ".join(state["scenario"].split())
    bank = RuleBank(name=state["bank_name"], description=f"Mined from the scenario: {scenario[:600]}", origin=origin,
                    rules=list(final.values()))
    series = normal_series(state, ctx)
    facts = facts_of(state)
    window = window_for(list(final.values()), series, facts, ctx)
    bank = bank.model_copy(update={"report": check_bank(bank, window=window)})
    if not bank.report.ok:
        notes.append("validation on probe windows found problems: " + "; ".join(bank.report.problems))
    path = save_bank(bank, state["out_path"])
    batches = draw_samples(final, series, facts, ctx, bank.name, ctx.seed)
    final_plot = plot_samples(batches, series, work / "bank_samples.png", f"bank '{bank.name}' on {series.name}")
    result = GenerationResult(status="stored", bank_path=str(path), rules=summaries(state), notes=notes,
                              plots=[*plots, str(final_plot)], **base)
    _write_run(work, result)
    return {"result": result.model_dump(mode="json"), "plots": [str(final_plot)]}


def _write_run(work: Path, result: GenerationResult) -> None:
    work.mkdir(parents=True, exist_ok=True)
    (work / "run.json").write_text(result.model_dump_json(indent=2), encoding="utf-8")


# --------------------------------------------------------------------- routes
def route_after_list(state: GenerationState) -> Literal["propose", "store"]:
    return "store" if state.get("failed") or not state.get("queue") else "propose"


def route_after_compile(state: GenerationState) -> Literal["propose", "sample", "approve", "store"]:
    if state.get("queue"):
        return "propose"
    rules = state.get("rules") or {}
    if any(r["status"] == "proposed" for r in rules.values()):
        return "sample"
    return "approve" if rules else "store"


def route_after_critique(state: GenerationState) -> Literal["propose", "approve", "store"]:
    if state.get("queue"):
        return "propose"
    return "approve" if state.get("rules") else "store"
