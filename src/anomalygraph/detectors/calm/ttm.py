"""``ttm``: the TTM backbone shipped with F2A as a zero-shot point forecaster with conformal quantiles.

Why: it is the one pretrained time-series model this install carries (``detectors/f2a/weights``),
so it stands in for CALM's TimesFM where TimesFM's weights are absent. The point forecast is the
backbone's own (encoder, decoder, forecast head and F2A's learnt scaling; no retrieval, no anomaly
head). TTM scales every window by its own mean and std, so the quantiles are split-conformal on
that scale: ``fit`` measures, per step ahead, the empirical quantiles of the warm-up's residuals in
each window's std units (the model never trained on the warm-up, so they are held out), and a
forecast is ``point + residual_quantile x window std``, as F2A's ``forecast`` does.

``fine_tune`` trains the forecast head (``train="head"``: head and scaling), the decoder too
(``"decoder"``, what F2A trains) or everything (``"all"``) with MSE in the scaled units, then
re-measures the residual quantiles on the validation windows (on all the fine-tuning windows when
fewer than ``min_calibration`` validate, so a small batch still gets a calibration).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import torch
from pydantic import Field
from torch import nn

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.detectors.calm.forecaster import (
    FineTuneReport,
    ForecasterConfig,
    QuantileForecaster,
    register_forecaster,
    sliding_windows,
)
from anomalygraph.detectors.deep.runtime import load_weights, save_weights, torch_threads
from anomalygraph.detectors.f2a.backbone import EXTRA_HINT, TTMBackbone
from anomalygraph.detectors.f2a.config import BackboneConfig
from anomalygraph.detectors.f2a.detector import NET_FILE, SHAPE_FIELDS, SHIPPED, saved_shape
from anomalygraph.detectors.f2a.model import ScalingLayer

WEIGHTS_FILE = "weights.pt"
CALIBRATION_FILE = "calibration.npy"

__all__ = ["TTMForecaster", "TTMForecasterConfig", "TTMPoint", "ttm_unavailable"]


def ttm_unavailable(weights: Path | None = None) -> str | None:
    """Why the ``ttm`` forecaster cannot run here (the missing package or weights file), or None."""
    if importlib.util.find_spec("tsfm_public") is None:
        return EXTRA_HINT
    folder = Path(weights) if weights is not None else SHIPPED
    if not (folder / NET_FILE).is_file() and not (folder / "config.json").is_file():
        return f"no TTM weights at {folder / NET_FILE} (nor a granite-tsfm config.json there)"
    return None


class TTMForecasterConfig(ForecasterConfig):
    """Which weights, how far ahead, what fine-tuning trains."""

    weights: Path | None = Field(None, description="F2A or granite-tsfm TTM weights folder (None: the shipped F2A weights)")
    horizon: int | None = Field(None, ge=1, description="points ahead (at most the backbone's; None: all of them)")
    train: Literal["head", "decoder", "all"] = Field("head", description="what fine_tune trains")
    lr: float = Field(1e-4, gt=0, le=1, description="Adam learning rate of fine_tune (the authors' TimesFM value)")
    weight_decay: float = Field(0.01, ge=0, description="Adam weight decay (the authors' value)")
    batch_size: int = Field(32, ge=1)
    min_calibration: int = Field(20, ge=1, description="fewest validation windows to calibrate the quantiles on alone")


class TTMPoint(nn.Module):
    """The backbone's point forecast: ``[B, L, 1]`` -> scaled forecast ``[B, h, 1]``, loc, scale."""

    def __init__(self, backbone: TTMBackbone, scaling: ScalingLayer) -> None:
        super().__init__()
        self.backbone, self.scaling = backbone, scaling

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        forecast, loc, scale = self.backbone.forecast_scaled(x)
        return self.scaling(forecast), loc, scale

    def trainable(self, part: str) -> list[nn.Parameter]:
        ttm = self.backbone.ttm
        if part == "all":
            return list(self.parameters())
        chosen = [*ttm.head.parameters(), *self.scaling.parameters()]
        return chosen + list(ttm.decoder.parameters()) if part == "decoder" else chosen


