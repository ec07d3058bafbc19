"""The Anomaly Transformer network (Xu et al., ICLR 2022) on ``[B, L, C]`` tensors.

Anomaly-attention has two branches per head: the *series association* S (ordinary softmax
self-attention) and the *prior association* P (a Gaussian kernel over the temporal distance
|i - j| whose width sigma is predicted per head and position). The association discrepancy is
the symmetrised KL divergence between the two, averaged over heads and layers.

Differences from the reference code that change speed, not results:
- Q, K and V come from one fused projection (one GEMM instead of three).
- The row-normalised Gaussian prior is computed as ``softmax(-|i-j|^2 / 2 sigma^2)``: the
  ``1 / (sqrt(2 pi) sigma)`` factor of the reference cancels in the normalisation. The squared
  distances are a buffer built once per window length, not per step.
- Every layer's S and P are stacked to ``[E, B, H, L, L]`` so the losses and the criterion are
  computed in one vectorised expression, with no Python loop over layers or heads.
- ``KL(S||P) + KL(P||S)`` with the reference's epsilon is ``sum (S - P)(log(S+eps) - log(P+eps))``,
  one pass instead of two.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KL_EPS = 1e-4  # the reference adds this inside both logarithms of its KL


class ModelOutput(NamedTuple):
    reconstruction: Tensor  # [B, L, C]
    series: Tensor  # [E, B, H, L, L] series association, rows sum to 1
    prior: Tensor  # [E, B, H, L, L] prior association, rows sum to 1
    sigma: Tensor  # [E, B, H, L] kernel widths


# ----------------------------------------------------------------- embedding
class DataEmbedding(nn.Module):
    """Circular 3-tap convolution over time plus fixed sinusoidal positions."""

    def __init__(self, c_in: int, d_model: int, window: int, dropout: float) -> None:
        super().__init__()
        self.token = nn.Conv1d(
            c_in, d_model, kernel_size=3, padding=1, padding_mode="circular", bias=False
        )
        nn.init.kaiming_normal_(self.token.weight, mode="fan_in", nonlinearity="leaky_relu")
        position = torch.arange(window, dtype=torch.float32)[:, None]
        div = torch.exp(
            torch.arange(0, d_model, 2, dtype=torch.float32) * -(math.log(10000.0) / d_model)
        )
        pe = torch.zeros(window, d_model)
        pe[:, 0::2] = torch.sin(position * div)
        pe[:, 1::2] = torch.cos(position * div)[:, : d_model // 2]
        self.register_buffer("positions", pe, persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.token(x.transpose(1, 2)).transpose(1, 2)
        return self.dropout(tokens + self.positions[: x.shape[1]])


# ---------------------------------------------------------- anomaly-attention
class AnomalyAttention(nn.Module):
    """Self-attention that also returns its series association and a Gaussian prior association."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.sigma_projection = nn.Linear(d_model, n_heads)
        self.out_projection = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, length, d = x.shape
        h, e = self.n_heads, self.head_dim
        q, k, v = self.qkv(x).view(b, length, 3, h, e).permute(2, 0, 3, 1, 4)  # each [B, H, L, E]
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(e))
        series = torch.softmax(scores.float(), dim=-1)
        out = torch.matmul(self.dropout(series).to(v.dtype), v)  # [B, H, L, E]
        out = self.out_projection(out.transpose(1, 2).reshape(b, length, d))
        # sigma in (1e-5, 2): the reference's sigmoid(5 s) + 1e-5 followed by 3^sigma - 1.
        sigma = torch.pow(3.0, torch.sigmoid(self.sigma_projection(x).float() * 5.0) + 1e-5) - 1.0
        sigma = sigma.transpose(1, 2)  # [B, H, L]
        return out, series, sigma


class EncoderLayer(nn.Module):
    def __init__(
        self, d_model: int, n_heads: int, d_ff: int, dropout: float, activation: str
    ) -> None:
        super().__init__()
        self.attention = AnomalyAttention(d_model, n_heads, dropout)
        self.ff1 = nn.Linear(d_model, d_ff)  # the reference's kernel-size-1 Conv1d, the same map
        self.ff2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation = F.gelu if activation == "gelu" else F.relu

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        attended, series, sigma = self.attention(x)
        x = self.norm1(x + self.dropout(attended))
        y = self.dropout(self.activation(self.ff1(x)))
        y = self.dropout(self.ff2(y))
        return self.norm2(x + y), series, sigma


