"""The stream's settings: ordering policy, warm-up, detection, judge and fine-tune trigger."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

JudgeKind = Literal["llm", "rule", "keep_all"]


class StreamConfig(BaseModel):
    """CALM's loop for every series key; the defaults follow the paper where it states them."""

    model_config = ConfigDict(extra="forbid")

    forecaster: str = Field("quantile_mlp", description="registered quantile forecaster (detectors.calm)")
    forecaster_config: dict[str, Any] = Field(default_factory=dict, description="its settings")
    warmup: int = Field(512, ge=16, description="first points of each key: fit the forecaster, not scored")
    k: float = Field(1.5, gt=0, le=10, description="flag outside [Q1 - k IQR, Q3 + k IQR]")
    judge: JudgeKind = Field("rule", description="who labels flags: the LLM judge, the rule judge, or keep-all")
    neighbours: int = Field(10, ge=1, le=500, description="points before and after a flag shown to the judge")
    batch_size: int | None = Field(10, ge=1, le=10_000, description="N: KEEP points that trigger one fine-tune (None: never fine-tune)")
    epochs: int = Field(1, ge=1, le=50, description="fine-tune epochs (the paper: 1)")
    noise_level: float = Field(0.0, ge=0, le=5, description="Gaussian augmentation, x std of the data (0: off)")
    finetune_history: int = Field(2048, ge=64, description="most recent points a fine-tune trains on")
    max_gap: int = Field(100, ge=0, description="fill at most this many missing steps by interpolation; longer gaps restart the context")
    step: float | None = Field(None, gt=0, description="expected seconds between points; None: the median step of the warm-up")
    swap_poll: float = Field(1.0, ge=0, description="seconds between looks at the model store for a newer version "
                             "published by another process (the loop's own fine-tunes swap at once)")
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> StreamConfig:
        if self.finetune_history < self.warmup // 4:
            raise ValueError(f"finetune_history ({self.finetune_history}) is too short for warm-up {self.warmup}")
        return self
