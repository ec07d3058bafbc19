"""Throughput of the PAG sampler: pseudo-anomalous windows per second, L=100, D=55, on CPU.

Post-training draws millions of windows, so the sampler has to keep up with a training loop.
This prints, side by side:

- ours: ``PAGSampler.sample`` (vectorised over the batch) with the heuristic ``cutaddpaste``
  bank and the ``generic`` bank (all 12 operators), with and without augmentation;
- reference: the original CutAddPaste style of generation, a Python loop over windows that
  cuts, adds a trend and pastes one window at a time (re-implemented here from the paper's
  description of ``cut_add_paste_outlier``), and our own sampler driven one window at a time;
- each operator alone, one random channel and all channels.

Data: the MSL channel C-1 (2,158 training rows x 55 channels) from the benchmark data folder (the
first of ANOMALYGRAPH_DATA_ROOTS, by default the one beside the checkout); a seeded random series
of the same shape when it is missing.

    .venv/bin/python benchmarks/sampler_throughput.py [--batch 1024] [--repeats 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from anomalygraph.core.settings import get_settings
from anomalygraph.core.stats import robust_scale
from anomalygraph.data.series import TimeSeries
from anomalygraph.rulebank.operators import OPERATORS, apply_batch
from anomalygraph.rulebank.sampler import PAGSampler
from anomalygraph.rulebank.store import load_bank

REPO = Path(__file__).resolve().parents[1]
WINDOW = 100


def load_msl() -> tuple[TimeSeries, str]:
    root = get_settings().data.benchmark_root
    root = root if root.is_absolute() else REPO / root
    path = root / "SMAP_MSL" / "test" / "C-1.npy"
    if path.is_file():
        from anomalygraph.data.loaders import load_series

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_series(path).train(), f"MSL C-1 train ({path})"
    rng = np.random.default_rng(0)
    values = np.cumsum(rng.standard_normal((2158, 55)), axis=0).astype(np.float32)
    return TimeSeries(values=values, name="random-walk"), "seeded random walk 2158 x 55 (MSL data not found)"


def rate(fn, n_windows: int, repeats: int) -> float:
    fn()  # warm up caches (scales, periods)
    best = np.inf
    for _ in range(max(repeats // 3, 1)):
        started = time.perf_counter()
        for _ in range(3 if repeats >= 3 else repeats):
            fn()
        best = min(best, (time.perf_counter() - started) / (3 if repeats >= 3 else repeats))
    return n_windows / best


def cutaddpaste_loop(windows: np.ndarray, rng: np.random.Generator, trend_rate: float = 0.01, cut_rate: int = 15) -> np.ndarray:
    """The per-window loop of the original generator: cut from a random window, add a trend to a
    few channels, paste at a random position (one window at a time, as in the paper's code)."""
    out = windows.copy()
    b, n, d = windows.shape
    for i in range(b):
        radius = max(cut_rate, int(rng.random() * n))
        donor = windows[int(rng.random() * b)]
        src = int(rng.random() * (n - radius))
        cut = donor[src : src + radius].copy()
        for c in rng.choice(d, size=int(rng.integers(1, 5)), replace=False):
            cut[:, c] += rng.choice((-1, 1)) * rng.random() * trend_rate * np.arange(radius)
        dst = int(rng.random() * (n - radius))
        out[i, dst : dst + radius] = cut
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    series, source = load_msl()
    b = args.batch
    print(f"data: {source}; window L={WINDOW}, D={series.n_channels}; batch {b}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}")
    print()
    rows: list[tuple[str, str, float]] = []
    for bank_name in ("cutaddpaste", "generic"):
        sampler = PAGSampler(load_bank(bank_name), series, window=WINDOW, seed=0)
        rows.append(("ours", f"PAGSampler.sample, bank {bank_name}", rate(lambda s=sampler: s.sample(b), b, args.repeats)))
        rows.append(("ours", f"  + augmented copies (3 branches), bank {bank_name}",
                     rate(lambda s=sampler: s.sample(b, with_augmented=True), b, args.repeats)))
    rng = np.random.default_rng(0)
    starts = rng.integers(0, series.length - WINDOW, b)
    windows = series.values[starts[:, None] + np.arange(WINDOW)[None, :]]
    rows.append(("reference", "CutAddPaste-style per-window loop (cut_add_paste)",
                 rate(lambda: cutaddpaste_loop(windows, rng), b, args.repeats)))
    one = PAGSampler(load_bank("cutaddpaste"), series, window=WINDOW, seed=0)
    small = 64
    rows.append(("reference", "PAGSampler driven one window at a time, bank cutaddpaste",
                 rate(lambda: [one.sample(1) for _ in range(small)], small, max(args.repeats // 3, 1))))
    width = max(len(r[1]) for r in rows)
    print(f"{'':10} {'what':<{width}}  windows/s")
    for side, what, value in rows:
        print(f"{side:10} {what:<{width}}  {value:>10,.0f}")
    print()
    print(f"per operator, {b} windows of {WINDOW} x {series.n_channels}, segments of 10-40 steps (windows/s):")
    print(f"{'operator':<20} {'1 channel':>12} {'all channels':>14}")
    x = windows
    scale = robust_scale(x)  # the sampler caches this per candidate window; time the operators alone
    one_channel = np.zeros((b, series.n_channels), dtype=bool)
    one_channel[:, 0] = True
    length = rng.integers(10, 40, b)
    start = (rng.random(b) * (WINDOW - length)).astype(np.int64)
    for name, spec in OPERATORS.items():
        chans = one_channel if spec.min_channels == 1 else np.eye(series.n_channels, dtype=bool)[np.zeros(b, dtype=int)]
        all_chans = None if spec.min_channels == 1 else ~np.eye(series.n_channels, dtype=bool)[np.zeros(b, dtype=int)]
        r1 = rate(lambda n=name, c=chans: apply_batch(n, x, start=start, length=length, channels=c, scale=scale, rng=rng), b, args.repeats)
        ra = rate(lambda n=name, c=all_chans: apply_batch(n, x, start=start, length=length, channels=c, scale=scale, rng=rng), b, args.repeats)
        print(f"{name:<20} {r1:>12,.0f} {ra:>14,.0f}")


if __name__ == "__main__":
    main()
