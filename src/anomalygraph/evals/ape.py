"""APE before/after: each backbone fitted once per series, then post-trained with each pseudo-anomaly source.

One variable changes at a time: the backbone, its fit and the post-trainer's settings are fixed, and
only the source of pseudo-anomalies differs (none, the heuristic CutAddPaste bank, NCAD-style outlier
exposure, a bank mined by the prior-miner graph). Accuracy (VUS-PR, AUC-PR) is measured on the rows
after each series' training split; post-training sees only training rows and pseudo-anomalies.

Series: the UCR files, the SMAP/MSL channels and the TimeAnomalyBench scenarios of one fold (tune:
where APE's settings are chosen; validate: the figures to report). Mined banks come from files: the
TimeAnomalyBench ones from ``eval rulebank`` (one per scenario), others by ``--mined-bank
dataset=PATH`` (one bank per dataset, mined from a tune-fold series' training rows). Rows are written to
``rows.jsonl`` as they finish, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import copy
import json
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from anomalygraph.core.errors import AnomalyGraphError, ConfigError
from anomalygraph.data.loaders import load_series
from anomalygraph.data.series import TimeSeries
from anomalygraph.detectors import create_detector
from anomalygraph.detectors.ape import APEConfig
from anomalygraph.evals.folds import Fold, fold_series
from anomalygraph.metrics.evaluate import evaluate_scores, has_labelled_events
from anomalygraph.rulebank.post_training import post_train_detector, resolve_pseudo

BACKBONES = ("tranad", "donut", "timesnet", "anomaly_transformer")
VARIANTS = ("none", "rec_only", "cutaddpaste", "ncad", "mined")
# rec_only: the same post-training steps on the same CutAddPaste batches with lambda = 0, i.e. only the
# backbone's own loss; the control that separates "more training" from "pseudo-anomalies"
DATASETS = ("ucr", "smap_msl", "timeanomalybench")
SCORE_WITH = ("backbone", "latent", "fused")
# how each model is scored (DeepConfig.score_with): the backbone's own score, the latent kNN distance,
# or both fused; every fitted or post-trained model is scored each requested way
SAMPLE_EVERY = 4

# CPU budget per backbone fit (the papers' architectures, fewer epochs than their defaults where the
# defaults run for hours on two cores); the same settings before and after, so the delta is APE's.
FIT_SETTINGS: dict[str, dict[str, Any]] = {
    "tranad": {"epochs": 10, "max_train_windows": 5000},
    "donut": {"epochs": 20, "max_train_windows": 5000, "mc_samples": 64},
    "timesnet": {"epochs": 5, "max_train_windows": 2000},
    "anomaly_transformer": {"window": 100, "d_model": 64, "n_heads": 4, "e_layers": 2, "d_ff": 64, "epochs": 3},
}


class APERow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str
    series: str
    fold: str
    backbone: str
    variant: str
    score_with: str = "backbone"
    status: str = "ok"
    bank: str | None = None  # name@version
    bank_sha256: str | None = None
    vus_pr: float | None = None
    auc_pr: float | None = None
    pseudo_auc_before: float | None = None
    pseudo_auc_after: float | None = None
    neg_similarity_before: float | None = None
    neg_similarity_after: float | None = None
    fit_seconds: float | None = None
    post_seconds: float | None = None
    post_epochs: int | None = None
    best_epoch: int | None = None
    max_rss_mb: float | None = None


class EvalSeries(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    dataset: str
    name: str
    fold: str
    series: Any  # TimeSeries
    mined: str | None = None  # bank path


def eval_series(root: Path, fold: Fold, *, subset: str = "sample", datasets: Sequence[str] = DATASETS,
                mined_banks: Mapping[str, str] | None = None, bench_dir: Path | None = None) -> list[EvalSeries]:
    """The series of ``fold``; ``subset`` 'sample' keeps every 4th SMAP/MSL channel, 'ci' one series per dataset."""
    from anomalygraph.rulebank.timeanomalybench import generate, scenarios_in

    mined_banks = dict(mined_banks or {})
    rows: list[EvalSeries] = []
    for dataset in datasets:
        if dataset == "timeanomalybench":
            names = scenarios_in(fold)
            names = names[:1] if subset == "ci" else names
            for name in names:
                bank = bench_dir / "banks" / f"{name}_mined.yaml" if bench_dir is not None else None
                rows.append(EvalSeries(dataset=dataset, name=name, fold=fold, series=generate(name, seed=0).series,
                                       mined=str(bank) if bank is not None and bank.is_file() else None))
            continue
        found = fold_series(root, (fold,), (dataset,))
        if subset == "sample" and dataset == "smap_msl":
            found = found[::SAMPLE_EVERY]
        if subset == "ci":
            found = found[:1]
        rows += [EvalSeries(dataset=dataset, name=p.stem, fold=f, series=load_series(p), mined=mined_banks.get(dataset))
                 for _, p, f in found]
    return rows


def _accuracy(series: TimeSeries, scores: np.ndarray, threshold: float) -> tuple[float, float]:
    m = evaluate_scores(series, scores, threshold)
    return m.vus_pr, m.auc_pr


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _scored(model: Any, train: TimeSeries, series: TimeSeries, modes: Sequence[str]) -> dict[str, tuple[float, float] | str]:
    """VUS-PR and AUC-PR of ``model`` scored each way in ``modes`` (or why it could not be)."""
    out: dict[str, tuple[float, float] | str] = {}
    base = model.config
    for mode in modes:
        if mode != "backbone" and "score_with" not in type(base).model_fields:
            out[mode] = f"skipped: {model.name} has no score_with"
            continue
        if mode != "backbone":
            model.config = base.model_copy(update={"score_with": mode})
            model.calibrate(train.values)
        try:
            out[mode] = _accuracy(series, model.score(series), model.threshold_.value)
        finally:
            model.config = base
    return out


def evaluate_one(item: EvalSeries, backbone: str, variants: Sequence[str], config: APEConfig,
                 fit_settings: Mapping[str, Any] | None = None, on_row: Callable[[APERow], None] | None = None,
                 score_with: Sequence[str] = ("backbone",)) -> list[APERow]:
    """Fit ``backbone`` on the series' training rows once; one row per variant and scoring mode."""
    series: TimeSeries = item.series
    base = {"dataset": item.dataset, "series": item.name, "fold": item.fold, "backbone": backbone}
    rows: list[APERow] = []

    def emit(row: APERow) -> None:
        rows.append(row)
        if on_row is not None:
            on_row(row)

    if not has_labelled_events(series):
        for v in variants:
            emit(APERow(**base, variant=v, status="skipped: no labelled anomaly after the training split"))
        return rows
    train = series.train()
    settings = {**FIT_SETTINGS.get(backbone, {}), **(fit_settings or {})}
    try:
        fitted = create_detector(backbone, **settings).fit(train)
        before = _scored(fitted, train, series, score_with)
    except AnomalyGraphError as exc:
        for v in variants:
            emit(APERow(**base, variant=v, status=f"fit failed: {exc}"))
        return rows

    def emit_modes(results: Mapping[str, tuple[float, float] | str], **fields: Any) -> None:
        for mode, got in results.items():
            if isinstance(got, str):
                emit(APERow(**base, **fields, score_with=mode, status=got))
            else:
                emit(APERow(**base, **fields, score_with=mode, vus_pr=got[0], auc_pr=got[1]))

    for variant in variants:
        if variant == "none":
            emit_modes(before, variant=variant, fit_seconds=fitted.fit_seconds_, max_rss_mb=_rss_mb())
            continue
        spec = item.mined if variant == "mined" else "cutaddpaste" if variant == "rec_only" else variant
        if spec is None:
            emit(APERow(**base, variant=variant, status="skipped: no mined bank for this series"))
            continue
        pseudo = resolve_pseudo(spec)
        model = copy.deepcopy(fitted)
        started = time.perf_counter()
        try:
            run_config = config.model_copy(update={"weight": 0.0}) if variant == "rec_only" else config
            record = post_train_detector(model, train, pseudo, run_config)
        except AnomalyGraphError as exc:
            emit(APERow(**base, variant=variant, status=f"post-training failed: {exc}"))
            continue
        post_seconds = time.perf_counter() - started
        rep, record_bank = record.report, record.bank
        emit_modes(_scored(model, train, series, score_with), variant=variant,
                    bank=None if record_bank is None else f"{record_bank.name}@{record_bank.version}",
                    bank_sha256=None if record_bank is None else record_bank.sha256,
                    pseudo_auc_before=rep.before.pseudo_auc, pseudo_auc_after=rep.after.pseudo_auc,
                    neg_similarity_before=rep.before.negative_similarity, neg_similarity_after=rep.after.negative_similarity,
                    fit_seconds=fitted.fit_seconds_, post_seconds=post_seconds, post_epochs=rep.epochs_run,
                    best_epoch=rep.best_epoch, max_rss_mb=_rss_mb())
    return rows


