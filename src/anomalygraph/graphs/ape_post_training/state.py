"""State of the APE post-training graph: JSON only (paths to models, scores and plots, never arrays)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.graphs.context import RunContext

Outcome = Literal["improved", "unchanged", "worse", "unmeasured"]


class APERequest(BaseModel):
    """What to post-train, with which pseudo-anomalies, and where the results go."""

    model_config = ConfigDict(extra="forbid")

    series_path: str = Field(description="the series file; the backbone fits on its training split (else all rows)")
    out_dir: str = Field(description="folder for the models, scores, plots and verdict")
    backbone: str = Field("tranad", description="tranad, donut, timesnet or anomaly_transformer")
    bank: str = Field("cutaddpaste", description="a built-in bank, a bank file, 'ncad', or 'generate' (mine one)")
    scenario: str | None = Field(None, description="the scenario text, needed when bank is 'generate'")
    fit: dict[str, Any] = Field(default_factory=dict, description="backbone settings, e.g. {'epochs': 5}")
    ape: dict[str, Any] = Field(default_factory=dict, description="post-training settings (APEConfig fields)")


@dataclass(kw_only=True)
class APEContext(RunContext):
    """``auto_approve``: a mined bank is stored without the approval interrupt (this graph runs unattended)."""

    auto_approve: bool = True
    max_steps: int = 40


class Accuracy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vus_pr: float
    auc_pr: float


class APEVerdict(BaseModel):
    """What post-training did: the delta, the bank it used, where the artifact is."""

    model_config = ConfigDict(extra="forbid")

    series: str
    backbone: str
    source: str
    bank: dict[str, Any] | None = Field(None, description="name, version, sha256 of the bank (None for 'ncad')")
    artifact: str = Field(description="folder of the post-trained detector (with ape.json)")
    before: Accuracy | None = Field(None, description="on the rows after the training split; None without labels there")
    after: Accuracy | None = None
    delta_vus_pr: float | None = None
    pseudo_auc_before: float
    pseudo_auc_after: float
    negative_similarity_before: float
    negative_similarity_after: float
    outcome: Outcome
    plot: str
    samples_plot: str | None = None
    explanation: str


class APEState(TypedDict, total=False):
    request: dict[str, Any]
    bank_path: str | None  # None: 'ncad'
    samples_plot: str | None
    backbone_dir: str
    before_scores: str
    artifact_dir: str
    after_scores: str
    verdict: dict[str, Any]
    timings: dict[str, float]
