"""Donut (Xu et al., WWW 2018) as a window backbone: a VAE on flattened windows, scored by reconstruction probability.

The architecture and losses are TSB-AD 1.5's ``DonutModel`` (its port of NetManAIOps/donut), so
with the same weights and the same noise the two give the same outputs, losses and scores (the
parity test loads our weights into TSB-AD's model and feeds both the same noise):

- A window ``[L, D]`` is flattened time-major (``x.view(B, -1)``: index ``t * D + d``) to ``L * D``
  inputs. Encoder q(z|x) and decoder p(x|z) are dense ReLU networks (TSB-AD: one hidden layer of
  100 units; the paper: two) whose last linear layer gives ``2 * out`` units, the first half a
  mean, the second a standard deviation through softplus. Latent size 8.
- Training loss: the negative M-ELBO with one reparameterised sample of z,
  ``-[sum(alpha * log p(x|z)) + beta * log p(z) - log q(z|x)]`` with Gaussian terms up to
  constants (``F.gaussian_nll_loss``). ``alpha`` marks points that count: M-ELBO excludes missing
  and labelled-anomalous points, and "missing data injection" zeroes a random ``inject_ratio``
  (1 %) of the inputs each step and marks them missing too. Fitting here sees no missing points and
  no labels, so ``alpha`` is exactly the injection mask and ``beta`` its mean (about 0.99).
- KL weighting: TSB-AD sums the reconstruction term over channels but *averages* it over the L
  steps, while the prior and posterior terms are per window, so relative to the paper's ELBO the
  KL part weighs L times more (a beta-VAE with beta = L). ``reconstruction="mean"`` (default)
  keeps that; ``"sum"`` gives the paper's per-window ELBO.
- In eval mode (the shared loop's validation loss) the loss is TSB-AD's: no injection, z at the
  posterior mean and the analytic KL to N(0, I); deterministic, which suits early stopping.
- Score: the negative reconstruction log-likelihood ``-E_q[log p(x_t | z)]`` (summed over
  channels) averaged over ``mc_samples`` (1024) draws of z, per step (``[B, L]``, mapped back with
  the shared windowing) or, with ``last_point_only``, only each window's last step (``[B]``), which
  is what Donut and TSB-AD score (and L times cheaper in the decoder's output layer).

Where we deliberately differ from TSB-AD (the parity test compares what should be equal):

- Scoring noise: TSB-AD draws its 1024 scoring samples with ``torch.rand`` (uniform on [0, 1),
  so z = mu + sigma * U is biased to one side) instead of ``torch.randn``; ours is standard normal,
  from a generator seeded with the config's seed and shared by every window, so a window's score
  depends only on its values (not on its batch or on earlier calls). The parity test injects
  TSB-AD's uniform draws into ours.
- ``std_epsilon``: the original Donut adds 1e-4 to both softplus standard deviations (its
  ``std_epsilon``); TSB-AD adds nothing (``F.gaussian_nll_loss`` clamps the variance at 1e-6, but
  its eval-mode KL takes ``log(std ** 2)`` unclamped). Default 1e-4; 0 reproduces TSB-AD.
- Inputs: TSB-AD's ``ReconstructDataset`` computes a z-score but builds its windows from the raw
  values, so TSB-AD's Donut sees unscaled data; we standardise with the training rows' statistics.
- Placement: a step's score lands on that step; TSB-AD puts univariate last-step scores about
  L / 2 steps early (centred padding) and multivariate ones at the window's start.
- Optimiser: the shared loop's Adam with early stopping on held-out windows; TSB-AD uses AdamW
  (weight decay 1e-3, lr 1e-4) with StepLR(10, 0.75), gradient-norm clipping at 10 and early
  stopping on the training loss. The paper's MCMC imputation of missing points at test time is in
  neither (no missing points here).

``encode`` is the posterior mean ``mu_z`` ``[B, latent]``: what the VAE's representation is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import pairwise
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import Tensor, nn

from anomalygraph.detectors.base import register_detector
from anomalygraph.detectors.deep.base import DeepDetector, WindowModel
from anomalygraph.detectors.deep.config import DeepConfig

Reconstruction = Literal["mean", "sum"]

# Elements per decoded tensor ([samples, B, steps, D]) in one scoring chunk: bounds memory at
# 1024 samples x 256 windows x L x D, which would otherwise take gigabytes for multivariate input.
SCORE_CHUNK_ELEMENTS = 1 << 22


class DonutConfig(DeepConfig):
    """Donut's settings; training defaults are TSB-AD's ``Donut`` (window 120, lr 1e-4, batch 128, 50 epochs)."""

    window: int = Field(
        120, ge=2, le=10_000, description="window length L (TSB-AD's win_size; its tuned grids pick 60)"
    )
    epochs: int = Field(50, ge=1, le=1000, description="most epochs; early stopping may end sooner")
    batch_size: int = Field(128, ge=1, description="windows per optimisation step")
    lr: float = Field(1e-4, gt=0, le=1, description="Adam learning rate (TSB-AD's; the paper's 1e-3)")
    weight_decay: float = Field(
        1e-4, ge=0, description="L2 penalty in Adam's gradient: the paper's l2_reg (TSB-AD: AdamW's decoupled 1e-3)"
    )
    hidden_sizes: tuple[PositiveInt, ...] = Field(
        (100,), min_length=1, description="ReLU layer widths of encoder and decoder (TSB-AD: 100; the paper: 100, 100)"
    )
    latent_dim: int = Field(8, ge=1, description="size of z")
    inject_ratio: float = Field(
        0.01, ge=0, lt=1, description="missing-data injection: share of inputs zeroed and left out of M-ELBO per step"
    )
    std_epsilon: float = Field(
        1e-4, ge=0, description="added to every softplus std (the original Donut's; 0 is TSB-AD's)"
    )
    reconstruction: Reconstruction = Field(
        "mean",
        description="reconstruction term over the L steps: 'mean' (TSB-AD; the KL weighs L times more) "
        "or 'sum' (the paper's ELBO)",
    )
    mc_samples: int = Field(
        1024, ge=1, description="samples of z averaged in each score (the paper's and TSB-AD's 1024)"
    )
    last_point_only: bool = Field(
        False, description="score only each window's last step, as Donut and TSB-AD do (else every step, averaged)"
    )


class GaussianMLP(nn.Module):
    """Dense ReLU layers, then one linear layer giving a mean and a softplus std (+ epsilon) of ``n_out`` units."""

    def __init__(self, n_in: int, hidden_sizes: Sequence[int], n_out: int, std_epsilon: float) -> None:
        super().__init__()
        sizes = [n_in, *hidden_sizes]
        layers: list[nn.Module] = []
        for a, b in pairwise(sizes):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(sizes[-1], 2 * n_out)
        self.n_out, self.std_epsilon = n_out, std_epsilon

    def forward(self, x: Tensor, units: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean and std ``[..., n_out]``, or only the output ``units`` (indices), skipping the other rows' work."""
        h = self.hidden(x)
        if units is None:
            out = self.out(h)
        else:
            rows = torch.cat((units, units + self.n_out))
            out = F.linear(h, self.out.weight[rows], self.out.bias[rows])
        mean, raw_std = out.chunk(2, dim=-1)
        return mean, F.softplus(raw_std) + self.std_epsilon


