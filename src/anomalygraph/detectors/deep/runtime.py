"""Torch plumbing every deep detector shares: threads, window gathering, early stopping.

Kept apart from any one model so the Anomaly Transformer, F2A, the window backbones and the APE
post-trainer use one copy.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Use ``count`` intra-op threads inside the block, then restore the caller's setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def gather_windows(series: torch.Tensor, starts: torch.Tensor, window: int) -> torch.Tensor:
    """``[B, L, C]`` windows of ``series`` ``[T, C]`` starting at ``starts`` ``[B]``.

    Windows are gathered per batch, never materialised as one ``[N, L, C]`` copy, so memory grows
    with T, not T x L.
    """
    offsets = torch.arange(window, device=series.device)
    return series[starts[:, None] + offsets[None, :]]


class BestState:
    """Early stopping: keeps the module's state at its best validation loss and says when patience ran out."""

    def __init__(self, module: torch.nn.Module, patience: int, min_delta: float = 0.0) -> None:
        self.module, self.patience, self.min_delta = module, patience, min_delta
        self.best, self.epoch, self.waited = float("inf"), 0, 0
        self.state = copy.deepcopy(module.state_dict())

    def update(self, epoch: int, val_loss: float) -> bool:
        """Record an epoch's validation loss; True when training should stop."""
        if val_loss < self.best - self.min_delta:
            self.best, self.epoch, self.waited = val_loss, epoch, 0
            self.state = copy.deepcopy(self.module.state_dict())
            return False
        self.waited += 1
        return self.waited >= self.patience

    def restore(self) -> None:
        self.module.load_state_dict(self.state)


def rng_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose RNG ``torch.random.fork_rng`` must save for a seeded fit on ``device``."""
    if device.type == "cuda":
        return [device.index if device.index is not None else torch.cuda.current_device()]
    return []


def chronological_split(starts: np.ndarray, fraction: float, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation window starts: the last ``fraction`` of windows validate, and training
    windows that share a row with them are dropped, so early stopping never sees a training row.

    No validation (all windows train) when the series is too short to hold out a window on each side.
    """
    n_val = int(len(starts) * fraction)
    if n_val < 1:
        return starts, starts[:0]
    cut = starts[len(starts) - n_val]
    train = starts[starts + window <= cut]
    if len(train) < 1:
        return starts, starts[:0]
    return train, starts[starts >= cut]


def save_weights(path: Path, model: torch.nn.Module, mean: np.ndarray, scale: np.ndarray) -> None:
    """A standardising model's weights and its training statistics, in one ``torch.save`` file."""
    torch.save({"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "mean": torch.from_numpy(mean), "scale": torch.from_numpy(scale)}, path)


def load_weights(path: Path, model: torch.nn.Module, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Fill ``model`` (built from the saved configuration) from :func:`save_weights`' file; returns (mean, scale).

    A missing, corrupt or mismatched file is one ``DataError`` naming it.
    """
    from anomalygraph.core.errors import DataError

    if not path.is_file():
        raise DataError(f"{path.parent}: no {path.name} ({what})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise DataError(f"{path}: not a readable weights file ({exc})") from exc
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as exc:
        raise DataError(f"{path}: weights do not match the saved configuration ({exc})") from exc
    return state["mean"].numpy(), state["scale"].numpy()
