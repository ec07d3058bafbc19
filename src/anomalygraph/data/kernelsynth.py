"""KernelSynth: synthetic series drawn from Gaussian-process priors with random composite kernels.

Chronos (Ansari et al. 2024, "Chronos: Learning the Language of Time Series", Algorithm 1)
pretrains on real series plus these: draw ``j ~ U{1, max_kernels}`` kernels with replacement
from a bank (periodic, linear trend, smooth, multi-scale, noise, constant), fold them together
with random ``+`` or ``*``, and take one sample of ``GP(0, K)`` on ``t = linspace(0, 1, L)``.
Sums mix patterns (a trend plus a season), products modulate them (a season whose amplitude
grows), so a few kernels give a wide variety of shapes without any real data.

The periodic kernels have periods of ``p`` steps for ``p`` in :data:`PERIODS` (those shorter than
the series), i.e. ``periodicity = p / (L - 1)`` on the unit interval. The sample is drawn with our
own Cholesky factor (``O(L^3)``: about 30 ms for L = 1024) instead of scikit-learn's
``sample_y``, so every draw is driven by one seeded ``numpy.random.Generator``; a factor that
fails gets more jitter, then an eigendecomposition. Series are seeded one by one
(``SeedSequence(seed).spawn``), so the first ``n`` series of a seed do not depend on how many
are asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import numpy as np
from sklearn.gaussian_process.kernels import (
    RBF,
    ConstantKernel,
    DotProduct,
    ExpSineSquared,
    Kernel,
    RationalQuadratic,
    WhiteKernel,
)

from anomalygraph.core.errors import ConfigError, DataError

PERIODS: tuple[int, ...] = (4, 7, 12, 24, 48, 96, 168, 336)
"""Periods in steps of the periodic kernels (hourly-daily-weekly-like cycles); kept only below the length."""

JITTERS: tuple[float, ...] = (1e-6, 1e-5, 1e-4)
"""Jitter ladder, relative to the mean prior variance; past it the draw uses ``eigh``.

Stopping at 1e-4 keeps the added white noise at 1 % of the prior's scale or less."""

MIN_RELATIVE_STD = 1e-2
"""A draw whose std is below this share of the prior's scale is effectively constant and redrawn."""

MAX_TRIES = 50
"""Redraws (new kernel, new sample) before giving up on one series."""

GENERATOR_VERSION = "kernelsynth/1"


@dataclass(frozen=True)
class KernelSynthSample:
    """One synthetic series and what made it, for a model card."""

    values: np.ndarray  # [L] float32
    kernel: str  # the composite, fully parenthesised: "((periodic(24) + rbf(0.1)) * linear(1))"
    components: tuple[str, ...]  # the bank entries it was built from, in order
    jitter: float  # absolute jitter added to the diagonal (0 when eigh was used)
    tries: int  # 1 unless a draw was rejected (non-finite, constant) and redrawn


def kernel_bank(length: int) -> list[tuple[str, Kernel]]:
    """``(label, kernel)`` of every bank entry for series of ``length`` steps."""
    if length < 2:
        raise ConfigError(f"KernelSynth needs series of at least 2 steps, got {length}")
    step = 1.0 / (length - 1)
    bank: list[tuple[str, Kernel]] = [
        (f"periodic({p})", ExpSineSquared(length_scale=1.0, periodicity=p * step)) for p in PERIODS if p < length
    ]
    bank += [(f"linear({s:g})", DotProduct(sigma_0=s)) for s in (0.0, 1.0, 10.0)]
    bank += [(f"rbf({s:g})", RBF(length_scale=s)) for s in (0.1, 1.0, 10.0)]
    bank += [(f"rq({a:g})", RationalQuadratic(alpha=a)) for a in (0.1, 1.0, 10.0)]
    bank += [(f"white({n:g})", WhiteKernel(noise_level=n)) for n in (0.1, 1.0)]
    bank.append(("constant", ConstantKernel()))
    return bank


def random_kernel(rng: np.random.Generator, length: int, max_kernels: int = 5) -> tuple[Kernel, str, tuple[str, ...]]:
    """A composite kernel: ``U{1..max_kernels}`` bank entries (with replacement) folded with random + / *.

    Returns the kernel, its parenthesised expression and the component labels.
    """
    if max_kernels < 1:
        raise ConfigError(f"max_kernels must be at least 1, got {max_kernels}")
    bank = kernel_bank(length)
    picks = rng.integers(0, len(bank), size=int(rng.integers(1, max_kernels + 1)))
    chosen = [bank[int(i)] for i in picks]
    ops = rng.integers(0, 2, size=len(chosen) - 1)  # 0: +, 1: *

    def combine(acc: tuple[Kernel, str], item: tuple[int, tuple[str, Kernel]]) -> tuple[Kernel, str]:
        op, (label, kernel) = item
        if op == 0:
            return acc[0] + kernel, f"({acc[1]} + {label})"
        return acc[0] * kernel, f"({acc[1]} * {label})"

    first_label, first_kernel = chosen[0]
    kernel, expr = reduce(combine, zip(ops.tolist(), chosen[1:], strict=True), (first_kernel, first_label))
    return kernel, expr, tuple(label for label, _ in chosen)


