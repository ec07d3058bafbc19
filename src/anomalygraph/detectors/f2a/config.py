"""Settings of F2A (Forecast2Anomaly, arXiv 2511.03149).

Defaults follow the paper where it says: a 512-step context, a 16-step horizon, anomalous
steps weighted x3 in the forecast MAE, focal loss for the anomaly head, the encoder frozen.
Where it does not (focal gamma / alpha, the fusion widths, the learning rate), the defaults are
the usual ones (gamma 2, alpha 0.25 from Lin et al.'s focal loss) and the eval's sensitivity
table says how much they matter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from anomalygraph.detectors.base import DetectorConfig

Loss = Literal["joint", "focal", "wmae"]
ScoreKind = Literal["probability", "forecast_error", "joint"]


class BackboneConfig(DetectorConfig):
    """TTM (granite-tsfm TinyTimeMixer) shape, used when no weights are given or shipped.

    The defaults make a 0.6M-parameter TTM (TTM-r1 512-96 has about 0.8M): 4 mixer layers of
    width 128, adaptive patching off. With TTM-r1's 3 adaptive-patching levels a training step
    took 33 ms per 512-step window here against 4 ms without, for a model of similar size.
    """

    context_length: int = Field(512, ge=32, le=4096, description="steps of context the backbone reads")
    horizon: int = Field(16, ge=1, le=720, description="steps ahead it forecasts and predicts anomalies for")
    patch_length: int = Field(16, ge=2, description="TTM patch length (and stride)")
    d_model: int = Field(128, ge=8, description="encoder width")
    num_layers: int = Field(4, ge=1, le=12, description="encoder mixer layers")
    decoder_d_model: int = Field(64, ge=8, description="decoder width")
    decoder_num_layers: int = Field(2, ge=1, le=12, description="decoder mixer layers")
    adaptive_patching_levels: int = Field(
        0, ge=0, le=5, description="TTM adaptive patching levels (0: off; 3, TTM-r1's, trains about 8x slower on CPU)"
    )

    @model_validator(mode="after")
    def _patches(self) -> BackboneConfig:
        if self.context_length % self.patch_length:
            raise ValueError(f"context_length {self.context_length} must be a multiple of patch_length {self.patch_length}")
        patches = self.context_length // self.patch_length
        if self.adaptive_patching_levels and patches % (2 ** self.adaptive_patching_levels):
            raise ValueError(f"{patches} patches cannot be halved {self.adaptive_patching_levels} times (adaptive patching)")
        return self


class F2AConfig(BackboneConfig):
    """Backbone, F2A head, retrieval and training settings."""

    weights: Literal["none"] | Path | None = Field(
        None, description="an F2A or TTM weights folder; default: the shipped weights if any; 'none': train the encoder here"
    )
    # ---------------------------------------------------------------- head / loss
    loss: Loss = Field("joint", description="joint (focal + weighted MAE), focal only, or weighted MAE only")
    focal_gamma: float = Field(2.0, ge=0.0, le=10.0, description="focal loss focusing parameter")
    focal_alpha: float = Field(0.25, gt=0.0, lt=1.0, description="focal loss weight of the anomalous class")
    anomaly_weight: float = Field(3.0, ge=1.0, description="weight of anomalous steps in the forecast MAE (paper: 3)")
    forecast_weight: float = Field(1.0, ge=0.0, description="weight of the MAE term against the focal term")
    score: ScoreKind = Field(
        "probability",
        description="probability: the predicted anomaly probability; forecast_error: the TTM baseline, |forecast - value| / "
        "scale; joint: the mean of both in robust sigmas of the held-out training windows",
    )
    # ----------------------------------------------------------------- retrieval
    rag_k: int = Field(4, ge=0, le=64, description="neighbours retrieved per window (0 = no retrieval)")
    fusion_heads: int = Field(4, ge=1, description="attention heads of the retrieval fusion")
    # ------------------------------------------------------------------ training
    fine_tune: bool = Field(True, description="train decoder, scaling, fusion and head on the training rows")
    epochs: int = Field(10, ge=0, le=500, description="fine-tuning epochs (early stopping may end sooner)")
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0.0, le=1.0)
    patience: int = Field(3, ge=1, description="epochs without validation improvement before stopping")
    validation_fraction: float = Field(0.2, gt=0.0, lt=0.9, description="last share of training windows held out")
    stride: int = Field(1, ge=1, description="step between training windows")
    max_windows: int = Field(20_000, ge=16, description="training windows at most (evenly thinned beyond)")
    encoder_cache_mb: int = Field(
        1024, ge=0, description="memory for the frozen encoder's outputs of the training windows, computed once for all "
        "epochs (beyond it, or 0: encoded again in every batch)"
    )
    encoder_epochs: int = Field(
        10, ge=0, description="without pretrained weights: epochs that first train the encoder on the training rows"
    )
    device: str | None = Field(None, description="cpu, cuda, cuda:1 ...; default: CUDA when present")
