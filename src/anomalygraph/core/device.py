"""Where heavy work runs: one answer to "is there a GPU?" for detectors, tools, graphs and the CLI."""

from __future__ import annotations

from functools import cache


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
