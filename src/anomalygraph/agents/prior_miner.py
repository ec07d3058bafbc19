"""The prior miner: scenario text + normal series + plot -> anomaly priors, and a critic of rules.

It is the language-model half of Agentic-PAG (APE, step 1). It asks small questions, each
answered as structured output validated with pydantic: first the faults the scenario names,
then one prior per fault, then a verdict per compiled rule. Small questions suit the embedded
0.5B model (short answers, a shared prompt prefix the server can cache) as well as Qwen3-VL.

Priors come in one of two forms:

* ``compact`` (default): :class:`PriorDraft`, a flat object whose ``channels`` and duration
  (named ranges such as "30-90 minutes") are enums built from the series, so schema-guided
  decoding cannot name a channel that does not exist; :func:`draft_to_prior` turns it into an
  :class:`AnomalyPrior`;
* ``full``: the :class:`AnomalyPrior` schema itself (distributions, placement), for models
  with a context window and decoding that can afford its JSON Schema.

Nothing the model writes is executed: priors are data, compiled against the fixed operator
registry by :func:`anomalygraph.rulebank.schema.compile_prior`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from anomalygraph.core.durations import human_seconds
from anomalygraph.core.errors import AnomalyGraphError
from anomalygraph.core.llm_settings import ModelCapabilities
from anomalygraph.core.stats import mad_sigma
from anomalygraph.data.series import TimeSeries
from anomalygraph.llm.factory import model_name
from anomalygraph.prompts import PromptTemplate, load_prompt
from anomalygraph.rulebank.distributions import Uniform
from anomalygraph.rulebank.names import MORPHOLOGIES
from anomalygraph.rulebank.operators import OPERATORS
from anomalygraph.rulebank.sampler import PseudoAnomalyBatch
from anomalygraph.rulebank.schema import (
    AnomalyPrior,
    ContextPrior,
    DurationPrior,
    Morphology,
    Regime,
    Rule,
    operator_for,
)

PriorForm = Literal["compact", "full"]

PROMPTS = (
    "rulebank/system",
    "rulebank/shapes",
    "rulebank/list_faults",
    "rulebank/series_context",
    "rulebank/propose_prior",
    "rulebank/fix_prior",
    "rulebank/critique",
)
MAX_CHANNEL_ENUM = 64  # beyond this many channels, names are free text checked on compile
MAX_SCENARIO_CHARS = 4000
SIZE_SPREAD = 0.25  # a stated size s becomes U((1 - 0.25) s, (1 + 0.25) s)
MAX_DURATION_SHARE = 0.1  # an anomaly longer than this share of the normal data is not an episode


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------- answer schemas
FAULT_CHARS = 120


def _clip_words(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters at a word boundary: the 0.5B model writes whole
    sentences as fault names (seen on TimeAnomalyBench's db_server, three attempts running), and
    the fault's sentence in the scenario is read again when its shapes are found."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return (cut or text[:limit]).rstrip(" ,;:")


class FaultList(_Model):
    """The faults a scenario names: the work list of the miner, one prior each."""

    faults: list[str] = Field(min_length=1, max_length=12, description="each distinct fault, a few words each")

    @field_validator("faults")
    @classmethod
    def _clean(cls, faults: list[str]) -> list[str]:
        cleaned = [_clip_words(" ".join(f.split()).strip(" .;,"), FAULT_CHARS) for f in faults]
        if any(not f for f in cleaned):
            raise ValueError("fault names must not be empty")
        return cleaned


class DurationBucket(_Model):
    """A duration a small model can pick by name instead of writing a number."""

    label: str
    unit: Literal["steps", "seconds"]
    low: float
    high: float


DURATION_BUCKETS: tuple[DurationBucket, ...] = (
    DurationBucket(label="1-3 steps", unit="steps", low=1, high=3),
    DurationBucket(label="5-20 steps", unit="steps", low=5, high=20),
    DurationBucket(label="20-100 steps", unit="steps", low=20, high=100),
    DurationBucket(label="100-500 steps", unit="steps", low=100, high=500),
    DurationBucket(label="5-30 minutes", unit="seconds", low=300, high=1800),
    DurationBucket(label="30-90 minutes", unit="seconds", low=1800, high=5400),
    DurationBucket(label="2-6 hours", unit="seconds", low=7200, high=21600),
    DurationBucket(label="6-24 hours", unit="seconds", low=21600, high=86400),
    DurationBucket(label="1-3 days", unit="seconds", low=86400, high=259200),
)
BUCKETS = {b.label: b for b in DURATION_BUCKETS}


def duration_choices(*, step_seconds: float | None, length: int, max_share: float = 0.1) -> list[str]:
    """The duration buckets that fit a series: wall-clock ones need timestamps and must span two
    steps or more; none may exceed ``max_share`` of the normal data."""
    out = []
    for b in DURATION_BUCKETS:
        if b.unit == "seconds":
            if not step_seconds or b.low < 2 * step_seconds or b.high / step_seconds > max_share * length:
                continue
        elif b.label != "1-3 steps" and (step_seconds or b.high > max_share * length):
            continue  # with timestamps, wall-clock buckets say it better; steps past the limit are not episodes
        out.append(b.label)
    return out


class PriorDraft(_Model):
    """One anomaly prior in a flat form a small model can fill; :func:`draft_to_prior` completes it.

    The duration is picked from named buckets and the size is one typical number (a range is
    made around it): a small model copies numbers it sees (a schema's ``maximum``, the length
    of the data) into free numeric fields. Bounds are checked on validation and by the operators.
    """

    mechanism: str = Field(min_length=1, max_length=300, description="what goes wrong and what it does to the readings")
    morphology: Morphology = Field(description="the shape it leaves in the series")
    channels: list[str] = Field(max_length=3, description="the channels where it shows (empty: any one channel)")
    duration: str = Field(description="how long one occurrence typically lasts")
    direction: Literal["up", "down", "either"] = "either"
    size: float | None = Field(
        None, description="how large, in local standard deviations (a factor for amplitude_scaling and frequency_change)",
    )
    location: Literal["anywhere", "peak", "trough", "rising", "falling"] = "anywhere"
    regime: Regime = Field("any", description="only in windows of this level or volatility regime")

    @model_validator(mode="after")
    def _check(self) -> PriorDraft:
        if self.duration not in BUCKETS:
            raise ValueError(f"duration must be one of {list(BUCKETS)}, got {self.duration!r}")
        if self.size is not None and not 0 < self.size <= 100:
            raise ValueError(f"size must be above 0 and at most 100 local standard deviations, got {self.size:g}")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels must be distinct")
        return self


REASON_CHARS = 400


def _clip_reason(value: Any) -> Any:
    """Cut an over-long reason instead of failing the verdict: the 0.5B model writes past 400
    characters on every attempt, and three repair rounds cost two minutes for nothing."""
    if isinstance(value, str) and len(value) > REASON_CHARS:
        return value[: REASON_CHARS - 1].rstrip() + "…"
    return value


class Critique(_Model):
    """A judge's verdict on one rule and its samples."""

    reason: Annotated[str, BeforeValidator(_clip_reason)] = Field(
        min_length=1, max_length=REASON_CHARS, description="one sentence: why"
    )
    verdict: Literal["keep", "revise", "reject"]


