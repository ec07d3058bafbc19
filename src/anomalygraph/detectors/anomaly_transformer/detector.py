"""The Anomaly Transformer behind the project's ``Detector`` contract.

What the method is worth, so nobody trusts it blindly: the paper reports point-adjusted F1 of
92-98 on SMD/MSL/SMAP/PSM, but point adjustment credits a whole event for one hit; without it
the F1 collapses (MSL 0.93 -> 0.02 in the reference repository's issues), and on the TSB-AD
benchmark the model ranks last by VUS-PR (0.12 on both the univariate and multivariate sets,
where IForest gets 0.30 / 0.20). Use it as one voice among several.

Scores per timestamp: the criterion is computed for every position of every window (stride 1)
and mapped back with the shared windowing (mean over the windows covering a timestamp). TSB-AD
keeps only each window's last position, where the softmax weight of the criterion often
underflows to exactly 0 in float32 (every score is 0.0 on SMAP A-4 and NAB ec2_cpu_24ae8d), and
its scores sit early in time: window i's score lands on timestamp i instead of i + L - 1 for
multivariate input, and about L / 2 steps early for univariate input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anomalygraph.core.device import torch_device
from anomalygraph.detectors.anomaly_transformer.config import AnomalyTransformerConfig
from anomalygraph.detectors.anomaly_transformer.model import (
    AnomalyTransformerModel,
    anomaly_criterion,
    fused_minimax_loss,
)
from anomalygraph.detectors.anomaly_transformer.training import (
    TrainingReport,
    build_model,
    resolve_precision,
    score_series,
    train_model,
)
from anomalygraph.detectors.base import Detector, register_detector
from anomalygraph.detectors.deep.runtime import (
    available_cores,
    load_weights,
    rng_devices,
    save_weights,
    torch_threads,
)

WEIGHTS_FILE = "model.pt"
TRAINING_FILE = "training.json"


@register_detector
class AnomalyTransformerDetector(Detector):
    """Reconstruction error weighted by softmax(-association discrepancy), per timestamp."""

    name = "anomaly_transformer"
    heavy = True
    config_class = AnomalyTransformerConfig
    summary = (
        "Anomaly Transformer (ICLR 2022): attention-prior discrepancy x reconstruction error; "
        "deep and slow, ranks low on TSB-AD by VUS-PR"
    )
    caveat = (
        "ranks last on TSB-AD by VUS-PR (0.12 on the univariate and multivariate sets, where IForest gets "
        "0.30 and 0.20); the paper's F1 of 92-98 relies on point adjustment"
    )
    config: AnomalyTransformerConfig

    def __init__(self, config: AnomalyTransformerConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.model_: AnomalyTransformerModel | None = None
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.training_: TrainingReport | None = None

    @property
    def min_length(self) -> int:
        return self.config.window

    @property
    def device(self) -> torch.device:
        """The configured device, checked here so a typo or a missing GPU is one clear error."""
        return torch_device(self.name, self.config.device)

    # ---------------------------------------------------------------- contract
    def _fit(self, values: np.ndarray, labels: np.ndarray | None) -> None:
        del labels  # unsupervised; the reference ignores training labels too
        device = self.device
        precision = resolve_precision(self.config, device)
        values64 = values.astype(np.float64)
        std = values64.std(axis=0)
        self.mean_ = values64.mean(axis=0).astype(np.float32)
        self.scale_ = np.where(std > 0, std, 1.0).astype(np.float32)
        with (
            torch_threads(self.threads()),
            torch.random.fork_rng(devices=rng_devices(device)),
        ):
            torch.manual_seed(self.config.seed)
            model = build_model(values.shape[1], self.config).to(device)
            self.training_ = train_model(
                model, self.standardise(values), self.config, device, precision
            )
        self.model_ = model

    def _score(self, values: np.ndarray) -> np.ndarray:
        assert self.model_ is not None
        device = self.device
        with torch_threads(self.threads()):
            return score_series(
                self.model_,
                self.standardise(values),
                self.config,
                device,
                resolve_precision(self.config, device),
            )

    # ------------------------------------------------------ APE's Encoder
    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        assert self.model_ is not None
        return self.model_.encode(windows)

    def backbone_loss(self, windows: torch.Tensor) -> torch.Tensor:
        """The fused minimax loss the model is trained with (one backward pass for both phases)."""
        assert self.model_ is not None
        return fused_minimax_loss(self.model_(windows), windows, self.config.k)[0]

    def window_scores(self, windows: torch.Tensor) -> torch.Tensor:
        assert self.model_ is not None
        return anomaly_criterion(self.model_(windows), windows, self.config.temperature)

    # ------------------------------------------------------------ persistence
    def _save_state(self, directory: Path) -> None:
        assert self.model_ is not None and self.mean_ is not None and self.scale_ is not None
        save_weights(directory / WEIGHTS_FILE, self.model_, self.mean_, self.scale_)
        if self.training_ is not None:
            (directory / TRAINING_FILE).write_text(self.training_.model_dump_json(indent=2))

    def _load_state(self, directory: Path) -> None:
        assert self.n_features_ is not None
        model = build_model(self.n_features_, self.config)
        self.mean_, self.scale_ = load_weights(directory / WEIGHTS_FILE, model, "the Anomaly Transformer's weights")
        self.model_ = model.to(self.device)
        report = directory / TRAINING_FILE
        if report.is_file():
            self.training_ = TrainingReport.model_validate(json.loads(report.read_text()))

    # ---------------------------------------------------------------- helpers
    def standardise(self, values: np.ndarray) -> torch.Tensor:
        """Values (or windows) in the training data's units, as a float32 tensor on the device."""
        assert self.mean_ is not None and self.scale_ is not None
        z = (np.asarray(values, dtype=np.float32) - self.mean_) / self.scale_
        return torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)).to(self.device)

    def threads(self) -> int:
        return self.config.threads or available_cores()
