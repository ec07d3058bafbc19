"""What the backbone tests share: one torch thread, a noisy sine, every window of a series, the reference runner."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from anomalygraph.detectors.deep.runtime import gather_windows, torch_threads
from tests.conftest import reference_python


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from more threads, and on a shared machine they lose a lot."""
    with torch_threads(1):
        yield


def sine(length: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length)[:, None]
    return (np.sin(2 * np.pi * t / 25 + np.arange(channels)) + 0.05 * rng.standard_normal((length, channels))).astype(
        np.float32
    )


def all_windows(values: np.ndarray, window: int) -> torch.Tensor:
    series = torch.from_numpy(values)
    return gather_windows(series, torch.arange(len(values) - window + 1), window)


def adam_losses(model: torch.nn.Module, windows: torch.Tensor, steps: int) -> list[float]:
    """``backbone_loss`` over ``steps`` Adam steps (lr 1e-2) on one batch, each checked to be a finite scalar."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model.backbone_loss(windows)
        assert loss.shape == () and torch.isfinite(loss)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def run_reference(runner: str, folder: Path) -> None:
    """``runner`` (a script reading and writing ``folder``) in the TSB-AD reference interpreter."""
    python = reference_python()
    if not python.exists():
        pytest.fail(f"reference interpreter {python} is missing: run `make reference-env`")
    (folder / "runner.py").write_text(runner)
    done = subprocess.run([str(python), str(folder / "runner.py"), str(folder)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
