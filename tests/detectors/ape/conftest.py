"""A tiny window autoencoder behind the DeepDetector contract, so APE is tested without a paper backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from anomalygraph.detectors.base import register_detector
from anomalygraph.detectors.deep.base import DeepDetector, WindowModel
from anomalygraph.detectors.deep.config import DeepConfig


class TinyAutoencoder(WindowModel):
    def __init__(self, window: int, channels: int, hidden: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(window * channels, hidden), nn.Tanh())
        self.decoder = nn.Linear(hidden, window * channels)
        self.shape = (window, channels)

    def encode(self, windows: Tensor) -> Tensor:
        return self.encoder(windows)

    def reconstruct(self, windows: Tensor) -> Tensor:
        return self.decoder(self.encode(windows)).view(-1, *self.shape)

    def backbone_loss(self, windows: Tensor) -> Tensor:
        return (self.reconstruct(windows) - windows).pow(2).mean()

    def window_scores(self, windows: Tensor) -> Tensor:
        return (self.reconstruct(windows) - windows).pow(2).mean(-1)

    def encoder_parameters(self):  # type: ignore[override]
        return self.encoder.parameters()


class TinyConfig(DeepConfig):
    window: int = 16
    epochs: int = 3
    threads: int | None = 1


@register_detector
class TinyAEDetector(DeepDetector):
    name = "test_tiny_ae"
    config_class = TinyConfig

    def build_model(self, n_channels: int) -> WindowModel:
        return TinyAutoencoder(self.config.window, n_channels)


def seasonal(t: int, d: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = np.arange(t)[:, None]
    return (np.sin(2 * np.pi * steps / 24 + np.arange(d)) + 0.05 * rng.normal(size=(t, d))).astype(np.float32)


@pytest.fixture
def fitted() -> TinyAEDetector:
    torch.manual_seed(0)
    return TinyAEDetector().fit(seasonal(600))
