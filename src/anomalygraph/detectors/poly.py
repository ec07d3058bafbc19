"""POLY: how badly each block of the series is predicted by a polynomial through its neighbours.

Why: on TSB-AD's univariate benchmark this few-line method (Li et al., TSB-UAD) is among the
leaders (VUS-PR ~0.39, beside Sub-PCA and KShapeAD), it needs no training and it is fast.

Method (after TSB-AD 1.5's ``POLY`` with its ``Fourier`` measure): the series is cut into
blocks of ``window`` points; for each block a polynomial of degree ``power`` is least-squares
fitted to the ``neighbourhood`` points centred on the block's start (shifted inwards at the
ends of the series), the block itself left out, and the block's score is the RMS of its
residual against that polynomial (TSB-AD's norm of the FFT of the residual over its length
equals the RMS by Parseval). Every timestamp of a block gets the block's score. The first
``min(500, 10%)`` rows, rounded up to whole blocks, are TSB-AD's warm-up and score 0
(``warmup=0`` scores them too, with a one-sided, extrapolating fit that inflates their
scores). Values are divided by the training range, as TSB-AD min-max normalises the series,
so training and new scores share a scale. POLY learns nothing else: each scored series is
its own reference.

Differences from TSB-AD, both tiny: the polynomial is fitted in local, scaled coordinates
(TSB-AD uses absolute row numbers, ill-conditioned on long series), and a block is predicted
at its integer rows (TSB-AD at ``linspace`` positions slightly off them). Multichannel input:
see :mod:`anomalygraph.detectors.univariate`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from anomalygraph.core.errors import DataError
from anomalygraph.detectors.base import register_detector
from anomalygraph.detectors.univariate import ChannelState, UnivariateConfig, UnivariateDetector


class PolyConfig(UnivariateConfig):
    power: int = Field(3, ge=0, le=10, description="degree of the polynomial (TSB-AD's run_POLY default 3; its tuned value 4)")
    neighbourhood: int | None = Field(
        None, ge=4, le=1_000_000, description="points the polynomial is fitted to; None = max(10 * window, 100) as in TSB-AD"
    )
    warmup: int | Literal["auto"] = Field(
        "auto", description="first rows left unscored (score 0), rounded up to whole blocks; 'auto' = TSB-AD's min(500, 10%)"
    )

    @field_validator("warmup")
    @classmethod
    def _non_negative(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("warmup must be >= 0 or 'auto'")
        return value


def warmup_rows(n: int, window: int, warmup: int | Literal["auto"]) -> int:
    """Rows at the start left unscored (score 0): whole blocks covering TSB-AD's ``min(500, 10%)``."""
    rows = min(500, int(0.1 * n)) if warmup == "auto" else int(warmup)
    return min(n, -(-rows // window) * window)


def block_residuals(x: np.ndarray, window: int, power: int, neighbourhood: int, skip: int = 0) -> np.ndarray:
    """RMS residual of each ``window``-block against a polynomial fitted to the points around it.

    The fitting points are the ``neighbourhood`` points centred on the block's first point (the
    block left out), shifted inwards at the ends of the series, as in TSB-AD. Blocks starting
    before row ``skip`` score 0.
    """
    n = len(x)
    if n < window + power + 1:
        raise DataError(f"POLY needs at least window + power + 1 = {window + power + 1} points, got {n}")
    half = neighbourhood // 2
    scores = np.zeros(n)
    for start in range(skip, n, window):
        stop = min(start + window, n)
        lo, hi = start - half, start + half
        if lo < 0:
            lo, hi = 0, min(n, neighbourhood)
        elif hi > n:
            lo, hi = max(0, n - neighbourhood), n
        idx = np.concatenate([np.arange(lo, start), np.arange(stop, max(stop, hi))])
        if len(idx) <= power:  # a neighbourhood too small for the degree: use every other point
            idx = np.concatenate([np.arange(0, start), np.arange(stop, n)])
        centre = start + (stop - start - 1) / 2
        scale = max(centre - idx.min(), idx.max() - centre, 1.0)  # local, scaled abscissae keep the fit well conditioned
        design = np.vander((idx - centre) / scale, power + 1)
        coef, *_ = np.linalg.lstsq(design, x[idx], rcond=None)
        predicted = np.vander((np.arange(start, stop) - centre) / scale, power + 1) @ coef
        scores[start:stop] = np.sqrt(np.mean((x[start:stop] - predicted) ** 2))
    return scores


@register_detector
class PolyDetector(UnivariateDetector):
    """Polynomial-prediction residual per block (TSB-AD's POLY)."""

    name = "poly"
    config_class = PolyConfig
    summary = (
        "POLY: residual of each window-long block against a polynomial through its neighbours; fast; "
        "for spikes and bursts on smooth or trending signals, weak on shape changes of periodic ones"
    )
    config: PolyConfig

    def _neighbourhood(self, window: int) -> int:
        return self.config.neighbourhood or max(10 * window, 100)

    def _min_length_for(self, window: int) -> int:
        return window + self.config.power + 1

    def _max_window(self, n_train: int) -> int:
        return max(2, (n_train - self.config.power - 1) // 2)

    def _fit_channel(self, x: np.ndarray, window: int) -> ChannelState:
        if len(x) < self._min_length_for(window):
            raise DataError(
                f"poly: {len(x)} training rows are too few for a window of {window} and power {self.config.power}"
            )
        return {"range": np.array(float(x.max() - x.min()))}

    def _score_channel(self, x: np.ndarray, window: int, state: ChannelState) -> np.ndarray:
        spread = float(state["range"])
        skip = warmup_rows(len(x), window, self.config.warmup)
        return block_residuals(x / spread, window, self.config.power, self._neighbourhood(window), skip)
