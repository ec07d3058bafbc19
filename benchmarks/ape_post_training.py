"""APE's cost against the backbone's own training: seconds per step, whole runs and peak memory, side by side.

A post-training step encodes three branches (x, A(x), G(x)) and adds the backbone loss, so it should
cost about what three or four plain training steps cost, plus the sampler's draw. For each backbone,
in a fresh process (so the peak RSS is its own), on a real SMAP/MSL channel's training rows:

* a plain training step (the backbone's loss, forward and backward) at the post-training batch size;
* a post-training step (sampler draw + three encodes + backbone loss + InfoNCE, backward);
* the whole fit and the whole post-training run, and the process's peak RSS after each.

Run (CPU; about 5 minutes on 2 cores for the three backbones):

    ANOMALYGRAPH_DATA_ROOTS='["../shared/data"]' nice .venv/bin/python benchmarks/ape_post_training.py
    nice .venv/bin/python benchmarks/ape_post_training.py --backbones tranad --series SMAP_MSL/test/P-1.npy --device cuda
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

from anomalygraph.core.tables import table_lines

BACKBONES = ("tranad", "donut", "timesnet")


def measure(backbone: str, path: str, device: str | None, steps: int) -> dict[str, float]:
    """Runs in the child process."""
    import torch

    from anomalygraph.data.loaders import load_series
    from anomalygraph.detectors import create_detector
    from anomalygraph.detectors.ape import APEConfig
    from anomalygraph.detectors.ape.training import _branches, _losses
    from anomalygraph.detectors.deep.runtime import gather_windows
    from anomalygraph.evals.ape import FIT_SETTINGS
    from anomalygraph.rulebank.post_training import post_train_detector, sources
    from anomalygraph.rulebank.store import load_bank

    warnings.simplefilter("ignore")
    series = load_series(path)
    train = series.train()
    detector = create_detector(backbone, **FIT_SETTINGS.get(backbone, {}), **({"device": device} if device else {}))
    started = time.perf_counter()
    detector.fit(train)
    fit_s = time.perf_counter() - started
    rss_fit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    config = APEConfig(epochs=2, steps_per_epoch=steps)
    model, window, bs = detector.model_, detector.config.window, config.batch_size
    tensor = detector.standardise(train.values)
    starts = torch.arange(0, len(tensor) - window, max(1, (len(tensor) - window) // bs))[:bs].to(tensor.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def plain() -> None:
        optimizer.zero_grad()
        detector.backbone_loss(gather_windows(tensor, starts, window)).backward()
        optimizer.step()

    source, _ = sources(detector, train, load_bank("cutaddpaste"), config)

    def ape() -> None:
        optimizer.zero_grad()
        rec, con, *_ = _losses(detector, *_branches(detector, source.sample(bs, with_augmented=True)), config)
        (rec + config.weight * con).backward()
        optimizer.step()

    def per_step(fn) -> float:
        fn()  # warm-up
        if tensor.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        if tensor.device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / steps

    model.train()
    plain_s, ape_s = per_step(plain), per_step(ape)
    started = time.perf_counter()
    record = post_train_detector(detector, train, "cutaddpaste", config)
    post_s = time.perf_counter() - started
    return {"plain_step_s": plain_s, "ape_step_s": ape_s, "fit_s": fit_s, "fit_epochs": detector.training_.epochs_run,
            "post_s": post_s, "post_epochs": record.report.epochs_run, "rss_fit_mb": rss_fit,
            "rss_post_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "params": sum(p.numel() for p in model.parameters()), "device": str(tensor.device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbones", default=",".join(BACKBONES))
    parser.add_argument("--series", default="SMAP_MSL/test/T-2.npy", help="relative to the data root")
    parser.add_argument("--device", default=None)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.series, args.device, args.steps)))
        return
    from anomalygraph.core.settings import get_settings

    path = str(Path(get_settings().data.benchmark_root) / args.series)
    header = ["backbone", "params", "device", "plain step s", "APE step s", "ratio", "fit s (epochs)",
              "post-train s (epochs)", "peak RSS fit MB", "peak RSS post MB"]
    rows = []
    for backbone in [b.strip() for b in args.backbones.split(",") if b.strip()]:
        cmd = [sys.executable, __file__, "--child", backbone, "--series", path, "--steps", str(args.steps)]
        if args.device:
            cmd += ["--device", args.device]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            rows.append([backbone, "failed: " + done.stderr.strip().splitlines()[-1]] + [""] * (len(header) - 2))
            continue
        m = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append([backbone, f"{m['params']:,}", m["device"], f"{m['plain_step_s']:.4f}", f"{m['ape_step_s']:.4f}",
                     f"{m['ape_step_s'] / m['plain_step_s']:.1f}x", f"{m['fit_s']:.1f} ({m['fit_epochs']})",
                     f"{m['post_s']:.1f} ({m['post_epochs']})", f"{m['rss_fit_mb']:.0f}", f"{m['rss_post_mb']:.0f}"])
    print(f"series {args.series}; APE batch 64 (x, A(x), G(x) each), CutAddPaste bank")
    print("\n".join(table_lines(header, rows)))


if __name__ == "__main__":
    main()
