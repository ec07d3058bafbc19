"""TimesNet (Wu et al., ICLR 2023) as a window backbone: reconstruction through 2D views of a window's periods.

The architecture is TSB-AD 1.5's ``TimesNet`` (its copy of thuml/Time-Series-Library's anomaly-detection
task), layer for layer, so with the same weights the two give the same outputs, loss, gradients and
scores (the parity test loads our weights into TSB-AD's model):

- Per-window normalisation (from the Non-stationary Transformer): each window's channels are centred
  on their mean (detached) and divided by ``sqrt(var + 1e-5)`` (population variance, not detached);
  the reconstruction is mapped back with the same statistics, so the error is in the input's units.
- ``DataEmbedding``: a circular 3-tap convolution over time (no bias) plus fixed sinusoidal positions,
  then dropout. The anomaly task passes no time marks, so the temporal embedding TSB-AD builds (a
  ``Linear(5, d_model)``) is never used; it is left out here (its weights are not in our state).
- ``TimesBlock`` (``e_layers`` of them, each followed by *one shared* LayerNorm, as the reference):
  the rFFT amplitude of the block's input, averaged over channels, picks the ``top_k`` frequencies
  ``f`` (the mean, f = 0, never); for each period ``p = L // f`` the window is zero-padded to a
  multiple of ``p`` and folded to a ``[rows, p]`` image per channel (one cycle per row), passed through
  Inception(d_model -> d_ff), GELU, Inception(d_ff -> d_model), unfolded and cut to ``L``. The ``k``
  outputs are summed with the softmax of their amplitudes, and the block's input is added back.
- An Inception block averages ``num_kernels`` "same" convolutions of sizes 1, 3, ..., 2n - 1. That
  mean is one convolution with the mean of the kernels zero-padded to ``2n - 1``, which is what runs
  (121 instead of 286 multiply-adds per input, output and pixel at n = 6, and one call instead of
  six); the parameters stay separate, TSB-AD's names and initialisation.
- Loss: MSE between the de-normalised reconstruction and the window. Score: the squared error per
  step averaged over channels, ``[B, L]`` (mapped back with the shared windowing).

Periods and the batch: in the reference the ``top_k`` frequencies come from the amplitude averaged
over the *batch* as well (only the softmax weights are per window), so a window's output depends on
which windows share its batch. Training (``backbone_loss``, also the validation loss) keeps that. For
``window_scores`` and ``encode`` the default ``inference_periods="window"`` takes each window's own
spectrum instead, so a timestamp's score does not change with ``batch_size``, ``score_stride`` or
where batch boundaries fall (with batch periods the scores jump at every boundary of the scoring
batches); it is exactly what TSB-AD computes with a batch of one window (the parity test checks
that). ``"batch"`` reproduces TSB-AD's batched scoring. The two score alike (VUS-PR with one fitted
model, 10 epochs, windows 96 / 32: UCR 135-137, SMAP T-2 and P-1 within 0.01, NAB Facility 0.23 / 0.21
per window against 0.20 / 0.21 batched), so the choice buys determinism at no cost in accuracy.
Periods are handled per distinct period in the batch (one convolution over the windows that chose
it, weighted by the sum of the softmax weights of its frequencies, since two frequencies can fold to
the same period), never per window.

``encode`` is the last block's output (after the LayerNorm, before the projection) pooled over time,
``[B, d_model]``: 8 numbers per window at the default width.

Where we deliberately differ from TSB-AD (the parity test compares what should be equal):

- Scoring: every step of every window, averaged per timestamp; TSB-AD keeps only each window's last
  step (``decision_function``), which puts the univariate scores ``(L - 1) / 2`` steps early (centred
  padding) and the multivariate ones ``L - 1`` steps early (one window per row from its start).
  Time-Series-Library scores every step too.
- Inputs: we standardise with the training rows' statistics (the shared ``DeepDetector``); TSB-AD's
  ``ReconstructDataset`` computes a z-score but builds its windows from the raw values. The
  per-window normalisation makes the model itself blind to that, but the error comes back in input
  units, so for multivariate input the channels weigh by their global variance in TSB-AD's score and
  equally here (univariate scores differ by a constant factor only).
- Optimiser: the shared loop's Adam at a constant learning rate with early stopping on held-out
  windows. TSB-AD halves the learning rate after every epoch (``lradj='type1'``), so beyond about ten
  of its 50 epochs nothing moves; our default is 10 epochs at TSB-AD's 1e-4.
- TSB-AD's ``Model`` hard-codes its TimesBlocks to d_model 8, d_ff 16, top_k 3, 6 kernels whatever
  its arguments (harmless at its defaults, which are ours); here every field applies.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from anomalygraph.detectors.base import register_detector
from anomalygraph.detectors.deep.base import DeepDetector, WindowModel
from anomalygraph.detectors.deep.config import DeepConfig

Periods = Literal["window", "batch"]

NORM_EPS = 1e-5  # added to the per-window variance, as the reference


class TimesNetConfig(DeepConfig):
    """TimesNet's settings; defaults are TSB-AD's (window 96, lr 1e-4, batch 128; d_model 8, d_ff 16, 1 layer, top 3, 6 kernels)."""

    window: int = Field(
        96, ge=4, le=10_000,
        description="window length L (TSB-AD's win_size: 96, its multivariate pick; 32 for univariate data)",
    )
    epochs: int = Field(
        10, ge=1, le=1000,
        description="most epochs (TSB-AD runs 50 but halves the lr every epoch); early stopping may end sooner",
    )
    batch_size: int = Field(128, ge=1, description="windows per optimisation step")
    lr: float = Field(1e-4, gt=0, le=1, description="Adam learning rate (TSB-AD's)")
    d_model: int = Field(8, ge=1, description="embedding width, the channels of every 2D image")
    d_ff: int = Field(16, ge=1, description="channels between the two Inception blocks of a TimesBlock")
    e_layers: int = Field(1, ge=1, le=12, description="TimesBlocks")
    top_k: int = Field(3, ge=1, description="periods per TimesBlock (the largest rFFT amplitudes)")
    num_kernels: int = Field(6, ge=1, le=16, description="convolutions per Inception block (sizes 1, 3, ..., 2n-1)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout after the embedding")
    inference_periods: Periods = Field(
        "window",
        description="periods for window_scores and encode: 'window' = each window's own spectrum (scores do "
        "not depend on the batch), 'batch' = the batch-averaged spectrum as TSB-AD; training always uses the batch's",
    )

    @model_validator(mode="after")
    def _check_periods(self) -> TimesNetConfig:
        if self.top_k > self.window // 2:
            raise ValueError(f"top_k ({self.top_k}) exceeds the {self.window // 2} non-zero frequencies "
                             f"of a window of {self.window}")
        return self


def sinusoidal_positions(length: int, width: int) -> Tensor:
    """``[length, width]`` fixed positions: sine in even dimensions, cosine in odd ones."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    pe = torch.zeros(length, width)
    pe[:, 0::2] = torch.sin(position * rate)
    pe[:, 1::2] = torch.cos(position * rate)[:, : width // 2]
    return pe


class DataEmbedding(nn.Module):
    """Circular 3-tap token convolution plus fixed positions (no time marks in the anomaly task)."""

    def __init__(self, n_channels: int, d_model: int, window: int, dropout: float) -> None:
        super().__init__()
        self.token = nn.Conv1d(n_channels, d_model, kernel_size=3, padding=1, padding_mode="circular", bias=False)
        nn.init.kaiming_normal_(self.token.weight, mode="fan_in", nonlinearity="leaky_relu")
        self.register_buffer("positions", sinusoidal_positions(window, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.token(x.transpose(1, 2)).transpose(1, 2)
        return self.dropout(tokens + self.positions[: x.shape[1]])


class InceptionBlock(nn.Module):
    """The mean of ``n`` same-size 2D convolutions of widths 1, 3, ..., 2n - 1, run as one convolution."""

    def __init__(self, c_in: int, c_out: int, num_kernels: int) -> None:
        super().__init__()
        self.kernels = nn.ModuleList(nn.Conv2d(c_in, c_out, 2 * i + 1, padding=i) for i in range(num_kernels))
        for conv in self.kernels:
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        self.padding = num_kernels - 1

    def merged(self) -> tuple[Tensor, Tensor]:
        """Weight ``[out, in, 2n-1, 2n-1]`` and bias of the one convolution equal to the mean of all."""
        n = len(self.kernels)
        weight = torch.stack([F.pad(conv.weight, (n - 1 - i,) * 4) for i, conv in enumerate(self.kernels)]).mean(0)
        bias = torch.stack([conv.bias for conv in self.kernels]).mean(0)
        return weight, bias

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, *self.merged(), padding=self.padding)


class TimesBlock(nn.Module):
    """Fold a window by each of its top-k periods, convolve the 2D images, unfold, mix by amplitude, add the input."""

    def __init__(self, d_model: int, d_ff: int, top_k: int, num_kernels: int) -> None:
        super().__init__()
        self.top_k = top_k
        self.inception_in = InceptionBlock(d_model, d_ff, num_kernels)
        self.inception_out = InceptionBlock(d_ff, d_model, num_kernels)

    def periods(self, x: Tensor, per_window: bool) -> tuple[Tensor, Tensor]:
        """Each window's ``top_k`` periods ``[B, k]`` (ints) and their softmax weights ``[B, k]``.

        The frequencies come from the batch-averaged amplitude (the reference) or, ``per_window``,
        from each window's own; the weights are always the window's own amplitudes at them.
        """
        amplitude = torch.fft.rfft(x, dim=1).abs().mean(-1)  # [B, L//2 + 1], averaged over channels
        spectrum = amplitude.detach()
        if not per_window:
            spectrum = spectrum.mean(0, keepdim=True)
        spectrum = spectrum.clone()
        spectrum[:, 0] = -math.inf  # the reference zeroes f = 0; -inf also rules it out for a flat spectrum
        top = spectrum.topk(self.top_k, dim=1).indices.expand(len(x), -1)
        return x.shape[1] // top, torch.softmax(amplitude.gather(1, top), dim=1)

    def forward(self, x: Tensor, per_window: bool = False) -> Tensor:
        periods, weights = self.periods(x, per_window)
        kernels = (self.inception_in.merged(), self.inception_out.merged())
        total = torch.zeros_like(x)
        for period in torch.unique(periods).tolist():
            chosen = periods == period
            share = (weights * chosen).sum(1)[:, None, None]  # two frequencies may fold to one period
            users = chosen.any(1)
            if per_window and not bool(users.all()):  # batch periods: every window uses every period
                rows = users.nonzero().squeeze(1)
                total = total.index_add(0, rows, share[rows] * self.fold_convolve(x[rows], period, kernels))
            else:
                total = total + share * self.fold_convolve(x, period, kernels)
        return total + x

    def fold_convolve(self, x: Tensor, period: int, kernels: tuple[tuple[Tensor, Tensor], ...]) -> Tensor:
        """``[B, L, N]`` -> zero-pad to whole cycles, ``[B, N, rows, period]`` image, both Inceptions, back to ``[B, L, N]``."""
        b, length, n = x.shape
        rows = -(-length // period)
        image = F.pad(x, (0, 0, 0, rows * period - length)).reshape(b, rows, period, n).permute(0, 3, 1, 2)
        (w1, b1), (w2, b2) = kernels
        image = F.conv2d(image.contiguous(), w1, b1, padding=self.inception_in.padding)
        image = F.conv2d(F.gelu(image), w2, b2, padding=self.inception_out.padding)
        return image.permute(0, 2, 3, 1).reshape(b, rows * period, n)[:, :length]


class TimesNetModel(WindowModel):
    """Per-window normalisation, embedding, TimesBlocks with a shared LayerNorm, linear projection back to D."""

    def __init__(
        self,
        n_channels: int,
        window: int,
        *,
        d_model: int = 8,
        d_ff: int = 16,
        e_layers: int = 1,
        top_k: int = 3,
        num_kernels: int = 6,
        dropout: float = 0.1,
        inference_periods: Periods = "window",
    ) -> None:
        super().__init__()
        self.embedding = DataEmbedding(n_channels, d_model, window, dropout)
        self.blocks = nn.ModuleList(TimesBlock(d_model, d_ff, top_k, num_kernels) for _ in range(e_layers))
        self.layer_norm = nn.LayerNorm(d_model)
        self.projection = nn.Linear(d_model, n_channels)
        self.per_window = inference_periods == "window"

    def features(self, windows: Tensor, per_window: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """The last block's normalised output ``[B, L, d_model]`` and the window's mean and std ``[B, 1, D]``."""
        mean = windows.mean(1, keepdim=True).detach()
        centred = windows - mean
        std = torch.sqrt(centred.var(1, keepdim=True, unbiased=False) + NORM_EPS)
        hidden = self.embedding(centred / std)
        for block in self.blocks:
            hidden = self.layer_norm(block(hidden, per_window))
        return hidden, mean, std

    def forward(self, windows: Tensor, per_window: bool = False) -> Tensor:
        """The reconstruction ``[B, L, D]`` in the windows' units (batch periods unless ``per_window``)."""
        hidden, mean, std = self.features(windows, per_window)
        return self.projection(hidden) * std + mean

    def encode(self, windows: Tensor) -> Tensor:
        return self.features(windows, self.per_window)[0].mean(1)

    def backbone_loss(self, windows: Tensor) -> Tensor:
        return F.mse_loss(self(windows), windows)

    def window_scores(self, windows: Tensor) -> Tensor:
        return (windows - self(windows, self.per_window)).pow(2).mean(-1)

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        skip = {id(p) for p in self.projection.parameters()}
        return (p for p in self.parameters() if id(p) not in skip)


@register_detector
class TimesNetDetector(DeepDetector):
    """TimesNet's reconstruction error per step, averaged over channels and over the windows covering a timestamp."""

    name = "timesnet"
    summary = (
        "TimesNet (ICLR 2023): folds each window by its FFT periods into 2D images and reconstructs it with "
        "Inception convolutions; scores the squared reconstruction error per step; small (73k weights)"
    )
    caveat = (
        "a general-purpose forecasting/reconstruction backbone, ranked below simple detectors by TSB-AD; "
        "its per-window normalisation hides a level shift longer than a window, so only the shift's edges score"
    )
    config_class = TimesNetConfig
    config: TimesNetConfig

    def build_model(self, n_channels: int) -> WindowModel:
        c = self.config
        return TimesNetModel(
            n_channels, c.window, d_model=c.d_model, d_ff=c.d_ff, e_layers=c.e_layers, top_k=c.top_k,
            num_kernels=c.num_kernels, dropout=c.dropout, inference_periods=c.inference_periods,
        )
