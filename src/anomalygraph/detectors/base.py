"""The detector contract and the registry every tool, CLI command and benchmark goes through.

Public methods validate and convert; subclasses implement the private ``_fit`` / ``_score``
on plain float32 ``[T, D]`` arrays (Merlion's template method). ``threshold_`` is always
computed from *training* scores, never from anything that may carry test labels.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anomalygraph.core.errors import ConfigError, DataError, NotFittedError, validation_problems
from anomalygraph.core.registry import Registry
from anomalygraph.core.thresholds import Threshold, percentile_threshold
from anomalygraph.data.series import TimeSeries

SAVE_FORMAT = "anomalygraph-detector/1"


@runtime_checkable
class Encoder(Protocol):
    """A backbone F2A and APE adapt: one embedding per window and the backbone's own training loss.

    Torch-level on purpose (tensors in, tensors out), so a post-trainer can add its loss to
    ``backbone_loss`` and backpropagate through ``encode``.
    """

    def encode(self, windows: Any) -> Any:
        """``[B, L, D]`` windows -> ``[B, H]`` embeddings."""
        ...

    def backbone_loss(self, windows: Any) -> Any:
        """The backbone's own reconstruction or forecast loss on a batch of windows (a scalar tensor)."""
        ...


class DetectorConfig(BaseModel):
    """Settings shared by every detector; subclasses add their own fields."""

    model_config = ConfigDict(extra="forbid")

    contamination: float = Field(
        0.01, gt=0, lt=0.5, description="expected anomaly ratio; the threshold is this upper quantile of train scores"
    )
    seed: int = Field(0, description="random seed, so repeated runs give the same scores")


class Detector(ABC):
    """``fit(train) -> self``, ``score(series) -> float64[T]``, ``predict``, ``save``, ``load``."""

    name: ClassVar[str]
    config_class: ClassVar[type[DetectorConfig]] = DetectorConfig
    summary: ClassVar[str] = ""
    heavy: ClassVar[bool] = False
    """Deep models that are slow to train without a GPU; agents only pick them when one is present."""
    caveat: ClassVar[str] = ""
    """Why its verdict needs corroboration (a weak benchmark record); reports rank what only it flags last."""

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any) -> None:
        try:
            if config is None:
                config = self.config_class(**overrides)
            elif overrides:
                config = self.config_class(**{**config.model_dump(), **overrides})
            elif not isinstance(config, self.config_class):
                config = self.config_class(**config.model_dump())
        except ValidationError as exc:
            raise ConfigError(_config_message(self.name, exc)) from exc
        self.config = config
        self.n_features_: int | None = None
        self.decision_scores_: np.ndarray | None = None
        self.threshold_: Threshold | None = None
        self.fit_seconds_: float | None = None

    # ----------------------------------------------------------------- contract
    @property
    def min_length(self) -> int:
        """Shortest series the detector can score (its window, for windowed detectors)."""
        return 1

    @property
    def is_fitted(self) -> bool:
        return self.n_features_ is not None

    def fit(self, train: TimeSeries | np.ndarray, *, labels: np.ndarray | None = None) -> Self:
        """Learn normal behaviour from ``train``.

        ``labels`` (0/1) mark known anomalies in the training rows; they are only used when
        passed explicitly, never taken from the series, so test labels cannot leak into a fit.
        """
        values, name = self._as_values(train, fitting=True)
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (len(values),):
                raise DataError(f"{len(labels)} labels for {len(values)} training rows (label length mismatch)")
        started = time.perf_counter()
        self.n_features_ = values.shape[1]
        self._fit(values, labels)
        self.decision_scores_ = self._checked(self._score(values), len(values), name)
        self.threshold_ = percentile_threshold(self.decision_scores_, self.config.contamination)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def score(self, series: TimeSeries | np.ndarray) -> np.ndarray:
        """One finite float64 score per timestamp, aligned with the input; higher is more anomalous."""
        if not self.is_fitted:
            raise NotFittedError(f"detector '{self.name}' must be fitted before scoring")
        values, name = self._as_values(series, fitting=False)
        return self._checked(self._score(values), len(values), name)

    def predict(self, series: TimeSeries | np.ndarray) -> np.ndarray:
        """0/1 per timestamp: score above the threshold learnt from training scores."""
        scores = self.score(series)
        assert self.threshold_ is not None
        return (scores > self.threshold_.value).astype(np.uint8)

    # ----------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """A directory with ``detector.json`` (config, threshold) and the detector's state files."""
        if not self.is_fitted:
            raise NotFittedError(f"detector '{self.name}' must be fitted before saving")
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        from anomalygraph import __version__

        header = {
            "format": SAVE_FORMAT,
            "detector": self.name,
            "anomalygraph_version": __version__,
            "config": self.config.model_dump(mode="json"),
            "n_features": self.n_features_,
            "threshold": None if self.threshold_ is None else self.threshold_.model_dump(mode="json"),
            "fit_seconds": self.fit_seconds_,
        }
        np.save(directory / "train_scores.npy", self.decision_scores_, allow_pickle=False)
        self._save_state(directory)
        (directory / "detector.json").write_text(json.dumps(header, indent=2))
        return directory

    @classmethod
    def load(cls, path: str | Path) -> Detector:
        """Restore any saved detector; called on a subclass, it also checks the saved kind."""
        directory = Path(path)
        header_path = directory / "detector.json"
        if not header_path.is_file():
            raise DataError(f"{directory}: not a saved detector (no detector.json)")
        try:
            header = json.loads(header_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{header_path}: not valid JSON ({exc})") from exc
        if header.get("format") != SAVE_FORMAT:
            raise DataError(f"{header_path}: unknown format {header.get('format')!r}, expected {SAVE_FORMAT!r}")
        klass = get_detector_class(header["detector"])
        if cls is not Detector and not issubclass(klass, cls):
            raise DataError(f"{directory}: holds a '{klass.name}' detector, not '{cls.name}'")
        detector = klass(klass.config_class(**header["config"]))
        detector.n_features_ = int(header["n_features"])
        detector.fit_seconds_ = header.get("fit_seconds")
        if header.get("threshold") is not None:
            detector.threshold_ = Threshold(**header["threshold"])
        detector.decision_scores_ = np.load(directory / "train_scores.npy", allow_pickle=False)
        detector._load_state(directory)
        return detector

    # ------------------------------------------------------- subclass hooks
    @abstractmethod
    def _fit(self, values: np.ndarray, labels: np.ndarray | None) -> None: ...

    @abstractmethod
    def _score(self, values: np.ndarray) -> np.ndarray: ...

    def _save_state(self, directory: Path) -> None:
        arrays = self._state_arrays()
        if arrays:
            np.savez(directory / "state.npz", allow_pickle=False, **arrays)

    def _load_state(self, directory: Path) -> None:
        state_path = directory / "state.npz"
        if state_path.is_file():
            with np.load(state_path, allow_pickle=False) as data:
                self._restore_arrays({k: data[k] for k in data.files})

    def _state_arrays(self) -> dict[str, np.ndarray]:
        """Fitted state as named arrays; the default persistence writes them to ``state.npz``."""
        return {}

    def _restore_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        del arrays

    # ----------------------------------------------------------------- helpers
    def _as_values(self, data: TimeSeries | np.ndarray, *, fitting: bool) -> tuple[np.ndarray, str]:
        if isinstance(data, TimeSeries):
            values, name = data.values, data.name
        else:
            values, name = TimeSeries(values=data).values, "array"
        if not fitting and values.shape[1] != self.n_features_:
            raise DataError(
                f"series '{name}' has {values.shape[1]} channels, but '{self.name}' was fitted on {self.n_features_}"
            )
        if len(values) < self.min_length:
            raise DataError(
                f"series '{name}' has {len(values)} timestamps, shorter than {self.name}'s window of {self.min_length}"
            )
        return values, name

    def _checked(self, scores: np.ndarray, length: int, name: str) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64).ravel()
        if scores.shape != (length,):
            raise RuntimeError(f"{self.name} returned {scores.shape[0]} scores for {length} timestamps of '{name}'")
        if not np.isfinite(scores).all():
            raise RuntimeError(f"{self.name} returned non-finite scores for '{name}'")
        return scores

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump().items())
        return f"{type(self).__name__}({fields})"