def draft_schema(channels: Sequence[str], *, durations: Sequence[str],
                 shapes: Sequence[str] | None = None) -> type[PriorDraft]:
    """:class:`PriorDraft` with ``channels``, ``duration`` and (given ``shapes``) ``morphology``
    limited to what fits the series and the fault's candidates.

    The enums reach the model through the JSON Schema, so a server that constrains decoding
    with it cannot name a channel the series lacks, a duration that does not fit or a shape the
    measurements struck out.
    """
    if not durations:
        raise ValueError("no duration bucket fits this series")
    fields: dict[str, Any] = {
        "duration": (Literal[tuple(durations)], Field(description="how long one occurrence typically lasts")),  # type: ignore[valid-type]
    }
    if shapes:
        unknown = [s for s in shapes if s not in MORPHOLOGIES]
        if unknown:
            raise ValueError(f"unknown shapes {unknown}")
        fields["morphology"] = (Literal[tuple(dict.fromkeys(shapes))], Field(description="the shape it leaves in the series"))  # type: ignore[valid-type]
    if 0 < len(channels) <= MAX_CHANNEL_ENUM:
        names = tuple(dict.fromkeys(channels))
        fields["channels"] = (
            list[Literal[names]],  # type: ignore[valid-type]
            Field(max_length=min(3, len(names)), description="the channels where it shows (empty: any one channel)"),
        )
    return create_model("AnomalyPriorDraft", __base__=PriorDraft, __doc__=PriorDraft.__doc__, **fields)


