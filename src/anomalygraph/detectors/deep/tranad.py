"""TranAD (Tuli et al., VLDB 2022) as a window backbone: self-conditioned transformer reconstruction.

The architecture is TSB-AD 1.5's ``TranADModel`` (itself imperial-qore/TranAD's ``TranAD``), layer
for layer, so with the same weights the two give the same outputs, loss and scores (the parity
test loads our weights into TSB-AD's model):

- ``d_model = 2 * D``: each step is the value concatenated with a *focus score*; one head per
  channel (head width 2), feed-forward width 16, dropout 0.1, one encoder and two decoder layers,
  no layer norms; inputs are scaled by ``sqrt(D)`` and get TranAD's positional encoding (the sum
  ``sin + cos`` of one angle in every dimension, not the usual interleaving).
- The decoders' query is the window's last step (doubled to ``2 * D``), so each decoder outputs a
  reconstruction of that one step, through a linear layer and a sigmoid.
- Phase 1 encodes the window with focus 0 and decoder 1 reconstructs ``x1``; phase 2 encodes it
  again with focus ``(x1 - window) ** 2`` (``x1`` broadcast over the window, not detached) and
  decoder 2 reconstructs ``x2``.
- Loss in epoch ``n`` (1-based): ``1/n * MSE(x1) + (1 - 1/n) * MSE(x2)`` against the last step,
  the simplified form both repositories train with (the paper's adversarial minus sign on
  decoder 2 is in neither). Score: the phase-2 squared error of the last step, averaged over
  channels (TSB-AD's ``decision_function``), so ``window_scores`` is ``[B]``.

Where we deliberately differ from TSB-AD (the parity test compares what should be equal):

- Inputs: TSB-AD's ``ReconstructDataset`` computes a z-score but builds its windows from the raw
  values, so TSB-AD's TranAD sees unscaled data (its sigmoid saturates on most series); the paper
  min-max scales to [0, 1]. We standardise with the training rows' statistics (the shared
  ``DeepDetector``) and keep the sigmoid. Measured with this module (10 epochs, 5,000 windows,
  VUS-PR on UCR 135-137, NAB Facility and machine_temperature, SMAP P-1/T-2/A-4): z-score and
  training min-max are on par (machine 0.56 / 0.47, T-2 0.28 / 0.33, the rest within 0.02),
  raw values are worse (machine 0.14, T-2 0.18). A linear head is not offered: the decoders'
  query is the step they reconstruct, so without the sigmoid's bound they learn to copy it and a
  planted level shift scores like normal data.
- Placement: a window's score is about its last step and lands there; TSB-AD puts univariate scores
  at the window's centre ((L - 1) / 2 steps early) and multivariate ones at the window's start.
- Optimiser: the shared loop's Adam with early stopping on held-out windows; TSB-AD uses AdamW
  (weight decay 1e-5) with StepLR(5, 0.9) and validates on the last 20 % of rows.
- ``nn.LeakyReLU(True)`` in the reference sets the negative *slope* to 1, so its feed-forward is
  linear; ``negative_slope=1.0`` keeps that, a smaller value gives the LeakyReLU that was meant.

``encode`` is the phase-1 encoder memory flattened to ``[B, L * 2D]``: pooling over time would
leave ``2D`` numbers (2 for a univariate series), too few for APE's contrastive loss, while the
flattened memory keeps every step. The epoch of the loss weighting travels with the weights (and
comes back with the best epoch's state), so a fitted or loaded model's ``backbone_loss``, which APE
post-trains with, weighs the two phases as at the kept epoch rather than falling back to phase 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from anomalygraph.detectors.base import register_detector
from anomalygraph.detectors.deep.base import DeepDetector, WindowModel
from anomalygraph.detectors.deep.config import DeepConfig


class TranADConfig(DeepConfig):
    """TranAD's settings; training defaults are TSB-AD's ``run_TranAD`` (window 10, lr 1e-3, batch 128, 50 epochs)."""

    window: int = Field(10, ge=2, le=10_000, description="window length L (TSB-AD's win_size; the paper's 10)")
    epochs: int = Field(50, ge=1, le=1000, description="most epochs; early stopping may end sooner")
    batch_size: int = Field(128, ge=1, description="windows per optimisation step")
    lr: float = Field(
        1e-3, gt=0, le=1, description="Adam learning rate (TSB-AD's default; its univariate grid optimum is 1e-4)"
    )
    d_ff: int = Field(16, ge=1, description="feed-forward width of every transformer layer")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the positional encoding, attention and feed-forward")
    negative_slope: float = Field(
        1.0, ge=0, le=1, description="LeakyReLU slope in the feed-forward; 1.0 (linear) is what the reference builds"
    )


def positional_encoding(length: int, width: int) -> Tensor:
    """TranAD's ``[length, width]`` encoding: ``sin + cos`` of one angle per dimension, as its repository builds it."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(width, dtype=torch.float32) * (-math.log(10000.0) / width))
    angle = position * rate
    return torch.sin(angle) + torch.cos(angle)