def run_ape_eval(items: Sequence[EvalSeries], out_dir: Path, *, backbones: Sequence[str] = BACKBONES[:3],
                 variants: Sequence[str] = VARIANTS, config: APEConfig | None = None,
                 on_row: Callable[[APERow], None] | None = None,
                 score_with: Sequence[str] = ("backbone",)) -> list[APERow]:
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    unknown = [m for m in score_with if m not in SCORE_WITH]
    if unknown or not score_with:
        raise ConfigError(f"unknown or no scoring mode(s) {unknown}; known: {', '.join(SCORE_WITH)}")
    config = config or APEConfig()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps({"ape": config.model_dump(mode="json"), "fit": FIT_SETTINGS,
                                                     "backbones": list(backbones), "variants": list(variants),
                                                     "score_with": list(score_with)}, indent=2))
    path = out_dir / "rows.jsonl"
    rows: list[APERow] = []
    with path.open("a", encoding="utf-8") as sink:
        def record(row: APERow) -> None:
            sink.write(row.model_dump_json() + "\n")
            sink.flush()
            if on_row is not None:
                on_row(row)

        for item in items:
            for backbone in backbones:
                rows += evaluate_one(item, backbone, variants, config, on_row=record, score_with=score_with)
    (out_dir / "ape_eval.md").write_text(markdown(rows))
    return rows


