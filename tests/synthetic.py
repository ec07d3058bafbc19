"""Small series the tests write themselves: a minute-sampled CPU metric with a daily-like cycle and one burst."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def server_csv(path: Path, *, length: int = 1500, burst: tuple[int, int] = (1200, 1210), height: float = 80.0) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(length)
    cpu = 50 + 10 * np.sin(2 * np.pi * t / 100) + rng.normal(size=t.size)
    cpu[burst[0] : burst[1]] += height
    pd.DataFrame({"timestamp": pd.date_range("2024-03-01", periods=t.size, freq="1min"), "cpu": cpu}).to_csv(path, index=False)
    return path
