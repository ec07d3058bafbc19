"""Settings of the Anomaly Transformer detector.

Defaults follow the paper and its repository (thuml/Anomaly-Transformer, ``main.py``): window
100, d_model 512, 8 heads, 3 encoder layers, d_ff 512, lr 1e-4 halved every epoch, k (lambda) 3,
temperature 50, anomaly ratio 1 % (``contamination``), batch 128 (the document's; the
repository's scripts use 256).

Epochs: 3, as the repository's scripts train on SMAP, MSL and PSM; the paper's text and the seed
document say 10 (set ``epochs=10`` for that). The learning rate halves every epoch, so epochs
4-10 together move the weights less than the second epoch alone. Early stopping on the last 20 %
of the training rows ends training sooner when the validation reconstruction error stalls.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from anomalygraph.data.windows import Reduce
from anomalygraph.detectors.base import DetectorConfig

Precision = Literal["auto", "fp32", "bf16"]


class AnomalyTransformerConfig(DetectorConfig):
    """Architecture, optimisation and scoring settings; every field has the reference's default."""

    # ------------------------------------------------------------- architecture
    window: int = Field(
        100, ge=4, le=4096, description="sliding-window length L (the reference's win_size)"
    )
    d_model: int = Field(512, ge=4, description="embedding width; must be divisible by n_heads")
    n_heads: int = Field(8, ge=1, description="attention heads per layer")
    e_layers: int = Field(3, ge=1, le=12, description="encoder layers")
    d_ff: int = Field(512, ge=4, description="feed-forward width")
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="dropout in embedding, attention and feed-forward"
    )
    activation: Literal["gelu", "relu"] = "gelu"

    # ------------------------------------------------------------ optimisation
    k: float = Field(
        3.0, ge=0.0, description="weight lambda of the association discrepancy in the minimax loss"
    )
    lr: float = Field(
        1e-4,
        gt=0.0,
        le=1.0,
        description="Adam learning rate of the first epoch; halved every epoch",
    )
    batch_size: int = Field(128, ge=1, description="windows per optimisation step")
    epochs: int = Field(
        3,
        ge=1,
        le=1000,
        description="upper bound on training epochs (early stopping may end sooner)",
    )
    patience: int = Field(
        2,
        ge=1,
        description="epochs without improvement of the validation reconstruction loss before training stops",
    )
    min_improvement: float = Field(
        0.01,
        ge=0.0,
        lt=1.0,
        description="relative drop of the validation loss that counts as an improvement",
    )
    validation_fraction: float = Field(
        0.2,
        ge=0.0,
        lt=0.9,
        description="last part of the training rows held out for early stopping (0 disables it)",
    )
    train_stride: int = Field(1, ge=1, description="step between training and validation windows")

    # ---------------------------------------------------------------- scoring
    temperature: float = Field(
        50.0, gt=0.0, description="temperature of the softmax over -AssDis in the criterion"
    )
    # The criterion's softmax (temperature 50) puts almost all of a window's weight on one
    # position, so a timestamp only gets a useful score if some window covering it picks it:
    # stride 1 (every window, as TSB-AD scores) gives each timestamp L chances; stride s > 1
    # leaves most timestamps near zero and costs accuracy for an s-fold cheaper scoring pass.
    score_stride: int = Field(
        1,
        ge=1,
        description="step between scored windows; 1 = every window (accurate), larger = faster and coarser",
    )
    reduce: Reduce = Field("mean", description="how per-step window scores map back to timestamps")

    # ---------------------------------------------------------------- runtime
    device: str | None = Field(None, description="torch device; None = CUDA when present, else CPU")
    precision: Precision = Field(
        "auto",
        description="'auto' = bf16 autocast where the hardware has it (CUDA, or a CPU with AVX512-BF16/AMX), else fp32; 'fp32' or 'bf16' to force",
    )
    threads: int | None = Field(
        None, ge=1, description="CPU threads for torch; None = every core this process may use"
    )
    compile: bool = Field(
        False,
        description="wrap the model in torch.compile (pays a compile time on the first batches)",
    )

    @model_validator(mode="after")
    def _check_shapes(self) -> AnomalyTransformerConfig:
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if self.score_stride > self.window:
            raise ValueError(
                f"score_stride ({self.score_stride}) larger than the window ({self.window}) would leave timestamps unscored"
            )
        return self
