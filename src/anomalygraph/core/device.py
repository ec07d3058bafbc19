"""Where heavy work runs: one answer to "is there a GPU?" for detectors, tools, graphs and the CLI."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@cache
def cuda_available() -> bool:
    """Whether torch sees a CUDA device (asked once per process; torch is imported on first call)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return False
    return bool(torch.cuda.is_available())


def device_name(requested: str | None = None) -> str:
    """CUDA when present, else CPU; an explicit request wins."""
    if requested:
        return requested
    return "cuda" if cuda_available() else "cpu"


def torch_device(owner: str, requested: str | None = None) -> torch.device:
    """The torch device for ``requested`` (default: CUDA when present), checked so a typo or a missing GPU
    is one clear error naming ``owner`` (the detector)."""
    import torch

    from anomalygraph.core.errors import ConfigError

    name = device_name(requested)
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"{owner}: unknown device {name!r} ({exc})") from exc
    if device.type == "cuda" and not cuda_available():
        raise ConfigError(f"{owner}: device {name!r} requested, but CUDA is not available")
    return device
