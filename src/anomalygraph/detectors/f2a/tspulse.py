"""TSPulse (granite-tsfm's masked-reconstruction model) as an ``Encoder`` and a zero-shot detector.

TSPulse learns to rebuild hidden patches of a window from the rest, so a row it cannot rebuild
is one its surroundings do not explain. The backbone is built with ``mask_type="user"``: the
masks are then always ours (random patches for training, one patch at a time for scoring),
which lets one model serve both instead of switching TSPulse's masking mode on its config.

Scoring follows the time-reconstruction mode of granite-tsfm's anomaly pipeline
(``tsfm_public/models/tspulse/utils/ad_helpers.py``): each patch of a window's last
``masked_tail`` rows is hidden in turn and the squared error of its reconstruction is the score.
It is kept per row (the mean over the windows that hid it) instead of averaged over the tail
and put at its centre, so ``score[t]`` is about row ``t``; the first window hides every patch,
so the first rows are scored too. The pipeline's min-max scaling and smoothing are left out:
thresholds come from training scores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, ValidationError, model_validator
from torch import nn

from anomalygraph.core.device import torch_device
from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.data.windows import window_starts
from anomalygraph.detectors.base import Detector, DetectorConfig, register_detector
from anomalygraph.detectors.deep.runtime import (
    BestState,
    available_cores,
    gather_windows,
    torch_threads,
)
from anomalygraph.detectors.f2a.backbone import EXTRA_HINT
from anomalygraph.detectors.f2a.training import EpochRecord, F2ATrainingReport

MODEL_DIR = "tspulse"
SCALING_FILE = "scaling.npz"
REPORT_FILE = "training.json"
SHAPE_FIELDS = ("context_length", "patch_length", "d_model", "num_layers", "decoder_num_layers")


def _tsfm() -> Any:
    try:
        from tsfm_public.models import tspulse
    except ImportError as exc:
        raise ConfigError(f"TSPulse uses the same extra as F2A. {EXTRA_HINT} ({exc})") from exc
    return tspulse


class TSPulseDetectorConfig(DetectorConfig):
    """Shape of the small TSPulse built when no weights are given, its training and its scoring.

    The defaults make a 0.57M-parameter model (TSPulse-r1 has about 1M, most of it in the FFT
    branch, which is off here: it doubles the patches and costs about 2x per step on CPU).
    """

    context_length: int = Field(512, ge=16, le=4096, description="rows per window")
    patch_length: int = Field(8, ge=2, description="patch length (and stride); TSPulse-r1 uses 8")
    d_model: int = Field(128, ge=8, description="encoder and decoder width (TSPulse needs them equal)")
    num_layers: int = Field(3, ge=1, le=12, description="encoder mixer layers")
    decoder_num_layers: int = Field(2, ge=1, le=12, description="decoder mixer layers")
    mask_ratio: float = Field(0.3, gt=0.0, lt=1.0, description="share of patches hidden in each training window")
    weights: Literal["none"] | Path | None = Field(
        None, description="a local official TSPulse folder (zero-shot, no training); None/'none': train on the training rows"
    )
    epochs: int = Field(5, ge=0, le=500, description="self-supervised epochs (early stopping may end sooner)")
    patience: int = Field(2, ge=1, description="epochs without validation improvement before stopping")
    max_windows: int = Field(4096, ge=16, description="training windows at most (evenly thinned beyond)")
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0.0, le=1.0)
    scoring: Literal["masked", "plain"] = Field(
        "masked", description="masked: each patch hidden in turn (granite-tsfm's recipe); plain: one unmasked pass"
    )
    masked_tail: int = Field(32, ge=1, description="rows at each window's end whose patches are hidden for scoring")
    stride: int = Field(8, ge=1, description="step between scoring windows (at most masked_tail, so every row is hidden once)")
    device: str | None = Field(None, description="cpu, cuda, cuda:1 ...; default: CUDA when present")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch; None = every core this process may use")

    @model_validator(mode="after")
    def _shape(self) -> TSPulseDetectorConfig:
        if self.context_length % self.patch_length or self.context_length < 2 * self.patch_length:
            raise ValueError(f"context_length {self.context_length} must be a multiple of patch_length {self.patch_length}, "
                             "at least two patches")
        if self.masked_tail % self.patch_length or self.masked_tail > self.context_length:
            raise ValueError(f"masked_tail {self.masked_tail} must be a multiple of patch_length {self.patch_length} "
                             f"and at most context_length {self.context_length}")
        if self.scoring == "masked" and self.stride > self.masked_tail:
            raise ValueError(f"stride {self.stride} must be at most masked_tail {self.masked_tail}, or rows go unscored")
        return self


def block_mask(n: int, length: int, patch: int, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Observed mask ``[n, length, 1]`` (False = hidden): ``ratio`` of the patches of each window, at
    least one and never all, chosen at random (TSPulse's ``mask_type="block"``)."""
    patches = length // patch
    k = min(patches - 1, max(1, int(ratio * patches))) if patches > 1 else 1
    order = torch.rand(n, patches, generator=generator).argsort(dim=1)
    hidden = torch.zeros(n, patches, dtype=torch.bool).scatter_(1, order[:, :k], True)
    return ~hidden.repeat_interleave(patch, dim=1)[:, :, None]


