"""CALM on real series: the static forecaster against CALM with each judge, the batch size N, epochs and noise.

Every run replays one series, univariate (a multichannel file's first channel, as TSB-AD's
univariate baselines do), through :class:`~anomalygraph.streaming.engine.CalmLoop`, the loop the Beam
pipeline runs per key, in event-time order. The warm-up is the series' training rows when its format
has a split, else NAB's probationary 15 %; every later point is scored, and ROC AUC (the paper's
metric), VUS-PR and AUC-PR are measured on those points for every variant alike. Nothing here is
tuned: CALM's settings are the paper's (k 1.5, N 10, one epoch), the rule judge's are fixed a priori.

"static" is the same loop with fine-tuning off, which is the paper's "Orig" column. Coverage of the
[q20, q80] interval on the first and last quarter of the scored points shows whether fine-tunes make
the intervals collapse (the paper's failure signature).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from anomalygraph.agents.judge import JudgeContext, build_context
from anomalygraph.core.errors import ConfigError
from anomalygraph.data.series import TimeSeries
from anomalygraph.detectors.calm import get_forecaster_class, interval_coverage, interval_width
from anomalygraph.metrics.evaluate import evaluate_scores
from anomalygraph.streaming.config import StreamConfig
from anomalygraph.streaming.engine import CalmLoop, KeyState
from anomalygraph.streaming.pipeline import make_judge
from anomalygraph.streaming.records import JudgmentRecord, ModelEvent, Point, ScoredPoint
from anomalygraph.streaming.replay import event_seconds
from anomalygraph.streaming.store import ModelStore

NEVER = None  # the batch size that turns fine-tuning off
VARIANTS: dict[str, dict[str, Any]] = {
    "static": {"judge": "rule", "batch_size": NEVER},
    "rule": {"judge": "rule"},
    "keep_all": {"judge": "keep_all"},
    "llm": {"judge": "llm"},
    "rule_n1": {"judge": "rule", "batch_size": 1},
    "rule_n50": {"judge": "rule", "batch_size": 50},
    "rule_e3": {"judge": "rule", "epochs": 3},
    "rule_noise": {"judge": "rule", "noise_level": 0.1},
    "rule_e3_noise": {"judge": "rule", "epochs": 3, "noise_level": 0.1},
}
DEFAULT_VARIANTS = ("static", "rule", "keep_all", "rule_n1", "rule_n50", "rule_e3", "rule_noise", "rule_e3_noise")
PROBATION = 0.15


class CalmRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str
    series: str
    variant: str
    status: str = "ok"
    judge: str = ""
    batch_size: int | None = None
    epochs: int = 1
    noise_level: float = 0.0
    points: int = 0
    scored: int = 0
    flagged: int = 0
    keep: int = 0
    remove: int = 0
    fallbacks: int = 0
    finetunes: int = 0
    roc_auc: float | None = None
    vus_pr: float | None = None
    auc_pr: float | None = None
    coverage_first: float | None = None
    coverage_last: float | None = None
    width_first: float | None = None
    width_last: float | None = None
    seconds: float = 0.0


def warmup_of(series: TimeSeries, minimum: int = 300) -> int:
    rows = series.train_end if series.train_end else round(PROBATION * series.length)
    return max(minimum, int(rows))


def univariate_points(series: TimeSeries, key: str) -> list[Point]:
    seconds = event_seconds(series)
    labels = series.labels if series.labels is not None else np.zeros(series.length, dtype=int)
    return [Point(key=key, timestamp=float(t), value=float(v), label=int(y))
            for t, v, y in zip(seconds, series.values[:, 0].astype(np.float64), labels, strict=True)]


def run_variant(points: Sequence[Point], config: StreamConfig, judge: Any, store_dir: Path
                ) -> tuple[list[ScoredPoint], list[JudgmentRecord], list[ModelEvent], dict[str, int], float]:
    loop = CalmLoop(config, ModelStore(store_dir), judge)
    state, key = KeyState(), points[0].key
    scored: list[ScoredPoint] = []
    judged: list[JudgmentRecord] = []
    models: list[ModelEvent] = []
    started = time.perf_counter()

    def take(outputs: Any) -> None:
        for o in outputs:
            if isinstance(o, ScoredPoint):
                scored.append(o)
            elif isinstance(o, JudgmentRecord):
                judged.append(o)
            elif isinstance(o, ModelEvent):
                models.append(o)

    for p in points:  # in order, so releasing once at the end scores exactly as releasing each point would
        take(loop.add(state, p))
    take(loop.finish(state, key))
    return scored, judged, models, state.counts, time.perf_counter() - started


def _coverage(points: Sequence[ScoredPoint], levels: Sequence[float]) -> tuple[float, float]:
    lo, hi = list(levels).index(min(levels)), list(levels).index(max(levels))
    actual = np.array([p.value for p in points])
    q = np.array([p.quantiles for p in points])
    return interval_coverage(actual, q[:, lo], q[:, hi]), interval_width(q[:, lo], q[:, hi])


def evaluate_series(dataset: str, name: str, series: TimeSeries, variants: Sequence[str], base: StreamConfig,
                    judges: Mapping[str, Any], on_row: Callable[[CalmRow], None] | None = None) -> list[CalmRow]:
    """Every variant on one series; the same points, warm-up and scored rows for all."""
    points = univariate_points(series, name)
    # the series' own warm-up (its training split or NAB's probation), never less than a warm-up the
    # user set (`--set warmup=600`: a forecaster such as TTM needs its context plus a few windows)
    warm = max(warmup_of(series), base.warmup if "warmup" in base.model_fields_set else 0)
    rows: list[CalmRow] = []
    for variant in variants:
        settings = {**VARIANTS[variant]}
        judge_kind = settings.pop("judge")
        config = base.model_copy(update={"warmup": warm, "judge": judge_kind, **settings})
        row = CalmRow(dataset=dataset, series=name, variant=variant, judge=judge_kind, batch_size=config.batch_size,
                      epochs=config.epochs, noise_level=config.noise_level, points=len(points))
        with tempfile.TemporaryDirectory(prefix="calm-eval-") as tmp:
            scored, judged, _, counts, seconds = run_variant(points, config, judges[judge_kind], Path(tmp))
        evaluated = [p for p in scored if p.score is not None and not p.filled]
        row.seconds, row.scored, row.flagged = seconds, len(evaluated), counts["flagged"]
        row.keep, row.remove, row.finetunes = counts["KEEP"], counts["REMOVE"], counts["finetunes"]
        row.fallbacks = sum(j.source == "fallback" for j in judged)
        labels = np.array([p.label or 0 for p in evaluated])
        if not labels.any():
            row.status = "skipped: no labelled anomaly after the warm-up"
        else:
            test = TimeSeries(np.array([p.value for p in evaluated]), labels=labels, name=name)
            metrics = evaluate_scores(test, np.array([p.score for p in evaluated]), threshold=0.0)
            row.roc_auc, row.vus_pr, row.auc_pr = metrics.auc_roc, metrics.vus_pr, metrics.auc_pr
        quarter = max(1, len(evaluated) // 4)
        levels = base_levels(base)
        row.coverage_first, row.width_first = _coverage(evaluated[:quarter], levels)
        row.coverage_last, row.width_last = _coverage(evaluated[-quarter:], levels)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def flag_contexts(scored: Sequence[ScoredPoint], neighbours: int, limit: int, seed: int = 0) -> list[JudgeContext]:
    """Judge contexts of up to ``limit`` flagged points (evenly chosen) that have ``neighbours`` points after them."""
    values = np.array([p.value for p in scored])
    flagged = [i for i, p in enumerate(scored) if p.flagged and neighbours <= i < len(scored) - neighbours]
    if len(flagged) > limit:
        flagged = [flagged[int(j)] for j in np.linspace(0, len(flagged) - 1, limit).round()]
    out = []
    for i in flagged:
        p = scored[i]
        lo, hi = i - neighbours, i + neighbours + 1
        stamps = [str(q.timestamp) for q in scored[lo:hi]]
        out.append(build_context(f"{p.key}@{p.timestamp:.6f}", p.key, stamps, values[lo:hi], neighbours,
                                 float(np.median(p.quantiles or [p.value])), float(p.lower), float(p.upper),
                                 neighbours=neighbours))
    return out


def base_levels(config: StreamConfig) -> tuple[float, ...]:
    """The forecaster's quantile levels, read from its configuration (no model is built)."""
    return get_forecaster_class(config.forecaster).config_class(**config.forecaster_config).quantiles


