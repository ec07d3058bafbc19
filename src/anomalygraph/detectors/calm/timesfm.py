"""``timesfm``: CALM's own forecaster, usable only where ``timesfm`` and its weights are already on disk.

Nothing is downloaded: the checkpoint is a local path from the config or a file already in the
Hugging Face cache (found with ``try_to_load_from_cache`` under ``HF_HUB_OFFLINE=1``). Missing
either, creating it raises a ``ConfigError`` naming what is missing and the forecasters that work
instead. Quantiles come from TimesFM's experimental quantile head (levels 0.1 ... 0.9, columns 1-9
after the mean, as the authors index them), interpolated to the configured levels. Fine-tuning
TimesFM is not implemented here: use ``ttm`` or ``quantile_mlp`` for the adaptation loop.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from anomalygraph.core.errors import ConfigError
from anomalygraph.detectors.calm.forecaster import (
    FineTuneReport,
    ForecasterConfig,
    QuantileForecaster,
    register_forecaster,
)
from anomalygraph.detectors.calm.ttm import ttm_unavailable

CHECKPOINT_FILE = "torch_model.ckpt"
TIMESFM_LEVELS = np.linspace(0.1, 0.9, 9)

__all__ = ["TimesFMConfig", "TimesFMForecaster", "timesfm_checkpoint"]


class TimesFMConfig(ForecasterConfig):
    """Where the weights are and the shape TimesFM 1.0 runs with (the authors' defaults)."""

    checkpoint: Path | None = Field(None, description=f"local {CHECKPOINT_FILE} (or its folder); None: the HF cache")
    repo_id: str = Field("google/timesfm-1.0-200m-pytorch", description="the Hugging Face repository looked up in the cache")
    context_length: int = Field(512, ge=32, le=512, multiple_of=32)
    horizon: int = Field(128, ge=1, le=128)


@contextmanager
def _offline() -> Iterator[None]:
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous


def timesfm_checkpoint(config: TimesFMConfig) -> tuple[Path | None, str]:
    """The local checkpoint file, or None and where it was looked for."""
    if config.checkpoint is not None:
        path = Path(config.checkpoint)
        path = path / CHECKPOINT_FILE if path.is_dir() else path
        return (path if path.is_file() else None), str(path)
    try:
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        return None, "the Hugging Face cache (huggingface_hub is not installed)"
    with _offline():
        found = try_to_load_from_cache(config.repo_id, CHECKPOINT_FILE)
    where = f"the Hugging Face cache {HF_HUB_CACHE} ({config.repo_id}/{CHECKPOINT_FILE})"
    return (Path(found) if isinstance(found, str) else None), where


def _working_instead() -> str:
    return "'quantile_mlp' (trains on the warm-up)" + ("" if ttm_unavailable() else " or 'ttm' (the shipped TTM backbone)")


@register_forecaster
class TimesFMForecaster(QuantileForecaster):
    """TimesFM 1.0 zero-shot quantiles; no fine-tuning."""

    name = "timesfm"
    config_class = TimesFMConfig
    summary = "Google's TimesFM (the paper's forecaster), only with the package and weights already local"
    config: TimesFMConfig

    def __init__(self, config: TimesFMConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        checkpoint, where = timesfm_checkpoint(self.config)
        missing = [] if importlib.util.find_spec("timesfm") else ["the 'timesfm' package is not installed"]
        if checkpoint is None:
            missing.append(f"no weights at {where}")
        if missing:
            raise ConfigError(f"forecaster 'timesfm' is unavailable: {'; '.join(missing)}; nothing is downloaded. "
                              f"Use {_working_instead()} instead.")
        import timesfm  # optional: present, by the check above

        c = self.config
        with _offline():
            self.model_ = timesfm.TimesFm(
                hparams=timesfm.TimesFmHparams(backend="cpu", context_len=c.context_length, horizon_len=c.horizon),
                checkpoint=timesfm.TimesFmCheckpoint(path=str(checkpoint)))

    @property
    def context_length(self) -> int:
        return self.config.context_length

    @property
    def horizon(self) -> int:
        return self.config.horizon

    def _fit(self, values: np.ndarray) -> FineTuneReport:
        del values  # zero-shot: nothing to learn from the warm-up
        return FineTuneReport(epochs=0, train_windows=0, val_windows=0, seconds=0.0)

    def _predict(self, contexts: np.ndarray) -> np.ndarray:
        _, quantiles = self.model_.forecast(list(contexts), freq=[0] * len(contexts))
        grid = np.asarray(quantiles)[:, : self.horizon, 1:10]  # column 0 is the mean
        return np.stack([np.apply_along_axis(lambda row, q=q: np.interp(q, TIMESFM_LEVELS, np.sort(row)), -1, grid)
                         for q in self.quantiles], axis=-1)

    def _loss(self, windows: np.ndarray) -> float:
        forecast = self._predict(windows[:, : self.context_length])
        return float(np.mean((np.median(forecast, axis=-1) - windows[:, self.context_length:]) ** 2))

    def _train(self, windows: np.ndarray, *, epochs: int, noise_std: float, seed: int) -> float:
        raise ConfigError(f"fine-tuning 'timesfm' is not implemented here; use {_working_instead()} for adaptation")

    def _save_state(self, directory: Path) -> None:
        del directory  # the weights stay where they were found; forecaster.json holds the config naming them

    def _load_state(self, directory: Path, state: dict[str, Any]) -> None:
        del directory, state
