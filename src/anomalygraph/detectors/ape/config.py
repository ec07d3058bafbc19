"""The post-trainer's settings: the loss (tau, negatives, lambda), what may change, how long."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Adjust = Literal["all", "encoder"]


class APEConfig(BaseModel):
    """``L_post = L_rec + lambda * InfoNCE(q = z_raw, k+ = z_aug, k- = z_pa)``, trained on sampled batches."""

    model_config = ConfigDict(extra="forbid")

    weight: float = Field(0.1, ge=0, le=100, description="lambda: the contrastive loss's weight against the backbone loss")
    temperature: float = Field(0.1, gt=0, le=10, description="tau of the InfoNCE softmax over cosine similarities")
    negatives: int | None = Field(
        None, ge=1, description="negatives per anchor: its own pseudo-anomaly plus the next ones in the batch (None: all)"
    )
    adjust: Adjust = Field(
        "all", description="'all': every backbone parameter trains; 'encoder': only the encoder's, the decoder stays frozen"
    )
    epochs: int = Field(5, ge=1, le=200, description="most post-training epochs; early stopping may end sooner")
    steps_per_epoch: int = Field(50, ge=1, le=10_000, description="sampled batches per epoch")
    batch_size: int = Field(64, ge=2, le=4096, description="normal windows per batch (each with A(x) and G(x))")
    lr: float = Field(1e-4, gt=0, le=1, description="Adam learning rate, lower than a fit's: the normal manifold is kept")
    patience: int = Field(2, ge=1, description="epochs without a lower validation L_post before stopping")
    validation_fraction: float = Field(
        0.2, gt=0, lt=1, description="last share of the training rows whose sampled batches decide early stopping"
    )
    validation_batches: int = Field(4, ge=1, le=100, description="fixed batches drawn once from the validation rows")
    keep_fraction: float = Field(
        0.9, gt=0, le=1, description="normal candidate filtering: keep this share of windows the backbone scores lowest"
    )
    seed: int = 0