def _load_shipped(folder: Path) -> tuple[TTMPoint, dict[str, Any]]:
    """The backbone and scaling from an F2A weights folder, or a plain TTM folder; ConfigError naming the file."""
    net_file = folder / NET_FILE
    try:
        if net_file.is_file():
            shape = saved_shape(folder)
            point = TTMPoint(TTMBackbone.build(BackboneConfig(**shape)), ScalingLayer(int(shape["horizon"])))
            state = torch.load(net_file, map_location="cpu", weights_only=True)
            parts = {k: v for k, v in state.items() if k.startswith(("backbone.", "scaling."))}
            point.load_state_dict(parts)
            return point, shape
        backbone = TTMBackbone.from_directory(folder)
    except ConfigError:  # the [f2a] extra is missing: its own message says so
        raise
    except Exception as exc:  # torch.load and load_state_dict raise several types for corrupt or foreign files
        raise ConfigError(f"ttm forecaster: cannot load TTM weights {net_file if net_file.is_file() else folder} "
                          f"({exc})") from exc
    cfg = backbone.ttm.config
    shape = {"context_length": backbone.context_length, "horizon": backbone.horizon,
             **{k: getattr(cfg, k) for k in SHAPE_FIELDS[2:]}}
    return TTMPoint(backbone, ScalingLayer(backbone.horizon)), shape


