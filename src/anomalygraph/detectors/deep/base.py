"""Window backbones: one training loop and one scorer for every deep model on ``[B, L, D]`` windows.

A backbone is a :class:`WindowModel` (an ``nn.Module`` with ``encode``, ``backbone_loss`` and
``window_scores``); :class:`DeepDetector` turns it into a plain ``Detector`` (standardise with the
training rows' statistics, train with early stopping on the last training windows, score every
window and map the scores back to timestamps) and exposes the ``Encoder`` contract APE post-trains
through. So "before" and "after" post-training are measured with the same code.
"""

from __future__ import annotations

import json
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from anomalygraph.core.device import torch_device
from anomalygraph.core.errors import ConfigError
from anomalygraph.core.stats import median_scale
from anomalygraph.data.windows import window_starts, windows_to_scores
from anomalygraph.detectors.base import Detector
from anomalygraph.detectors.deep.config import DeepConfig
from anomalygraph.detectors.deep.runtime import (
    BestState,
    available_cores,
    chronological_split,
    gather_windows,
    load_weights,
    rng_devices,
    save_weights,
    torch_threads,
)

WEIGHTS_FILE = "model.pt"
TRAINING_FILE = "training.json"
LATENT_FILE = "latent.npz"


class WindowModel(nn.Module):
    """What a backbone implements; inputs are standardised windows ``[B, L, D]``."""

    def encode(self, windows: Tensor) -> Tensor:
        """``[B, H]`` embeddings: the representation APE's contrastive loss reshapes."""
        raise NotImplementedError

    def backbone_loss(self, windows: Tensor) -> Tensor:
        """The backbone's own training loss on a batch (a scalar), as its paper trains it."""
        raise NotImplementedError

    def window_scores(self, windows: Tensor) -> Tensor:
        """Anomaly scores, higher = more anomalous: ``[B, L]`` per step, or ``[B]`` for each window's last step."""
        raise NotImplementedError

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters APE's ``adjust='encoder'`` trains; a backbone overrides this to leave its decoder out."""
        return self.parameters()

    def start_epoch(self, epoch: int) -> None:
        """Called before each training epoch (0-based), for losses that change with it (TranAD's)."""
        del epoch


class EpochRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epoch: int
    train_loss: float
    val_loss: float | None
    seconds: float


class TrainingReport(BaseModel):
    """How a fit went; saved beside the weights."""

    model_config = ConfigDict(extra="forbid")

    epochs_run: int
    best_epoch: int
    stopped_early: bool
    train_windows: int
    val_windows: int
    device: str
    threads: int
    seconds: float
    history: list[EpochRecord]