def _config_message(name: str, exc: ValidationError) -> str:
    return f"invalid configuration for detector '{name}': {validation_problems(exc)}"


# ------------------------------------------------------------------ registry
# Built-in detectors are imported lazily by name, so an optional heavy one costs nothing until used.
_BUILTIN: dict[str, str] = {
    "iforest": "anomalygraph.detectors.baselines:IForestDetector",
    "matrix_profile": "anomalygraph.detectors.baselines:MatrixProfileDetector",
    "sub_pca": "anomalygraph.detectors.baselines:SubPCADetector",
    "robust_z": "anomalygraph.detectors.baselines:RobustZDetector",
    "poly": "anomalygraph.detectors.poly:PolyDetector",
    "kshape": "anomalygraph.detectors.kshape:KShapeDetector",
    "series2graph": "anomalygraph.detectors.series2graph:Series2GraphDetector",
    "anomaly_transformer": "anomalygraph.detectors.anomaly_transformer:AnomalyTransformerDetector",
    "f2a": "anomalygraph.detectors.f2a:F2ADetector",
    "tspulse": "anomalygraph.detectors.f2a.tspulse:TSPulseDetector",
    "tranad": "anomalygraph.detectors.deep.tranad:TranADDetector",
    "donut": "anomalygraph.detectors.deep.donut:DonutDetector",
    "timesnet": "anomalygraph.detectors.deep.timesnet:TimesNetDetector",
}
_REGISTRY: Registry[type[Detector]] = Registry("detector", _BUILTIN)


def register_detector(cls: type[Detector]) -> type[Detector]:
    """Class decorator adding a detector to the registry under ``cls.name``."""
    return _REGISTRY.register(cls)


def detector_names() -> list[str]:
    return _REGISTRY.names()


def affordable_detectors(gpu: bool) -> list[str]:
    """Registered detectors worth running on this hardware: ``heavy`` ones only with a GPU."""
    return [name for name in detector_names() if gpu or not get_detector_class(name).heavy]


def get_detector_class(name: str) -> type[Detector]:
    return _REGISTRY.get(name)


def create_detector(name: str, **config: Any) -> Detector:
    """Instantiate a registered detector with configuration overrides."""
    return get_detector_class(name)(**config)