class TSPulseBackbone(nn.Module):
    """``[B, L, C]`` windows in; embeddings, the masked-reconstruction loss and reconstructions out.

    A model built here takes one channel and is applied to each channel alone (channels are folded
    into the batch: TSPulse's decoder fixes its channel count, unlike TTM's).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        cfg = model.config
        self.context_length: int = int(cfg.context_length)
        self.patch_length: int = int(cfg.patch_length)
        self.channels: int = int(cfg.num_input_channels)
        self.register_tokens: int = int(cfg.patch_register_tokens or 0)
        self.mask_ratio: float = float(cfg.mask_ratio or 0.3)

    @classmethod
    def build(cls, config: TSPulseDetectorConfig, seed: int = 0) -> TSPulseBackbone:
        tsfm, p = _tsfm(), config.patch_length
        tsp_config = tsfm.TSPulseConfig(
            context_length=config.context_length, patch_length=p, patch_stride=p, num_input_channels=1,
            d_model=config.d_model, decoder_d_model=config.d_model, num_layers=config.num_layers,
            decoder_num_layers=config.decoder_num_layers, mode="common_channel", decoder_mode="common_channel",
            scaling="revin", loss="mse", mask_ratio=config.mask_ratio, mask_type="user", mask_block_length=p,
            fuse_fft=False, dropout=0.1, head_dropout=0.1,
        )
        torch.manual_seed(seed)
        return cls(tsfm.TSPulseForReconstruction(tsp_config))

    @classmethod
    def from_directory(cls, path: Path) -> TSPulseBackbone:
        """Official or saved TSPulse weights from a local folder (``config.json`` + weights); never downloads."""
        config_file = Path(path) / "config.json"
        if not config_file.is_file():
            raise DataError(f"{path}: not a TSPulse weights directory (no config.json)")
        try:
            model_type = json.loads(config_file.read_text()).get("model_type")
        except json.JSONDecodeError as exc:
            raise DataError(f"{config_file}: not valid JSON ({exc})") from exc
        if model_type != "tspulse":
            raise DataError(f"{path}: holds a {model_type!r} model, not TSPulse")
        try:  # mask_type="user": hiding is driven by past_observed_mask, as granite-tsfm's AD recipe does
            model = _tsfm().TSPulseForReconstruction.from_pretrained(str(path), local_files_only=True, mask_type="user")
        except Exception as exc:  # TSPulse raises bare Exception for bad shapes, OSError for missing weights
            raise DataError(f"{path}: cannot load TSPulse weights ({exc})") from exc
        return cls(model)

    def save_directory(self, path: Path) -> None:
        """The model in granite-tsfm's format, loadable by :meth:`from_directory`."""
        self.model.save_pretrained(str(path))

    def encoder_parameters(self) -> list[nn.Parameter]:
        """What a frozen-encoder user freezes: TSPulse's backbone (scaler, patch embedding, mask and register
        tokens, mixer encoder); the decoder and reconstruction head stay trainable."""
        return list(self.model.backbone.parameters())

    # ------------------------------------------------------------- channels
    def _fold(self, windows: torch.Tensor) -> torch.Tensor:
        b, length, c = windows.shape
        if length != self.context_length:
            raise DataError(f"TSPulse reads windows of {self.context_length} rows, got {length}")
        if c == self.channels:
            return windows
        if self.channels == 1:
            return windows.transpose(1, 2).reshape(b * c, length, 1)
        raise DataError(f"this TSPulse model takes {self.channels} channels, got {c}")

    def _folded(self, windows: torch.Tensor) -> bool:
        return windows.shape[-1] != self.channels

    # ------------------------------------------------------------ Encoder contract
    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        """``[B, L, C]`` -> ``[B, 2d]``: the unmasked encoder's mean over the patch tokens and over the
        register tokens (where TSPulse keeps its short, semantic embedding), averaged over channels."""
        hidden = self.model.backbone(self._fold(windows), return_dict=True).last_hidden_state  # [N, c, P + R, d]
        r = self.register_tokens
        tokens = hidden[:, :, :-r] if r else hidden
        parts = [tokens.mean(dim=2)] + ([hidden[:, :, -r:].mean(dim=2)] if r else [])
        emb = torch.cat(parts, dim=-1).mean(dim=1)  # [N, 2d]
        return emb.reshape(windows.shape[0], -1, emb.shape[-1]).mean(dim=1) if self._folded(windows) else emb

    def backbone_loss(self, windows: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """TSPulse's own loss: the MSE of its reconstruction on randomly hidden patches (``mask_ratio`` of them),
        in the input's units (standardise first). ``generator`` fixes the masks, e.g. for validation."""
        x = self._fold(windows)
        observed = block_mask(x.shape[0], self.context_length, self.patch_length, self.mask_ratio, generator)
        observed = observed.expand(-1, -1, x.shape[-1]).to(x.device)
        return self.model(past_values=x, past_observed_mask=observed, return_loss=True, return_dict=True).loss

    # ------------------------------------------------------------- reconstruction
    def reconstruct(self, windows: torch.Tensor) -> torch.Tensor:
        """One unmasked pass: ``[B, L, C]`` in the input's units."""
        rec = self.model(past_values=self._fold(windows), return_loss=False, return_dict=True).reconstruction_outputs
        if not self._folded(windows):
            return rec
        b, length, c = windows.shape
        return rec.reshape(b, c, length).transpose(1, 2)

    def reconstruct_patches(self, windows: torch.Tensor, patches: Sequence[int]) -> torch.Tensor:
        """``[B, k, p, C]``: each listed patch rebuilt by a pass in which it alone is hidden (``k`` passes,
        batched), in the input's units."""
        x = self._fold(windows)
        n, _, c = x.shape
        k, p = len(patches), self.patch_length
        rows = (torch.as_tensor(list(patches), device=x.device)[:, None] * p + torch.arange(p, device=x.device)).repeat(n, 1)
        expanded = x.repeat_interleave(k, dim=0)  # window i's k copies are rows i*k .. i*k + k - 1
        observed = torch.ones_like(expanded, dtype=torch.bool)
        observed[torch.arange(n * k, device=x.device)[:, None], rows] = False
        rec = self.model(past_values=expanded, past_observed_mask=observed, return_loss=False,
                         return_dict=True).reconstruction_outputs
        picked = rec.gather(1, rows[:, :, None].expand(-1, -1, c)).reshape(n, k, p, c)
        if not self._folded(windows):
            return picked
        return picked.reshape(windows.shape[0], windows.shape[-1], k, p).permute(0, 2, 3, 1)


# ---------------------------------------------------------------------- training
def train_backbone(backbone: TSPulseBackbone, x: torch.Tensor, config: TSPulseDetectorConfig) -> F2ATrainingReport:
    """Adam on ``backbone_loss`` over the series' windows; early stopping on the last 20 %, best state kept."""
    L = backbone.context_length
    starts = np.arange(len(x) - L + 1)
    if len(starts) > config.max_windows:
        starts = starts[np.linspace(0, len(starts) - 1, config.max_windows).round().astype(int)]
    n_val = round(0.2 * len(starts)) if len(starts) >= 5 else 0
    train_s, val_s = starts[: len(starts) - n_val], starts[len(starts) - n_val :]
    rng = np.random.default_rng(config.seed)
    optimiser = torch.optim.Adam(backbone.parameters(), lr=config.lr)
    keeper, stopped = BestState(backbone, config.patience), False
    records: list[EpochRecord] = []

    def windows(batch: np.ndarray) -> torch.Tensor:
        return gather_windows(x, torch.as_tensor(batch, device=x.device), L)

    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        backbone.train()
        total = 0.0
        order = rng.permutation(len(train_s))
        for i in range(0, len(order), config.batch_size):
            batch = train_s[order[i : i + config.batch_size]]
            loss = backbone.backbone_loss(windows(batch))
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(backbone.parameters(), 1.0)
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        train_loss = total / len(train_s)
        val_loss = train_loss
        if n_val:
            backbone.eval()
            masks = torch.Generator().manual_seed(config.seed)  # the same hidden patches every epoch
            with torch.no_grad():
                val_loss = sum(float(backbone.backbone_loss(windows(val_s[i : i + config.batch_size]), masks))
                               * len(val_s[i : i + config.batch_size]) for i in range(0, n_val, config.batch_size)) / n_val
        records.append(EpochRecord(epoch=epoch, train_loss=train_loss, val_loss=val_loss,
                                   seconds=round(time.perf_counter() - started, 2)))
        if keeper.update(epoch, val_loss):
            stopped = True
            break
    keeper.restore()
    backbone.eval()
    return F2ATrainingReport(stage="tspulse", epochs=records, best_epoch=keeper.epoch, n_train_windows=len(train_s),
                             n_val_windows=n_val, stopped_early=stopped)


def row_errors(backbone: TSPulseBackbone, x: torch.Tensor, config: TSPulseDetectorConfig) -> np.ndarray:
    """Each row's squared reconstruction error (mean over channels), averaged over the windows that scored it."""
    L, p = backbone.context_length, backbone.patch_length
    n_patches = L // p
    total, count = np.zeros(len(x)), np.zeros(len(x))

    def add(starts: np.ndarray, patches: Sequence[int] | None) -> None:
        for i in range(0, len(starts), config.batch_size):
            batch = starts[i : i + config.batch_size]
            w = gather_windows(x, torch.as_tensor(batch, device=x.device), L)
            if patches is None:
                err, offsets = ((backbone.reconstruct(w) - w) ** 2).mean(dim=-1), np.arange(L)[None, :]
            else:
                picked = backbone.reconstruct_patches(w, patches)  # [B, k, p, C]
                truth = w.reshape(len(batch), n_patches, p, -1)[:, list(patches)]
                err = ((picked - truth) ** 2).mean(dim=-1).reshape(len(batch), -1)
                offsets = (np.asarray(patches)[:, None] * p + np.arange(p)).ravel()[None, :]
            rows = (batch[:, None] + offsets).ravel()
            np.add.at(total, rows, err.double().cpu().numpy().ravel())
            np.add.at(count, rows, 1)

    starts = window_starts(len(x), L, config.stride)
    if config.scoring == "plain":
        add(starts, None)
    else:
        tail = config.masked_tail // p
        add(starts, range(n_patches - tail, n_patches))
        if n_patches > tail:  # the first window hides every patch, so the rows before its tail are scored too
            add(starts[:1], range(n_patches - tail))
    return total / count


# ---------------------------------------------------------------------- detector
def with_weights_shape(config: TSPulseDetectorConfig) -> TSPulseDetectorConfig:
    """``config`` with the window and widths of the official weights it will load (they cannot change)."""
    if not isinstance(config.weights, Path) or not (config.weights / "config.json").is_file():
        return config  # no weights, or a folder without config.json: fitting raises the clear error
    try:
        shape = json.loads((config.weights / "config.json").read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{config.weights / 'config.json'}: not valid JSON ({exc})") from exc
    try:
        return TSPulseDetectorConfig(**{**config.model_dump(), **{k: shape[k] for k in SHAPE_FIELDS if k in shape}})
    except ValidationError as exc:
        raise ConfigError(f"tspulse: weights {config.weights} do not fit this configuration ({exc})") from exc


@register_detector
class TSPulseDetector(Detector):
    """Squared error of TSPulse's reconstruction of each row while that row's patch is hidden."""

    name = "tspulse"
    heavy = True
    config_class = TSPulseDetectorConfig
    summary = ("TSPulse (granite-tsfm): a masked-reconstruction mixer model; a row scores high when its hidden "
               "patch cannot be rebuilt from the rest of its window (official weights zero-shot, else self-trained)")
    caveat = ("each window is normalised on its own (RevIN), so level shifts and slow drifts spanning a window "
              "score low; without official weights it learns only from the training rows, anomalies included")
    config: TSPulseDetectorConfig

    def __init__(self, config: TSPulseDetectorConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.config = with_weights_shape(self.config)
        self.backbone_: TSPulseBackbone | None = None
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None
        self.training_: F2ATrainingReport | None = None
        self.weights_source_: str = ""

    @property
    def min_length(self) -> int:
        return self.config.context_length

    @property
    def device(self) -> torch.device:
        return torch_device(self.name, self.config.device)

    def _threads(self) -> int:
        return self.config.threads or available_cores()

    def _standardised(self, values: np.ndarray) -> torch.Tensor:
        assert self.mean_ is not None and self.std_ is not None
        return torch.as_tensor((values - self.mean_) / self.std_, dtype=torch.float32, device=self.device)

    def _fit(self, values: np.ndarray, labels: np.ndarray | None) -> None:
        del labels  # self-supervised: known anomalies are not used
        self.mean_ = values.mean(axis=0).astype(np.float32)
        std = values.std(axis=0)
        self.std_ = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        with torch_threads(self._threads()), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            if isinstance(self.config.weights, Path):
                backbone = TSPulseBackbone.from_directory(self.config.weights).to(self.device).eval()
                self.weights_source_ = f"TSPulse weights {self.config.weights} (zero-shot)"
                self.training_ = None
            else:
                backbone = TSPulseBackbone.build(self.config, seed=self.config.seed).to(self.device)
                self.training_ = train_backbone(backbone, self._standardised(values), self.config)
                self.weights_source_ = "no pretrained weights: trained on this series' training rows"
        self.backbone_ = backbone

    def _score(self, values: np.ndarray) -> np.ndarray:
        assert self.backbone_ is not None
        self.backbone_.eval()
        with torch_threads(self._threads()), torch.no_grad():
            return row_errors(self.backbone_, self._standardised(values), self.config)

    # ------------------------------------------------------------ persistence
    def _save_state(self, directory: Path) -> None:
        assert self.backbone_ is not None and self.mean_ is not None and self.std_ is not None
        self.backbone_.save_directory(directory / MODEL_DIR)
        np.savez(directory / SCALING_FILE, mean=self.mean_, std=self.std_)
        report = None if self.training_ is None else self.training_.model_dump()
        (directory / REPORT_FILE).write_text(json.dumps({"weights": self.weights_source_, "training": report}, indent=2))

    def _load_state(self, directory: Path) -> None:
        self.backbone_ = TSPulseBackbone.from_directory(directory / MODEL_DIR).to(self.device).eval()
        with np.load(directory / SCALING_FILE, allow_pickle=False) as data:
            self.mean_, self.std_ = data["mean"], data["std"]
        saved = json.loads((directory / REPORT_FILE).read_text())
        self.weights_source_ = saved.get("weights", "")
        self.training_ = None if saved.get("training") is None else F2ATrainingReport(**saved["training"])