class DeepDetector(Detector):
    """A ``Detector`` (and APE ``Encoder``) around a :class:`WindowModel`; subclasses only build the model."""

    config_class: ClassVar[type[DeepConfig]] = DeepConfig
    heavy = True
    config: DeepConfig

    def __init__(self, config: DeepConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.model_: WindowModel | None = None
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.training_: TrainingReport | None = None
        self.reference_: Tensor | None = None  # [N, H] unit-norm embeddings of training windows (latent scores)
        self.calibration_: np.ndarray | None = None  # [median, scale] of the backbone and latent scores, held-out rows
        self.on_epoch: Callable[[EpochRecord], None] | None = None
        """Called after every training epoch (a progress bar's hook); not saved."""

    @abstractmethod
    def build_model(self, n_channels: int) -> WindowModel:
        """A fresh, untrained backbone for ``n_channels`` channels and this configuration."""

    @property
    def min_length(self) -> int:
        return self.config.window

    @property
    def device(self) -> torch.device:
        return torch_device(self.name, self.config.device)

    def threads(self) -> int:
        return self.config.threads or available_cores()

    # ------------------------------------------------------------- Encoder
    def encode(self, windows: Tensor) -> Tensor:
        return self._model().encode(windows)

    def backbone_loss(self, windows: Tensor) -> Tensor:
        return self._model().backbone_loss(windows)

    def window_scores(self, windows: Tensor) -> Tensor:
        return self._model().window_scores(windows)

    def standardise(self, values: np.ndarray) -> Tensor:
        """Values ``[T, D]`` (or windows ``[..., D]``) in the training rows' units, as a float32 tensor on the device."""
        assert self.mean_ is not None and self.scale_ is not None
        z = (np.asarray(values, dtype=np.float32) - self.mean_) / self.scale_
        return torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)).to(self.device)

    def train_starts(self, n_rows: int) -> np.ndarray:
        """Starts of the training windows of ``n_rows`` rows, evenly thinned to ``max_train_windows``."""
        starts = window_starts(n_rows, self.config.window, self.config.train_stride)
        limit = self.config.max_train_windows
        if limit is not None and len(starts) > limit:
            starts = starts[np.linspace(0, len(starts) - 1, limit).round().astype(int)]
        return starts

    # ------------------------------------------------------------ contract
    def _fit(self, values: np.ndarray, labels: np.ndarray | None) -> None:
        del labels  # unsupervised, as the backbones' papers train them
        values64 = values.astype(np.float64)
        std = values64.std(axis=0)
        self.mean_ = values64.mean(axis=0).astype(np.float32)
        self.scale_ = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        device = self.device
        with torch_threads(self.threads()), torch.random.fork_rng(devices=rng_devices(device)):
            torch.manual_seed(self.config.seed)
            self.model_ = self.build_model(values.shape[1]).to(device)
            self.training_ = self._train(self.standardise(values))
        if self.config.score_with != "backbone":
            self.calibrate(values)

    def _train(self, series: Tensor) -> TrainingReport:
        config, model = self.config, self._model()
        started = time.perf_counter()
        starts = self.train_starts(len(series))
        train_np, val_np = chronological_split(starts, config.validation_fraction, config.window)
        train = torch.as_tensor(train_np, device=series.device)
        val = torch.as_tensor(val_np, device=series.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        generator = torch.Generator().manual_seed(config.seed)
        keeper, history, stopped = BestState(model, config.patience), [], False
        for epoch in range(config.epochs):
            t0 = time.perf_counter()
            model.start_epoch(epoch)
            model.train()
            order = train[torch.randperm(len(train), generator=generator).to(series.device)]
            total = 0.0
            for batch in order.split(config.batch_size):
                optimizer.zero_grad(set_to_none=True)
                loss = model.backbone_loss(gather_windows(series, batch, config.window))
                if not torch.isfinite(loss):
                    raise ConfigError(f"{self.name}: training diverged in epoch {epoch} (loss {float(loss)}); "
                                      f"lower lr (now {config.lr:g})")
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            val_loss = self.mean_loss(series, val) if len(val) else None
            history.append(EpochRecord(epoch=epoch, train_loss=total / len(train), val_loss=val_loss,
                                       seconds=time.perf_counter() - t0))
            if self.on_epoch is not None:
                self.on_epoch(history[-1])
            if val_loss is not None and keeper.update(epoch, val_loss):
                stopped = epoch < config.epochs - 1
                break
        if len(val):
            keeper.restore()
        return TrainingReport(
            epochs_run=len(history), best_epoch=keeper.epoch if len(val) else len(history) - 1,
            stopped_early=stopped, train_windows=len(train), val_windows=len(val), device=str(series.device),
            threads=torch.get_num_threads(), seconds=time.perf_counter() - started, history=history,
        )

    @torch.no_grad()
    def mean_loss(self, series: Tensor, starts: Tensor) -> float:
        """The backbone loss over the windows at ``starts`` (eval mode), weighted by batch size."""
        model = self._model()
        was_training = model.training
        model.eval()
        total = 0.0
        for batch in starts.split(self.config.batch_size):
            total += float(model.backbone_loss(gather_windows(series, batch, self.config.window))) * len(batch)
        model.train(was_training)
        return total / len(starts)

    def _score(self, values: np.ndarray) -> np.ndarray:
        with torch_threads(self.threads()):
            series = self.standardise(values)
            if self.config.score_with == "backbone":
                return self.score_standardised(series)
            if self.reference_ is None or self.calibration_ is None:
                raise ConfigError(f"{self.name}: score_with={self.config.score_with!r} needs calibrate(training values) "
                                  "after fitting or post-training")
            latent = self.latent_scores(series)
            if self.config.score_with == "latent":
                return latent
            (b_med, b_scale), (l_med, l_scale) = self.calibration_
            return (self.score_standardised(series) - b_med) / b_scale + (latent - l_med) / l_scale

    def calibrate(self, train_values: np.ndarray) -> None:
        """Latent reference and score statistics from the training rows, for ``score_with`` latent/fused.

        The reference is the embeddings of windows in the first training rows (those the fit trained
        on); the medians and scales come from the last ``validation_fraction`` rows, which the
        reference does not contain, so a window is never compared with itself. Call again after the
        weights change (APE post-training does).
        """
        window = self.config.window
        cut = round(len(train_values) * (1 - self.config.validation_fraction))
        if cut < window + 1 or len(train_values) - cut < window:
            cut = len(train_values)  # too short to hold rows out: statistics from the reference rows themselves
        with torch_threads(self.threads()):
            series = self.standardise(train_values)
            starts = window_starts(cut, window, self.config.train_stride)
            if len(starts) > self.config.latent_reference:
                starts = starts[np.linspace(0, len(starts) - 1, self.config.latent_reference).round().astype(int)]
            self.reference_ = self._embeddings(series, starts)
            # the held-out rows with the window before them, so their first rows get whole windows
            lead = window - 1 if cut < len(train_values) else 0
            held = series[cut - lead:] if lead else series
            backbone = self.score_standardised(held)[lead:]
            latent = self.latent_scores(held)[lead:]
        self.calibration_ = np.array([median_scale(backbone), median_scale(latent)], dtype=np.float64)

    @torch.no_grad()
    def _embeddings(self, series: Tensor, starts: np.ndarray) -> Tensor:
        model, window = self._model(), self.config.window
        model.eval()
        index = torch.as_tensor(starts, device=series.device)
        return torch.cat([F.normalize(model.encode(gather_windows(series, b, window)).float(), dim=1)
                          for b in index.split(max(self.config.batch_size, 256))])

    @torch.no_grad()
    def latent_scores(self, series: Tensor) -> np.ndarray:
        """Per timestamp: 1 - mean cosine similarity of each window's embedding to its k nearest reference
        embeddings, spread over the window's steps (a window's novelty belongs to every step in it)."""
        assert self.reference_ is not None
        window = self.config.window
        starts = window_starts(len(series), window, self.config.score_stride)
        k = min(self.config.latent_neighbours, len(self.reference_))
        parts = []
        for chunk in np.array_split(starts, max(1, len(starts) // 1024)):
            sims = self._embeddings(series, chunk) @ self.reference_.T
            parts.append((1 - sims.topk(k, dim=1).values.mean(1)).cpu().numpy())
        per_window = np.concatenate(parts).astype(np.float64)
        return windows_to_scores(np.repeat(per_window[:, None], window, axis=1), starts, window, len(series),
                                 self.config.reduce)

    @torch.no_grad()
    def score_standardised(self, series: Tensor) -> np.ndarray:
        """Scores per timestamp of a standardised ``[T, D]`` tensor (every window, mapped back)."""
        model, window = self._model(), self.config.window
        model.eval()
        starts_np = window_starts(len(series), window, self.config.score_stride)
        starts = torch.as_tensor(starts_np, device=series.device)
        parts = [model.window_scores(gather_windows(series, b, window)).float().cpu()
                 for b in starts.split(max(self.config.batch_size, 256))]
        scores = torch.cat(parts).numpy().astype(np.float64)
        if scores.ndim == 1:
            # one score for each window's last step; steps between scored ones are interpolated and the
            # first L-1 steps (no window ends there) take the first window's score
            return np.interp(np.arange(len(series)), starts_np + window - 1, scores)
        return windows_to_scores(scores, starts_np, window, len(series), self.config.reduce)

    # --------------------------------------------------------- persistence
    def _save_state(self, directory: Path) -> None:
        assert self.mean_ is not None and self.scale_ is not None
        save_weights(directory / WEIGHTS_FILE, self._model(), self.mean_, self.scale_)
        if self.training_ is not None:
            (directory / TRAINING_FILE).write_text(self.training_.model_dump_json(indent=2))
        if self.reference_ is not None and self.calibration_ is not None:
            np.savez(directory / LATENT_FILE, reference=self.reference_.cpu().numpy(), calibration=self.calibration_)

    def _load_state(self, directory: Path) -> None:
        assert self.n_features_ is not None
        model = self.build_model(self.n_features_)
        self.mean_, self.scale_ = load_weights(directory / WEIGHTS_FILE, model, f"{self.name}'s weights")
        self.model_ = model.to(self.device)
        report = directory / TRAINING_FILE
        if report.is_file():
            self.training_ = TrainingReport.model_validate(json.loads(report.read_text()))
        latent = directory / LATENT_FILE
        if latent.is_file():
            with np.load(latent, allow_pickle=False) as saved:
                self.reference_ = torch.from_numpy(saved["reference"]).to(self.device)
                self.calibration_ = saved["calibration"]

    def _model(self) -> WindowModel:
        if self.model_ is None:
            raise RuntimeError(f"{self.name}: no model yet (fit or load first)")
        return self.model_
