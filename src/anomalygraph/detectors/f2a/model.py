"""The F2A network: frozen TTM encoder, retrieval fusion, decoder, scaling layer, anomaly head; and its losses.

Retrieval fusion is two-stage attention, as the paper names it:

1. *over the neighbours*: each retrieved window is weighted by its similarity to the query (a
   learnt projection of the embeddings, minus its l2 distance over a learnt temperature), so a
   far neighbour counts less even when k is fixed;
2. *into the window*: every patch token of the query's encoder output attends to the weighted
   neighbour tokens (what followed each neighbour: its next ``h`` values, in its own scaled
   units, and whether they were anomalous), and the result is added through a gate that starts
   at zero, so an untrained fusion leaves the backbone's behaviour unchanged.

The anomaly head pools the decoder output over patches (attention) and channels (max and mean,
so one channel going wrong is seen) into one logit per future step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from anomalygraph.detectors.f2a.backbone import TTMBackbone


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float, alpha: float) -> torch.Tensor:
    """Mean of ``-alpha_t (1 - p_t)^gamma log p_t`` (Lin et al. 2017), computed from logits for stability."""
    target = target.float()
    log_p = F.logsigmoid(logits)
    log_not_p = F.logsigmoid(-logits)
    log_pt = target * log_p + (1 - target) * log_not_p
    pt = log_pt.exp()
    alpha_t = target * alpha + (1 - target) * (1 - alpha)
    return (-alpha_t * (1 - pt).pow(gamma) * log_pt).mean()


def weighted_mae(forecast: torch.Tensor, target: torch.Tensor, anomalous: torch.Tensor, weight: float) -> torch.Tensor:
    """MAE over ``[B, h, C]`` with each anomalous step (``[B, h]``) weighted ``weight`` (the paper: 3)."""
    w = 1.0 + (weight - 1.0) * anomalous.float()[..., None].expand_as(forecast)
    return (w * (forecast - target).abs()).sum() / w.sum()


class ScalingLayer(nn.Module):
    """Learnt per-step affine correction of the scaled forecast: F2A fine-tunes the scaling, TTM's scaler has no weights."""

    def __init__(self, horizon: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.zeros(horizon, 1))
        self.bias = nn.Parameter(torch.zeros(horizon, 1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y * (1 + self.gain) + self.bias


class RetrievalFusion(nn.Module):
    """Two-stage attention from retrieved neighbours into the encoder's patch tokens."""

    def __init__(self, d_model: int, embed_dim: int, horizon: int, heads: int) -> None:
        super().__init__()
        heads = math.gcd(heads, d_model) or 1
        self.query = nn.Linear(embed_dim, d_model)
        self.key = nn.Linear(embed_dim, d_model)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.token = nn.Sequential(nn.Linear(2 * horizon, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.cross = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, hidden: torch.Tensor, query: torch.Tensor, keys: torch.Tensor, distances: torch.Tensor,
                futures: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``hidden [B, C, P, d]``; query ``[B, E]``; per neighbour: keys ``[B, k, E]``, distances ``[B, k]``,
        futures ``[B, k, h, C]`` (scaled), labels ``[B, k, h]``. Returns the fused hidden state."""
        b, c, p, d = hidden.shape
        k = keys.shape[1]
        # stage 1: how much each neighbour counts
        sim = (self.query(query)[:, None] * self.key(keys)).sum(-1) / math.sqrt(d)
        weights = torch.softmax(sim - distances / self.log_temperature.exp(), dim=1)  # [B, k]
        per_channel = torch.cat([futures.permute(0, 3, 1, 2), labels[:, None].expand(b, c, k, -1).float()], dim=-1)
        tokens = self.token(per_channel) * (weights[:, None, :, None] * k)  # [B, C, k, d]
        # stage 2: patch tokens attend to the neighbours of their own channel
        q = hidden.reshape(b * c, p, d)
        fused, _ = self.cross(q, tokens.reshape(b * c, k, d), tokens.reshape(b * c, k, d), need_weights=False)
        return hidden + torch.tanh(self.gate) * fused.reshape(b, c, p, d)


class AnomalyHead(nn.Module):
    """Aggregation (attention over patches, max and mean over channels) and one logit per future step."""

    def __init__(self, d_dec: int, horizon: int) -> None:
        super().__init__()
        self.attend = nn.Linear(d_dec, 1)
        self.mlp = nn.Sequential(nn.Linear(2 * d_dec, d_dec), nn.GELU(), nn.Linear(d_dec, horizon))

    def forward(self, decoded: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.attend(decoded), dim=2)  # [B, C, P, 1]
        pooled = (w * decoded).sum(dim=2)  # [B, C, d]
        return self.mlp(torch.cat([pooled.max(dim=1).values, pooled.mean(dim=1)], dim=-1))


class F2ANet(nn.Module):
    """Forecast and anomaly logits for the next ``h`` steps of each window, with optional retrieval."""

    def __init__(self, backbone: TTMBackbone, *, heads: int = 4) -> None:
        super().__init__()
        self.backbone = backbone
        h, d = backbone.horizon, backbone.d_model
        self.fusion = RetrievalFusion(d, 2 * d, h, heads)
        self.scaling = ScalingLayer(h)
        self.anomaly = AnomalyHead(backbone.decoder_d_model, h)
        self.encoder_frozen = False

    def freeze_encoder(self) -> None:
        """Freeze the encoder's weights and keep it in eval mode: a frozen encoder is a fixed function.

        Its dropout would otherwise perturb every training window's features (and cost a quarter
        of a training step on CPU), and its outputs could not be computed once for all epochs.
        """
        for p in self.backbone.encoder_parameters():
            p.requires_grad_(False)
        self.encoder_frozen = True
        self.backbone.encoder_module().eval()

    def train(self, mode: bool = True) -> F2ANet:
        super().train(mode)
        if self.encoder_frozen:
            self.backbone.encoder_module().eval()
        return self

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, x: torch.Tensor, neighbours: dict[str, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [B, L, C]`` -> scaled forecast ``[B, h, C]``, anomaly logits ``[B, h]``, loc, scale."""
        return self.head(x, self.backbone.encode_parts(x), neighbours)

    def head(self, x: torch.Tensor, encoded: tuple[torch.Tensor, ...], neighbours: dict[str, torch.Tensor] | None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Everything after the frozen encoder, so a caller that already encoded (to retrieve) does not encode twice."""
        hidden, patches, loc, scale = encoded
        if neighbours is not None and neighbours["keys"].shape[1] > 0:
            hidden = self.fusion(hidden, self.backbone.embed(hidden), **neighbours)
        decoded = self.backbone.decode(hidden, patches)
        forecast = self.scaling(self.backbone.head(decoded, x))
        return forecast, self.anomaly(decoded), loc, scale
