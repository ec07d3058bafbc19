"""State of the diagnosis graph: JSON-serialisable only, so every step can be checkpointed.

Score arrays never enter the state: each detector writes its scores to ``<out>/scores/`` and
the state holds the path, which keeps checkpoints small and makes a resumed run reuse them.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.core.thresholds import Threshold
from anomalygraph.detectors.fusion import FusedInterval, FusionResult
from anomalygraph.graphs.context import RunContext


class DetectorPlan(BaseModel):
    """Which detectors to run and why; this is also the schema the LLM answers in."""

    model_config = ConfigDict(extra="forbid")

    detectors: list[str] = Field(min_length=1, max_length=6, description="registered detector names")
    reason: str = Field(max_length=600, description="one or two sentences")


class PlanRecord(DetectorPlan):
    source: Literal["user", "llm", "rules"]
    note: str | None = Field(None, description="why the rule-based fallback was used, when it was")


class DetectorRecord(BaseModel):
    detector: str
    status: Literal["ok", "error"]
    error: str | None = None
    fitted_on: str | None = None
    threshold: Threshold | None = None
    n_flagged: int = 0
    intervals: list[tuple[int, int]] = Field(default_factory=list)
    fit_seconds: float | None = None
    score_seconds: float | None = None
    scores_path: str | None = None


class Explanation(BaseModel):
    interval: FusedInterval
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
    fusion: FusionResult | None
    explanations: list[Explanation]
    report_path: str
    plots: list[str]
    model: str | None
    prompt_versions: list[str]
    notes: list[str]


class DiagnosisState(TypedDict, total=False):
    path: str
    out_dir: str
    requested: list[str] | None
    profile: dict[str, Any]
    plan: dict[str, Any]
    records: Annotated[list[dict[str, Any]], operator.add]
    fusion: dict[str, Any]
    fused_path: str
    explanations: list[dict[str, Any]]
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
    """

    max_explanations: int = 3
    max_detectors: int = 4
    contamination: float = 0.01
