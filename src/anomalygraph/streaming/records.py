"""What flows through the stream and what it writes: one pydantic model per record kind."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Point(BaseModel):
    """One observation of one series; ``timestamp`` is event time in seconds since the epoch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    timestamp: float
    value: float
    label: int | None = None  # carried for evaluation only; nothing in the loop reads it

    @property
    def point_id(self) -> str:
        return f"{self.key}@{self.timestamp:.6f}"


class ScoredPoint(BaseModel):
    """A point after the loop: its forecast interval, score, flag and the model version that scored it."""

    model_config = ConfigDict(extra="forbid")

    key: str
    timestamp: float
    value: float
    seq: int  # the order the loop handled this key's points in (1, 2, ...): event-time order by construction
    label: int | None = None
    filled: bool = False  # interpolated over a gap: context only, never flagged
    warmup: bool = False  # used to fit the forecaster: not scored
    quantiles: list[float] | None = None
    lower: float | None = None
    upper: float | None = None
    score: float | None = None  # IQRs outside the bounds (negative inside): the authors' score, for ROC AUC and VUS-PR
    flagged: bool = False
    model_version: int | None = None


class Rejected(BaseModel):
    """A point the ordering policy did not score, and why (nothing is dropped silently)."""

    model_config = ConfigDict(extra="forbid")

    key: str
    timestamp: float
    value: float
    reason: Literal["duplicate", "conflicting duplicate", "late"]


class JudgmentRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    point_id: str
    key: str
    timestamp: float
    decision: Literal["KEEP", "REMOVE"]
    reason: str
    source: str
    model_version: int


class ModelEvent(BaseModel):
    """A model version becoming live for a key (version 1: the warm-up fit)."""

    model_config = ConfigDict(extra="forbid")

    key: str
    version: int
    at_timestamp: float
    trigger: Literal["warmup", "finetune"]
    keep_points: int = 0
    train_windows: int = 0
    val_loss_before: float | None = None
    val_loss_after: float | None = None
    seconds: float = 0.0
