"""Settings every window backbone shares (TranAD, Donut, TimesNet); each adds its architecture's fields."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from anomalygraph.detectors.base import DetectorConfig

Reduce = Literal["mean", "max"]
ScoreWith = Literal["backbone", "latent", "fused"]


class DeepConfig(DetectorConfig):
    """Training and scoring of a backbone on sliding windows of standardised values."""

    window: int = Field(100, ge=2, le=10_000, description="window length L")
    train_stride: int = Field(1, ge=1, description="step between training windows")
    max_train_windows: int | None = Field(
        20_000, ge=16, description="evenly thin training windows to at most this many (None: all)"
    )
    score_stride: int = Field(1, ge=1, description="step between scored windows (1: every timestamp)")
    reduce: Reduce = Field("mean", description="how per-step window scores map back to timestamps")
    epochs: int = Field(10, ge=1, le=1000, description="most epochs; early stopping may end sooner")
    batch_size: int = Field(64, ge=1, description="windows per optimisation step")
    lr: float = Field(1e-3, gt=0, le=1, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0, description="Adam weight decay")
    validation_fraction: float = Field(
        0.2, ge=0, lt=1, description="last share of training windows held out for early stopping"
    )
    patience: int = Field(3, ge=1, description="epochs without a lower validation loss before stopping")
    score_with: ScoreWith = Field(
        "backbone",
        description="'backbone': the model's own score (its paper's); 'latent': the distance of a window's embedding "
        "to its nearest training embeddings; 'fused': both, each robust-standardised on the held-out training rows, summed",
    )
    latent_neighbours: int = Field(5, ge=1, le=100, description="k nearest training embeddings a latent score averages")
    latent_reference: int = Field(2000, ge=16, le=100_000, description="most training windows kept as the latent reference")
    device: str | None = Field(None, description="torch device; None = CUDA when present, else CPU")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch (None: every core allowed)")
