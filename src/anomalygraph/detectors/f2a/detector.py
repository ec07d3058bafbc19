"""F2A behind the ``Detector`` contract, plus ``forecast`` and ``predict_next`` for CALM and the analyst.

``score`` gives each row the anomaly probability that earlier windows predicted for it (the mean
over the up to ``h`` windows whose horizon covers it), so every score is a *prediction*: it
uses no value at or after the row it scores. Rows before the first full context get 0.

Weights, in order: ``weights`` (an F2A directory saved here, or an official TTM directory from
granite-tsfm's format: then the F2A parts start untrained), else the weights shipped with the
package (:func:`shipped_weights`), else none: the encoder is first trained on the series'
training rows (self-supervised forecasting), then frozen, and the report says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from anomalygraph.core.device import torch_device
from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.data.series import TimeSeries
from anomalygraph.detectors.base import Detector, register_detector
from anomalygraph.detectors.deep.runtime import available_cores, torch_threads
from anomalygraph.detectors.f2a.backbone import TTMBackbone
from anomalygraph.detectors.f2a.config import F2AConfig
from anomalygraph.detectors.f2a.model import F2ANet
from anomalygraph.detectors.f2a.retrieval import RetrievalConfig, WindowIndex
from anomalygraph.detectors.f2a.training import (
    QUANTILE_GRID,
    F2ATrainingReport,
    Memory,
    build_memory,
    held_out_fit,
    logit,
    per_timestamp,
    predict,
    residual_per_timestamp,
    train,
)

NET_FILE = "f2a.pt"
BACKBONE_FILE = "backbone.json"
MEMORY_FILE = "memory.npz"
REPORT_FILE = "training.json"
SHIPPED = Path(__file__).parent / "weights"


def shipped_weights() -> Path | None:
    """The package's pretrained F2A weights (``anomalygraph f2a pretrain``), if this install has them."""
    return SHIPPED if (SHIPPED / NET_FILE).is_file() else None


SHAPE_FIELDS = ("context_length", "horizon", "patch_length", "d_model", "num_layers", "decoder_d_model",
                "decoder_num_layers", "adaptive_patching_levels")


