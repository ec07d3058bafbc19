"""APE's InfoNCE: equal to its formula on a hand-computed batch, and one step moves z the right way."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from anomalygraph.detectors.ape import info_nce
from anomalygraph.detectors.ape.loss import negative_index


def test_info_nce_equals_the_formula_on_a_hand_computed_batch() -> None:
    # Two anchors in 2-D, chosen so every cosine is a round number.
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    k_pos = torch.tensor([[2.0, 0.0], [1.0, 1.0]])  # cos 1 and cos 1/sqrt(2)
    k_neg = torch.tensor([[0.0, 3.0], [-1.0, 0.0]])  # cos(q0, neg0)=0, cos(q0, neg1)=-1; cos(q1, neg1)=0, cos(q1, neg0)=1
    tau = 0.5
    # anchor 0: positive 1, negatives (own first) 0 and -1
    l0 = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(0 / tau) + math.exp(-1 / tau)))
    # anchor 1: positive 1/sqrt(2), negatives (own first, then the next cyclically) 0 and 1
    c = 1 / math.sqrt(2)
    l1 = -math.log(math.exp(c / tau) / (math.exp(c / tau) + math.exp(0 / tau) + math.exp(1 / tau)))
    assert float(info_nce(q, k_pos, k_neg, tau)) == pytest.approx((l0 + l1) / 2, rel=1e-6)
    # only the own pseudo-anomaly as negative
    l0_own = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(0 / tau)))
    l1_own = -math.log(math.exp(c / tau) / (math.exp(c / tau) + math.exp(0 / tau)))
    assert float(info_nce(q, k_pos, k_neg, tau, negatives=1)) == pytest.approx((l0_own + l1_own) / 2, rel=1e-6)


def test_negatives_start_with_the_anchors_own_pseudo_anomaly() -> None:
    index = negative_index(4, 2, torch.device("cpu"))
    assert index.tolist() == [[0, 1], [1, 2], [2, 3], [3, 0]]
    assert negative_index(3, None, torch.device("cpu")).shape == (3, 3)


def test_one_gradient_step_pulls_z_raw_to_z_aug_and_pushes_it_from_z_pa() -> None:
    torch.manual_seed(0)
    z_raw = torch.randn(8, 16, requires_grad=True)
    z_aug = torch.randn(8, 16)
    z_pa = torch.randn(8, 16)
    before_pos = F.cosine_similarity(z_raw, z_aug).mean().item()
    before_neg = F.cosine_similarity(z_raw, z_pa).mean().item()
    loss = info_nce(z_raw, z_aug, z_pa, temperature=0.2, negatives=1)
    loss.backward()
    with torch.no_grad():
        stepped = z_raw - 5.0 * z_raw.grad  # z is normalised inside the loss, so its raw gradient is small
    after_pos = F.cosine_similarity(stepped, z_aug).mean().item()
    after_neg = F.cosine_similarity(stepped, z_pa).mean().item()
    assert after_pos > before_pos + 0.01
    assert after_neg < before_neg - 0.01
    assert float(info_nce(stepped, z_aug, z_pa, temperature=0.2, negatives=1)) < float(loss.detach())


def test_shapes_must_agree() -> None:
    with pytest.raises(ValueError, match=r"\[B, H\]"):
        info_nce(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, 3))