def run_calm_eval(items: Sequence[tuple[str, str, TimeSeries]], out_dir: Path, *, variants: Sequence[str] = DEFAULT_VARIANTS,
                  base: StreamConfig | None = None, judges: Mapping[str, Any] | None = None,
                  on_row: Callable[[CalmRow], None] | None = None) -> list[CalmRow]:
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown CALM variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    base = base or StreamConfig()
    if judges is None:
        judges = {kind: make_judge(kind) for kind in {VARIANTS[v]["judge"] for v in variants}}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps({"base": base.model_dump(mode="json"), "variants": list(variants)},
                                                    indent=2))
    rows: list[CalmRow] = []
    with (out_dir / "rows.jsonl").open("a", encoding="utf-8") as sink:
        def record(row: CalmRow) -> None:
            sink.write(row.model_dump_json() + "\n")
            sink.flush()
            if on_row is not None:
                on_row(row)

        for dataset, name, series in items:
            rows += evaluate_series(dataset, name, series, variants, base, judges, on_row=record)
    (out_dir / "calm_eval.md").write_text(markdown(rows))
    return rows


def markdown(rows: Sequence[CalmRow]) -> str:
    ok = [r for r in rows if r.status == "ok"]
    variants = [v for v in VARIANTS if any(r.variant == v for r in ok)]
    lines = ["# CALM: static forecaster vs CALM", "",
             "Mean over series of ROC AUC (the paper's metric), VUS-PR and AUC-PR on the points after each warm-up; "
             "Δ ROC AUC against `static` on the same series; judge counts and fine-tunes summed; [q20, q80] coverage "
             "on the first → last quarter of the scored points, and the median over series of the interval's width on the last "
             "quarter over the first (1: unchanged; below 1: narrower, the paper's quantile collapse).", "",
             "| variant | judge | N | epochs | noise | n | ROC AUC | Δ vs static | VUS-PR | AUC-PR | flagged | KEEP | "
             "REMOVE | fallbacks | fine-tunes | coverage first → last | width last / first | points/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    static = {(r.dataset, r.series): r for r in ok if r.variant == "static"}
    for v in variants:
        got = [r for r in ok if r.variant == v]
        deltas = [r.roc_auc - static[(r.dataset, r.series)].roc_auc for r in got  # type: ignore[operator]
                  if (r.dataset, r.series) in static and v != "static"]
        first = got[0]
        n = "off" if first.batch_size is None else str(first.batch_size)
        pps = sum(r.points for r in got) / max(sum(r.seconds for r in got), 1e-9)
        lines.append(
            f"| {v} | {first.judge} | {n} | {first.epochs} | {first.noise_level:g} | {len(got)} | "
            f"{np.mean([r.roc_auc for r in got]):.3f} | {f'{np.mean(deltas):+.3f} ({sum(d > 0 for d in deltas)} of {len(deltas)} up)' if deltas else '–'} | "
            f"{np.mean([r.vus_pr for r in got]):.3f} | {np.mean([r.auc_pr for r in got]):.3f} | {sum(r.flagged for r in got)} | "
            f"{sum(r.keep for r in got)} | {sum(r.remove for r in got)} | {sum(r.fallbacks for r in got)} | "
            f"{sum(r.finetunes for r in got)} | {np.mean([r.coverage_first for r in got]):.2f} → "
            f"{np.mean([r.coverage_last for r in got]):.2f} | "
            f"{np.median([r.width_last / r.width_first for r in got if r.width_first]):.2f} | {pps:,.0f} |")
    lines += ["", "## Per series", "", "| dataset | series | variant | ROC AUC | VUS-PR | flagged | KEEP | REMOVE | "
              "fine-tunes | status |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.dataset} | {r.series} | {r.variant} | {_f3(r.roc_auc)} | {_f3(r.vus_pr)} | {r.flagged} | "
                     f"{r.keep} | {r.remove} | {r.finetunes} | {r.status} |")
    return "\n".join(lines) + "\n"


def _f3(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def read_rows(path: Path) -> list[CalmRow]:
    return [CalmRow.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["DEFAULT_VARIANTS", "VARIANTS", "CalmRow", "evaluate_series", "flag_contexts", "markdown", "read_rows", "run_calm_eval",
           "univariate_points", "warmup_of"]
