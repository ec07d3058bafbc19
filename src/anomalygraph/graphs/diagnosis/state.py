"""State of the diagnosis graph: JSON-serialisable only, so every step can be checkpointed.

Score arrays never enter the state: each detector writes its scores to ``<out>/scores/`` and
the state holds the path, which keeps checkpoints small and makes a resumed run reuse them.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.core.thresholds import Threshold, ThresholdMethod
from anomalygraph.data.feedback import FeedbackMark, FeedbackStore, default_store
from anomalygraph.detectors.fusion import FusedInterval
from anomalygraph.detectors.selection import DEFAULT_STRATEGY, CandidateSurrogates
from anomalygraph.graphs.context import RunContext

FEEDBACK_PREFIX = "feedback>"
"""Prefix of the selection strategy when feedback marks switched the strategy's choice (``feedback>best_on_tune``)."""


class DetectorPlan(BaseModel):
    """Which detectors to run and why; this is also the schema the LLM answers in."""

    model_config = ConfigDict(extra="forbid")

    detectors: list[str] = Field(min_length=1, max_length=10, description="registered detector names")
    reason: str = Field(max_length=600, description="one or two sentences")


class PlanRecord(DetectorPlan):
    source: Literal["user", "llm", "rules"]
    note: str | None = Field(None, description="why the rule-based fallback was used, when it was")


class DetectorRecord(BaseModel):
    """One detector's run; its joint-view threshold and intervals, and the file of all its candidate tracks."""

    detector: str
    status: Literal["ok", "error"]
    error: str | None = None
    candidates: list[str] = Field(default_factory=list, description="candidate tracks it produced (views)")
    candidate_errors: dict[str, str] = Field(default_factory=dict)
    tracks_path: str | None = None
    fitted_on: str | None = None
    threshold: Threshold | None = None
    n_flagged: int = 0
    intervals: list[tuple[int, int]] = Field(default_factory=list)
    fit_seconds: float | None = None
    score_seconds: float | None = None
    scores_path: str | None = None


class RankedFinding(FusedInterval):
    """A candidate interval of the selected track, ranked by severity; ``passes`` says whether it is flagged."""

    rank: int
    robust_z: float = Field(description="peak above the fit rows' median, in 1.4826 MAD")
    passes: bool
    channels: list[str] = Field(default_factory=list, description="channels whose own scores drove it, strongest first")
    marks: list[str] = Field(default_factory=list, description="feedback marks overlapping it, e.g. "
                             "'false alarm (alice, 2026-12-02 10:14 UTC)'; a false alarm unflags it")


class SelectionRecord(BaseModel):
    """Which track the verdict rests on, chosen without labels, and every candidate interval of it."""

    strategy: str
    chosen: list[str]
    weights: dict[str, float]
    reason: str
    threshold: Threshold
    roles: str = Field(description="channel roles read from the data")
    candidates: list[str]
    surrogates: dict[str, CandidateSurrogates] = Field(default_factory=dict)
    detectors: list[str] = Field(description="detectors whose tracks were candidates")
    intervals: list[RankedFinding]

    @property
    def flagged(self) -> list[RankedFinding]:
        return [iv for iv in self.intervals if iv.passes]


class Explanation(BaseModel):
    interval: RankedFinding
    start_time: str | None
    end_time: str | None
    statistics: str
    text: str
    source: Literal["llm", "statistics"]
    plot_path: str


class DiagnosisVerdict(BaseModel):
    """The JSON verdict: what was found, by whom, how sure, and where the evidence is."""

    series: str
    source: str
    length: int
    n_channels: int
    plan: PlanRecord
    detectors: list[DetectorRecord]
    selection: SelectionRecord | None
    explanations: list[Explanation]
    report_path: str
    plots: list[str]
    model: str | None
    prompt_versions: list[str]
    notes: list[str]
    feedback: list[FeedbackMark] = Field(default_factory=list, description="the effective feedback marks the run used")


class DiagnosisState(TypedDict, total=False):
    path: str
    out_dir: str
    requested: list[str] | None
    profile: dict[str, Any]
    plan: dict[str, Any]
    records: Annotated[list[dict[str, Any]], operator.add]
    injection_path: str
    selection: dict[str, Any]
    fused_path: str
    explanations: list[dict[str, Any]]
    feedback: list[dict[str, Any]]
    verdict: dict[str, Any]
    notes: Annotated[list[str], operator.add]


class DetectorTask(TypedDict):
    """What one fanned-out detector branch receives (LangGraph ``Send``)."""

    path: str
    out_dir: str
    detector: str


@dataclass(kw_only=True)
class DiagnosisContext(RunContext):
    """Run-time settings, kept out of the checkpointed state (see :class:`RunContext`).

    With ``model=None`` the plan is rule-based and the explanations are the measured statistics.
    ``feedback_dir``: the feedback store the selection reads marks from (``None``: the settings'
    ``<output.dir>/feedback``); ``use_feedback=False`` ignores marks (evaluations do).
    """

    max_explanations: int = 3
    max_detectors: int = 8
    contamination: float = 0.01
    selection: str = DEFAULT_STRATEGY
    threshold_method: ThresholdMethod = "percentile"
    top_k: int = 5
    feedback_dir: str | None = None
    use_feedback: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.feedback_dir is not None:
            self.feedback_dir = str(self.feedback_dir)

    def feedback_store(self) -> FeedbackStore | None:
        """Where this run's marks are read from; None when feedback is off."""
        if not self.use_feedback:
            return None
        return default_store() if self.feedback_dir is None else FeedbackStore(Path(self.feedback_dir))