# --------------------------------------------------------------------- conversion
def draft_to_prior(draft: PriorDraft, *, fault: str = "") -> tuple[AnomalyPrior, list[str]]:
    """The :class:`AnomalyPrior` a draft states, and notes on fields its shape has no use for.

    The duration bucket becomes a uniform range; a typical size ``s`` becomes
    ``U(0.75 s, 1.25 s)``. A size for a shape without magnitude (flatline, dropout, ...) or a
    direction for one without direction is dropped and noted, not failed: the rest of the prior
    stands. Sizes outside an operator's bounds are left for :func:`compile_prior` to reject.
    """
    notes: list[str] = []
    spec = OPERATORS[operator_for(draft.morphology)]
    scale = None
    if draft.size is not None:
        if spec.scale_param is None:
            notes.append(f"ignored size {draft.size:g}: '{draft.morphology}' has no magnitude")
        else:
            lo, hi = (1 - SIZE_SPREAD) * draft.size, (1 + SIZE_SPREAD) * draft.size
            scale = Uniform(low=round(lo, 6), high=round(hi, 6))
    direction = draft.direction
    if direction != "either" and not spec.has_param("direction"):
        notes.append(f"ignored direction '{direction}': '{draft.morphology}' has no direction")
        direction = "either"
    bucket = BUCKETS[draft.duration]
    duration = DurationPrior(unit=bucket.unit, dist=Uniform(low=bucket.low, high=bucket.high))
    prior = AnomalyPrior(
        mechanism=draft.mechanism,
        morphology=draft.morphology,
        context=ContextPrior(location=draft.location, regime=draft.regime, channels=list(draft.channels)),
        scale=scale,
        duration=duration,
        direction=direction,
        evidence=f"scenario text names: {fault}" if fault else "",
    )
    return prior, notes


# ---------------------------------------------------------------------- rendering
class ChannelFacts(_Model):
    name: str
    median: float
    low: float = Field(description="5th percentile")
    high: float = Field(description="95th percentile")
    local_sd: float = Field(description="median over windows of the local robust scale, the unit sizes are given in")


class SeriesFacts(_Model):
    """What the model is told about the normal data besides the plot (short enough for any context)."""

    name: str
    length: int
    channels: list[str]
    step_seconds: float | None
    start: str | None = None
    end: str | None = None
    channel_facts: list[ChannelFacts] = Field(default_factory=list)

    def text(self) -> str:
        span = ""
        if self.step_seconds:
            span = f", one every {human_seconds(self.step_seconds)} ({human_seconds(self.length * self.step_seconds)})"
        when = f" from {self.start} to {self.end}" if self.start else ""
        lines = [f"'{self.name}', {self.length} steps{span}{when}; channels: {', '.join(self.channels)}"]
        lines += [f"- {c.name}: median {c.median:.4g}, 5-95% {c.low:.4g} to {c.high:.4g}, local sd {c.local_sd:.3g}"
                  for c in self.channel_facts]
        return "\n".join(lines)


FACTS_WINDOW = 100
FACTS_MAX_CHANNELS = 12