def read_rows(path: Path) -> list[APERow]:
    return [APERow.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


def markdown(rows: Sequence[APERow]) -> str:
    """Mean VUS-PR (and AUC-PR) per dataset, backbone and variant; deltas against no post-training;
    mined against heuristic on the series where both ran."""
    ok = [r for r in rows if r.status == "ok"]
    lines = ["# APE post-training: before / after", "",
             "VUS-PR (AUC-PR) on the rows after each training split, mean over series; Δ against `none` on the same series.", ""]
    datasets = sorted({r.dataset for r in ok})
    backbones = list(dict.fromkeys(r.backbone for r in ok))
    variants = [v for v in VARIANTS if any(r.variant == v for r in ok)]
    modes = [m for m in SCORE_WITH if any(r.score_with == m for r in ok)]
    lines.append("| dataset | backbone | scored by | " + " | ".join(variants) + " |")
    lines.append("|---|---|---|" + "---|" * len(variants))
    by = {(r.dataset, r.series, r.backbone, r.variant, r.score_with): r for r in ok}
    for ds in datasets:
        for bb in backbones:
            for mode in modes:
                cells = []
                for v in variants:
                    got = [r for r in ok if r.dataset == ds and r.backbone == bb and r.variant == v and r.score_with == mode]
                    if not got:
                        cells.append("–")
                        continue
                    vus = np.mean([r.vus_pr for r in got])
                    auc = np.mean([r.auc_pr for r in got])
                    deltas = [r.vus_pr - by[(ds, r.series, bb, "none", mode)].vus_pr for r in got
                              if (ds, r.series, bb, "none", mode) in by and v != "none"]
                    delta = f" Δ{np.mean(deltas):+.3f}" if deltas else ""
                    cells.append(f"{vus:.3f} ({auc:.3f}){delta} n={len(got)}")
                if any(c != "–" for c in cells):
                    lines.append(f"| {ds} | {bb} | {mode} | " + " | ".join(cells) + " |")
    for mode in modes:
        pairs = [(by[k], by[(k[0], k[1], k[2], "cutaddpaste", mode)]) for k in by
                 if k[3] == "mined" and k[4] == mode and (k[0], k[1], k[2], "cutaddpaste", mode) in by]
        if pairs:
            wins = sum(m.vus_pr > h.vus_pr for m, h in pairs)
            ties = sum(m.vus_pr == h.vus_pr for m, h in pairs)
            diff = np.mean([m.vus_pr - h.vus_pr for m, h in pairs])
            lines += ["", f"**Mined vs heuristic (CutAddPaste)**, scored by {mode}, same series and backbone: mined higher "
                      f"in {wins} of {len(pairs)} pairs ({ties} ties), mean VUS-PR difference {diff:+.3f}."]
    if len(modes) > 1 and "backbone" in modes:
        lines += ["", "**Scoring modes against the backbone's own score**, same series, backbone and variant "
                  "(mean VUS-PR difference; wins of n):", ""]
        for mode in modes:
            if mode == "backbone":
                continue
            for bb in backbones:
                diffs = [r.vus_pr - by[(r.dataset, r.series, bb, r.variant, "backbone")].vus_pr for r in ok
                         if r.backbone == bb and r.score_with == mode and (r.dataset, r.series, bb, r.variant, "backbone") in by]
                if diffs:
                    lines.append(f"- {mode}, {bb}: {np.mean(diffs):+.3f} ({sum(d > 0 for d in diffs)} of {len(diffs)})")
    post = [r for r in ok if r.post_seconds is not None and r.score_with == "backbone"]
    if post:
        lines += ["", "| backbone | fit s (mean) | post-train s (mean) | epochs (mean) | pseudo-AUC before → after | max RSS MB |",
                  "|---|---|---|---|---|---|"]
        for bb in backbones:
            got = [r for r in post if r.backbone == bb]
            if got:
                lines.append(f"| {bb} | {np.mean([r.fit_seconds or 0 for r in got]):.1f} | {np.mean([r.post_seconds for r in got]):.1f} | "
                             f"{np.mean([r.post_epochs for r in got]):.1f} | {np.mean([r.pseudo_auc_before for r in got]):.3f} → "
                             f"{np.mean([r.pseudo_auc_after for r in got]):.3f} | {max(r.max_rss_mb or 0 for r in got):.0f} |")
    lines += ["", "## Per series", "", "| dataset | series | backbone | variant | scored by | bank | VUS-PR | AUC-PR | status |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        vus = "–" if r.vus_pr is None else f"{r.vus_pr:.3f}"
        auc = "–" if r.auc_pr is None else f"{r.auc_pr:.3f}"
        lines.append(f"| {r.dataset} | {r.series} | {r.backbone} | {r.variant} | {r.score_with} | {r.bank or ''} | {vus} | {auc} "
                     f"| {r.status} |")
    return "\n".join(lines) + "\n"


__all__ = ["BACKBONES", "SCORE_WITH", "VARIANTS", "APERow", "EvalSeries", "eval_series", "markdown", "read_rows", "run_ape_eval"]
