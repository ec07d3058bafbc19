"""``quantile_mlp``: a small quantile forecaster trained on the stream's own warm-up.

Why it exists: CALM's TimesFM needs weights this machine cannot download; a model that learns
from the first points of the stream works anywhere, in seconds on one core, and shows what the
fine-tuning loop does without a foundation model in the way.

The model reads the last ``C`` values, standardised with the warm-up's mean and std (kept for
good: a fine-tune on shifted data must see the shift, not have it scaled away), and outputs
``H x Q`` quantiles: a base (an MLP plus a linear path from the context, which carries the
level) and softplus increments, so the levels are monotone by construction. Trained with the
pinball loss, Adam, a fixed seed; deterministic on CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from anomalygraph.detectors.calm.forecaster import (
    FineTuneReport,
    ForecasterConfig,
    QuantileForecaster,
    register_forecaster,
    sliding_windows,
    split_windows,
)
from anomalygraph.detectors.deep.runtime import BestState, load_weights, save_weights, torch_threads

WEIGHTS_FILE = "weights.pt"

__all__ = ["QuantileMLP", "QuantileMLPConfig", "QuantileMLPForecaster", "pinball_loss"]


class QuantileMLPConfig(ForecasterConfig):
    """Shape and training of the quantile MLP."""

    context_length: int = Field(64, ge=2, le=4096, description="points of context each forecast reads")
    horizon: int = Field(16, ge=1, le=1024, description="points ahead each forecast covers")
    hidden: int = Field(64, ge=4, le=4096, description="width of the hidden layers")
    layers: int = Field(2, ge=1, le=8, description="hidden layers")
    epochs: int = Field(60, ge=1, le=10_000, description="most warm-up epochs (early stopping on the held-out 20 %)")
    patience: int = Field(6, ge=1, description="warm-up epochs without a better validation loss before stopping")
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0, le=1, description="Adam learning rate of the warm-up")
    fine_tune_lr: float = Field(1e-3, gt=0, le=1, description="Adam learning rate of fine_tune")
    weight_decay: float = Field(0.0, ge=0)
    validation_fraction: float = Field(0.2, ge=0, lt=1, description="last share of warm-up windows held out")


def pinball_loss(pred: torch.Tensor, target: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Mean quantile loss of ``pred [B, H, Q]`` against ``target [B, H]`` at ``levels [Q]``."""
    diff = target[..., None] - pred
    return torch.maximum(levels * diff, (levels - 1) * diff).mean()


class QuantileMLP(nn.Module):
    """``[B, C]`` standardised contexts -> ``[B, H, Q]`` quantiles, ascending along Q."""

    def __init__(self, context: int, horizon: int, levels: int, hidden: int, layers: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = context
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.GELU()]
            width = hidden
        self.body = nn.Sequential(*blocks)
        self.out = nn.Linear(width, horizon * levels)
        self.linear = nn.Linear(context, horizon)
        self.horizon, self.levels = horizon, levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.out(self.body(x)).view(len(x), self.horizon, self.levels)
        base = raw[..., :1] + self.linear(x)[..., None]
        return torch.cat([base, base + F.softplus(raw[..., 1:]).cumsum(-1)], dim=-1)


