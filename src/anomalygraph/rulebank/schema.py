"""The data model of a rule bank: anomaly priors, the rules they compile into, and the bank.

An :class:`AnomalyPrior` is what a person or an LLM says about a scenario's faults (mechanism,
morphology, where it happens, how large, how long). :func:`compile_prior` turns it into a
:class:`Rule`: one operator from the fixed registry in :mod:`anomalygraph.rulebank.operators`
with bounded parameter distributions. A :class:`RuleBank` is a versioned list of rules with its
provenance. Everything here is data: nothing a bank holds is ever evaluated as code, and every
parameter is checked against its operator's bounds when the model is built, so an out-of-range
value fails with the rule id and the field in the message.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from anomalygraph.core.errors import ConfigError
from anomalygraph.rulebank.distributions import Choice, Distribution, DistributionModel, Fixed
from anomalygraph.rulebank.names import MORPHOLOGY_OPERATOR, Morphology, OperatorName
from anomalygraph.rulebank.operators import OPERATORS

BANK_FORMAT = "anomalygraph-rulebank/1"

Location = Literal["anywhere", "peak", "trough", "rising", "falling", "phase"]
Regime = Literal["any", "high_level", "low_level", "high_volatility", "low_volatility"]
Source = Literal["heuristic", "llm", "human", "benchmark"]

_ID_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _numeric(dist: DistributionModel, what: str) -> tuple[float, float]:
    support = dist.support()
    if support is None:
        raise ValueError(f"{what} must be numeric, got categories {dist.categories()}")
    return support


# ---------------------------------------------------------------- building blocks
class DurationPrior(_Model):
    """How long an anomaly lasts: in steps, in seconds (needs timestamps), or as a share of the window."""

    unit: Literal["steps", "seconds", "window"] = Field(
        "steps", description="steps; seconds (converted with the series' median sampling step); window: a share of the window length"
    )
    dist: Distribution = Field(description="bounded distribution of the duration in that unit")

    @model_validator(mode="after")
    def _check(self) -> DurationPrior:
        low, high = _numeric(self.dist, "duration.dist")
        if low <= 0:
            raise ValueError(f"duration.dist: durations must be positive, {self.dist.describe()} reaches {low:g}")
        if self.unit == "window" and high > 1:
            raise ValueError(f"duration.dist: a window share must be in (0, 1], {self.dist.describe()} reaches {high:g}")
        return self

    def describe(self) -> str:
        unit = {"steps": "steps", "seconds": "s", "window": "× window"}[self.unit]
        return f"{self.dist.describe()} {unit}"


class Period(_Model):
    """A seasonal period; with ``seconds`` the phase follows wall-clock time (e.g. 86400 = time of day, UTC)."""

    value: float = Field(gt=0, le=1e9)
    unit: Literal["steps", "seconds"] = "steps"


class Placement(_Model):
    """Where inside a window (and in which windows) a rule places its anomaly."""

    location: Location = Field(
        "anywhere",
        description="anywhere; peak/trough: centred on a local maximum/minimum; rising/falling: on an edge; "
        "phase: at a seasonal phase (see phase, period)",
    )
    phase: tuple[float, float] | None = Field(
        None, description="for location=phase: [from, to] as fractions of the period in [0, 1]; from > to wraps around"
    )
    period: Period | None = Field(None, description="seasonal period for phase; estimated from the series when unset")
    regime: Regime = Field(
        "any", description="only windows whose level or volatility is in the top/bottom regime_share of the series"
    )
    regime_share: float = Field(0.3, gt=0, lt=1, description="share of windows that counts as a regime")

    @model_validator(mode="after")
    def _check(self) -> Placement:
        if self.location == "phase":
            if self.phase is None:
                raise ValueError("where.phase: location 'phase' needs phase: [from, to] in fractions of the period")
            if not all(0 <= p <= 1 for p in self.phase):
                raise ValueError(f"where.phase: both ends must be in [0, 1], got {list(self.phase)}")
        elif self.phase is not None:
            raise ValueError(f"where.phase is only used with location 'phase', not '{self.location}'")
        return self


class ChannelTarget(_Model):
    """Which channels an anomaly touches."""

    mode: Literal["all", "named", "random"] = Field("random", description="every channel, the named ones, or a random subset")
    names: list[str] = Field(default_factory=list, description="channel names for mode=named")
    count: Distribution | None = Field(None, description="for mode=random: how many channels (integers ≥ 1); default 1")
    fraction: Distribution | None = Field(None, description="for mode=random: share of channels in (0, 1]; instead of count")
    varying_only: bool = Field(True, description="random picks only channels that vary inside the window")

    @model_validator(mode="after")
    def _check(self) -> ChannelTarget:
        if self.mode == "named" and not self.names:
            raise ValueError("channels.names: mode 'named' needs at least one channel name")
        if self.mode != "named" and self.names:
            raise ValueError(f"channels.names is only used with mode 'named', not '{self.mode}'")
        if len(set(self.names)) != len(self.names):
            raise ValueError("channels.names: names must be distinct")
        if self.mode != "random" and (self.count is not None or self.fraction is not None):
            raise ValueError("channels.count and channels.fraction are only used with mode 'random'")
        if self.count is not None and self.fraction is not None:
            raise ValueError("channels: give count or fraction, not both")
        if self.count is not None:
            low, high = _numeric(self.count, "channels.count")
            if low < 1 or high > 100_000:
                raise ValueError(f"channels.count: must be in [1, 100000], {self.count.describe()} reaches outside")
        if self.fraction is not None:
            low, high = _numeric(self.fraction, "channels.fraction")
            if low <= 0 or high > 1:
                raise ValueError(f"channels.fraction: must be in (0, 1], {self.fraction.describe()} reaches outside")
        return self

    def describe(self) -> str:
        if self.mode == "all":
            return "all"
        if self.mode == "named":
            return ", ".join(self.names)
        if self.fraction is not None:
            return f"random {self.fraction.describe()} share"
        return f"random {self.count.describe() if self.count else '1'}"


class RuleProvenance(_Model):
    """Where a rule came from: the prior it was compiled from and who wrote that."""

    source: Source = "human"
    prior: AnomalyPrior | None = None
    note: str = Field("", max_length=2000)


# ----------------------------------------------------------------------- priors
class ContextPrior(Placement):
    """Contextual prior: where the anomaly happens, including on which named channels."""

    channels: list[str] = Field(default_factory=list, description="channel names it affects; empty: any one channel")


class AnomalyPrior(_Model):
    """One anomaly prior as an analyst (or the prior-mining agent) states it."""

    mechanism: str = Field(min_length=1, max_length=2000, description="the physical or operational cause, in words")
    morphology: Morphology = Field(description="the shape it leaves in the series")
    context: ContextPrior = Field(default_factory=ContextPrior)
    scale: Distribution | None = Field(
        None,
        description="how large, relative to the local robust scale (1.4826 × MAD of the window); "
        "for amplitude_scaling, variance_burst and frequency_change the factor itself",
    )
    duration: DurationPrior
    direction: Literal["up", "down", "either"] = "either"
    weight: float = Field(1.0, gt=0, le=1e6, description="how common it is relative to the other priors")
    evidence: str = Field("", max_length=2000, description="what in the series, plot or text suggests it")


# ------------------------------------------------------------------------ rules
class Rule(_Model):
    """One executable rule: an operator from the fixed registry with bounded parameter distributions."""

    id: str = Field(pattern=_ID_PATTERN, description="unique within the bank: lowercase letters, digits, _ and -")
    operator: OperatorName
    params: dict[str, Distribution] = Field(default_factory=dict, description="operator parameters; unset ones take the operator's default")
    duration: DurationPrior
    where: Placement = Field(default_factory=Placement)
    channels: ChannelTarget = Field(default_factory=ChannelTarget)
    weight: float = Field(1.0, gt=0, le=1e6, description="relative sampling weight")
    morphology: Morphology | None = Field(None, description="label this rule's anomalies carry; the operator's own when unset")
    mechanism: str = Field("", max_length=2000)
    provenance: RuleProvenance = Field(default_factory=RuleProvenance)

    @model_validator(mode="after")
    def _check_operator(self) -> Rule:
        spec = OPERATORS[self.operator]
        try:
            self.params = spec.complete_params(self.params)
        except ValueError as exc:
            raise ValueError(f"rule '{self.id}': {exc}") from None
        if self.morphology is None:
            self.morphology = spec.morphologies[0]
        elif self.morphology not in spec.morphologies:
            raise ValueError(
                f"rule '{self.id}': morphology: operator '{self.operator}' makes {', '.join(spec.morphologies)}, "
                f"not '{self.morphology}'"
            )
        if spec.min_channels > 1 and self.channels.mode == "all":
            raise ValueError(
                f"rule '{self.id}': channels: '{self.operator}' breaks a relation between channels, "
                "so it cannot touch all of them; use mode random or named"
            )
        return self

    def describe(self) -> str:
        params = ", ".join(f"{k}={v.describe()}" for k, v in self.params.items())
        return f"{self.operator}({params})"


class RuleCheck(_Model):
    id: str
    effect: float = Field(description="median over probe windows of the largest change inside the mask, in local robust scales")
    finite: bool


class BankReport(_Model):
    """What ``validate`` found when it ran every rule on probe windows."""

    checked_at: datetime
    anomalygraph_version: str
    ok: bool
    problems: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    rules: list[RuleCheck] = Field(default_factory=list)


class BankOrigin(_Model):
    """Who made a bank and from what."""

    made_by: Source = "human"
    model: str | None = Field(None, description="the LLM that mined it, if any")
    prompt_version: str | None = None
    created_at: datetime | None = None
    inputs: list[str] = Field(default_factory=list, description="what it was made from: files, plots, documents")
    note: str = Field("", max_length=4000)


class RuleBank(_Model):
    """A scenario's rule bank: versioned, with provenance, validated rule by rule."""

    format: Literal["anomalygraph-rulebank/1"] = BANK_FORMAT
    name: str = Field(pattern=_ID_PATTERN)
    description: str = Field("", max_length=8000)
    version: str = Field("1.0.0", pattern=r"^\d+(\.\d+){0,2}([-+][0-9A-Za-z.\-]+)?$")
    origin: BankOrigin = Field(default_factory=BankOrigin)
    rules: list[Rule] = Field(min_length=1, max_length=1000)
    report: BankReport | None = None

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: list[Rule]) -> list[Rule]:
        seen: set[str] = set()
        for rule in rules:
            if rule.id in seen:
                raise ValueError(f"rule id '{rule.id}' appears more than once")
            seen.add(rule.id)
        return rules

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    @property
    def rule_ids(self) -> list[str]:
        return [r.id for r in self.rules]


