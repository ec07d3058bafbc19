"""VUS-PR speed: ours (vectorised) vs TSB-AD 1.5's ``opt`` version, on the same inputs.

Prints one row per series length with both timings, the ratio and the largest difference in
value. The reference runs in its isolated environment (ANOMALYGRAPH_REFERENCE_PYTHON, default
.venv-tsbad/bin/python; ``make reference-env`` builds it) through a subprocess, timed inside
that process so interpreter start-up is not counted. A reference run that exceeds
``--reference-budget`` seconds is stopped and reported as such, with an estimate extrapolated
from a timed run over a few buffer lengths (its cost is linear in their number).

    .venv/bin/python benchmarks/vus_speed.py                      # T = 1e4, 1e5, 1e6
    .venv/bin/python benchmarks/vus_speed.py --lengths 10000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from anomalygraph.data.periods import estimate_period
from anomalygraph.metrics import vus_pr

REPO = Path(__file__).resolve().parents[1]

REFERENCE = """
import json, sys, time, warnings
import numpy as np
warnings.filterwarnings("ignore")
from TSB_AD.evaluation.basic_metrics import generate_curve
data = np.load(sys.argv[1])
window = int(sys.argv[2])
started = time.perf_counter()
result = generate_curve(data["labels"].astype(int), data["scores"], window, "opt", 250)
print(json.dumps({"seconds": time.perf_counter() - started, "vus_pr": float(result[7])}))
"""


def synthetic(length: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seasonal series (period 100) with injected level shifts and spikes, its labels, and the
    scores of a plain residual detector (smoothed distance from the seasonal profile)."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    season = np.sin(2 * np.pi * t / 100)
    values = season + rng.normal(0, 0.5, length)
    labels = np.zeros(length, dtype=np.int64)
    for start in rng.choice(length - 400, size=max(length // 4000, 2), replace=False):
        size = int(rng.integers(5, 300))
        values[start : start + size] += rng.choice([-1, 1]) * rng.uniform(0.1, 0.8)
        labels[start : start + size] = 1
    kernel = np.ones(10) / 10
    scores = np.convolve(np.abs(values - season), kernel, mode="same")
    return values, labels, scores


def time_ours(labels: np.ndarray, scores: np.ndarray, window: int, repeats: int) -> tuple[float, float]:
    best, value = float("inf"), float("nan")
    for _ in range(repeats):
        started = time.perf_counter()
        value = vus_pr(labels, scores, sliding_window=window)
        best = min(best, time.perf_counter() - started)
    return best, value


def run_reference(python: Path, path: Path, window: int, budget: float) -> dict[str, float] | None:
    try:
        done = subprocess.run(
            [str(python), "-c", REFERENCE, str(path), str(window)],
            capture_output=True, text=True, timeout=budget, check=True,
        )
    except subprocess.TimeoutExpired:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3, help="our timing is the best of this many runs")
    parser.add_argument("--reference-budget", type=float, default=900.0, help="seconds before a reference run is stopped")
    parser.add_argument("--probe-windows", type=int, default=4, help="buffer lengths 0..N timed for the estimate when the budget is exceeded")
    args = parser.parse_args()

    python = Path(os.environ.get("ANOMALYGRAPH_REFERENCE_PYTHON", REPO / ".venv-tsbad" / "bin" / "python"))
    if not python.exists():
        print(f"reference interpreter {python} is missing: run `make reference-env`", file=sys.stderr)
        return 2
    header = f"{'T':>9} {'window':>6} {'ours s':>9} {'TSB-AD s':>12} {'speed-up':>9} {'VUS-PR ours':>13} {'VUS-PR TSB-AD':>14} {'|diff|':>8}"
    print("VUS-PR, 250 thresholds, buffer lengths 0..window (window = autocorrelation period of the series)")
    print(header)
    print("-" * len(header))
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        for length in args.lengths:
            values, labels, scores = synthetic(length)
            window = estimate_period(values)
            path = Path(tmp) / f"case_{length}.npz"
            np.savez(path, labels=labels, scores=scores)
            ours_s, ours_v = time_ours(labels, scores, window, args.repeats if length <= 100_000 else 1)
            ref = run_reference(python, path, window, args.reference_budget)
            if ref is not None:
                ref_s, ref_v, mark = ref["seconds"], ref["vus_pr"], ""
                diff = f"{abs(ours_v - ref_v):.1e}"
            else:
                probe = run_reference(python, path, args.probe_windows, args.reference_budget)
                ref_v, diff, mark = float("nan"), "n/a", "~"
                ref_s = float("nan") if probe is None else probe["seconds"] * (window + 1) / (args.probe_windows + 1)
                notes.append(
                    f"T={length}: the reference did not finish within {args.reference_budget:.0f} s; its time is "
                    f"extrapolated from buffer lengths 0..{args.probe_windows} x {window + 1}/{args.probe_windows + 1}."
                )
            ref_text = f"{mark}{ref_s:.3f}"
            print(
                f"{length:>9} {window:>6} {ours_s:>9.4f} {ref_text:>12} {ref_s / ours_s:>8.0f}x "
                f"{ours_v:>13.8f} {ref_v:>14.8f} {diff:>8}",
                flush=True,
            )
    for note in notes:
        print(note)
    print(f"label ratio of the synthetic series: about {labels.mean():.3f}; ours: best of {args.repeats} runs (1 run at T > 1e5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
