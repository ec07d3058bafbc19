"""Strong simple baselines that deep detectors must beat.

On TSB-AD (VUS-PR, univariate) Sub-PCA leads at 0.42, matrix profile scores 0.35 and IForest
0.30; the "Quo Vadis" study (ICML 2024) finds PCA / nearest-neighbour / moving statistics match
deep models. Window length defaults to the series' autocorrelation period, as in TSB-AD.
"""

from __future__ import annotations

import importlib
import warnings
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from anomalygraph.core.errors import DataError
from anomalygraph.data.periods import estimate_period
from anomalygraph.data.windows import Reduce, sliding_windows, windows_to_scores
from anomalygraph.detectors.base import Detector, DetectorConfig, register_detector

WindowSetting = int | Literal["auto"]


class WindowedConfig(DetectorConfig):
    window: WindowSetting = Field("auto", description="window length, or 'auto' for the autocorrelation period")
    stride: int = Field(1, ge=1, description="step between training windows")
    reduce: Reduce = Field("mean", description="how window scores map back to timestamps")


def _check_window(window: WindowSetting) -> None:
    if window != "auto" and not (isinstance(window, int) and window >= 2):
        raise DataError(f"window must be an integer >= 2 or 'auto', got {window!r}")


def _resolve_window(window: WindowSetting, values: np.ndarray) -> int:
    """The configured window, or the period of the most variable channel, capped by the length."""
    _check_window(window)
    if window != "auto":
        return int(window)
    channel = int(np.argmax(values.std(axis=0)))
    return max(2, min(estimate_period(values[:, channel]), len(values) // 2))


class _WindowedDetector(Detector):
    config: WindowedConfig

    def __init__(self, config: WindowedConfig | None = None, **overrides: object) -> None:
        super().__init__(config, **overrides)
        _check_window(self.config.window)
        self.window_: int | None = None

    @property
    def min_length(self) -> int:
        if self.window_ is not None:
            return self.window_
        return self.config.window if isinstance(self.config.window, int) else 4

    def _flat_windows(self, values: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.window_ is not None
        windows, starts = sliding_windows(values, self.window_, stride)
        return windows.reshape(len(windows), -1), starts

    def _to_timestamps(self, window_scores: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
        assert self.window_ is not None
        return windows_to_scores(window_scores, starts, self.window_, length, self.config.reduce)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"window": np.array(self.window_)}

    def _restore_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.window_ = int(arrays["window"])


# --------------------------------------------------------------------- IForest
class IForestConfig(WindowedConfig):
    n_estimators: int = Field(100, ge=1, le=10_000)
    max_samples: int | Literal["auto"] = Field("auto", description="samples drawn to build each tree")


@register_detector
class IForestDetector(_WindowedDetector):
    """Isolation Forest on flattened sliding windows (scikit-learn)."""

    name = "iforest"
    config_class = IForestConfig
    summary = "Isolation Forest over sliding windows; fast, robust default for point and short anomalies"
    config: IForestConfig

    def _fit(self, values: np.ndarray, labels: np.ndarray | None) -> None:
        from sklearn.ensemble import IsolationForest

        self.window_ = _resolve_window(self.config.window, values)
        windows, _ = self._flat_windows(values, self.config.stride)
        self.model_ = IsolationForest(
            n_estimators=self.config.n_estimators,
            max_samples=self.config.max_samples,
            random_state=self.config.seed,
            n_jobs=1,
        ).fit(windows)

    def _score(self, values: np.ndarray) -> np.ndarray:
        windows, starts = self._flat_windows(values, 1)
        return self._to_timestamps(-self.model_.score_samples(windows), starts, len(values))

    def _save_state(self, directory: Path) -> None:
        import skops.io as sio

        super()._save_state(directory)
        sio.dump(self.model_, directory / "model.skops")

    def _load_state(self, directory: Path) -> None:
        import skops.io as sio

        super()._load_state(directory)
        # skops refuses any type not listed; the tree structure is the only non-default one an IForest needs.
        self.model_ = sio.load(directory / "model.skops", trusted=["sklearn.tree._tree.Tree"])


# --------------------------------------------------------------------- Sub-PCA
SubPCAScore = Literal["mahalanobis", "reconstruction", "tsbad"]
_PCA_CHUNK = 4096  # windows scored at a time, to bound the [N, D] intermediates


class SubPCAConfig(WindowedConfig):
    score: SubPCAScore = Field(
        "mahalanobis",
        description="'mahalanobis': eigenvalue-weighted distance over all components; 'reconstruction': "
        "error outside the components explaining `variance`; 'tsbad': TSB-AD 1.5's (pyod's) formula",
    )
    variance: float = Field(0.9, gt=0, lt=1, description="'reconstruction' only: fraction of variance the kept components explain")
    ridge: float = Field(
        0.1, ge=0, le=1e6,
        description="'mahalanobis' only: added to every component's variance, as a fraction of the mean eigenvalue; "
        "0 = plain Mahalanobis, large = plain distance from the mean window",
    )
    reduce: Literal["mean", "max", "centre"] = Field(
        "mean", description="how window scores map back to timestamps; 'centre': each window's score on its centre (TSB-AD)"
    )


@register_detector
class SubPCADetector(_WindowedDetector):
    """PCA of standardised sliding windows; each window scored by its distance from the normal ones.

    ``score="mahalanobis"`` (default): ``sum_k p_k**2 / (lambda_k + ridge * mean(lambda))`` over
    *all* components ``k`` (projection ``p_k``, eigenvalue ``lambda_k``), the eigenvalue-weighted
    distance of Shyu et al. (2003) that TSB-AD's PCA docstring describes: rare directions weigh
    most, and a window shifted as a whole still counts (through the first component), which a
    reconstruction error cannot see. ``"reconstruction"``: the mean squared error outside the
    components explaining ``variance`` of the training windows (the SPE / Q statistic; this
    detector's behaviour before the default changed). ``"tsbad"``: what TSB-AD 1.5's
    ``run_Sub_PCA`` computes (pyod's PCA), ``sum_k ||z - v_k|| / ratio_k``, the distance of the
    window to each eigenvector *taken as a point*, divided by its explained-variance ratio
    (pyod issue #217); that is nearly a monotone function of ``||z||``, the window's distance
    from the mean window, so it finds level and amplitude excursions but not shape changes.
    ``reduce="centre"`` with ``"tsbad"``, fitted on the whole series with the whole series'
    period as window, reproduces TSB-AD's scores.
    """

    name = "sub_pca"
    config_class = SubPCAConfig
    summary = (
        "PCA of sliding windows, eigenvalue-weighted (Mahalanobis) distance over all components; "
        "strong on shape changes and spikes, weaker on slow level excursions"
    )
    config: SubPCAConfig

    def _fit(self, values: np.ndarray, labels: np.ndarray | None) -> None:
        self.window_ = _resolve_window(self.config.window, values)
        windows, _ = self._flat_windows(values, self.config.stride)
        windows = windows.astype(np.float64)
        self.mean_ = windows.mean(axis=0)
        std = windows.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        z = (windows - self.mean_) / self.scale_
        _, s, vt = np.linalg.svd(z, full_matrices=False)
        # scikit-learn's sign convention (largest entry of each component positive): only 'tsbad'
        # depends on the signs, and this way it matches pyod's / TSB-AD's PCA.
        vt = vt * np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])[:, None]
        eigen = s**2 / len(z)
        if self.config.score == "reconstruction":
            explained = np.cumsum(s**2) / max(float(np.sum(s**2)), np.finfo(float).tiny)
            k = int(np.searchsorted(explained, self.config.variance) + 1)
            self.components_ = vt[: min(k, len(vt))]
        else:
            self.components_ = vt
        self.eigen_ = eigen

    def _score(self, values: np.ndarray) -> np.ndarray:
        windows, starts = self._flat_windows(values, 1)
        out = np.empty(len(windows))
        for at in range(0, len(windows), _PCA_CHUNK):
            z = (windows[at : at + _PCA_CHUNK].astype(np.float64) - self.mean_) / self.scale_
            out[at : at + _PCA_CHUNK] = self._window_scores(z)
        return self._to_timestamps(out, starts, len(values))

    def _window_scores(self, z: np.ndarray) -> np.ndarray:
        score = self.config.score
        projected = z @ self.components_.T
        if score == "reconstruction":
            residual = z - projected @ self.components_
            return np.mean(residual**2, axis=1)
        dims = z.shape[1]
        top = max(float(self.eigen_.max(initial=0.0)), np.finfo(float).tiny)
        if score == "mahalanobis":
            # Directions without training variance (beyond the SVD's rank) get the floor.
            # At least 1e-9 (standardised units): a channel constant in the fit rows has no variance at all,
            # and any move away from it must stay a large but finite score.
            floor = max(self.config.ridge * float(self.eigen_.sum()) / dims + 1e-12 * top, 1e-9)
            inside = np.sum(projected**2 / (self.eigen_ + floor), axis=1)
            outside = np.maximum(np.sum(z**2, axis=1) - np.sum(projected**2, axis=1), 0.0)
            return inside + outside / floor
        # 'tsbad': pyod's sum of distances to the eigenvectors as points over explained-variance ratios.
        ratio = np.maximum(self.eigen_ / top / max(float(np.sum(self.eigen_ / top)), np.finfo(float).tiny), 1e-12)
        squared = np.sum(z**2, axis=1)[:, None] - 2 * projected + 1.0
        return np.sum(np.sqrt(np.maximum(squared, 0.0)) / ratio, axis=1)

    def _to_timestamps(self, window_scores: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
        if self.config.reduce != "centre":
            return super()._to_timestamps(window_scores, starts, length)
        assert self.window_ is not None
        # TSB-AD's padding: window i's score lands on row i + ceil((w-1)/2); the ends repeat.
        centre = np.arange(length) - self.window_ // 2
        return window_scores[np.clip(centre, 0, len(window_scores) - 1)]

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {
            **super()._state_arrays(),
            "mean": self.mean_, "scale": self.scale_, "components": self.components_, "eigen": self.eigen_,
        }

    def _restore_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        super()._restore_arrays(arrays)
        self.mean_, self.scale_, self.components_ = arrays["mean"], arrays["scale"], arrays["components"]
        if "eigen" not in arrays:
            # Saved before `score` existed: it kept only the reconstruction components.
            self.config = self.config.model_copy(update={"score": "reconstruction"})
            self.eigen_ = np.zeros(len(self.components_))
        else:
            self.eigen_ = arrays["eigen"]


# -------------------------------------------------------------- matrix profile
@cache
def _stumpy() -> ModuleType:
    """stumpy with numba's on-disk cache switched on: its JIT costs ~30 s per process otherwise."""
    import stumpy
    from stumpy import cache as stumpy_cache

    for module, func in stumpy_cache.get_njit_funcs():
        getattr(importlib.import_module(f"stumpy.{module}"), func).enable_caching()
    return stumpy


class MatrixProfileConfig(WindowedConfig):
    reference: Literal["self", "train"] = Field(
        "self",
        description="'self': distance to the nearest other subsequence of the scored series (discords); "
        "'train': distance to the nearest training subsequence",
    )


@register_detector
class MatrixProfileDetector(_WindowedDetector):
    """Matrix-profile discord distance (stumpy), averaged over non-constant channels."""

    name = "matrix_profile"
    config_class = MatrixProfileConfig
    summary = "matrix-profile discords (stumpy); strong on recurring shapes and subsequence anomalies"
    config: MatrixProfileConfig

    @property
    def min_length(self) -> int:
        return super().min_length + 1

    def _fit(self, values: np.ndarray, labels: np.ndarray | None) -> None:
        self.window_ = max(3, _resolve_window(self.config.window, values))
        self.channels_ = np.flatnonzero(np.ptp(values, axis=0) > 0)  # not std: float32 std of a constant is > 0
        if len(self.channels_) == 0:
            raise DataError("matrix_profile needs at least one non-constant channel in the training data")
        self.train_ = values[:, self.channels_] if self.config.reference == "train" else np.empty((0, 0), np.float32)

    def _score(self, values: np.ndarray) -> np.ndarray:
        stumpy = _stumpy()
        assert self.window_ is not None
        m = self.window_
        profile = np.zeros(len(values) - m + 1)
        for k, channel in enumerate(self.channels_):
            series = values[:, channel].astype(np.float64)
            with warnings.catch_warnings():
                # stumpy warns when many distances are ~0 (flat stretches); that is data, not misuse.
                warnings.filterwarnings("ignore", message="A large number of values", category=UserWarning)
                if self.config.reference == "train":
                    mp = stumpy.stump(series, m, T_B=self.train_[:, k].astype(np.float64), ignore_trivial=False)
                else:
                    mp = stumpy.stump(series, m)
            distances = mp[:, 0].astype(np.float64)
            # z-normalised distances lie in [0, 2*sqrt(m)]; a subsequence without neighbours gets the bound.
            profile += np.nan_to_num(distances, nan=2 * np.sqrt(m), posinf=2 * np.sqrt(m)) / (2 * np.sqrt(m))
        profile /= len(self.channels_)
        starts = np.arange(len(profile))
        return self._to_timestamps(profile, starts, len(values))

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {**super()._state_arrays(), "channels": self.channels_, "train": self.train_}

    def _restore_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        super()._restore_arrays(arrays)
        self.channels_, self.train_ = arrays["channels"], arrays["train"]


# ----------------------------------------------------------------- robust z
class RobustZConfig(DetectorConfig):
    window: int = Field(64, ge=3, description="trailing window of the moving median and IQR")


@register_detector
class RobustZDetector(Detector):
    """How many robust sigmas each point lies from the moving median of the points before it."""

    name = "robust_z"
    config_class = RobustZConfig
    summary = "moving median / IQR z-score of each point against its recent past; cheap, causal"
    config: RobustZConfig

    def _fit(self, values: np.ndarray, labels: np.ndarray | None) -> None:
        q25, q50, q75 = np.percentile(values.astype(np.float64), [25, 50, 75], axis=0)
        scale = (q75 - q25) / 1.349
        std = values.std(axis=0).astype(np.float64)
        scale = np.where(scale > 0, scale, np.where(std > 0, std, 1.0))
        # The moving scale may collapse to zero on flat stretches; a tenth of the training scale
        # keeps a tiny wobble there from becoming an infinite score.
        self.floor_ = 0.1 * scale + 1e-9 * (1.0 + np.abs(q50))

    def _score(self, values: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(values.astype(np.float64))
        past = frame.rolling(self.config.window, min_periods=1)
        median = past.median().shift(1)
        iqr = (past.quantile(0.75) - past.quantile(0.25)).shift(1) / 1.349
        median.iloc[0] = frame.iloc[0]
        iqr.iloc[0] = 0.0
        z = (frame - median).abs().to_numpy() / (iqr.to_numpy() + self.floor_)
        return z.max(axis=1)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"floor": self.floor_}

    def _restore_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.floor_ = arrays["floor"]