RuleProvenance.model_rebuild()


# ---------------------------------------------------------------- compilation
def operator_for(morphology: str) -> OperatorName:
    return MORPHOLOGY_OPERATOR[morphology]  # type: ignore[return-value]


def compile_prior(prior: AnomalyPrior, rule_id: str, *, source: Source = "llm") -> Rule:
    """The rule that generates ``prior``'s anomalies.

    A scale outside the operator's bounds fails like any out-of-range rule (pydantic
    ``ValidationError`` naming the rule and field); a scale or direction the morphology has no
    use for is a ``ConfigError``, never silently dropped.
    """
    operator = operator_for(prior.morphology)
    spec = OPERATORS[operator]
    params: dict[str, Any] = {}
    if prior.scale is not None:
        if spec.scale_param is None:
            raise ConfigError(
                f"prior for rule '{rule_id}': scale: morphology '{prior.morphology}' has no magnitude; leave scale unset"
            )
        params[spec.scale_param] = prior.scale
    if spec.has_param("direction"):
        direction = "down" if prior.morphology == "dip" else prior.direction
        params["direction"] = Choice(values=["up", "down"]) if direction == "either" else Fixed(value=direction)
    elif prior.direction != "either":
        raise ConfigError(f"prior for rule '{rule_id}': direction: morphology '{prior.morphology}' has no direction")
    if prior.context.channels:
        channels = ChannelTarget(mode="named", names=list(prior.context.channels))
    else:
        channels = ChannelTarget(mode="random")
    where = Placement.model_validate(prior.context.model_dump(exclude={"channels"}))
    return Rule(
        id=rule_id,
        operator=operator,
        params=params,
        duration=prior.duration,
        where=where,
        channels=channels,
        weight=prior.weight,
        morphology=prior.morphology,
        mechanism=prior.mechanism,
        provenance=RuleProvenance(source=source, prior=prior),
    )


