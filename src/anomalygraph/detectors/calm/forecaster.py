"""The contract every CALM forecaster meets, the windows and split it trains on, and its registry.

CALM (arXiv 2508.21273) needs one thing from a forecaster: quantiles of the next ``H`` points
from the last ``C`` (``predict``), which :mod:`~anomalygraph.detectors.calm.iqr` turns into
bounds; and a way to adapt on the points the judge kept (``fine_tune``) whose result the
pipeline saves and swaps in. The public methods validate and convert; subclasses implement the
private hooks on float64 windows ``[N, C + H]`` (the template method of ``detectors/base.py``).

How ``fine_tune`` follows the authors' code (``AshokDevireddy/beam``,
``sdks/python/apache_beam/ml/ts/finetuning_components.py``: ``prepare_datasets``,
``NoisyTimeSeriesDataset``): the first 80 % train, the last 20 % validate, chronologically, and no
row a validation window forecasts is in any training window; the noise is Gaussian with standard deviation ``noise_level`` x the std of
the training data, drawn afresh for every window in every epoch, on context and target alike,
and never added to validation windows.
"""

from __future__ import annotations

import itertools
import json
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from anomalygraph.core.errors import ConfigError, DataError, NotFittedError, validation_problems
from anomalygraph.core.registry import Registry
from anomalygraph.detectors.deep.runtime import available_cores

SAVE_FORMAT = "anomalygraph-forecaster/1"
HEADER_FILE = "forecaster.json"
DEFAULT_QUANTILES: tuple[float, ...] = (0.2, 0.3, 0.7, 0.8)
"""The paper's levels (q20, q30, q70, q80), from which the IQR bounds are built."""

__all__ = [
    "DEFAULT_QUANTILES",
    "FineTuneReport",
    "ForecasterConfig",
    "QuantileForecaster",
    "config_error",
    "create_forecaster",
    "forecaster_names",
    "get_forecaster_class",
    "register_forecaster",
    "sliding_windows",
    "split_windows",
]