class AnomalyTransformerModel(nn.Module):
    """Reconstructs a ``[B, L, C]`` window and exposes every layer's associations."""

    def __init__(
        self,
        n_channels: int,
        window: int,
        d_model: int = 512,
        n_heads: int = 8,
        e_layers: int = 3,
        d_ff: int = 512,
        dropout: float = 0.0,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        self.window = window
        self.embedding = DataEmbedding(n_channels, d_model, window, dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, dropout, activation) for _ in range(e_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.projection = nn.Linear(d_model, n_channels)
        index = torch.arange(window, dtype=torch.float32)
        self.register_buffer(
            "half_sq_distance", -0.5 * (index[:, None] - index[None, :]) ** 2, persistent=False
        )

    def encode(self, x: Tensor) -> Tensor:
        """``[B, d_model]``: the last layer's normalised hidden states, averaged over the window (APE's z)."""
        h = self.embedding(x)
        for layer in self.layers:
            h = layer(h)[0]
        return self.norm(h).mean(dim=1)

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        """Everything but the output projection (the decoder of this reconstruction model)."""
        for module in (self.embedding, self.layers, self.norm):
            yield from module.parameters()

    def forward(self, x: Tensor) -> ModelOutput:
        h = self.embedding(x)
        series, sigmas = [], []
        # Layers are sequential by nature; everything computed from their outputs is vectorised.
        for layer in self.layers:
            h, s, sigma = layer(h)
            series.append(s)
            sigmas.append(sigma)
        reconstruction = self.projection(self.norm(h))
        sigma = torch.stack(sigmas)  # [E, B, H, L]
        return ModelOutput(
            reconstruction, torch.stack(series), gaussian_prior(sigma, self.half_sq_distance), sigma
        )


def gaussian_prior(sigma: Tensor, half_sq_distance: Tensor) -> Tensor:
    """Row-normalised Gaussian kernel ``N(|i-j|; 0, sigma_i)`` for every head and position."""
    length = sigma.shape[-1]
    logits = half_sq_distance[:length, :length] / (sigma.float() ** 2).unsqueeze(-1)
    return torch.softmax(logits, dim=-1)


# ------------------------------------------------------------------- losses
def symmetric_kl(series: Tensor, prior: Tensor, eps: float = KL_EPS) -> Tensor:
    """``KL(S||P) + KL(P||S)`` per row (last axis summed), with the reference's epsilon."""
    return ((series - prior) * (torch.log(series + eps) - torch.log(prior + eps))).sum(-1)


def minimax_losses(output: ModelOutput, target: Tensor, k: float) -> tuple[Tensor, Tensor]:
    """The two phases of the minimax strategy, written out as in the paper (Eq. 5).

    Minimise phase: ``rec + k * AssDis(P, stopgrad(S))`` pulls the prior towards the series
    association; the series branch gets no gradient from the discrepancy.
    Maximise phase: ``rec - k * AssDis(stopgrad(P), S)`` pushes the series association away from
    the prior; the prior branch gets none.
    """
    rec = F.mse_loss(output.reconstruction.float(), target.float())
    minimise = rec + k * symmetric_kl(output.series.detach(), output.prior).mean()
    maximise = rec - k * symmetric_kl(output.series, output.prior.detach()).mean()
    return minimise, maximise


def fused_minimax_loss(
    output: ModelOutput, target: Tensor, k: float
) -> tuple[Tensor, Tensor, Tensor]:
    """One loss whose gradient equals that of ``minimise + maximise``, in one backward pass.

    The reference back-propagates the two phase losses separately (``retain_graph``), walking the
    whole graph twice. Here the series association enters as ``2 sg(S) - S``: its value is S, its
    gradient is negated, so ``k * AssDis(2 sg(S) - S, P)`` gives the prior ``+k dAssDis/dP`` and
    the series ``-k dAssDis/dS``, exactly the two phases' discrepancy gradients.
    Returns (loss, reconstruction MSE, mean discrepancy) with the last two detached.
    """
    rec = F.mse_loss(output.reconstruction.float(), target.float())
    series = output.series
    reversed_series = 2.0 * series.detach() - series
    discrepancy = symmetric_kl(reversed_series, output.prior).mean()
    return 2.0 * rec + k * discrepancy, rec.detach(), discrepancy.detach()


def anomaly_criterion(output: ModelOutput, target: Tensor, temperature: float) -> Tensor:
    """Per-step score ``softmax_L(-AssDis * temperature) * ||x - x_hat||^2``, shape ``[B, L]``.

    As in the reference's test code: the KL is averaged over heads, summed over layers, and the
    softmax runs over the positions of each window.
    """
    error = (target.float() - output.reconstruction.float()).pow(2).mean(-1)  # [B, L]
    discrepancy = symmetric_kl(output.series, output.prior).mean(2).sum(0)  # [B, L]
    return torch.softmax(-discrepancy * temperature, dim=-1) * error
