"""Training loop (minimax, early stopping) and batched scoring for the Anomaly Transformer.

Windows are never materialised as a ``[N, L, C]`` copy: the normalised series stays on the
device as ``[T, C]`` and each batch gathers its windows by index, so memory grows with T, not
with T x L.
"""

from __future__ import annotations

import copy
import time
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from anomalygraph.core.errors import ConfigError
from anomalygraph.data.windows import window_starts, windows_to_scores
from anomalygraph.detectors.anomaly_transformer.config import AnomalyTransformerConfig
from anomalygraph.detectors.anomaly_transformer.model import (
    AnomalyTransformerModel,
    anomaly_criterion,
    fused_minimax_loss,
    symmetric_kl,
)
from anomalygraph.detectors.deep.runtime import gather_windows


class EpochRecord(BaseModel):
    """What one epoch did; the detector keeps the list as ``history_`` and saves it."""

    model_config = ConfigDict(extra="forbid")

    epoch: int
    lr: float
    train_reconstruction: float
    train_discrepancy: float
    val_reconstruction: float | None
    val_discrepancy: float | None
    improved: bool
    seconds: float


class TrainingReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs_run: int
    best_epoch: int
    stopped_early: bool
    validation_rows: int
    train_windows: int
    device: str
    precision: str
    threads: int
    history: list[EpochRecord]


def resolve_precision(config: AnomalyTransformerConfig, device: torch.device) -> str:
    if config.precision != "auto":
        return config.precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def cpu_has_native_bf16() -> bool:
    """Whether the CPU multiplies bf16 in hardware (AVX512-BF16 or AMX).

    Measured on an AVX512-BF16 EPYC: bf16 autocast trains 3.7-4.5x faster per step than fp32 at
    the same VUS-PR; without the instructions oneDNN emulates bf16 and it is slower than fp32.
    """
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def autocast(device: torch.device, precision: str) -> Any:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def build_model(n_channels: int, config: AnomalyTransformerConfig) -> AnomalyTransformerModel:
    return AnomalyTransformerModel(
        n_channels=n_channels,
        window=config.window,
        d_model=config.d_model,
        n_heads=config.n_heads,
        e_layers=config.e_layers,
        d_ff=config.d_ff,
        dropout=config.dropout,
        activation=config.activation,
    )


def epoch_lr(base_lr: float, epoch: int) -> float:
    """The reference's schedule: epochs 0 and 1 at ``lr``, then halved every epoch."""
    return base_lr * 0.5 ** max(0, epoch - 1)


# ----------------------------------------------------------------- training
def train_model(
    model: AnomalyTransformerModel,
    series: torch.Tensor,
    config: AnomalyTransformerConfig,
    device: torch.device,
    precision: str,
) -> TrainingReport:
    """Minimax training on the first rows, early stopping on the held-out last rows.

    The reference stops when either minimax loss fails to improve on its validation data (the
    *test* split in thuml/Anomaly-Transformer) and otherwise keeps the last epoch. Here the
    monitored quantity is the validation reconstruction error, the part of the loss that is not
    adversarial, and the best epoch's weights are restored.
    """
    window = config.window
    n_val = int(len(series) * config.validation_fraction)
    if n_val < window or len(series) - n_val < window:
        # Too short to hold out a window on both sides: train on every row, without early stopping.
        n_val = 0
    train_rows = series[: len(series) - n_val]
    val_rows = series[len(series) - n_val :]
    train_starts = torch.as_tensor(
        window_starts(len(train_rows), window, config.train_stride), device=device
    )
    val_starts = (
        torch.as_tensor(window_starts(len(val_rows), window, config.train_stride), device=device)
        if n_val
        else None
    )

    step_model = torch.compile(model) if config.compile else model
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    history: list[EpochRecord] = []
    best_loss, best_epoch, best_state, stale = float("inf"), 0, None, 0
    stopped_early = False

    for epoch in range(config.epochs):
        started = time.perf_counter()
        lr = epoch_lr(config.lr, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        order = train_starts[torch.randperm(len(train_starts), generator=generator).to(device)]
        rec_sum = dis_sum = 0.0
        for batch_starts in order.split(config.batch_size):
            batch = gather_windows(train_rows, batch_starts, window)
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, precision):
                output = step_model(batch)
            loss, rec, dis = fused_minimax_loss(output, batch, config.k)
            if not torch.isfinite(loss):
                raise ConfigError(
                    f"anomaly_transformer: training diverged in epoch {epoch} (loss {float(loss)}); "
                    f"lower lr (now {config.lr:g})"
                )
            loss.backward()
            optimizer.step()
            rec_sum += float(rec) * len(batch_starts)
            dis_sum += float(dis) * len(batch_starts)

        val_rec = val_dis = None
        improved = True
        if val_starts is not None:
            val_rec, val_dis = _validate(
                step_model, val_rows, val_starts, config, device, precision
            )
            # Patience counts epochs without a *significant* drop; the best weights are kept either way.
            improved = val_rec < best_loss * (1.0 - config.min_improvement)
            stale = 0 if improved else stale + 1
            if val_rec < best_loss:
                best_loss, best_epoch = val_rec, epoch
                best_state = copy.deepcopy(model.state_dict())
        else:
            best_epoch = epoch
        history.append(
            EpochRecord(
                epoch=epoch,
                lr=lr,
                train_reconstruction=rec_sum / len(train_starts),
                train_discrepancy=dis_sum / len(train_starts),
                val_reconstruction=val_rec,
                val_discrepancy=val_dis,
                improved=improved,
                seconds=time.perf_counter() - started,
            )
        )
        if val_starts is not None and stale >= config.patience:
            stopped_early = epoch < config.epochs - 1
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    return TrainingReport(
        epochs_run=len(history),
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        validation_rows=n_val,
        train_windows=len(train_starts),
        device=str(device),
        precision=precision,
        threads=torch.get_num_threads(),
        history=history,
    )


@torch.inference_mode()
def _validate(
    model: torch.nn.Module,
    rows: torch.Tensor,
    starts: torch.Tensor,
    config: AnomalyTransformerConfig,
    device: torch.device,
    precision: str,
) -> tuple[float, float]:
    model.eval()
    rec_sum = dis_sum = 0.0
    for batch_starts in starts.split(config.batch_size):
        batch = gather_windows(rows, batch_starts, config.window)
        with autocast(device, precision):
            output = model(batch)
        rec = (output.reconstruction.float() - batch.float()).pow(2).mean()
        dis = symmetric_kl(output.series, output.prior).mean()
        rec_sum += float(rec) * len(batch_starts)
        dis_sum += float(dis) * len(batch_starts)
    return rec_sum / len(starts), dis_sum / len(starts)


# ------------------------------------------------------------------ scoring
@torch.inference_mode()
def score_series(
    model: AnomalyTransformerModel,
    series: torch.Tensor,
    config: AnomalyTransformerConfig,
    device: torch.device,
    precision: str,
) -> np.ndarray:
    """One criterion value per timestamp: per-step window scores averaged back by the shared windowing."""
    model.eval()
    window = config.window
    starts_np = window_starts(len(series), window, config.score_stride)
    starts = torch.as_tensor(starts_np, device=device)
    parts = []
    for batch_starts in starts.split(config.batch_size):
        batch = gather_windows(series, batch_starts, window)
        with autocast(device, precision):
            output = model(batch)
        parts.append(anomaly_criterion(output, batch, config.temperature).float().cpu())
    per_step = torch.cat(parts).numpy().astype(np.float64)
    return windows_to_scores(per_step, starts_np, window, len(series), config.reduce)
