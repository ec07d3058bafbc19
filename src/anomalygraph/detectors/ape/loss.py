"""The three-branch InfoNCE of APE (eq. 1): pull ``z_raw`` to ``z_aug``, push it from ``z_pa``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def negative_index(batch: int, negatives: int | None, device: torch.device) -> Tensor:
    """``[B, K]`` indices of each anchor's negatives: its own pseudo-anomaly first, then the next ones (cyclically)."""
    k = batch if negatives is None else min(negatives, batch)
    return (torch.arange(batch, device=device)[:, None] + torch.arange(k, device=device)[None, :]) % batch


def info_nce(q: Tensor, k_pos: Tensor, k_neg: Tensor, temperature: float = 0.1, negatives: int | None = None) -> Tensor:
    """``-mean_i log( e^{s(q_i,k+_i)/tau} / (e^{s(q_i,k+_i)/tau} + sum_{j in N(i)} e^{s(q_i,k-_j)/tau}) )``.

    ``s`` is cosine similarity; ``N(i)`` is anchor i's own pseudo-anomaly plus the next ``negatives - 1``
    in the batch (all of them when ``negatives`` is None). Other normal windows are never negatives:
    they are not anomalies, and pushing them apart would fight the backbone's normal manifold.
    """
    if q.shape != k_pos.shape or q.shape != k_neg.shape or q.ndim != 2:
        raise ValueError(f"q, k+ and k- must all be [B, H]; got {tuple(q.shape)}, {tuple(k_pos.shape)}, {tuple(k_neg.shape)}")
    q, k_pos, k_neg = F.normalize(q, dim=1), F.normalize(k_pos, dim=1), F.normalize(k_neg, dim=1)
    positive = (q * k_pos).sum(dim=1, keepdim=True)  # [B, 1]
    index = negative_index(len(q), negatives, q.device)
    negative = torch.einsum("bh,bkh->bk", q, k_neg[index])  # [B, K]
    logits = torch.cat([positive, negative], dim=1) / temperature
    return -torch.log_softmax(logits, dim=1)[:, 0].mean()
