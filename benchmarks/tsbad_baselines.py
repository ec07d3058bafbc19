"""Our POLY, KShapeAD, Series2Graph and Sub-PCA against TSB-AD 1.5's, side by side on real series.

Both sides see the same univariate series. TSB-AD's ``run_*`` functions (their default
hyper-parameters, window = ``find_length_rank`` period) run in the reference environment
(``scripts/reference_env.sh``) on the whole series, as its benchmark does for unsupervised
methods. Ours run as this project runs them: fitted on the format's training rows when it has
a split (else the whole series) and scoring every row. Both score vectors are then evaluated
the same way, on the rows after the split, with this project's metrics (equal to TSB-AD's)
and the series' period as the VUS buffer. Seconds are wall time of fit + score; the reference
is first warmed up on a small series so that numba's compilation (stumpy, tslearn) is not
counted on either side.

Run (about 3 minutes on 2 cores, most of it TSB-AD's KShapeAD; ``--quick``: 4 series, about 1 minute):

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/tsbad_baselines.py

Rows marked ``(ref protocol)`` run ours under TSB-AD's protocol: fitted on the whole series,
with the whole series' period as window (ours as shipped take the period of the rows they
are fitted on); they check the implementation, the plain rows the detector as shipped.
``sub_pca tsbad (ref protocol)`` is ``score="tsbad", reduce="centre"``, TSB-AD's formula. The Sub-PCA ablation at the end walks
from this project's former Sub-PCA to TSB-AD's, one difference at a time (cheap: no
reference run needed besides TSB-AD's own Sub-PCA above).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]

SERIES = [
    "TSB-AD/TSB-AD-U/001_NAB_id_1_Facility_tr_1007_1st_2014.csv",
    "UCR/135_UCR_Anomaly_InternalBleeding16_1200_4187_4199.txt",
    "UCR/136_UCR_Anomaly_InternalBleeding17_1600_3198_3309.txt",
    "UCR/137_UCR_Anomaly_InternalBleeding18_2300_4485_4587.txt",
    "NAB/data/realKnownCause/nyc_taxi.csv",
    "NAB/data/realKnownCause/ambient_temperature_system_failure.csv",
    "NAB/data/realTraffic/speed_6005.csv",
    "NAB/data/realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv",
    "SMAP_MSL/test/P-1.npy",
    "SMAP_MSL/test/E-13.npy",
    "SMAP_MSL/test/M-1.npy",
]
QUICK = [SERIES[0], SERIES[1], SERIES[6], SERIES[10]]


@dataclass
class Row:
    """One line of the side-by-side table: a detector (and variant) of ours against a TSB-AD runner."""

    label: str
    detector: str
    method: str  # TSB-AD's run_<method>
    config: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # TSB-AD's keyword arguments
    fit_all: bool = False
    window_from_series: bool = False  # our window: the whole series' period (TSB-AD's choice)


ROWS = [
    Row("poly", "poly", "POLY"),
    Row("poly (ref protocol)", "poly", "POLY", fit_all=True, window_from_series=True),
    Row("kshape", "kshape", "KShapeAD"),
    Row("kshape (ref protocol)", "kshape", "KShapeAD", fit_all=True, window_from_series=True),
    Row("series2graph", "series2graph", "Series2Graph"),
    Row("series2graph (ref protocol)", "series2graph", "Series2Graph", fit_all=True, window_from_series=True),
    Row("sub_pca", "sub_pca", "Sub_PCA"),
    Row("sub_pca reconstruction", "sub_pca", "Sub_PCA", {"score": "reconstruction"}),
    Row("sub_pca tsbad (ref protocol)", "sub_pca", "Sub_PCA", {"score": "tsbad", "reduce": "centre"}, fit_all=True,
        window_from_series=True),
]

# From this project's former Sub-PCA (reconstruction error, 90% variance, mean over covering
# windows, fitted on the training rows with their period) to TSB-AD's, one change at a time.
ABLATION = [
    ("former sub_pca", {"score": "reconstruction"}, False, False),
    ("+ window: whole series' period", {"score": "reconstruction"}, False, True),
    ("+ fit on all rows", {"score": "reconstruction"}, True, True),
    ("+ score: tsbad formula", {"score": "tsbad"}, True, True),
    ("+ reduce: centre (= TSB-AD)", {"score": "tsbad", "reduce": "centre"}, True, True),
    ("tsbad formula, fit on train rows", {"score": "tsbad", "reduce": "centre"}, False, False),
    ("distance from mean window (ridge 1e6)", {"score": "mahalanobis", "ridge": 1e6, "reduce": "centre"}, True, True),
    ("mahalanobis ridge 0 (train rows)", {"score": "mahalanobis", "ridge": 0.0}, False, False),
    ("mahalanobis ridge 0.1 (shipped)", {}, False, False),
    ("mahalanobis ridge 0.1, fit on all", {}, True, True),
]

# Runs inside the reference environment (numpy<2, TSB-AD 1.5).
REFERENCE_RUNNER = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
import pandas as pd

# pandas 3 removed fillna(method=...), which TSB-AD 1.5's Series2Graph calls: same result via bfill/ffill.
_fillna = pd.DataFrame.fillna
def _fillna_compat(self, value=None, *, method=None, **kwargs):
    if method in ("bfill", "backfill"):
        return self.bfill()
    if method in ("ffill", "pad"):
        return self.ffill()
    return _fillna(self, value, **kwargs)
pd.DataFrame.fillna = _fillna_compat

from TSB_AD import model_wrapper
from TSB_AD.utils.slidingWindows import find_length_rank

folder = sys.argv[1]
jobs = json.load(open(f"{folder}/jobs.json"))
arrays = np.load(f"{folder}/series.npz")
warm = np.sin(2 * np.pi * np.arange(600) / 25) + 0.1 * np.random.default_rng(0).normal(size=600)
for method in sorted({job["method"] for job in jobs}):  # numba compiles stumpy / tslearn here, untimed
    getattr(model_wrapper, f"run_{method}")(warm.reshape(-1, 1))
out = {}
for job in jobs:
    x = arrays[job["series"]].astype(np.float64).reshape(-1, 1)
    np.random.seed(job.get("seed", 0))  # tslearn's KShape (inside KShapeAD) draws from numpy's global generator
    started = time.perf_counter()
    result = {"window": int(find_length_rank(x, rank=1))}
    try:
        scores = np.asarray(getattr(model_wrapper, f"run_{job['method']}")(x, **job["params"]), dtype=np.float64).ravel()
        result["seconds"] = time.perf_counter() - started
        if scores.shape != (len(x),) or not np.isfinite(scores).all():
            result["error"] = f"{scores.shape[0]} scores for {len(x)} rows, {int((~np.isfinite(scores)).sum())} non-finite"
        np.save(f"{folder}/{job['id']}.npy", scores)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    out[job["id"]] = result
    print(job["id"], result, flush=True)
json.dump(out, open(f"{folder}/results.json", "w"))
"""


