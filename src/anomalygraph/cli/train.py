"""``anomalygraph train``: fit a detector on a file's training rows, optionally APE-post-train it, save it.

With ``--post-train BANK`` the fitted backbone is post-trained with pseudo-anomalies from BANK (a
built-in bank name, a bank file, or ``ncad``) and saved with its provenance (``ape.json``). When the
file has labels after its training split, the command prints VUS-PR and AUC-PR before and after on
those rows: for reading only, nothing is chosen with them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from anomalygraph.core.errors import ConfigError, validation_problems
from anomalygraph.data.validation import NanPolicy

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _bar() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    TextColumn("epoch {task.completed}/{task.total}"), TextColumn("{task.fields[loss]}"),
                    TimeElapsedColumn(), console=err, transient=False)


def train_cmd(
    file: Annotated[Path, typer.Argument(help="CSV, Parquet, NAB, SMAP/MSL .npy, UCR or TSB-AD file.", show_default=False)],
    detector: Annotated[str, typer.Option("--detector", "-d", help="The backbone: tranad, donut, timesnet, anomaly_transformer (or any detector).")] = "tranad",
    post_train: Annotated[str | None, typer.Option("--post-train", help="APE post-training with this bank (built-in name or file) or 'ncad'.")] = None,
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for the saved model (default: out/models/<series>.<detector>[.ape-<bank>]).")] = None,
    settings: Annotated[list[str], typer.Option("--set", help="Detector setting key=value, e.g. --set epochs=5.")] = [],  # noqa: B006
    ape_settings: Annotated[list[str], typer.Option("--ape-set", help="Post-training setting key=value (weight, temperature, negatives, adjust, epochs, ...).")] = [],  # noqa: B006
    fmt: Annotated[str, typer.Option("--format", help="File format: auto or a named one.")] = "auto",
    nan: Annotated[NanPolicy, typer.Option("--nan", help="NaN/inf handling: interpolate, ffill, or error.")] = NanPolicy.interpolate,
) -> None:
    """Fit DETECTOR on FILE's training rows (all rows if the format has no split) and save it; with
    --post-train, also post-train it with APE and save the provenance with it.

    Example: anomalygraph train --detector tranad --post-train cutaddpaste ../shared/data/SMAP_MSL/test/P-1.npy
    """
    from anomalygraph.cli.common import load_file as _load
    from anomalygraph.cli.common import parse_sets as _parse_sets
    from anomalygraph.detectors import create_detector
    from anomalygraph.detectors.ape import APEConfig
    from anomalygraph.detectors.run import FitOn, fit_rows
    from anomalygraph.rulebank.post_training import (
        post_train_detector,
        resolve_pseudo,
        save_post_trained,
    )

    series = _load(file, fmt, nan, None, None, None, None)
    train, fitted_on = fit_rows(series, FitOn.train)
    model = create_detector(detector, **_parse_sets(settings))
    try:
        ape_config = APEConfig(**_parse_sets(ape_settings))
    except ValidationError as exc:
        problems = validation_problems(exc)
        raise ConfigError(f"invalid --ape-set: {problems}") from exc
    pseudo = resolve_pseudo(post_train) if post_train is not None else None
    if post_train is not None and not hasattr(model, "encode"):
        raise ConfigError(f"'{detector}' has no encoder, so APE cannot post-train it; use tranad, donut, timesnet or "
                          "anomaly_transformer")
    label = post_train if post_train is None or post_train == "ncad" else getattr(pseudo, "name", post_train)
    target = output or Path("out") / "models" / f"{series.name}.{detector}" f"{'' if post_train is None else '.ape-' + str(label)}"

    out.print(f"{detector} on {series.name}: fitting on {fitted_on} ({train.length} rows, {series.n_channels} channels)")
    with _bar() as bar:
        epochs = getattr(model.config, "epochs", None)
        task = bar.add_task(f"fit {detector}", total=epochs, loss="")
        if hasattr(model, "on_epoch"):
            model.on_epoch = lambda r: bar.update(task, advance=1, loss=f"train {r.train_loss:.4g}"
                                                  + ("" if r.val_loss is None else f" · val {r.val_loss:.4g}"))
        model.fit(train)
        ran = getattr(getattr(model, "training_", None), "epochs_run", None) or epochs
        bar.update(task, total=ran, completed=ran)
    before = model.score(series)
    record = None
    if pseudo is not None:
        with _bar() as bar:
            task = bar.add_task(f"post-train ({label})", total=ape_config.epochs, loss="")
            record = post_train_detector(
                model, train, pseudo, ape_config,
                progress=lambda r: bar.update(task, advance=1, loss=f"val L_post {r.val_post:.4g} (rec {r.val_rec:.4g}, con {r.val_con:.4g})"))
            bar.update(task, total=record.report.epochs_run, completed=record.report.epochs_run)
        saved = save_post_trained(model, record, target)
    else:
        saved = model.save(target)
    after = model.score(series)
    out.print(f"fit {model.fit_seconds_:.1f}s; threshold {model.threshold_.describe()}")
    if record is not None:
        rep = record.report
        best = ("no epoch lowered the validation L_post, so the fitted weights were kept" if rep.best_epoch < 0
                else f"kept epoch {rep.best_epoch}")
        out.print(f"post-trained {rep.epochs_run} epoch(s) in {rep.seconds:.1f}s ({best}"
                  f"{'; stopped early' if rep.stopped_early else ''}; {rep.trainable_parameters:,} parameters trainable, "
                  f"adjust={ape_config.adjust})")
        table = Table(title="validation batches (pseudo-anomalies only; no test label)")
        for col in ("", "cos(z_raw, z_aug)", "cos(z_raw, z_pa)", "pseudo-AUC"):
            table.add_column(col)
        for name, sep in (("before", rep.before), ("after", rep.after)):
            table.add_row(name, f"{sep.positive_similarity:.3f}", f"{sep.negative_similarity:.3f}", f"{sep.pseudo_auc:.3f}")
        out.print(table)
    _print_accuracy(series, before, after if record is not None else None, model.threshold_.value)
    out.print(f"saved to {saved}")
    if record is not None:
        provenance = {"source": record.source, "bank": None if record.bank is None else record.bank.model_dump(),
                      "backbone": {"detector": record.backbone.detector,
                                   "weights_sha256": record.backbone.weights_sha256}}
        out.print(f"provenance ({saved / 'ape.json'}):")
        out.print_json(json.dumps(provenance))


def _print_accuracy(series, before, after, threshold: float) -> None:
    from anomalygraph.metrics.evaluate import evaluate_scores, has_labelled_events

    if not has_labelled_events(series):
        out.print("no labelled anomaly after the training split: accuracy not measured")
        return
    table = Table(title=f"{series.name}: rows after the training split (labels read only here)")
    for col in ("", "VUS-PR", "AUC-PR", "range F1 (best)", "event F1 (best)"):
        table.add_column(col)
    rows = [("fitted", before)] + ([("post-trained", after)] if after is not None else [])
    for name, scores in rows:
        m = evaluate_scores(series, scores, threshold)
        table.add_row(name, f"{m.vus_pr:.3f}", f"{m.auc_pr:.3f}", f"{m.range_f1_best:.3f}", f"{m.event_f1_best:.3f}")
    out.print(table)
