"""Which score track should the diagnosis graph trust? Selection strategies measured on held-out folds.

For every labelled series of a fold (:mod:`anomalygraph.evals.folds`) each shipped CPU detector
is run once per view (:mod:`anomalygraph.detectors.candidates`), synthetic anomalies are planted
in the fit rows and scored by the same fitted models, and every selection strategy
(:mod:`anomalygraph.detectors.selection`) picks a track without labels. Each track is then
scored on the evaluated rows: VUS-PR (headline), AUC-PR, and range / event F1 at its own
threshold (a percentile of its fit-row scores). Beside the strategies stand the best fixed
candidate *in hindsight on that fold* (the strong baseline TSB-AutoAD says selectors rarely
beat) and the per-series oracle. Tracks are cached per series and detector, so a rerun only
computes what changed. Writes ``diagnosis_eval.md`` and ``diagnosis_eval.json``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.core.errors import ConfigError
from anomalygraph.core.tables import md_row, table_lines
from anomalygraph.data.channels import channel_roles, describe_roles, scored_channels
from anomalygraph.data.loaders import load_series
from anomalygraph.data.series import TimeSeries
from anomalygraph.detectors import candidates as candidates_module
from anomalygraph.detectors import create_detector, get_detector_class
from anomalygraph.detectors.candidates import fit_slice, pool_detectors, run_candidates
from anomalygraph.detectors.selection import (
    DEFAULT_STRATEGY,
    MODEL_STRATEGY,
    STRATEGIES,
    CandidateSurrogates,
    InjectedRows,
    select,
    surrogate_table,
)
from anomalygraph.evals.agents.tables import write_eval
from anomalygraph.evals.folds import Fold
from anomalygraph.metrics.evaluate import evaluate_scores, has_labelled_events, vus_window
from anomalygraph.rulebank.injection import inject, load_injection, save_injection

METRICS = ("vus_pr", "auc_pr", "range_f1", "event_f1")
CACHE_VERSION = "2"
ORACLE = "oracle (best candidate per series)"


class Scores(BaseModel):
    """Accuracy of one score track on the evaluated rows."""

    model_config = ConfigDict(extra="forbid")

    vus_pr: float
    auc_pr: float
    range_f1: float
    event_f1: float

    @classmethod
    def of(cls, summary: dict[str, float]) -> Scores:
        return cls(**{key: float(summary[key]) for key in METRICS})


class StrategyResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chosen: list[str]
    scores: Scores


class SeriesResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str
    series: str
    fold: Fold
    status: str
    roles: str = ""
    candidates: dict[str, Scores] = Field(default_factory=dict)
    errors: dict[str, str] = Field(default_factory=dict)
    surrogates: dict[str, CandidateSurrogates] = Field(default_factory=dict)
    strategies: dict[str, StrategyResult] = Field(default_factory=dict)
    seconds: float = 0.0

    @property
    def oracle(self) -> str | None:
        return max(self.candidates, key=lambda n: self.candidates[n].vus_pr) if self.candidates else None


class SelectionEval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    created_at: datetime
    detectors: list[str]
    default_strategy: str
    rows: list[SeriesResult]


def _cache_key(detector: str) -> str:
    """Changes whenever the detector's defaults or code, or the candidate views' code, change: a stale cache is never reused."""
    cls = get_detector_class(detector)
    text = (CACHE_VERSION + create_detector(detector).config.model_dump_json() + inspect.getsource(inspect.getmodule(cls))
            + inspect.getsource(candidates_module))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _injection(series: TimeSeries, cache: Path) -> InjectedRows | None:
    path = cache / "injection.npz"
    if path.is_file():
        return load_injection(path)
    injected = inject(series.unlabelled(), scored_channels(series), seed=0)
    save_injection(path, injected)
    return injected


def detector_tracks(series: TimeSeries, detector: str, cache: Path, injected: InjectedRows | None
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, str], dict[str, str]]:
    """``(scores, injected scores, errors, aliases)`` per candidate of one detector, from the cache when current."""
    path = cache / f"{detector}.npz"
    key = _cache_key(detector)
    if path.is_file():
        data = np.load(path, allow_pickle=False)
        if str(data["key"]) == key:
            meta = json.loads(str(data["meta"]))
            return ({n: data[f"s::{n}"] for n in meta["names"]}, {n: data[f"i::{n}"] for n in meta["injected"]},
                    meta["errors"], meta["aliases"])
    run = run_candidates(series, detector, injected.values if injected is not None else None)
    scores = {n: v.astype(np.float32) for n, v in run.scores.items()}
    inj = {n: v.astype(np.float32) for n, v in run.injected.items()}
    errors = run.errors
    cache.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"names": list(scores), "injected": list(inj), "errors": errors, "aliases": run.aliases})
    np.savez(path, key=key, meta=meta, **{f"s::{n}": v for n, v in scores.items()}, **{f"i::{n}": v for n, v in inj.items()})
    return scores, inj, errors, run.aliases


def evaluate_series(dataset: str, path: Path, fold: Fold, cache: Path, detectors: Sequence[str],
                    strategies: Sequence[str], model: object | None = None) -> SeriesResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant-channel notices; the roles column says the same
        series = load_series(path)
    base = {"dataset": dataset, "series": series.name, "fold": fold}
    if not has_labelled_events(series):
        return SeriesResult(**base, status="skipped: no labelled anomaly in the evaluated rows")
    started = time.perf_counter()
    injected = _injection(series, cache)
    scores: dict[str, np.ndarray] = {}
    inj: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for detector in detectors:
        s, i, e, a = detector_tracks(series, detector, cache, injected)
        scores |= s
        inj |= i
        errors |= e
        aliases |= a
    rows = fit_slice(series)
    window = vus_window(series)
    table = surrogate_table(scores, inj, injected, window=injected.window if injected is not None else 1, aliases=aliases)

    def measured(track: np.ndarray, threshold: float) -> Scores:
        return Scores.of(evaluate_scores(series, track, threshold, window).summary())

    candidates = {n: measured(s, float(np.quantile(s[rows], 0.99))) for n, s in scores.items()}
    results = {}
    for strategy in strategies:
        applied = strategy
        if strategy == MODEL_STRATEGY:
            applied = _model_choice(model, series, table, aliases)
        track, chosen = select(applied, scores, fit_rows=rows, surrogates=table, aliases=aliases)
        picked = chosen.chosen if applied == strategy else [f"{applied} -> {', '.join(chosen.chosen)}"]
        results[strategy] = StrategyResult(chosen=picked, scores=measured(track, chosen.threshold.value))
    return SeriesResult(**base, status="ok", roles=describe_roles(channel_roles(series)), candidates=candidates,
                        errors=errors, surrogates=table, strategies=results,
                        seconds=round(time.perf_counter() - started, 1))


def _model_choice(model: object | None, series: TimeSeries, table: dict[str, CandidateSurrogates],
                  aliases: dict[str, str]) -> str:
    """The strategy the model picks for this series (the default when it answers nothing usable)."""
    from anomalygraph.agents.track_chooser import choose_track

    if model is None:
        raise ConfigError("selection 'llm' needs a language model")
    shown = {n: s for n, s in table.items() if n not in aliases}
    profile = f"{series.name}, {series.length} rows x {series.n_channels} channels, training split: {series.train_end or 'none'}"
    return choose_track(model, profile=profile, roles=describe_roles(channel_roles(series)), surrogates=shown,
                        candidates=list(shown), default=DEFAULT_STRATEGY).strategy


def run_selection_eval(
    series: Sequence[tuple[str, Path, Fold]], out_dir: Path, *, detectors: Sequence[str] | None = None,
    strategies: Sequence[str] = STRATEGIES, on_row: Callable[[SeriesResult], None] | None = None,
    model: object | None = None,
) -> SelectionEval:
    detectors = list(detectors or pool_detectors())
    rows = []
    for dataset, path, fold in series:
        row = evaluate_series(dataset, path, fold, out_dir / "cache" / f"{dataset}__{path.stem}", detectors, strategies, model)
        rows.append(row)
        if on_row:
            on_row(row)
    report = SelectionEval(created_at=datetime.now(UTC).replace(microsecond=0), detectors=detectors,
                           default_strategy=DEFAULT_STRATEGY, rows=rows)
    write_eval(report, markdown_table(report), out_dir, "diagnosis_eval")
    return report


# ------------------------------------------------------------------ tables
def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def track_scores(rows: Sequence[SeriesResult]) -> dict[str, list[tuple[SeriesResult, Scores]]]:
    """Per track (strategy, fixed candidate, oracle): its scores on each scored series."""
    scored = [r for r in rows if r.status == "ok"]
    tracks: dict[str, list[tuple[SeriesResult, Scores]]] = {}
    for r in scored:
        for name, result in r.strategies.items():
            tracks.setdefault(name, []).append((r, result.scores))
        if r.oracle:
            tracks.setdefault(ORACLE, []).append((r, r.candidates[r.oracle]))
    everywhere = set.intersection(*(set(r.candidates) for r in scored)) if scored else set()
    for name in sorted(everywhere):
        tracks[f"fixed:{name}"] = [(r, r.candidates[name]) for r in scored]
    return tracks


def summary(rows: Sequence[SeriesResult]) -> dict[str, dict[str, float]]:
    """Mean of each metric, median VUS-PR and per-dataset mean VUS-PR of every track."""
    out = {}
    datasets = sorted({r.dataset for r in rows if r.status == "ok"})
    for name, pairs in track_scores(rows).items():
        values = {m: float(np.mean([getattr(s, m) for _, s in pairs])) for m in METRICS}
        values["median_vus_pr"] = float(np.median([s.vus_pr for _, s in pairs]))
        for ds in datasets:
            mine = [s.vus_pr for r, s in pairs if r.dataset == ds]
            if mine:
                values[f"vus_pr:{ds}"] = float(np.mean(mine))
        values["n"] = len(pairs)
        out[name] = values
    return out


def verdict(table: dict[str, dict[str, float]], strategy: str) -> str:
    """Does ``strategy`` beat the best fixed candidate by 0.03 VUS-PR and close half the gap to the oracle?"""
    fixed = {n: v for n, v in table.items() if n.startswith("fixed:")}
    if strategy not in table or not fixed or ORACLE not in table:
        return ""
    best = max(fixed, key=lambda n: fixed[n]["vus_pr"])
    mine, base, oracle = table[strategy]["vus_pr"], fixed[best]["vus_pr"], table[ORACLE]["vus_pr"]
    gap = oracle - base
    closed = (mine - base) / gap if gap > 0 else 0.0
    met = mine - base >= 0.03 and closed >= 0.5
    return (f"`{strategy}` {mine:.3f} vs the best fixed candidate in hindsight `{best.removeprefix('fixed:')}` {base:.3f} "
            f"({mine - base:+.3f}); oracle {oracle:.3f}, so it closes {closed:.0%} of the gap. "
            + ("Goal met (+0.03 and half the gap)." if met else "Goal not met (+0.03 and half the gap)."))


def fold_table(rows: Sequence[SeriesResult], fold: Fold, *, limit_fixed: int = 8) -> list[str]:
    mine = [r for r in rows if r.fold == fold]
    table = summary(mine)
    if not table:
        return [f"No scored series in the {fold} fold."]
    datasets = sorted({r.dataset for r in mine if r.status == "ok"})
    head = ["track", "n", "mean VUS-PR", "median VUS-PR", "AUC-PR", "range F1", "event F1", *(f"VUS-PR {d}" for d in datasets)]
    strategies = [n for n in table if not n.startswith("fixed:") and n != ORACLE]
    fixed = sorted((n for n in table if n.startswith("fixed:")), key=lambda n: -table[n]["vus_pr"])
    lines = table_lines(head)
    for name in [*strategies, *fixed[:limit_fixed], ORACLE]:
        v = table[name]
        label = name + (" (default)" if name == DEFAULT_STRATEGY else "")
        lines.append(md_row([label, int(v["n"]), _f(v["vus_pr"]), _f(v["median_vus_pr"]), _f(v["auc_pr"]), _f(v["range_f1"]),
                             _f(v["event_f1"]), *(_f(v.get(f"vus_pr:{d}")) for d in datasets)]))
    if len(fixed) > limit_fixed:
        lines.append(f"\n({len(fixed) - limit_fixed} more fixed candidates in the JSON.)")
    lines += ["", *(f"- {verdict(table, s)}" for s in strategies if verdict(table, s))]
    return lines


def markdown_table(report: SelectionEval) -> str:
    lines = [
        f"# Diagnosis selection eval, {report.created_at:%Y-%m-%d %H:%M} UTC",
        "",
        f"Detectors: {', '.join(report.detectors)}; candidates are each detector jointly and per scored channel "
        "(`@channels`: max of per-channel robust z; `@channels_top3`: mean of the top three). Strategies choose without "
        "labels; `fixed:` rows are single candidates, sorted by mean VUS-PR *in hindsight on that fold*; the oracle takes "
        "the best candidate per series with the labels. F1s at each track's own threshold (99th percentile of its "
        f"fit-row scores). Default strategy: `{report.default_strategy}`.",
        "",
    ]
    for fold in ("validate", "tune"):
        lines += [f"## {fold}" + (" (headline)" if fold == "validate" else " (what the choices were fitted on)"), "",
                  *fold_table(report.rows, fold), ""]
    lines += ["## Per series", "", *table_lines(["series", "fold", "status", "roles", "oracle", "its VUS-PR",
                                                 *(f"{s}" for s in (*STRATEGIES, MODEL_STRATEGY) if any(s in r.strategies for r in report.rows))])]
    shown = [s for s in (*STRATEGIES, MODEL_STRATEGY) if any(s in r.strategies for r in report.rows)]
    for r in report.rows:
        if r.status != "ok":
            lines.append(md_row([f"{r.dataset}/{r.series}", r.fold, r.status, "", "", "", *[""] * len(shown)]))
            continue
        cells = [f"{r.strategies[s].scores.vus_pr:.3f} ({', '.join(r.strategies[s].chosen)[:40]})" if s in r.strategies else "-"
                 for s in shown]
        lines.append(md_row([f"{r.dataset}/{r.series}", r.fold, r.status, r.roles, r.oracle,
                             _f(r.candidates[r.oracle].vus_pr) if r.oracle else "-", *cells]))
    return "\n".join(lines) + "\n"
