"""NCAD-style pseudo-anomalies (Carmona et al., IJCAI 2022) as a ``PairSource``: the baseline without a bank.

NCAD's two generators, applied to the *suspect* part of a window (its last ``suspect_share``):
contextual outlier exposure (a random span of the suspect part, on a random subset of channels,
replaced by the same span of another window) and point outliers (one step pushed 3-6 local robust
scales up or down on a random channel). NCAD trains a hypersphere classifier on context/suspect
embeddings; here only its generators are taken, and the loss stays APE's InfoNCE, so comparing this
source with a bank changes the pseudo-anomalies alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anomalygraph.core.errors import DataError
from anomalygraph.core.stats import robust_scale
from anomalygraph.data.windows import window_maxima, window_starts
from anomalygraph.detectors.ape.augment import AugmentConfig, augment


@dataclass
class ExposureBatch:
    x_raw: np.ndarray
    x_pa: np.ndarray
    mask: np.ndarray  # [B, L] the changed steps
    kind: np.ndarray  # [B] 0 = contextual outlier exposure, 1 = point outlier
    x_aug: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x_raw)


class OutlierExposure:
    """Draws normal windows of ``values`` and their NCAD-style pseudo-anomalous versions."""

    name = "ncad"

    def __init__(self, values: np.ndarray, window: int, *, suspect_share: float = 0.5, point_share: float = 0.5,
                 scores: np.ndarray | None = None, keep_fraction: float = 1.0, seed: int = 0,
                 augment_config: AugmentConfig | None = None) -> None:
        self.values = np.asarray(values, dtype=np.float32)
        if self.values.ndim == 1:
            self.values = self.values[:, None]
        if len(self.values) < window:
            raise DataError(f"{len(self.values)} rows are fewer than the window of {window}")
        self.window, self.suspect = window, max(1, round(window * suspect_share))
        self.point_share = point_share
        self.starts = window_starts(len(self.values), window)
        if scores is not None:  # normal candidate filtering, as for the rule-bank sampler
            win = window_maxima(scores, self.starts, window)
            self.starts = self.starts[win <= np.quantile(win, keep_fraction)]
        self.rng = np.random.default_rng(seed)
        self.augment_config = augment_config or AugmentConfig()

    def sample(self, n: int, *, with_augmented: bool = False) -> ExposureBatch:
        rng, L, d = self.rng, self.window, self.values.shape[1]
        offsets = np.arange(L)
        x = self.values[self.starts[rng.integers(len(self.starts), size=n)][:, None] + offsets[None, :]]
        donor = self.values[self.starts[rng.integers(len(self.starts), size=n)][:, None] + offsets[None, :]]
        scale = robust_scale(x)
        pa, mask = x.copy(), np.zeros((n, L), dtype=bool)
        point = rng.random(n) < self.point_share
        first = L - self.suspect
        # contextual outlier exposure: a span of the suspect part on some channels comes from another window
        length = rng.integers(1, self.suspect + 1, size=n)
        begin = first + (rng.random(n) * (self.suspect - length + 1)).astype(int)
        span = (offsets[None, :] >= begin[:, None]) & (offsets[None, :] < (begin + length)[:, None])
        channels = rng.random((n, d)) < 0.5
        channels[np.arange(n), rng.integers(d, size=n)] = True  # at least one channel
        coe = ~point
        swap = span[:, :, None] & channels[:, None, :] & coe[:, None, None]
        pa[swap] = donor[swap]
        mask |= span & coe[:, None]
        # point outliers: one step of the suspect part, on one channel, 3-6 local scales away
        step = rng.integers(first, L, size=n)
        channel = rng.integers(d, size=n)
        push = rng.uniform(3, 6, size=n) * rng.choice([-1.0, 1.0], size=n) * scale[np.arange(n), channel]
        rows = np.flatnonzero(point)
        pa[rows, step[rows], channel[rows]] += push[rows].astype(np.float32)
        mask[rows, step[rows]] = True
        x_aug = augment(x, rng, self.augment_config, scale=scale) if with_augmented else None
        return ExposureBatch(x, pa, mask, point.astype(np.int8), x_aug)
