"""``A(X; ψ)``: the small label-preserving variants that are APE's positives.

Here rather than with the PAG sampler so every pseudo-anomaly source (a rule bank, NCAD-style
outlier exposure) shares one augmentation, and one variable changes at a time.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.core.stats import robust_scale


class AugmentConfig(BaseModel):
    """ψ: how far an augmented copy may stray from its window while staying normal."""

    model_config = ConfigDict(extra="forbid")

    jitter: float = Field(0.05, ge=0, le=1, description="std of added zero-mean (uniform) noise, in local robust scales")
    scale: float = Field(0.05, ge=0, lt=1, description="amplitude factor drawn from U(1 - scale, 1 + scale) around the window mean")
    max_shift: int = Field(2, ge=0, le=50, description="time shift of up to this many steps (edge values repeated)")


def augment(x: np.ndarray, rng: np.random.Generator, config: AugmentConfig | None = None,
            scale: np.ndarray | None = None) -> np.ndarray:
    """``A(X; ψ)``: jittered, rescaled, slightly shifted copies of ``x[B, L, D]`` (same shape and dtype).

    Each copy is shifted by up to ``max_shift`` steps (edge values repeated), scaled around its
    mean by a factor in ``1 ± scale``, and gets zero-mean noise of std ``jitter`` local scales.

    ``scale[B, D]`` is the windows' local robust scale (computed when not given); the jitter is
    relative to it, so a flat channel stays nearly flat.
    """
    config = config or AugmentConfig()
    x = np.asarray(x)
    b, n, d = x.shape
    if config.max_shift > 0:
        shift = rng.integers(-config.max_shift, config.max_shift + 1, size=b)
        idx = np.clip(np.arange(n)[None, :] - shift[:, None], 0, n - 1)
        out = x[np.arange(b)[:, None], idx]  # a new array: the operations below work in place
    else:
        out = x.copy()
    if config.scale > 0:
        factor = rng.uniform(1 - config.scale, 1 + config.scale, size=(b, 1, 1)).astype(x.dtype)
        mean = out.mean(axis=1, keepdims=True)
        out -= mean
        out *= factor
        out += mean
    if config.jitter > 0:
        s = robust_scale(x) if scale is None else scale
        # uniform noise with the requested std: as good a jitter as Gaussian, 4x cheaper to draw
        noise = rng.random((b, n, d), dtype=np.float32).astype(x.dtype, copy=False)
        noise -= 0.5
        noise *= (2 * np.sqrt(3) * config.jitter * s)[:, None, :].astype(x.dtype)
        out += noise
    return out