def reference_python() -> Path:
    return Path(os.environ.get("ANOMALYGRAPH_REFERENCE_PYTHON", REPO / ".venv-tsbad" / "bin" / "python"))


def shared_data() -> Path:
    from anomalygraph.core.settings import get_settings

    root = get_settings().data.benchmark_root
    return (root if root.is_absolute() else REPO / root).resolve()


def load(path: Path):
    """The series' first channel (SMAP/MSL: the telemetry value) with its labels and split."""
    from anomalygraph.data import load_series
    from anomalygraph.data.series import TimeSeries

    series = load_series(path)
    return TimeSeries(
        values=series.values[:, :1], labels=series.labels, train_end=series.train_end, name=series.name
    )


def run_reference(series: dict[str, np.ndarray], jobs: list[dict], log: Path) -> dict[str, dict]:
    with tempfile.TemporaryDirectory(prefix="tsbad-baselines-") as tmp:
        folder = Path(tmp)
        np.savez(folder / "series.npz", **series)
        (folder / "jobs.json").write_text(json.dumps(jobs))
        (folder / "runner.py").write_text(REFERENCE_RUNNER)
        with log.open("w") as sink:
            subprocess.run([str(reference_python()), str(folder / "runner.py"), str(folder)], check=True,
                           stdout=sink, stderr=sink)
        results = json.loads((folder / "results.json").read_text())
        for job_id, result in results.items():
            path = folder / f"{job_id}.npy"
            result["scores"] = np.load(path) if path.is_file() else None
    return results