def series_facts(series: TimeSeries) -> SeriesFacts:
    """Length, sampling and per-channel levels of the normal data; sizes are in its local sd."""
    from anomalygraph.core.stats import robust_scale
    from anomalygraph.rulebank.sampler import step_seconds

    ts = series.timestamps
    values = series.values
    window = min(FACTS_WINDOW, series.length)
    starts = np.unique(np.linspace(0, series.length - window, 64).astype(int))
    local = np.median(robust_scale(values[starts[:, None] + np.arange(window)[None, :]]), axis=0)
    low, median, high = np.percentile(values, [5, 50, 95], axis=0)
    shown = np.argsort(-values.std(axis=0), kind="stable")[:FACTS_MAX_CHANNELS]
    facts = [ChannelFacts(name=series.channels[i], median=float(median[i]), low=float(low[i]), high=float(high[i]),
                          local_sd=float(local[i])) for i in sorted(shown)]
    return SeriesFacts(
        name=series.name, length=series.length, channels=list(series.channels), step_seconds=step_seconds(series),
        start=None if ts is None else str(ts[0]), end=None if ts is None else str(ts[-1]), channel_facts=facts,
    )


def describe_duration(duration: DurationPrior, step_seconds: float | None = None) -> str:
    lo, hi = duration.dist.support() or (0.0, 0.0)
    if duration.unit == "seconds":
        return f"{human_seconds(lo)} to {human_seconds(hi)}" if lo != hi else human_seconds(lo)
    if duration.unit == "window":
        return f"{lo:g} to {hi:g} of the window"
    steps = f"{lo:g} to {hi:g} steps" if lo != hi else f"{lo:g} steps"
    if step_seconds:
        steps += f" ({human_seconds(lo * step_seconds)} to {human_seconds(hi * step_seconds)})"
    return steps


def describe_rule(rule: Rule, step_seconds: float | None = None) -> str:
    """A rule in a few lines a model (or a person) can judge."""
    params = ", ".join(f"{k} {v.describe()}" for k, v in rule.params.items())
    where = rule.where.location
    if rule.where.regime != "any":
        where += f", only in {rule.where.regime.replace('_', ' ')} windows"
    return (
        f"- mechanism: {rule.mechanism or '(not stated)'}\n"
        f"- shape: {rule.morphology} ({params or 'operator defaults'})\n"
        f"- channels: {rule.channels.describe() if rule.channels.mode != 'random' else 'any one channel'}\n"
        f"- duration: {describe_duration(rule.duration, step_seconds)}\n"
        f"- where: {where}"
    )


def describe_samples(batch: PseudoAnomalyBatch, channels: Sequence[str], step_seconds: float | None = None,
                     limit: int = 4) -> str:
    """What each drawn pseudo-anomaly did, in local robust scales, for a model without vision.

    Per sample: the most changed channel, the anomaly's length, how far the level moved and how
    the spread changed inside it, and the shape the window explainer reads in the result.
    """
    from anomalygraph.plots.rulebank import most_changed_channel
    from anomalygraph.tools.explain import explain_window

    lines = []
    for i in range(min(len(batch), limit)):
        c = most_changed_channel(batch, i)
        mask = batch.mask[i]
        steps = int(mask.sum())
        raw, pa = batch.x_raw[i, :, c].astype(np.float64), batch.x_pa[i, :, c].astype(np.float64)
        outside = raw[~mask] if (~mask).any() else raw
        scale = max(mad_sigma(raw), float(raw.std()), 1e-9)
        level = (float(pa[mask].mean()) - float(outside.mean())) / scale if steps else 0.0
        before = float(raw[mask].std()) if steps > 1 else 0.0
        after = float(pa[mask].std()) if steps > 1 else 0.0
        spread = "frozen (no variation)" if steps > 1 and after < 1e-6 * max(scale, 1.0) else (
            f"spread x{after / before:.1f}" if before > 0 else "spread n/a")
        length = f"{steps} steps" + (f" ({human_seconds(steps * step_seconds)})" if step_seconds else "")
        shape = ""
        idx = np.flatnonzero(mask)
        if steps and batch.x_pa.shape[1] - steps >= 10:
            try:
                window = TimeSeries(values=batch.x_pa[i], channels=list(channels), name="sample")
                with warnings.catch_warnings():  # explain_window warns on one-step windows (an empty half)
                    warnings.simplefilter("ignore", RuntimeWarning)
                    seen = explain_window(window, int(idx[0]), int(idx[-1]), context=batch.x_pa.shape[1])
                found = [d for d in seen.deviating_channels if d.channel == channels[c]]
                shape = f"; reads as {found[0].morphology}" if found else "; reads as nothing unusual"
            except AnomalyGraphError:
                shape = ""
        extra = int(batch.channels[i].sum()) - 1
        also = f" (+{extra} more channel{'s' if extra > 1 else ''})" if extra > 0 else ""
        lines.append(
            f"- sample {i + 1}: {channels[c]}{also}, {length}, level {level:+.1f} sd, {spread}, "
            f"largest change {float(batch.effect[i]):.1f} sd{shape}"
        )
    return "\n".join(lines) if lines else "- no sample could be drawn"


