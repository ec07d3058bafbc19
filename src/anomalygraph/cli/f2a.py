"""``anomalygraph f2a``: pretrain the shipped F2A weights on the project's own corpus."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from anomalygraph.core.errors import ConfigError

app = typer.Typer(help="F2A (Forecast2Anomaly): pretraining of the shipped weights.", no_args_is_help=True)


@app.callback()
def _f2a() -> None:
    """F2A: a TTM foundation model adapted to predict anomalies (needs the [f2a] extra)."""


@app.command("pretrain")
def pretrain_cmd(
    out: Annotated[Path | None, typer.Option("--out", help="Weights folder (default: the package's shipped weights folder).")] = None,
    n_synthetic: Annotated[int, typer.Option("--n-synthetic", min=0, help="KernelSynth series in the corpus.")] = 2000,
    backbone_epochs: Annotated[int, typer.Option("--backbone-epochs", min=1, help="Epochs of TTM forecasting pretraining.")] = 10,
    head_epochs: Annotated[int, typer.Option("--head-epochs", min=1, help="Epochs of the F2A parts on pseudo-labels.")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the corpus and of training.")] = 0,
    max_windows: Annotated[int, typer.Option("--max-windows", min=16, help="Corpus windows per training epoch at most.")] = 20_000,
    data: Annotated[Path | None, typer.Option("--data", help="Data root holding NAB/ and SMAP_MSL/ (default: the first of $ANOMALYGRAPH_DATA_ROOTS).")] = None,
) -> None:
    """Build the corpus (KernelSynth, tune-fold training splits, TimeAnomalyBench tune scenarios; validate
    series excluded) and pretrain F2A on it; writes the weights, the corpus manifest and MODEL_CARD.md.

    Example: anomalygraph f2a pretrain --out /tmp/f2a-weights --n-synthetic 200
    """
    import numpy as np
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from anomalygraph.cli.eval import data_root
    from anomalygraph.detectors.f2a.config import F2AConfig
    from anomalygraph.detectors.f2a.detector import SHIPPED
    from anomalygraph.detectors.f2a.pretraining import pretrain, sha256, write_weights
    from anomalygraph.detectors.f2a.training import EpochRecord
    from anomalygraph.evals.folds import fold_series
    from anomalygraph.rulebank.corpus import CorpusConfig, build_corpus

    target = out or SHIPPED
    if target.exists() and not target.is_dir():
        raise ConfigError(f"--out {target}: exists and is not a folder")
    console = Console(stderr=True)
    root = data_root(data)
    config = F2AConfig(seed=seed, max_windows=max_windows)
    held_out = [f"{ds}/{p.stem}" for ds, p, _ in fold_series(root, ("validate",), ("nab", "smap_msl"))]
    console.print(f"building the corpus ({n_synthetic} KernelSynth series; {len(held_out)} validate series held out)...")
    corpus = build_corpus(CorpusConfig(window=config.context_length, horizon=config.horizon, n_synthetic=n_synthetic,
                                       seed=seed, data_root=root), exclude=held_out)
    manifest = corpus.manifest()
    console.print(f"corpus: {len(corpus)} windows {manifest.get('windows_per_dataset')}")
    values, labels = corpus.values, corpus.labels
    if len(values) > max_windows:
        keep = np.sort(np.random.default_rng(seed).choice(len(values), max_windows, replace=False))
        values, labels = values[keep], labels[keep]
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        tasks = {"backbone": progress.add_task("backbone (forecasting)", total=backbone_epochs),
                 "f2a": progress.add_task("F2A parts (joint loss)", total=head_epochs)}

        def step(stage: str, record: EpochRecord) -> None:
            progress.advance(tasks[stage])
            progress.console.print(f"{stage} epoch {record.epoch}: train {record.train_loss:.4f}, "
                                   f"validation {record.val_loss:.4f} ({record.seconds:.0f} s)", highlight=False)

        result = pretrain(values, labels, config, backbone_epochs=backbone_epochs, head_epochs=head_epochs, progress=step)
    command = "anomalygraph f2a pretrain " + " ".join(shlex.quote(a) for a in sys.argv[3:] if a)
    write_weights(result, target, command=command.strip(), manifest=manifest | {"n_windows_used": len(values)})
    weights = target / "f2a.pt"
    Console().print(f"wrote {target} ({result.n_parameters:,} parameters, {weights.stat().st_size / 1e6:.2f} MB, "
                    f"SHA-256 {sha256(weights)}; {result.seconds / 60:.1f} min)")