class _Layer(nn.Module):
    """The feed-forward part both layer types share (no layer norm, as in TranAD)."""

    def __init__(self, width: int, d_ff: int, dropout: float, negative_slope: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(width, d_ff)
        self.linear2 = nn.Linear(d_ff, width)
        # slope 1 is the identity; skip the no-op pass
        self.activation = nn.Identity() if negative_slope == 1.0 else nn.LeakyReLU(negative_slope)
        self.dropout = nn.Dropout(dropout)

    def feed_forward(self, x: Tensor) -> Tensor:
        return x + self.dropout(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class EncoderLayer(_Layer):
    """Self-attention and feed-forward, each with a residual."""

    def __init__(self, width: int, heads: int, d_ff: int, dropout: float, negative_slope: float) -> None:
        super().__init__(width, d_ff, dropout, negative_slope)
        self.self_attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.dropout(self.self_attn(x, x, x, need_weights=False)[0])
        return self.feed_forward(x)


class DecoderLayer(_Layer):
    """Self-attention on the target, attention to the encoder memory, feed-forward; each with a residual."""

    def __init__(self, width: int, heads: int, d_ff: int, dropout: float, negative_slope: float) -> None:
        super().__init__(width, d_ff, dropout, negative_slope)
        self.self_attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)

    def forward(self, target: Tensor, memory: Tensor) -> Tensor:
        target = target + self.dropout(self.self_attn(target, target, target, need_weights=False)[0])
        target = target + self.dropout(self.multihead_attn(target, memory, memory, need_weights=False)[0])
        return self.feed_forward(target)


class TranADModel(WindowModel):
    """Encoder plus two decoders on ``[B, L, D]`` windows; both phases reconstruct the last step."""

    def __init__(
        self,
        n_channels: int,
        window: int,
        *,
        d_ff: int = 16,
        dropout: float = 0.1,
        negative_slope: float = 1.0,
    ) -> None:
        super().__init__()
        width = 2 * n_channels
        layer: dict[str, Any] = {"heads": n_channels, "d_ff": d_ff, "dropout": dropout, "negative_slope": negative_slope}
        self.n_channels = n_channels
        self.register_buffer("pe", positional_encoding(window, width), persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.encoder = EncoderLayer(width, **layer)
        self.decoder1 = DecoderLayer(width, **layer)
        self.decoder2 = DecoderLayer(width, **layer)
        self.head = nn.Linear(width, n_channels)
        self.epoch = 0

    # the loss weighting's epoch is saved with the weights (and restored with the best epoch's state)
    def get_extra_state(self) -> Tensor:
        return torch.tensor(self.epoch)

    def set_extra_state(self, state: Tensor) -> None:
        self.epoch = int(state)

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def memory(self, windows: Tensor, focus: Tensor) -> Tensor:
        """Encoder memory ``[B, L, 2D]`` of the windows conditioned on a focus score."""
        src = torch.cat((windows, focus), dim=-1) * math.sqrt(self.n_channels)
        return self.encoder(self.dropout(src + self.pe))

    def reconstruct(self, decoder: DecoderLayer, target: Tensor, memory: Tensor) -> Tensor:
        return torch.sigmoid(self.head(decoder(target, memory))).squeeze(1)

    def forward(self, windows: Tensor) -> tuple[Tensor, Tensor]:
        """Phase-1 and phase-2 reconstructions ``[B, D]`` of each window's last step."""
        target = windows[:, -1:].repeat(1, 1, 2)
        x1 = self.reconstruct(self.decoder1, target, self.memory(windows, torch.zeros_like(windows)))
        focus = (x1[:, None] - windows) ** 2
        x2 = self.reconstruct(self.decoder2, target, self.memory(windows, focus))
        return x1, x2

    def encode(self, windows: Tensor) -> Tensor:
        return self.memory(windows, torch.zeros_like(windows)).flatten(1)

    def backbone_loss(self, windows: Tensor) -> Tensor:
        x1, x2 = self(windows)
        last, weight = windows[:, -1], 1.0 / (self.epoch + 1)
        return weight * F.mse_loss(x1, last) + (1.0 - weight) * F.mse_loss(x2, last)

    def window_scores(self, windows: Tensor) -> Tensor:
        return (self(windows)[1] - windows[:, -1]).pow(2).mean(-1)

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        return self.encoder.parameters()


@register_detector
class TranADDetector(DeepDetector):
    """TranAD's phase-2 reconstruction error of each window's last step, per timestamp."""

    name = "tranad"
    summary = (
        "TranAD (VLDB 2022): transformer encoder and two self-conditioned decoders; scores each step by "
        "the phase-2 reconstruction error; small and fast"
    )
    caveat = (
        "its decoders are given the very step they reconstruct, so the score mostly says how far a value sits "
        "outside what the sigmoid head can pass through: extreme levels, rarely broken shapes (near random on "
        "UCR InternalBleeding 135-137)"
    )
    config_class = TranADConfig
    config: TranADConfig

    def build_model(self, n_channels: int) -> WindowModel:
        c = self.config
        return TranADModel(
            n_channels, c.window, d_ff=c.d_ff, dropout=c.dropout, negative_slope=c.negative_slope
        )