def _json(obj: BaseModel) -> str:
    return json.dumps(obj.model_dump(mode="json", exclude_defaults=True), separators=(", ", ": "))


# -------------------------------------------------------------------------- agent
class Proposal(_Model):
    """One answer of the miner: the prior, the raw answer it came from, and conversion notes."""

    prior: AnomalyPrior
    answer: str = Field(description="the model's answer as JSON, shown back to it when it must be fixed")
    notes: list[str] = Field(default_factory=list)


@dataclass
class PriorMiner:
    """The agent: one chat model, the prompt files under ``prompts/rulebank/``, structured answers.

    Every method is one structured call (with the LLM layer's bounded repair retries); a
    transport failure propagates as an ``LLMError``, a persistently invalid answer as a
    ``StructuredOutputError``.
    """

    model: BaseChatModel
    capabilities: ModelCapabilities
    form: PriorForm = "compact"
    retries: int | None = None
    _prompts: dict[str, PromptTemplate] = field(default_factory=dict, repr=False)

    def prompt(self, name: str) -> PromptTemplate:
        if name not in self._prompts:
            self._prompts[name] = load_prompt(f"rulebank/{name}")
        return self._prompts[name]

    @property
    def prompt_versions(self) -> list[str]:
        return [load_prompt(p).ref for p in PROMPTS]

    @property
    def model_name(self) -> str:
        return model_name(self.model)

    def _system(self, *, shapes: bool = True) -> SystemMessage:
        """The role; with ``shapes``, the vocabulary of anomaly shapes priors are written in."""
        text = self.prompt("system").render()
        if shapes:
            text += "\n\n" + self.prompt("shapes").render()
        return SystemMessage(content=text)

    def _ask(self, schema: type[BaseModel], messages: list[BaseMessage]) -> Any:
        from anomalygraph.llm.structured import structured

        return structured(self.model, schema, messages, retries=self.retries, capabilities=self.capabilities)

    # ------------------------------------------------------------------ faults
    def list_faults(self, scenario: str, *, max_faults: int = 8) -> list[str]:
        """The distinct faults ``scenario`` names, at most ``max_faults``, duplicates removed.

        The question shows the scenario's narrative only (:func:`narrative`) and no channel
        names: a small model copies headings, tables and listed facts into its answer.
        """
        text = self.prompt("list_faults").render(scenario=_clip(narrative(scenario)), max_faults=max_faults)
        answer: FaultList = self._ask(FaultList, [self._system(shapes=False), HumanMessage(content=text)])
        seen: dict[str, str] = {}
        for fault in answer.faults:
            seen.setdefault(fault.lower(), fault)
        return list(seen.values())[:max_faults]

    # ------------------------------------------------------------------ priors
    def context_message(self, scenario: str, facts: SeriesFacts, *, view: TimeSeries | None = None,
                        plot: str | Path | None = None) -> HumanMessage:
        """The scenario, the facts and the plot (an image for a vision model, else its text rendering).

        It is the same for every prior of a run, so a server that caches prompt prefixes reads it once.
        """
        from anomalygraph.llm.messages import plot_message

        text = self.prompt("series_context").render(scenario=_clip(scenario), facts=facts.text())
        if view is None and plot is None:
            return HumanMessage(content=text)
        return plot_message(text, capabilities=self.capabilities, image=plot, series=view)

    def propose(self, context: HumanMessage, facts: SeriesFacts, fault: str, *,
                previous: str | None = None, problem: str | None = None,
                candidates: str = "", shapes: Sequence[str] | None = None) -> Proposal:
        """One prior for ``fault``; with ``previous`` and ``problem``, a corrected one.

        ``candidates`` (the text of :meth:`FaultCandidates.describe`) is shown to the model and
        ``shapes`` limits the compact form's shape enum to them.
        """
        durations = duration_choices(step_seconds=facts.step_seconds, length=facts.length, max_share=MAX_DURATION_SHARE)
        units = ", ".join(durations) if self.form == "compact" else (
            "steps, or seconds" if facts.step_seconds else "steps")
        ask = self.prompt("propose_prior").render(fault=fault, channels=", ".join(facts.channels), units=units,
                                                  candidates=candidates)
        messages: list[BaseMessage] = [self._system(), context, HumanMessage(content=ask)]
        if previous is not None:
            fix = self.prompt("fix_prior").render(fault=fault, previous=previous, problem=problem or "it is invalid")
            messages.append(HumanMessage(content=fix))
        if self.form == "full":
            prior: AnomalyPrior = self._ask(AnomalyPrior, messages)
            return Proposal(prior=prior, answer=_json(prior))
        draft: PriorDraft = self._ask(draft_schema(facts.channels, durations=durations, shapes=shapes), messages)
        prior, notes = draft_to_prior(draft, fault=fault)
        return Proposal(prior=prior, answer=_json(draft), notes=notes)

    # ---------------------------------------------------------------- critique
    def critique(self, scenario: str, fault: str, rule: Rule, samples: str, *, step_seconds: float | None = None,
                 plot: str | Path | None = None) -> Critique:
        """Keep, revise or reject ``rule`` given its samples (and their plot, for a vision model)."""
        text = self.prompt("critique").render(
            scenario=_clip(scenario), fault=fault, rule=describe_rule(rule, step_seconds), samples=samples
        )
        message: HumanMessage = HumanMessage(content=text)
        if plot is not None and self.capabilities.vision:
            from anomalygraph.llm.messages import plot_message

            message = plot_message(text, capabilities=self.capabilities, image=plot)
        return self._ask(Critique, [self._system(), message])


_MARKUP = ("#", "|", "- ", "* ", "+ ")
MIN_NARRATIVE_CHARS = 80


def narrative(text: str) -> str:
    """The prose of a scenario text: without markdown headings, table rows and list items.

    Faults are told in sentences; tables and lists hold channel metadata and facts (sampling,
    dates, lengths) that a small model copies into a fault list. A text that is mostly markup
    is returned whole.
    """
    kept = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith(_MARKUP)]
    prose = "\n".join(kept).strip()
    return prose if len(prose) >= MIN_NARRATIVE_CHARS else text.strip()


def _clip(text: str, limit: int = MAX_SCENARIO_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


__all__ = [
    "DURATION_BUCKETS",
    "PROMPTS",
    "ChannelFacts",
    "Critique",
    "FaultList",
    "PriorDraft",
    "PriorForm",
    "PriorMiner",
    "Proposal",
    "SeriesFacts",
    "describe_duration",
    "describe_rule",
    "describe_samples",
    "draft_schema",
    "draft_to_prior",
    "duration_choices",
    "model_name",
    "narrative",
    "series_facts",
]