# ------------------------------------------------------------------ JSON Schema
def _number_schema(low: float | None, high: float | None, integer: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer" if integer else "number"}
    if low is not None:
        schema["minimum"] = low
    if high is not None:
        schema["maximum"] = high
    return schema


def param_json_schema(low: float | None, high: float | None, *, integer: bool = False,
                      choices: tuple[str, ...] | None = None, description: str = "") -> dict[str, Any]:
    """JSON Schema of one bounded parameter distribution, with the operator's bounds built in."""
    if choices is not None:
        name = {"type": "string", "enum": list(choices)}
        variants: list[dict[str, Any]] = [
            {"type": "object", "properties": {"kind": {"const": "fixed"}, "value": name},
             "required": ["kind", "value"], "additionalProperties": False},
            {"type": "object", "properties": {
                "kind": {"const": "choice"},
                "values": {"type": "array", "items": name, "minItems": 1, "uniqueItems": True},
                "weights": {"type": "array", "items": {"type": "number", "minimum": 0}}},
             "required": ["kind", "values"], "additionalProperties": False},
        ]
    else:
        num = _number_schema(low, high, integer)
        positive = _number_schema(max(low or 0.0, 1e-12), high, integer)
        variants = [
            {"type": "object", "properties": {"kind": {"const": "fixed"}, "value": num},
             "required": ["kind", "value"], "additionalProperties": False},
            {"type": "object", "properties": {"kind": {"const": "uniform"}, "low": num, "high": num},
             "required": ["kind", "low", "high"], "additionalProperties": False},
            {"type": "object", "properties": {"kind": {"const": "log_uniform"}, "low": positive, "high": positive},
             "required": ["kind", "low", "high"], "additionalProperties": False},
            {"type": "object", "properties": {
                "kind": {"const": "normal"}, "mean": {"type": "number"}, "std": {"type": "number", "exclusiveMinimum": 0},
                "low": num, "high": num},
             "required": ["kind", "mean", "std", "low", "high"], "additionalProperties": False},
            {"type": "object", "properties": {
                "kind": {"const": "choice"},
                "values": {"type": "array", "items": num, "minItems": 1, "uniqueItems": True},
                "weights": {"type": "array", "items": {"type": "number", "minimum": 0}}},
             "required": ["kind", "values"], "additionalProperties": False},
        ]
    schema: dict[str, Any] = {"oneOf": variants}
    if description:
        schema["description"] = description
    return schema


def rule_bank_json_schema(*, for_llm: bool = True) -> dict[str, Any]:
    """JSON Schema of a bank in which each rule's ``params`` are bounded by its operator.

    ``for_llm`` drops the validation report, which only ``validate`` writes. The schema is what
    schema-guided decoding constrains an LLM with; pydantic applies the same bounds on load.
    """
    schema = copy.deepcopy(RuleBank.model_json_schema())
    defs = schema["$defs"]
    if for_llm:
        schema["properties"].pop("report", None)
        for name in ("BankReport", "RuleCheck"):
            defs.pop(name, None)
    generic = defs.pop("Rule")
    variants = []
    for name, spec in OPERATORS.items():
        variant = copy.deepcopy(generic)
        variant["title"] = f"Rule[{name}]"
        variant["description"] = f"{spec.summary} Morphology: {', '.join(spec.morphologies)}."
        props = variant["properties"]
        props["operator"] = {"const": name}
        props["morphology"] = {"enum": list(spec.morphologies)}
        props["params"] = {
            "type": "object",
            "properties": {
                p.name: param_json_schema(p.low, p.high, integer=p.integer, choices=p.choices, description=p.description)
                for p in spec.params
            },
            "additionalProperties": False,
        }
        variants.append(variant)
    defs["Rule"] = {"oneOf": variants, "description": "one rule; the operator decides which params it takes"}
    return schema


def prior_json_schema() -> dict[str, Any]:
    """JSON Schema of a list of anomaly priors, the prior-mining agent's output."""
    return {
        "title": "AnomalyPriors",
        "type": "object",
        "properties": {"priors": {"type": "array", "items": {"$ref": "#/$defs/AnomalyPrior"}, "minItems": 1}},
        "required": ["priors"],
        "additionalProperties": False,
        "$defs": AnomalyPrior.model_json_schema(ref_template="#/$defs/{model}")["$defs"]
        | {"AnomalyPrior": _strip_defs(AnomalyPrior.model_json_schema(ref_template="#/$defs/{model}"))},
    }


def _strip_defs(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != "$defs"}
