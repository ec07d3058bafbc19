"""State of the rule-bank generation graph: JSON-serialisable only, so every step is checkpointed.

Arrays never enter the state: nodes reload the series from its path (cached per process) and
write plots to the run folder; the state holds paths, priors, rules and verdicts as plain data.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.agents.prior_miner import PriorForm
from anomalygraph.graphs.context import RunContext

RuleStatus = Literal["proposed", "kept", "unreviewed"]
Outcome = Literal["stored", "awaiting_approval", "failed", "rejected"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkItem(_Model):
    """One prior to (re)write: a fault, the rule id it becomes, and what went wrong last time."""

    fault: str
    rule_id: str
    attempt: int = Field(0, ge=0, description="proposals made for this item so far (compile repairs)")
    revision: int = Field(0, ge=0, description="critique rounds this rule has been revised in")
    previous: str | None = Field(None, description="the last answer, shown back to the model")
    problem: str | None = Field(None, description="why the last answer could not be used")
    shapes: list[str] = Field(default_factory=list, description="the shapes measurement left for it (empty: any)")
    candidates: str = Field("", description="its candidates as the propose prompt shows them")


class MinedRule(_Model):
    """A compiled, validated rule with where it came from and what the critic said."""

    fault: str
    rule: dict[str, Any] = Field(description="the Rule as JSON data")
    status: RuleStatus = "proposed"
    revision: int = 0
    attempts: int = 1
    effect: float | None = Field(None, description="median largest change of probe samples, in local scales")
    notes: list[str] = Field(default_factory=list)
    answer: str = Field("", description="the model's answer the rule came from, shown back when it must be revised")
    critique: str | None = None
    verdict: Literal["keep", "revise", "reject"] | None = None


class DroppedItem(_Model):
    fault: str
    rule_id: str
    stage: Literal["propose", "compile", "critique", "budget", "approval"]
    reason: str


class RuleSummary(_Model):
    """What a person approving the bank sees about one rule."""

    id: str
    fault: str
    morphology: str
    operator: str
    channels: str
    duration: str
    mechanism: str
    critique: str | None = None


class ApprovalRequest(_Model):
    """The payload of the human-approval interrupt."""

    bank: str
    rules: list[RuleSummary]
    plots: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class ApprovalDecision(_Model):
    """The answer that resumes an interrupted run: approve (optionally dropping rules) or reject."""

    action: Literal["approve", "reject"]
    drop: list[str] = Field(default_factory=list, description="rule ids to leave out of an approved bank")
    note: str = Field("", max_length=2000)
    by: Literal["human", "auto"] = "human"


class TraceEntry(_Model):
    node: str
    seconds: float
    model_steps: int = 0
    detail: str = ""


class GenerationResult(_Model):
    """What a finished run produced: the bank (when one was stored), what was dropped, and why."""

    status: Outcome
    bank_path: str | None = None
    bank_name: str
    model: str
    rules: list[RuleSummary] = Field(default_factory=list)
    dropped: list[DroppedItem] = Field(default_factory=list)
    faults: list[str] = Field(default_factory=list)
    model_steps: int = 0
    seconds: float = 0.0
    plots: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    decision: ApprovalDecision | None = None
    trace: list[TraceEntry] = Field(default_factory=list)


class GenerationState(TypedDict, total=False):
    # inputs
    scenario: str
    series_path: str
    train_end: int | None
    out_path: str
    work_dir: str
    bank_name: str
    # prepared once
    facts: dict[str, Any]
    inputs: list[str]
    overview_plot: str
    model: str
    prompt_versions: list[str]
    faults: list[str]
    measures: list[dict[str, Any]]
    candidates: list[dict[str, Any]]
    # the loop
    queue: list[dict[str, Any]]
    current: dict[str, Any] | None
    rules: dict[str, dict[str, Any]]
    steps: int
    round: int
    plots: Annotated[list[str], operator.add]
    samples: dict[str, str]
    checks: dict[str, dict[str, Any]]
    plot_in_prompt: bool
    decision: dict[str, Any]
    failed: str | None
    result: dict[str, Any]
    dropped: Annotated[list[dict[str, Any]], operator.add]
    notes: Annotated[list[str], operator.add]
    trace: Annotated[list[dict[str, Any]], operator.add]


@dataclass(kw_only=True)
class GenerationContext(RunContext):
    """Run-time settings, kept out of the checkpointed state (see :class:`RunContext`).

    The configured model (``model="settings"``, the default) is made on first use with its
    answer length capped at ``max_answer_tokens`` (every answer here is a small object, and the
    tokens not reserved for it leave room for the prompt in a small context window).
    ``show_plot``: send the plot (an image, or its text rendering for a text-only model); a
    rendering that does not fit the model's context is dropped for the run, with a note.
    ``critic``: ``checks`` judges each rule's samples by measurement (visible, plausible,
    distinct; no model call), ``model`` asks the model for a keep/revise/reject verdict.
    """

    auto_approve: bool = False
    max_priors: int = 8
    max_attempts: int = 3
    max_revisions: int = 1
    max_steps: int = 40
    critique: bool = True
    critic: Literal["checks", "model"] = "checks"
    samples_per_rule: int = 4
    window: int | None = None
    seed: int = 0
    form: PriorForm = "compact"
    show_plot: bool = True
    max_answer_tokens: int = 512
    min_effect: float = 0.5