def save_net(net: F2ANet, config: F2AConfig, directory: Path) -> None:
    """An F2A weights directory: the network's state and the backbone shape it needs."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, directory / NET_FILE)
    (directory / BACKBONE_FILE).write_text(json.dumps({k: getattr(config, k) for k in SHAPE_FIELDS}, indent=2))


def saved_shape(directory: Path) -> dict[str, Any]:
    """The backbone shape an F2A weights folder was saved with (``backbone.json``)."""
    try:
        shape = json.loads((directory / BACKBONE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{directory}: not readable F2A weights ({exc})") from exc
    return {k: shape[k] for k in SHAPE_FIELDS if k in shape}


def load_net(directory: Path, config: F2AConfig) -> tuple[F2ANet, F2AConfig]:
    """The F2A network in ``directory`` and ``config`` with the weights' shape (context, horizon, widths)."""
    config = F2AConfig(**{**config.model_dump(), **saved_shape(directory)})
    try:
        state = torch.load(directory / NET_FILE, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise DataError(f"{directory}: not readable F2A weights ({exc})") from exc
    net = F2ANet(TTMBackbone.build(config, seed=config.seed), heads=config.fusion_heads)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise DataError(f"{directory}: weights do not match their backbone.json ({exc})") from exc
    return net, config


def chosen_weights(config: F2AConfig) -> Path | None:
    """The folder the detector loads: the configured one, else the shipped one; None with ``weights='none'``."""
    if config.weights == "none":
        return None
    return Path(config.weights) if config.weights is not None else shipped_weights()


def with_weights_shape(config: F2AConfig) -> F2AConfig:
    """``config`` with the context, horizon and widths of the weights it will load (they cannot be changed)."""
    weights = chosen_weights(config)
    if weights is None:
        return config
    weights = Path(weights)
    if (weights / BACKBONE_FILE).is_file():
        return F2AConfig(**{**config.model_dump(), **saved_shape(weights)})
    if (weights / "config.json").is_file():  # official TTM: granite-tsfm's config names
        try:
            ttm = json.loads((weights / "config.json").read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{weights / 'config.json'}: not valid JSON ({exc})") from exc
        return F2AConfig(**{**config.model_dump(), "context_length": ttm.get("context_length", config.context_length),
                            "horizon": ttm.get("prediction_length", config.horizon)})
    raise ConfigError(f"weights {weights}: neither F2A weights ({NET_FILE}, {BACKBONE_FILE}) nor a TTM folder (config.json)")


class Forecast(BaseModel):
    """Point forecast and quantiles of the next steps after the series' last row."""

    model_config = ConfigDict(extra="forbid")

    issued_at: int  # first forecast row (= the series' length)
    point: list[list[float]]  # [h][C]
    quantiles: dict[str, list[list[float]]]  # "0.2" -> [h][C]
    anomaly_probability: list[float]  # [h]


@register_detector
class F2ADetector(Detector):
    """Predicted probability that each row is anomalous, from the windows before it."""

    name = "f2a"
    heavy = True
    config_class = F2AConfig
    summary = ("F2A (Forecast2Anomaly): a TTM foundation model with a frozen encoder, a joint focal + weighted-MAE "
               "loss and retrieval of similar past windows; predicts anomalies h steps ahead")
    caveat = "predicts rather than detects: each score uses only earlier rows, so onsets score lower than a detector's"
    config: F2AConfig

    def __init__(self, config: F2AConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.config = with_weights_shape(self.config)
        self.net_: F2ANet | None = None
        self.memory_: Memory | None = None
        self.quantiles_: np.ndarray | None = None
        self.reference_: np.ndarray | None = None  # [2, 2]: centre, scale of the probability's logit and of the error
        self.training_: list[F2ATrainingReport] = []
        self.weights_source_: str = ""

    @property
    def min_length(self) -> int:
        return self.config.context_length + 1

    @property
    def device(self) -> torch.device:
        return torch_device(self.name, self.config.device)

    # --------------------------------------------------------------- fitting
    def _start_net(self) -> F2ANet:
        weights = chosen_weights(self.config)
        # the saved config names the weights actually used, so a later load never picks up other shipped ones
        self.config = self.config.model_copy(update={"weights": weights if weights is not None else "none"})
        if weights is not None and (Path(weights) / NET_FILE).is_file():
            net, self.config = load_net(Path(weights), self.config)
            self.weights_source_ = f"F2A weights {weights}"
            return net
        if weights is not None:
            backbone = TTMBackbone.from_directory(Path(weights))
            self.config = F2AConfig(**{**self.config.model_dump(), "context_length": backbone.context_length,
                                       "horizon": backbone.horizon})
            self.weights_source_ = f"TTM weights {weights} (F2A parts untrained)"
            return F2ANet(backbone, heads=self.config.fusion_heads)
        self.weights_source_ = "no pretrained weights: the encoder was trained on this series' training rows"
        return F2ANet(TTMBackbone.build(self.config, seed=self.config.seed), heads=self.config.fusion_heads)

    def _fit(self, values: np.ndarray, labels: np.ndarray | None) -> None:
        device = self.device
        labels = np.zeros(len(values), dtype=np.int8) if labels is None else labels.astype(np.int8)
        with torch_threads(available_cores()), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            net = self._start_net().to(device)
            x = torch.as_tensor(values, dtype=torch.float32, device=device)
            self.training_ = []
            if self.weights_source_.startswith("no pretrained") and self.config.encoder_epochs:
                self.training_.append(train(net, x, labels, self.config, None, stage="encoder",
                                            epochs=self.config.encoder_epochs))
            net.freeze_encoder()
            memory = build_memory(net, x, labels, self.config) if self.config.rag_k else None
            if self.config.fine_tune and self.config.epochs:
                self.training_.append(train(net, x, labels, self.config, memory, stage="f2a", epochs=self.config.epochs))
            self.quantiles_, self.reference_ = held_out_fit(net, x, memory, self.config)
        self.net_, self.memory_ = net, memory

    # --------------------------------------------------------------- scoring
    def _predict(self, values: np.ndarray, starts: np.ndarray | None = None) -> Any:
        assert self.net_ is not None
        with torch_threads(available_cores()):
            x = torch.as_tensor(values, dtype=torch.float32, device=self.device)
            return predict(self.net_, x, self.memory_, self.config, starts=starts)

    def _score(self, values: np.ndarray) -> np.ndarray:
        return self.row_scores(self._predict(values), values)

    def row_scores(self, prediction: Any, values: np.ndarray) -> np.ndarray:
        """Each row's score from windows already predicted on ``values``: the configured ``score`` kind."""
        if self.config.score == "forecast_error":
            return residual_per_timestamp(prediction, values)
        if self.config.score == "joint":
            return self.joint(per_timestamp(prediction, len(values)), residual_per_timestamp(prediction, values))
        return per_timestamp(prediction, len(values))

    def joint(self, probability: np.ndarray, error: np.ndarray) -> np.ndarray:
        """The ``joint`` score: the mean of the probability's logit and the forecast error, each in robust sigmas
        of the held-out training windows (no label, no weight: both parts count the same).

        Why: F2A predicts a probability *and* a forecast; with few (pseudo-)labels the head alone
        misses what the forecast error sees, and the error alone cannot learn from labels.
        """
        assert self.reference_ is not None
        (pc, ps), (ec, es) = self.reference_
        return 0.5 * ((logit(probability) - pc) / ps + (error - ec) / es)

    def predict_windows(self, series: TimeSeries | np.ndarray, starts: np.ndarray | None = None) -> Any:
        """Each window's prediction (issue rows, probabilities ``[n, h]``, forecasts, neighbours): every window
        whose context fits, or those starting at ``starts``."""
        values, _ = self._as_values(series, fitting=False)
        if starts is not None and len(starts) and (starts.min() < 0 or starts.max() + self.config.context_length > len(values)):
            raise DataError(f"window starts must lie in 0..{len(values) - self.config.context_length}")
        return self._predict(values, starts=starts)

    def forecast(self, series: TimeSeries | np.ndarray, horizon: int | None = None,
                 quantiles: tuple[float, ...] = (0.2, 0.3, 0.7, 0.8)) -> Forecast:
        """The next ``horizon`` steps after the last row: point, quantiles (split-conformal on training residuals)."""
        if self.net_ is None or self.quantiles_ is None:
            raise DataError("f2a must be fitted before forecasting")
        h = self.config.horizon
        horizon = horizon or h
        if not 1 <= horizon <= h:
            raise ConfigError(f"horizon must be between 1 and the model's {h}, got {horizon}")
        bad = [q for q in quantiles if not 0.01 <= q <= 0.99]
        if bad:
            raise ConfigError(f"quantiles must lie in [0.01, 0.99], got {bad}")
        values, _ = self._as_values(series, fitting=False)
        pred = self._predict(values, starts=np.array([len(values) - self.config.context_length]))
        point, scale = pred.forecast[0, :horizon], pred.scale[0]
        out = {}
        for q in sorted(quantiles):
            row = np.array([np.interp(q, QUANTILE_GRID, self.quantiles_[:, j]) for j in range(horizon)])
            out[f"{q:g}"] = (point + row[:, None] * scale).tolist()
        return Forecast(issued_at=len(values), point=point.tolist(), quantiles=out,
                        anomaly_probability=pred.probability[0, :horizon].tolist())

    # ------------------------------------------------------------ persistence
    def _save_state(self, directory: Path) -> None:
        assert self.net_ is not None and self.quantiles_ is not None
        save_net(self.net_, self.config, directory)
        assert self.reference_ is not None
        arrays = {"quantiles": self.quantiles_, "reference": self.reference_}
        if self.memory_ is not None:
            m = self.memory_
            arrays |= {"starts": m.starts, "embeddings": m.embeddings, "futures": m.futures, "labels": m.labels,
                       "distance_scale": np.array(m.distance_scale)}
        np.savez(directory / MEMORY_FILE, **arrays)
        (directory / REPORT_FILE).write_text(json.dumps({"weights": self.weights_source_,
                                                         "training": [r.model_dump() for r in self.training_]}, indent=2))

    def _load_state(self, directory: Path) -> None:
        net, self.config = load_net(directory, self.config)
        net.freeze_encoder()
        self.net_ = net.to(self.device).eval()
        with np.load(directory / MEMORY_FILE, allow_pickle=False) as data:
            self.quantiles_ = data["quantiles"]
            self.reference_ = data["reference"] if "reference" in data.files else None
            if "embeddings" in data.files:
                emb = data["embeddings"]
                self.memory_ = Memory(data["starts"], emb, data["futures"], data["labels"],
                                      WindowIndex.build(emb, RetrievalConfig()), float(data["distance_scale"]))
        report = directory / REPORT_FILE
        if report.is_file():
            saved = json.loads(report.read_text())
            self.weights_source_ = saved.get("weights", "")
            self.training_ = [F2ATrainingReport(**r) for r in saved.get("training", [])]
