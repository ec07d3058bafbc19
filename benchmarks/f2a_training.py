"""F2A fine-tuning speed: the frozen encoder's outputs computed once per fit vs encoded in every batch.

F2A freezes its encoder, so the encoder's outputs of the training windows are the same in every
epoch. ``encoder_cache_mb`` (default 1024) computes them once, before the epochs, when they fit
in that memory; ``encoder_cache_mb=0`` is the plain way, encoding every batch again. The
frozen encoder is in eval mode either way, so both give the same model (the script checks the
validation losses agree). It prints, per series, seconds per fine-tuning epoch (the mean of
epochs 2 onwards, epoch 1 also encodes), the whole fit, and the ratio, side by side.

Run (the shipped weights, one SMAP/MSL and one NAB validate series, about a minute on 2 cores):

    ANOMALYGRAPH_DATA_ROOTS='["../shared/data"]' nice .venv/bin/python benchmarks/f2a_training.py
    nice .venv/bin/python benchmarks/f2a_training.py --series SMAP_MSL/test/T-2.npy --epochs 5 --max-windows 4000
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from anomalygraph.core.tables import md_row, table_lines
from anomalygraph.data.channels import scored_channels
from anomalygraph.data.loaders import load_series
from anomalygraph.data.series import TimeSeries
from anomalygraph.detectors import create_detector
from anomalygraph.rulebank.injection import inject

SERIES = ("SMAP_MSL/test/T-2.npy", "NAB/data/realKnownCause/ambient_temperature_system_failure.csv")


def fit_seconds(values: np.ndarray, labels: np.ndarray, cache_mb: int, epochs: int, max_windows: int
                ) -> tuple[float, float, list[float]]:
    det = create_detector("f2a", epochs=epochs, max_windows=max_windows, patience=epochs, encoder_cache_mb=cache_mb)
    started = time.perf_counter()
    det.fit(values, labels=labels)
    total = time.perf_counter() - started
    [report] = [r for r in det.training_ if r.stage == "f2a"]
    later = [e.seconds for e in report.epochs[1:]] or [report.epochs[0].seconds]
    return total, float(np.mean(later)), [e.val_loss for e in report.epochs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--series", nargs="*", default=list(SERIES), help="paths under --data")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max-windows", type=int, default=1500)
    args = parser.parse_args()
    rows = []
    for rel in args.series:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = load_series(args.data / rel)
        cols = scored_channels(full)
        end = full.train_end or int(0.15 * full.length)
        series = TimeSeries(values=full.values[:, cols], channels=[full.channels[c] for c in cols], name=full.name,
                            train_end=end)
        planted = inject(series, list(range(series.n_channels)), seed=0, max_events=40)  # as eval f2a's pseudo protocol
        values, labels = (series.values[:end], np.zeros(end, np.int8)) if planted is None else (
            planted.values, planted.mask.astype(np.int8))
        plain, plain_epoch, plain_val = fit_seconds(values, labels, 0, args.epochs, args.max_windows)
        cached, cached_epoch, cached_val = fit_seconds(values, labels, 1024, args.epochs, args.max_windows)
        same = np.allclose(plain_val, cached_val, rtol=1e-4, atol=1e-6)
        rows.append(md_row([rel, f"{end} x {len(cols)}", f"{plain_epoch:.2f}", f"{cached_epoch:.2f}",
                            f"{plain_epoch / cached_epoch:.1f}x", f"{plain:.1f}", f"{cached:.1f}",
                            "yes" if same else f"no ({plain_val} vs {cached_val})"]))
    print(f"F2A fine-tuning, shipped weights, {args.epochs} epochs, at most {args.max_windows} windows; "
          "s/epoch = mean of epochs 2..")
    print("\n".join(table_lines(["series", "fit rows x channels", "s/epoch encoded each batch", "s/epoch cached",
                                 "speed-up", "fit s plain", "fit s cached", "same validation losses"])))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