class ForecasterConfig(BaseModel):
    """Settings every forecaster shares; subclasses add their own."""

    model_config = ConfigDict(extra="forbid")

    quantiles: tuple[float, ...] = Field(DEFAULT_QUANTILES, description="quantile levels predicted, ascending")
    seed: int = Field(0, description="random seed of training and noise, so a rerun gives the same model")
    threads: int | None = Field(None, ge=1, description="torch threads (None: every core this process may use)")

    @field_validator("quantiles")
    @classmethod
    def _levels(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("at least one quantile level is needed")
        if any(not 0.0 < q < 1.0 for q in value):
            raise ValueError(f"quantile levels must lie strictly between 0 and 1, got {list(value)}")
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError(f"quantile levels must be strictly ascending, got {list(value)}")
        return tuple(float(q) for q in value)


class FineTuneReport(BaseModel):
    """What one training run did: how many windows, the losses (the model's own criterion), how long.

    Validation losses are ``None`` when the data held too few windows to validate any.
    """

    model_config = ConfigDict(extra="forbid")

    epochs: int
    train_windows: int
    val_windows: int
    noise_level: float = 0.0
    train_loss: float | None = None
    val_loss_before: float | None = None
    val_loss_after: float | None = None
    seconds: float


def config_error(name: str, exc: ValidationError) -> ConfigError:
    """One line naming every bad field, for a forecaster's config."""
    return ConfigError(f"invalid configuration for forecaster '{name}': {validation_problems(exc)}")


def finite_1d(values: Any, what: str) -> np.ndarray:
    """``values`` as a finite float64 vector, or a ``DataError`` saying what is wrong with it."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise DataError(f"{what} must be one-dimensional [T], got shape {array.shape}")
    return _finite(array, what)


def _finite(array: np.ndarray, what: str) -> np.ndarray:
    bad = ~np.isfinite(array)
    if bad.any():
        first = np.argwhere(bad)[0].tolist()
        raise DataError(f"{what} hold {int(bad.sum())} NaN or infinite values (first at index {first}); "
                        "fill or drop them before forecasting")
    return array


def sliding_windows(values: np.ndarray, length: int) -> np.ndarray:
    """Every window ``[N, length]`` of ``values`` (a copy, so callers may add noise in place)."""
    if len(values) < length:
        return np.empty((0, length))
    return np.lib.stride_tricks.sliding_window_view(values, length).copy()


def split_windows(windows: np.ndarray, fraction: float, *, horizon: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation windows: the last ``fraction`` validate.

    For consecutive windows of one series (``horizon`` given), training windows end before the first
    row any validation window forecasts, so no forecast validated was ever a training row (input or
    target); only ``horizon`` windows are lost, where dropping every shared row would lose the
    context length. Windows handed over as such (``horizon=None``) are split by position only.
    """
    n_val = int(len(windows) * fraction)
    if n_val < 1 or len(windows) < 2:
        return windows, windows[:0]
    first_val = len(windows) - n_val
    n_train = first_val - horizon + 1 if horizon is not None else first_val
    if n_train < 1:
        return windows, windows[:0]
    return windows[:n_train], windows[first_val:]


class QuantileForecaster(ABC):
    """Quantiles ``[B, H, Q]`` of the next ``H`` points of each context ``[B, C]``; fit, fine-tune, save, load.

    ``version`` is not the forecaster's business: whoever swaps a fine-tuned model into a running
    pipeline sets it, and it is saved and restored with the model.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[ForecasterConfig]] = ForecasterConfig
    summary: ClassVar[str] = ""

    def __init__(self, config: ForecasterConfig | None = None, **overrides: Any) -> None:
        try:
            if config is None:
                config = self.config_class(**overrides)
            elif overrides or not isinstance(config, self.config_class):
                config = self.config_class(**{**config.model_dump(), **overrides})
        except ValidationError as exc:
            raise config_error(self.name, exc) from exc
        self.config = config
        self.version: int = 0
        self.fitted_: bool = False
        self.warmup_report_: FineTuneReport | None = None

    # ---------------------------------------------------------------- shape
    @property
    @abstractmethod
    def context_length(self) -> int:
        """Points of context each forecast reads (``C``)."""

    @property
    @abstractmethod
    def horizon(self) -> int:
        """Points ahead each forecast covers (``H``)."""

    @property
    def quantiles(self) -> tuple[float, ...]:
        return self.config.quantiles

    @property
    def threads(self) -> int:
        return self.config.threads or available_cores()

    @property
    def min_warmup(self) -> int:
        """Fewest warm-up points ``fit`` accepts: enough for a few training and validation windows."""
        return self.context_length + self.horizon + 16

    # -------------------------------------------------------------- contract
    def fit(self, values: Any) -> Self:
        """Learn from the stream's warm-up ``[T]`` (or, for a pretrained model, calibrate on it)."""
        values = finite_1d(values, f"{self.name} warm-up values")
        if len(values) < self.min_warmup:
            raise DataError(f"forecaster '{self.name}' needs at least {self.min_warmup} warm-up points "
                            f"(context {self.context_length} + horizon {self.horizon} + a few windows), got {len(values)}")
        started = time.perf_counter()
        report = self._fit(values)
        self.fitted_ = True
        self.warmup_report_ = report.model_copy(update={"seconds": time.perf_counter() - started})
        return self

    def predict(self, contexts: Any) -> np.ndarray:
        """float64 ``[B, H, Q]`` for contexts ``[B, C]`` (a single ``[C]`` is a batch of one), ascending in Q."""
        self._require_fitted("predicting")
        array = np.asarray(contexts, dtype=np.float64)
        if array.ndim == 1:
            array = array[None]
        if array.ndim != 2 or array.shape[1] != self.context_length:
            raise DataError(f"forecaster '{self.name}' reads contexts of shape [B, {self.context_length}], "
                            f"got {np.asarray(contexts).shape}")
        _finite(array, "contexts")
        if len(array) == 0:
            return np.empty((0, self.horizon, len(self.quantiles)))
        out = np.asarray(self._predict(array), dtype=np.float64)
        expected = (len(array), self.horizon, len(self.quantiles))
        if out.shape != expected:
            raise RuntimeError(f"{self.name} returned forecasts of shape {out.shape}, expected {expected}")
        if not np.isfinite(out).all():
            raise RuntimeError(f"{self.name} returned non-finite forecasts")
        return np.sort(out, axis=-1)  # monotone in the level, whatever the model does

    def fine_tune(self, data: Any, *, epochs: int = 1, noise_level: float = 0.0,
                  validation_fraction: float = 0.2, seed: int = 0) -> FineTuneReport:
        """Adapt on new points: a series ``[T]`` or windows ``[N, C + H]``; the paper's default is one epoch.

        The model changes in place; the caller saves it and swaps it in.
        """
        self._require_fitted("fine-tuning")
        if epochs < 0:
            raise ConfigError(f"epochs must be 0 or more, got {epochs}")
        if noise_level < 0:
            raise ConfigError(f"noise_level must be 0 or more, got {noise_level}")
        if not 0 <= validation_fraction < 1:
            raise ConfigError(f"validation_fraction must lie in [0, 1), got {validation_fraction}")
        windows, consecutive = self._windows_of(data)
        train, val = split_windows(windows, validation_fraction, horizon=self.horizon if consecutive else None)
        noise_std = noise_level * float(np.std(train)) if noise_level else 0.0
        started = time.perf_counter()
        before = self._loss(val) if len(val) else None
        train_loss = self._train(train, epochs=epochs, noise_std=noise_std, seed=seed) if epochs else None
        self._after_fine_tune(train, val)
        after = self._loss(val) if len(val) else None
        return FineTuneReport(epochs=epochs, train_windows=len(train), val_windows=len(val), noise_level=noise_level,
                              train_loss=train_loss, val_loss_before=before, val_loss_after=after,
                              seconds=time.perf_counter() - started)

    # ----------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """A directory at exactly ``path`` (``forecaster.json`` and the model's files); the caller makes it atomic."""
        self._require_fitted("saving")
        directory = Path(path)
        if directory.exists() and not directory.is_dir():
            raise DataError(f"{directory}: exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        self._save_state(directory)
        header = {"format": SAVE_FORMAT, "forecaster": self.name, "version": self.version,
                  "config": self.config.model_dump(mode="json"), "state": self._header_state(),
                  "warmup": None if self.warmup_report_ is None else self.warmup_report_.model_dump()}
        (directory / HEADER_FILE).write_text(json.dumps(header, indent=2))
        return directory

    @classmethod
    def load(cls, path: str | Path) -> QuantileForecaster:
        """Any saved forecaster; called on a subclass, it also checks the saved kind."""
        directory = Path(path)
        header_path = directory / HEADER_FILE
        if not header_path.is_file():
            raise DataError(f"{directory}: not a saved forecaster (no {HEADER_FILE})")
        try:
            header = json.loads(header_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{header_path}: not valid JSON ({exc})") from exc
        if header.get("format") != SAVE_FORMAT:
            raise DataError(f"{header_path}: unknown format {header.get('format')!r}, expected {SAVE_FORMAT!r}")
        klass = get_forecaster_class(str(header.get("forecaster")))
        if cls is not QuantileForecaster and not issubclass(klass, cls):
            raise DataError(f"{directory}: holds a '{klass.name}' forecaster, not '{cls.name}'")
        try:
            config = klass.config_class(**header["config"])
        except (KeyError, TypeError, ValidationError) as exc:
            raise DataError(f"{header_path}: no valid '{klass.name}' configuration ({exc})") from exc
        forecaster = klass._restore(config, directory, header.get("state") or {})
        forecaster.version = int(header.get("version", 0))
        if header.get("warmup"):
            forecaster.warmup_report_ = FineTuneReport(**header["warmup"])
        forecaster.fitted_ = True
        return forecaster

    @classmethod
    def _restore(cls, config: ForecasterConfig, directory: Path, state: dict[str, Any]) -> Self:
        """A forecaster built from its saved config with its saved state; override when building needs the state."""
        forecaster = cls(config)
        forecaster._load_state(directory, state)
        return forecaster

    # ------------------------------------------------------- subclass hooks
    @abstractmethod
    def _fit(self, values: np.ndarray) -> FineTuneReport:
        """Warm-up on a finite series; returns what was done (``seconds`` is filled in by ``fit``)."""

    @abstractmethod
    def _predict(self, contexts: np.ndarray) -> np.ndarray:
        """``[B, C]`` -> ``[B, H, Q]`` in data units."""

    @abstractmethod
    def _loss(self, windows: np.ndarray) -> float:
        """The training criterion's mean on windows ``[N, C + H]`` (no noise, no gradient)."""

    @abstractmethod
    def _train(self, windows: np.ndarray, *, epochs: int, noise_std: float, seed: int) -> float:
        """Train on windows ``[N, C + H]`` for ``epochs``; returns the last epoch's mean training loss."""

    def _after_fine_tune(self, train: np.ndarray, val: np.ndarray) -> None:
        """Anything to redo once the weights changed (re-calibration); nothing by default."""
        del train, val

    @abstractmethod
    def _save_state(self, directory: Path) -> None: ...

    @abstractmethod
    def _load_state(self, directory: Path, state: dict[str, Any]) -> None: ...

    def _header_state(self) -> dict[str, Any]:
        """Small JSON state kept in ``forecaster.json`` (shapes, sources)."""
        return {}

    # ----------------------------------------------------------------- helpers
    def _require_fitted(self, doing: str) -> None:
        if not self.fitted_:
            raise NotFittedError(f"forecaster '{self.name}' must be fitted before {doing}")

    def _windows_of(self, data: Any) -> tuple[np.ndarray, bool]:
        """Fine-tuning data as windows ``[N, C + H]``, and whether they are consecutive windows of one series."""
        width = self.context_length + self.horizon
        array = np.asarray(data, dtype=np.float64)
        if array.ndim == 1:
            _finite(array, "fine-tuning values")
            if len(array) < width:
                raise DataError(f"forecaster '{self.name}' fine-tunes on windows of {width} points "
                                f"(context {self.context_length} + horizon {self.horizon}), got {len(array)} points")
            return sliding_windows(array, width), True
        if array.ndim == 2 and array.shape[1] == width and len(array):
            return _finite(array, "fine-tuning windows"), False
        raise DataError(f"fine-tuning data must be a series [T] or windows [N, {width}], got shape {array.shape}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(version={self.version}, {self.config!r})"


# ------------------------------------------------------------------ registry
# Imported lazily by name, so an optional heavy forecaster costs nothing until asked for.
_BUILTIN: dict[str, str] = {
    "quantile_mlp": "anomalygraph.detectors.calm.quantile_mlp:QuantileMLPForecaster",
    "ttm": "anomalygraph.detectors.calm.ttm:TTMForecaster",
    "timesfm": "anomalygraph.detectors.calm.timesfm:TimesFMForecaster",
}
_REGISTRY: Registry[type[QuantileForecaster]] = Registry("forecaster", _BUILTIN)


def register_forecaster(cls: type[QuantileForecaster]) -> type[QuantileForecaster]:
    """Class decorator adding a forecaster to the registry under ``cls.name``."""
    return _REGISTRY.register(cls)


def forecaster_names() -> list[str]:
    return _REGISTRY.names()


def get_forecaster_class(name: str) -> type[QuantileForecaster]:
    return _REGISTRY.get(name)


def create_forecaster(name: str, **config: Any) -> QuantileForecaster:
    """A registered forecaster with configuration overrides (unfitted)."""
    return get_forecaster_class(name)(**config)
