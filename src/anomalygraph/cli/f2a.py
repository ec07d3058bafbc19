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


@app.command("predict")
def predict_cmd(
    file: Annotated[Path, typer.Argument(help="Series file (CSV, Parquet, NPY, TXT).")],
    horizon: Annotated[int, typer.Option("--horizon", min=1, help="Steps ahead (at most the model's horizon, 16).")] = 16,
    at: Annotated[int | None, typer.Option("--at", min=0, help="Predict rows AT.. from the rows before AT (default: after the last row).")] = None,
    neighbours: Annotated[int, typer.Option("--neighbours", min=1, max=16, help="Similar past windows to show as evidence.")] = 4,
    out: Annotated[Path, typer.Option("--out", help="Folder for the plot.")] = Path("out/predict"),
) -> None:
    """Will the series go anomalous in the next steps? F2A zero-shot (the shipped weights), with evidence.

    Prints the probability per step, how it ranks against the file's earlier windows, the forecast
    band and the most similar past windows with what followed them; writes a plot. The same answer
    as the analyst's predict_anomaly tool.

    Example: anomalygraph f2a predict ../shared/data/NAB/data/realKnownCause/machine_temperature_system_failure.csv --at 3990
    """
    from rich.table import Table

    from anomalygraph.tools.context import ToolContext
    from anomalygraph.tools.prediction import PredictArgs, predict_anomaly

    if not file.is_file():
        raise ConfigError(f"{file}: no such file")
    ctx = ToolContext(data_roots=[file.resolve().parent], output_dir=out)
    got = predict_anomaly(ctx, PredictArgs(path=str(file.resolve()), horizon=horizon, at=at, neighbours=neighbours))
    console = Console()
    console.print(got.summary, highlight=False, markup=False)
    console.print("probability per step: " + " ".join(f"{p:.2f}" for p in got.probability), highlight=False)
    table = Table("past window (context rows)", "ends", "followed by rows", "labelled anomaly after", "moved (sigma)",
                  "distance", title="nearest past windows")
    for n in got.neighbours:
        after = "-" if n.followed_by_anomaly is None else ("yes" if n.followed_by_anomaly else "no")
        table.add_row(n.context_rows, n.context_end_time or "", n.followed_rows, after, f"{n.change:.2f}", f"{n.distance:.2f}")
    console.print(table)
    console.print(f"model: {got.model}", highlight=False, markup=False)
    if got.plot:
        console.print(f"plot: {got.plot}", highlight=False, markup=False)
