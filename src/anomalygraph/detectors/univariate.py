"""Shared frame for univariate methods (POLY, KShapeAD, Series2Graph) on any number of channels.

Channel rule: each channel that varies in the training rows gets its own model, fitted and
scored on that channel alone; constant training channels are left out (a univariate method
learns nothing from them). One channel: its scores are returned as the method computes them.
Several: each channel's scores are robustly scaled by the median and IQR of its own training
scores and the scaled scores are averaged, so no channel wins by its units alone.

The window (``"auto"``: the channel's autocorrelation period, TSB-AD's ``find_length_rank``)
is chosen per channel from its training rows.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from anomalygraph.core.errors import DataError
from anomalygraph.data.periods import estimate_period
from anomalygraph.detectors.base import Detector, DetectorConfig

WindowSetting = Annotated[int, Field(ge=2, le=100_000)] | Literal["auto"]

ChannelState = dict[str, np.ndarray]


class UnivariateConfig(DetectorConfig):
    window: WindowSetting = Field("auto", description="pattern length, or 'auto' for the channel's autocorrelation period")


def robust_scale(scores: np.ndarray) -> tuple[float, float]:
    """Median and IQR/1.349 (the standard deviation when the IQR is zero, else 1)."""
    q25, q50, q75 = np.percentile(scores, [25, 50, 75])
    scale = (q75 - q25) / 1.349
    if not scale > 0:
        scale = float(np.std(scores))
    return float(q50), float(scale) if scale > 0 else 1.0


class UnivariateDetector(Detector):
    """Subclasses implement ``_fit_channel`` / ``_score_channel`` on one float64 channel."""

    config: UnivariateConfig

    def __init__(self, config: UnivariateConfig | None = None, **overrides: object) -> None:
        super().__init__(config, **overrides)
        self.channels_: np.ndarray | None = None
        self.windows_: np.ndarray | None = None
        self._cached: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------ subclass hooks
    @abstractmethod
    def _fit_channel(self, x: np.ndarray, window: int) -> ChannelState:
        """Fitted state of one channel as named arrays (what save/load keeps)."""

    @abstractmethod
    def _score_channel(self, x: np.ndarray, window: int, state: ChannelState) -> np.ndarray:
        """One score per timestamp of ``x``, higher is more anomalous."""

    def _min_length_for(self, window: int) -> int:
        """Shortest series one channel with this window can be scored on."""
        return window

    def _max_window(self, n_train: int) -> int:
        """Longest 'auto' window the training rows leave room for."""
        return max(2, n_train // 2)

    def _min_window(self) -> int:
        return 2

    # ------------------------------------------------------------------ contract
    @property
    def min_length(self) -> int:
        if self.windows_ is not None:
            return max(self._min_length_for(int(w)) for w in self.windows_)
        window = self.config.window
        return self._min_length_for(window if isinstance(window, int) else self._min_window())

    def _channel_window(self, x: np.ndarray) -> int:
        if self.config.window != "auto":
            return int(self.config.window)
        return int(np.clip(estimate_period(x), self._min_window(), max(self._min_window(), self._max_window(len(x)))))

    def _fit(self, values: np.ndarray, labels: np.ndarray | None) -> None:
        # ptp, not std: the float32 std of a constant column can come out a tiny positive number
        channels = np.flatnonzero(np.ptp(values, axis=0) > 0)
        if len(channels) == 0:
            raise DataError(f"{self.name} needs at least one non-constant channel in the training data")
        self.channels_ = channels
        windows, states, raw = [], [], []
        for channel in channels:
            x = values[:, channel].astype(np.float64)
            window = self._channel_window(x)
            state = self._fit_channel(x, window)
            windows.append(window)
            states.append(state)
            raw.append(self._score_channel(x, window, state))
        self.windows_ = np.array(windows, dtype=np.int64)
        self.states_ = states
        scales = [robust_scale(r) for r in raw]
        self.loc_ = np.array([s[0] for s in scales])
        self.scale_ = np.array([s[1] for s in scales])
        # fit() scores the training rows next; they were just scored, so hand those back.
        self._cached = (values, self._combine(raw))

    def _score(self, values: np.ndarray) -> np.ndarray:
        if self._cached is not None and self._cached[0] is values:
            scores = self._cached[1]
            self._cached = None
            return scores
        assert self.channels_ is not None and self.windows_ is not None
        raw = [
            self._score_channel(values[:, c].astype(np.float64), int(w), state)
            for c, w, state in zip(self.channels_, self.windows_, self.states_, strict=True)
        ]
        return self._combine(raw)

    def _combine(self, raw: list[np.ndarray]) -> np.ndarray:
        if len(raw) == 1:
            return np.asarray(raw[0], dtype=np.float64)
        scaled = [(r - loc) / scale for r, loc, scale in zip(raw, self.loc_, self.scale_, strict=True)]
        return np.mean(scaled, axis=0)

    # ------------------------------------------------------------- persistence
    def _state_arrays(self) -> dict[str, np.ndarray]:
        assert self.channels_ is not None and self.windows_ is not None
        arrays = {"channels": self.channels_, "windows": self.windows_, "loc": self.loc_, "scale": self.scale_}
        for i, state in enumerate(self.states_):
            arrays.update({f"c{i}__{key}": value for key, value in state.items()})
        return arrays

    def _restore_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.channels_, self.windows_ = arrays["channels"], arrays["windows"]
        self.loc_, self.scale_ = arrays["loc"], arrays["scale"]
        self.states_ = []
        for i in range(len(self.channels_)):
            prefix = f"c{i}__"
            self.states_.append({k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)})