@register_forecaster
class QuantileMLPForecaster(QuantileForecaster):
    """Pinball-loss MLP on the warm-up's standardised windows."""

    name = "quantile_mlp"
    config_class = QuantileMLPConfig
    summary = "a small MLP trained on the stream's warm-up with the pinball loss; monotone quantiles"
    config: QuantileMLPConfig

    def __init__(self, config: QuantileMLPConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.mean_, self.scale_ = 0.0, 1.0
        self.model_ = self._build()

    @property
    def context_length(self) -> int:
        return self.config.context_length

    @property
    def horizon(self) -> int:
        return self.config.horizon

    def _build(self) -> QuantileMLP:
        c = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            return QuantileMLP(c.context_length, c.horizon, len(c.quantiles), c.hidden, c.layers)

    # ------------------------------------------------------------- training
    def _fit(self, values: np.ndarray) -> FineTuneReport:
        std = float(values.std())
        self.mean_, self.scale_ = float(values.mean()), std if std > 1e-12 else 1.0
        self.model_ = self._build()
        train, val = split_windows(sliding_windows(values, self.context_length + self.horizon),
                                   self.config.validation_fraction, horizon=self.horizon)
        best = BestState(self.model_, self.config.patience) if len(val) else None
        optimiser = self._optimiser(self.config.lr)
        loss, epoch = float("nan"), 0
        for epoch in range(1, self.config.epochs + 1):
            loss = self._epoch(optimiser, train, noise_std=0.0, rng=np.random.default_rng([self.config.seed, epoch]))
            if best is not None and best.update(epoch, self._loss(val)):
                break
        if best is not None:
            best.restore()
        return FineTuneReport(epochs=epoch, train_windows=len(train), val_windows=len(val), train_loss=loss,
                              val_loss_after=best.best if best is not None else None, seconds=0.0)

    def _train(self, windows: np.ndarray, *, epochs: int, noise_std: float, seed: int) -> float:
        optimiser = self._optimiser(self.config.fine_tune_lr)
        loss = float("nan")
        for epoch in range(epochs):
            loss = self._epoch(optimiser, windows, noise_std=noise_std, rng=np.random.default_rng([seed, epoch]))
        return loss

    def _optimiser(self, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model_.parameters(), lr=lr, weight_decay=self.config.weight_decay)

    def _epoch(self, optimiser: torch.optim.Optimizer, windows: np.ndarray, *, noise_std: float,
               rng: np.random.Generator) -> float:
        """One shuffled pass; the noise (in data units) is drawn afresh for every window of every epoch."""
        z = self._standardise(windows)
        if noise_std > 0:
            z = (z + rng.normal(0.0, noise_std / self.scale_, size=z.shape)).astype(np.float32)
        order = rng.permutation(len(z))
        levels = self._levels()
        self.model_.train()
        total = 0.0
        with torch_threads(self.threads):
            for i in range(0, len(order), self.config.batch_size):
                batch = torch.from_numpy(z[order[i:i + self.config.batch_size]])
                loss = pinball_loss(self.model_(batch[:, : self.context_length]), batch[:, self.context_length:], levels)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
        self.model_.eval()
        return total / max(len(z), 1)

    def _loss(self, windows: np.ndarray) -> float:
        z = torch.from_numpy(self._standardise(windows))
        with torch_threads(self.threads), torch.no_grad():
            self.model_.eval()
            return float(pinball_loss(self.model_(z[:, : self.context_length]), z[:, self.context_length:],
                                      self._levels()))

    # ------------------------------------------------------------ forecasting
    def _predict(self, contexts: np.ndarray) -> np.ndarray:
        with torch_threads(self.threads), torch.no_grad():
            self.model_.eval()
            z = self.model_(torch.from_numpy(self._standardise(contexts))).numpy()
        return z.astype(np.float64) * self.scale_ + self.mean_

    def _standardise(self, values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((values - self.mean_) / self.scale_, dtype=np.float32)

    def _levels(self) -> torch.Tensor:
        return torch.tensor(self.quantiles, dtype=torch.float32)

    # ----------------------------------------------------------- persistence
    def _save_state(self, directory: Path) -> None:
        save_weights(directory / WEIGHTS_FILE, self.model_, np.array([self.mean_]), np.array([self.scale_]))

    def _load_state(self, directory: Path, state: dict[str, Any]) -> None:
        del state
        mean, scale = load_weights(directory / WEIGHTS_FILE, self.model_, "quantile_mlp weights")
        self.mean_, self.scale_ = float(mean[0]), float(scale[0])