def _draw(cov: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """One sample of ``N(0, cov)`` and the absolute jitter it needed (0 for the eigh fallback)."""
    n = len(cov)
    z = rng.standard_normal(n)
    scale = float(np.mean(np.diag(cov)))
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    for rel in JITTERS:
        jitter = rel * scale
        try:
            chol = np.linalg.cholesky(cov + jitter * np.eye(n))
        except np.linalg.LinAlgError:
            continue
        return chol @ z, jitter
    # a covariance too ill-conditioned for a cheap jitter: clip the negative eigenvalues instead
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    return v @ (np.sqrt(np.clip(w, 0, None)) * z), 0.0


def sample_gp(kernel: Kernel, length: int, rng: np.random.Generator) -> np.ndarray:
    """One draw (float64 ``[length]``) of the GP prior with ``kernel`` on ``linspace(0, 1, length)``."""
    x = np.linspace(0.0, 1.0, length)[:, None]
    cov = np.asarray(kernel(x), dtype=np.float64)
    values, _ = _draw(cov, rng)
    return values


def _usable(values: np.ndarray, prior_scale: float, jitter: float) -> bool:
    """Finite in float32 and clearly varying: well above the prior's scale floor and the jitter noise."""
    if not np.isfinite(values).all() or not np.isfinite(values.astype(np.float32)).all():
        return False
    floor = max(MIN_RELATIVE_STD * np.sqrt(prior_scale), 10 * np.sqrt(jitter))
    return float(np.std(values)) > floor and float(np.ptp(values.astype(np.float32))) > 0


def kernelsynth_samples(n_series: int, length: int = 1024, *, max_kernels: int = 5, seed: int = 0) -> list[KernelSynthSample]:
    """``n_series`` KernelSynth series with their kernels; deterministic for ``seed``.

    A draw that is not finite or is practically constant (a lone constant kernel) is replaced by
    a fresh kernel and draw, as Chronos retries a failed one.
    """
    if n_series < 0:
        raise ConfigError(f"n_series must be >= 0, got {n_series}")
    if length < 2:
        raise ConfigError(f"KernelSynth needs series of at least 2 steps, got {length}")
    x = np.linspace(0.0, 1.0, length)[:, None]
    out = []
    for child in np.random.SeedSequence(seed).spawn(n_series):
        rng = np.random.default_rng(child)
        for tries in range(1, MAX_TRIES + 1):
            kernel, expr, components = random_kernel(rng, length, max_kernels)
            cov = np.asarray(kernel(x), dtype=np.float64)
            if not np.isfinite(cov).all():
                continue
            values, jitter = _draw(cov, rng)
            if _usable(values, float(np.mean(np.diag(cov))), jitter):
                out.append(KernelSynthSample(values.astype(np.float32), expr, components, jitter, tries))
                break
        else:  # pragma: no cover - a constant-only draw 50 times in a row is practically impossible
            raise DataError(f"KernelSynth: no usable draw in {MAX_TRIES} tries (seed {seed})")
    return out


def kernelsynth(n_series: int, length: int = 1024, *, max_kernels: int = 5, seed: int = 0) -> np.ndarray:
    """float32 ``[n_series, length]`` KernelSynth series: finite, non-constant, deterministic for ``seed``."""
    samples = kernelsynth_samples(n_series, length, max_kernels=max_kernels, seed=seed)
    if not samples:
        return np.zeros((0, length), dtype=np.float32)
    return np.stack([s.values for s in samples])


def describe_kernels(samples: list[KernelSynthSample]) -> dict[str, object]:
    """What went into a set of samples, as plain data: bank usage and composition sizes."""
    counts: dict[str, int] = {}
    for s in samples:
        for c in s.components:
            counts[c] = counts.get(c, 0) + 1
    sizes = [len(s.components) for s in samples]
    return {
        "generator": GENERATOR_VERSION,
        "n_series": len(samples),
        "length": int(samples[0].values.shape[0]) if samples else 0,
        "components": dict(sorted(counts.items())),
        "kernels_per_series": {str(k): sizes.count(k) for k in sorted(set(sizes))},
        "redrawn": sum(s.tries - 1 for s in samples),
        "eigh_fallbacks": sum(1 for s in samples if s.jitter == 0.0),
    }


__all__ = [
    "PERIODS",
    "KernelSynthSample",
    "describe_kernels",
    "kernel_bank",
    "kernelsynth",
    "kernelsynth_samples",
    "random_kernel",
    "sample_gp",
]