class DonutOutputs(NamedTuple):
    """One pass: posterior of z, the z decoded, the likelihood of x ``[B, L, D]`` and the points that count."""

    mean_z: Tensor
    std_z: Tensor
    z: Tensor
    mean_x: Tensor
    std_x: Tensor
    mask: Tensor | None


def gaussian_nll(mean: Tensor, target: Tensor, std: Tensor) -> Tensor:
    """Elementwise ``-log N(target | mean, std)`` without the ``log(2 pi) / 2`` constant, as TSB-AD computes it."""
    return F.gaussian_nll_loss(mean, target, std.pow(2), reduction="none")


class DonutModel(WindowModel):
    """A VAE on flattened ``[B, L, D]`` windows, trained with M-ELBO and scored by reconstruction probability."""

    def __init__(
        self,
        n_channels: int,
        window: int,
        *,
        hidden_sizes: Sequence[int] = (100,),
        latent_dim: int = 8,
        inject_ratio: float = 0.01,
        std_epsilon: float = 1e-4,
        reconstruction: Reconstruction = "mean",
        mc_samples: int = 1024,
        last_point_only: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.window, self.n_channels, self.latent_dim = window, n_channels, latent_dim
        self.inject_ratio, self.reconstruction = inject_ratio, reconstruction
        self.mc_samples, self.last_point_only, self.seed = mc_samples, last_point_only, seed
        self.encoder = GaussianMLP(window * n_channels, hidden_sizes, latent_dim, std_epsilon)
        self.decoder = GaussianMLP(latent_dim, hidden_sizes, window * n_channels, std_epsilon)

    # -------------------------------------------------------------- the VAE
    def posterior(self, windows: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and std ``[B, latent]`` of q(z | x)."""
        return self.encoder(windows.reshape(len(windows), -1))

    def likelihood(self, z: Tensor, steps: slice | None = None) -> tuple[Tensor, Tensor]:
        """Mean and std ``[..., steps, D]`` of p(x | z) for z ``[..., latent]`` (all steps, or only ``steps``)."""
        d = self.n_channels
        if steps is None:
            mean, std = self.decoder(z)
            n_steps = self.window
        else:
            first, stop, _ = steps.indices(self.window)
            units = torch.arange(first * d, stop * d, device=z.device)
            mean, std = self.decoder(z, units)
            n_steps = stop - first
        shape = (*z.shape[:-1], n_steps, d)
        return mean.reshape(shape), std.reshape(shape)

    def forward(self, windows: Tensor, mask: Tensor | None = None, eps: Tensor | None = None) -> DonutOutputs:
        """One pass as TSB-AD makes it: in training, inject missing points (``mask``, 1 = kept) and sample
        z with ``eps`` (drawn when not given); in eval, no injection and z = mu unless ``eps`` is given."""
        if self.training and mask is None:
            mask = torch.empty_like(windows).bernoulli_(1.0 - self.inject_ratio)
        inputs = windows if mask is None else windows * mask
        mean_z, std_z = self.posterior(inputs)
        if eps is None and self.training:
            eps = torch.randn_like(mean_z)
        z = mean_z if eps is None else mean_z + std_z * eps
        mean_x, std_x = self.likelihood(z)
        return DonutOutputs(mean_z, std_z, z, mean_x, std_x, mask)

    # ---------------------------------------------------------- the contract
    def encode(self, windows: Tensor) -> Tensor:
        return self.posterior(windows)[0]

    def backbone_loss(self, windows: Tensor, mask: Tensor | None = None, eps: Tensor | None = None) -> Tensor:
        """Negative M-ELBO in training (one sample of z, injected missing points masked); in eval, the negative
        ELBO at z = mu with the analytic KL. ``mask`` and ``eps`` fix the noise (the parity test's hook)."""
        out = self(windows, mask, eps)
        per_step = gaussian_nll(out.mean_x, windows, out.std_x)  # [B, L, D]
        if out.mask is None:
            var_z = out.std_z.pow(2)
            latent = -0.5 * (1 + torch.log(var_z) - out.mean_z.pow(2) - var_z).sum(-1)  # KL(q || N(0, I))
        else:
            per_step = per_step * out.mask
            beta = out.mask.mean(dim=(1, 2))
            log_prior = -0.5 * out.z.pow(2).sum(-1)  # up to constants, as log q below
            log_posterior = -gaussian_nll(out.mean_z, out.z, out.std_z).sum(-1)
            latent = log_posterior - beta * log_prior
        steps = per_step.sum(-1)  # [B, L]
        recon = steps.mean(-1) if self.reconstruction == "mean" else steps.sum(-1)
        return (recon + latent).mean()

    def window_scores(self, windows: Tensor, noise: Tensor | None = None) -> Tensor:
        """``-log p(x_t | z)`` summed over channels, averaged over samples z = mu + std * noise: ``[B, L]``,
        or ``[B]`` (the last step) with ``last_point_only``. TSB-AD keeps only the last step and places it early
        (see the module docstring); per step, the shared windowing averages the L windows covering a timestamp.

        ``noise``: ``[S, latent]`` (shared by every window) or ``[S, B, latent]``; by default ``mc_samples``
        standard-normal draws from a generator seeded with ``seed``, the same every call."""
        mean_z, std_z = self.posterior(windows)
        if noise is None:
            generator = torch.Generator().manual_seed(self.seed)
            noise = torch.randn(self.mc_samples, self.latent_dim, generator=generator)
        noise = noise.to(device=mean_z.device, dtype=mean_z.dtype)
        if noise.dim() == 2:
            noise = noise[:, None]
        steps = slice(self.window - 1, self.window) if self.last_point_only else None
        target = windows[:, -1:] if steps is not None else windows
        chunk = max(1, SCORE_CHUNK_ELEMENTS // target.numel())
        total = torch.zeros(target.shape[:2], device=windows.device, dtype=mean_z.dtype)
        for part in noise.split(chunk):
            mean_x, std_x = self.likelihood(mean_z + std_z * part, steps)  # [s, B, steps, D]
            total += gaussian_nll(mean_x, target, std_x).sum(dim=(0, 3))
        scores = total / len(noise)
        return scores[:, -1] if self.last_point_only else scores

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        return self.encoder.parameters()


@register_detector
class DonutDetector(DeepDetector):
    """Donut's negative reconstruction log-likelihood per timestamp (a VAE on sliding windows)."""

    name = "donut"
    summary = (
        "Donut (WWW 2018): a VAE on flattened sliding windows trained with M-ELBO and missing-data "
        "injection; scores each step by its negative reconstruction log-likelihood over 1024 samples of z"
    )
    caveat = (
        "built for smooth seasonal KPIs: a dense VAE on the flattened window, so it ignores the order of "
        "channels and steps, and large windows of many channels make it big; weak on TSB-AD's benchmark"
    )
    config_class = DonutConfig
    config: DonutConfig

    def build_model(self, n_channels: int) -> WindowModel:
        c = self.config
        return DonutModel(
            n_channels,
            c.window,
            hidden_sizes=c.hidden_sizes,
            latent_dim=c.latent_dim,
            inject_ratio=c.inject_ratio,
            std_epsilon=c.std_epsilon,
            reconstruction=c.reconstruction,
            mc_samples=c.mc_samples,
            last_point_only=c.last_point_only,
            seed=c.seed,
        )