def run_ours(series, detector: str, config: dict[str, Any], fit_all: bool, window_from_series: bool):
    from anomalygraph.data.periods import estimate_period
    from anomalygraph.detectors import create_detector

    config = dict(config)
    if window_from_series:
        config["window"] = int(estimate_period(series.values[:, 0]))
    train = series if (fit_all or series.train_end is None) else series.train()
    started = time.perf_counter()
    model = create_detector(detector, **config).fit(train)
    scores = model.score(series)
    seconds = time.perf_counter() - started
    windows = getattr(model, "windows_", None)
    window = int(windows[0]) if windows is not None else int(getattr(model, "window_", 0) or 0)
    return scores, seconds, window


def evaluate(series, scores: np.ndarray) -> tuple[float, float]:
    """VUS-PR and AUC-PR on the rows after the split, the period as VUS buffer."""
    from anomalygraph.metrics import auc_pr, vus_pr
    from anomalygraph.metrics.evaluate import vus_window

    start = series.train_end or 0
    labels = series.labels[start:]
    return vus_pr(labels, scores[start:], vus_window(series)), auc_pr(labels, scores[start:])


def short(name: str) -> str:
    return name.replace("_UCR_Anomaly_", "_UCR_")[:34]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"only {len(QUICK)} series")
    parser.add_argument("--series", action="append", help="path under the shared data folder (repeatable)")
    parser.add_argument("--only", action="append", help="row labels to run (repeatable), e.g. --only poly")
    parser.add_argument("--no-ablation", action="store_true", help="skip the Sub-PCA ablation")
    parser.add_argument("--kshape-seeds", type=int, default=3,
                        help="seeds for the KShapeAD spread table (both sides are randomised; 1 skips it)")
    parser.add_argument("--log", type=Path, default=Path(tempfile.gettempdir()) / "tsbad_baselines_reference.log")
    args = parser.parse_args()

    from anomalygraph.core.errors import DataWarning

    warnings.simplefilter("ignore", DataWarning)
    root = shared_data()
    paths = args.series or (QUICK if args.quick else SERIES)
    rows = [r for r in ROWS if not args.only or r.label in args.only]
    loaded = {f"s{i}": load(root / p) for i, p in enumerate(paths)}
    arrays = {key: s.values[:, 0].astype(np.float64) for key, s in loaded.items()}

    jobs, seen = [], set()
    for key in loaded:
        for row in rows:
            job_id = f"{key}-{row.method}-{json.dumps(row.params, sort_keys=True)}"
            if job_id not in seen:
                seen.add(job_id)
                jobs.append({"id": job_id, "series": key, "method": row.method, "params": row.params})
    seeds = list(range(1, args.kshape_seeds)) if any(r.method == "KShapeAD" for r in rows) else []
    for key in loaded:
        for seed in seeds:
            jobs.append({"id": f"{key}-KShapeAD-seed{seed}", "series": key, "method": "KShapeAD", "params": {}, "seed": seed})
    print(f"TSB-AD 1.5 reference: {len(jobs)} runs on {len(loaded)} series (log: {args.log}) ...", flush=True)
    started = time.perf_counter()
    reference = run_reference(arrays, jobs, args.log)
    print(f"reference done in {time.perf_counter() - started:.0f} s\n", flush=True)

    warm = np.sin(2 * np.pi * np.arange(600) / 25).astype(np.float32)  # numba's stumpy JIT, untimed
    for detector in sorted({r.detector for r in rows}):
        from anomalygraph.detectors import create_detector

        create_detector(detector).fit(warm[:400]).score(warm)

    header = ("| series | detector | window ours/ref | VUS-PR ours | VUS-PR ref | diff | AUC-PR ours | AUC-PR ref "
              "| s ours | s ref |")
    print(header)
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    results: dict[str, list[tuple[float, float, float, float]]] = {}
    ref_pca: dict[str, np.ndarray] = {}
    for key, series in loaded.items():
        for row in rows:
            ref = reference[f"{key}-{row.method}-{json.dumps(row.params, sort_keys=True)}"]
            scores, seconds, window = run_ours(series, row.detector, row.config, row.fit_all, row.window_from_series)
            ours_vus, ours_ap = evaluate(series, scores)
            if ref.get("error") or ref.get("scores") is None:
                ref_cells = f"error: {ref.get('error')} | | | | |"
                ref_vus = float("nan")
            else:
                ref_vus, ref_ap = evaluate(series, ref["scores"])
                ref_cells = f"{ref_vus:.3f} | {ours_vus - ref_vus:+.3f} | {ours_ap:.3f} | {ref_ap:.3f} | {seconds:.2f} | {ref['seconds']:.2f} |"
                results.setdefault(row.label, []).append((ours_vus, ref_vus, seconds, ref["seconds"]))
            if row.method == "Sub_PCA":
                ref_pca[key] = ref.get("scores")
            cells = f"| {short(series.name)} | {row.label} | {window}/{ref['window']} | {ours_vus:.3f} | "
            print(cells + ref_cells, flush=True)

    print("\nMean over series (VUS-PR; diff = ours - TSB-AD):\n")
    print("| detector | n | ours | TSB-AD | mean diff | max abs diff | within 0.02 | s ours | s ref |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, values in results.items():
        v = np.array(values)
        d = v[:, 0] - v[:, 1]
        print(f"| {label} | {len(v)} | {v[:, 0].mean():.3f} | {v[:, 1].mean():.3f} | {d.mean():+.3f} | "
              f"{np.abs(d).max():.3f} | {int((np.abs(d) <= 0.02).sum())}/{len(v)} | {v[:, 2].sum():.1f} | {v[:, 3].sum():.1f} |")

    if seeds:
        print(f"\nKShapeAD over seeds 0..{len(seeds)} (ref protocol for ours; TSB-AD seeds numpy's global generator), "
              "VUS-PR min / mean / max:\n")
        print("| series | ours | TSB-AD |")
        print("|---|---|---|")
        spread = {"ours": [], "ref": []}
        for key, series in loaded.items():
            ours = [evaluate(series, run_ours(series, "kshape", {"seed": seed}, True, True)[0])[0] for seed in [0, *seeds]]
            base = f"{key}-KShapeAD-{json.dumps({})}"
            theirs = [evaluate(series, reference[job]["scores"])[0] for job in [base, *(f"{key}-KShapeAD-seed{s}" for s in seeds)]
                      if reference[job].get("scores") is not None]
            spread["ours"].append(np.mean(ours))
            spread["ref"].append(np.mean(theirs))
            print(f"| {short(series.name)} | {min(ours):.3f} / {np.mean(ours):.3f} / {max(ours):.3f} | "
                  f"{min(theirs):.3f} / {np.mean(theirs):.3f} / {max(theirs):.3f} |", flush=True)
        print(f"| mean of the means | {np.mean(spread['ours']):.3f} | {np.mean(spread['ref']):.3f} |")

    if args.no_ablation or not any(r.method == "Sub_PCA" for r in rows):
        return
    print("\nSub-PCA ablation (VUS-PR on the evaluated rows; last column: TSB-AD's run_Sub_PCA):\n")
    keys = list(loaded)
    print("| step | mean | " + " | ".join(short(loaded[k].name)[:14] for k in keys) + " |")
    print("|---|---:|" + "---:|" * len(keys))
    for label, config, fit_all, whole_period in ABLATION:
        values = [evaluate(loaded[k], run_ours(loaded[k], "sub_pca", config, fit_all, whole_period)[0])[0] for k in keys]
        print(f"| {label} | {np.mean(values):.3f} | " + " | ".join(f"{v:.3f}" for v in values) + " |", flush=True)
    ref_values = [evaluate(loaded[k], ref_pca[k])[0] if ref_pca.get(k) is not None else float("nan") for k in keys]
    print(f"| TSB-AD run_Sub_PCA | {np.mean(ref_values):.3f} | " + " | ".join(f"{v:.3f}" for v in ref_values) + " |")


if __name__ == "__main__":
    sys.exit(main())