@register_forecaster
class TTMForecaster(QuantileForecaster):
    """Zero-shot TTM point forecast plus split-conformal residual quantiles."""

    name = "ttm"
    config_class = TTMForecasterConfig
    summary = "the TTM backbone shipped with F2A, zero-shot, with split-conformal quantiles from the warm-up"
    config: TTMForecasterConfig

    def __init__(self, config: TTMForecasterConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        folder = Path(self.config.weights) if self.config.weights is not None else SHIPPED
        problem = ttm_unavailable(folder)
        if problem is not None:
            raise ConfigError(f"ttm forecaster unavailable: {problem}")
        self.source_ = str(folder)
        self.point_, self.shape_ = _load_shipped(folder)
        self._check_horizon()
        self.residuals_: np.ndarray | None = None  # [H, Q] in window-std units

    @classmethod
    def _restore(cls, config: ForecasterConfig, directory: Path, state: dict[str, Any]) -> Self:
        """Rebuild from the saved shape alone, so a saved model loads without the weights it started from."""
        forecaster = cls.__new__(cls)
        QuantileForecaster.__init__(forecaster, config)
        try:
            shape = BackboneConfig(**state["shape"]).model_dump(include=set(SHAPE_FIELDS))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{directory}: no readable backbone shape in its forecaster.json ({exc})") from exc
        forecaster.shape_, forecaster.source_ = shape, str(state.get("source", ""))
        forecaster.point_ = TTMPoint(TTMBackbone.build(BackboneConfig(**shape)), ScalingLayer(int(shape["horizon"])))
        forecaster._check_horizon()
        forecaster._load_state(directory, state)
        return forecaster

    def _check_horizon(self) -> None:
        if self.config.horizon is not None and self.config.horizon > int(self.shape_["horizon"]):
            raise ConfigError(f"ttm forecaster: horizon {self.config.horizon} exceeds the backbone's "
                              f"{self.shape_['horizon']} ({self.source_})")
        self.point_.eval()

    @property
    def context_length(self) -> int:
        return int(self.shape_["context_length"])

    @property
    def horizon(self) -> int:
        return self.config.horizon or int(self.shape_["horizon"])

    @property
    def min_warmup(self) -> int:
        return self.context_length + self.horizon + 31  # at least 32 residuals per step

    # ------------------------------------------------------------ forecasting
    def _scaled(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scaled point forecasts ``[B, H]`` and each window's loc and scale ``[B, 1]``, in batches."""
        out = []
        with torch_threads(self.threads), torch.no_grad():
            self.point_.eval()
            for i in range(0, len(contexts), 256):
                x = torch.tensor(contexts[i:i + 256, :, None], dtype=torch.float32)
                forecast, loc, scale = self.point_(x)
                out.append((forecast[:, : self.horizon, 0].double().numpy(), loc[:, :, 0].double().numpy(),
                            scale[:, :, 0].double().numpy()))
        return tuple(np.concatenate(parts) for parts in zip(*out, strict=True))  # type: ignore[return-value]

    def _predict(self, contexts: np.ndarray) -> np.ndarray:
        assert self.residuals_ is not None
        forecast, loc, scale = self._scaled(contexts)
        return loc[:, :, None] + scale[:, :, None] * (forecast[:, :, None] + self.residuals_[None])

    def _calibrate(self, windows: np.ndarray) -> None:
        """Per step ahead, the quantiles of the residuals ``(y - loc) / scale - forecast`` over ``windows``."""
        forecast, loc, scale = self._scaled(windows[:, : self.context_length])
        residuals = (windows[:, self.context_length:] - loc) / scale - forecast
        self.residuals_ = np.quantile(residuals, self.quantiles, axis=0).T  # [H, Q]

    def _fit(self, values: np.ndarray) -> FineTuneReport:
        windows = sliding_windows(values, self.context_length + self.horizon)
        self._calibrate(windows)
        # nothing trains: every warm-up window is held out, and calibrates the quantiles
        return FineTuneReport(epochs=0, train_windows=0, val_windows=len(windows), seconds=0.0)

    # ------------------------------------------------------------- training
    def _batch_loss(self, batch: np.ndarray) -> torch.Tensor:
        x = torch.tensor(batch[:, : self.context_length, None], dtype=torch.float32)
        y = torch.tensor(batch[:, self.context_length:, None], dtype=torch.float32)
        forecast, loc, scale = self.point_(x)
        return ((forecast[:, : self.horizon] - (y - loc) / scale) ** 2).mean()

    def _loss(self, windows: np.ndarray) -> float:
        with torch_threads(self.threads), torch.no_grad():
            self.point_.eval()
            total = sum(float(self._batch_loss(windows[i:i + 256])) * len(windows[i:i + 256])
                        for i in range(0, len(windows), 256))
        return total / len(windows)

    def _train(self, windows: np.ndarray, *, epochs: int, noise_std: float, seed: int) -> float:
        if not len(windows):
            raise DataError(f"ttm forecaster: no training windows of {self.context_length + self.horizon} points")
        params = self.point_.trainable(self.config.train)
        for p in self.point_.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        optimiser = torch.optim.Adam(params, lr=self.config.lr, weight_decay=self.config.weight_decay)
        loss = float("nan")
        with torch_threads(self.threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for epoch in range(epochs):
                rng = np.random.default_rng([seed, epoch])
                data = windows + rng.normal(0.0, noise_std, size=windows.shape) if noise_std > 0 else windows
                order = rng.permutation(len(data))
                self.point_.train()
                if self.config.train == "head":
                    self.point_.backbone.ttm.backbone.eval()  # frozen parts keep their dropout off
                    self.point_.backbone.ttm.decoder.eval()
                total = 0.0
                for i in range(0, len(order), self.config.batch_size):
                    batch = data[order[i:i + self.config.batch_size]]
                    step = self._batch_loss(batch)
                    optimiser.zero_grad()
                    step.backward()
                    optimiser.step()
                    total += float(step.detach()) * len(batch)
                loss = total / len(data)
        self.point_.eval()
        return loss

    def _after_fine_tune(self, train: np.ndarray, val: np.ndarray) -> None:
        self._calibrate(val if len(val) >= self.config.min_calibration else np.concatenate([train, val]))

    # ----------------------------------------------------------- persistence
    def _header_state(self) -> dict[str, Any]:
        return {"shape": self.shape_, "source": self.source_}

    def _save_state(self, directory: Path) -> None:
        assert self.residuals_ is not None
        # TTM standardises each window itself: no global statistics to keep beside the weights
        save_weights(directory / WEIGHTS_FILE, self.point_, np.zeros(0), np.ones(0))
        np.save(directory / CALIBRATION_FILE, self.residuals_, allow_pickle=False)

    def _load_state(self, directory: Path, state: dict[str, Any]) -> None:
        del state
        load_weights(directory / WEIGHTS_FILE, self.point_, "ttm forecaster weights")
        path = directory / CALIBRATION_FILE
        try:
            residuals = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: missing or unreadable residual quantiles ({exc})") from exc
        if residuals.shape != (self.horizon, len(self.quantiles)):
            raise DataError(f"{path}: residual quantiles of shape {residuals.shape}, "
                            f"expected {(self.horizon, len(self.quantiles))}")
        self.residuals_ = residuals
        self.point_.eval()

