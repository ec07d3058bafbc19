"""The pretraining corpus of the F2A forecasting backbone: windows with pseudo-anomaly labels.

Three sources, all univariate windows of ``window + horizon`` rows (context, then the steps the
model forecasts):

* ``kernelsynth``: Chronos's synthetic GP series (:mod:`anomalygraph.data.kernelsynth`);
* ``nab/<name>``, ``smap_msl/<name>``: the *training split* of the real series, each value
  channel on its own (command flags are inputs, not measurements). Rows at or after
  ``train_end`` are never used, labels never read; NAB files, which have no split, give their
  probationary period (the first 15 %, :data:`NAB_PROBATIONARY`); any series named in
  ``exclude`` is left out, so a zero-shot evaluation can hold series out;
* ``bench/<scenario>``: TimeAnomalyBench's *tune* scenarios, whole, with their injected
  anomalies as labels on the channels they touch (synthetic ground truth); the validate
  scenarios stay unseen.

Labels are **pseudo-labels**: no real anomaly label goes in. A seeded ``anomaly_fraction`` of the
windows without a bench anomaly gets one anomaly planted with the rule-bank operators and the
``generic`` bank, a ``horizon_share`` of them starting inside the horizon so the model learns
to forecast an anomaly before it has seen it begin. :func:`~anomalygraph.rulebank.injection.inject`
(the selection surrogate's planting) places several events a window apart and chooses where;
one event per window at a chosen position needs the operators directly. An anomaly must change
its window by at least ``min_effect`` local robust scales, else it is redrawn and, failing
that, left out: a label where nothing shows would only teach noise. The default is 1,
TimeAnomalyBench's own floor; ``inject``'s 3 (``MIN_EFFECT``) would keep little but spikes,
shifts and drifts (most flatlines, time warps and contextual swaps stay under 3 scales).

Values stay raw (the model scales each window itself); constant windows are dropped.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anomalygraph.core.errors import ConfigError, DataWarning, validation_problems
from anomalygraph.core.settings import get_settings
from anomalygraph.core.stats import robust_scale
from anomalygraph.data.channels import SCORED_ROLES, channel_roles, scored_channels
from anomalygraph.data.datasets import dataset_files
from anomalygraph.data.kernelsynth import describe_kernels, kernelsynth_samples
from anomalygraph.data.loaders import load_series
from anomalygraph.data.periods import estimate_period
from anomalygraph.data.series import TimeSeries
from anomalygraph.data.windows import window_starts
from anomalygraph.rulebank.injection import KIND_OF
from anomalygraph.rulebank.operators import apply_with_effect, get_operator
from anomalygraph.rulebank.schema import Rule
from anomalygraph.rulebank.store import load_bank
from anomalygraph.rulebank.timeanomalybench import SCENARIOS, generate, scenarios_in

CORPUS_FORMAT = "anomalygraph-corpus/1"
REAL_DATASETS: tuple[str, ...] = ("nab", "smap_msl")
BENCH_SPLIT = "tune"
NAB_PROBATIONARY = 0.15
"""NAB files have no training split; their first 15 % is NAB's own probationary period (rows its scorer
ignores, where a detector is meant to learn), so that is what the corpus reads of them."""
EVENT_SHARE = 0.25
"""Durations a bank gives as window shares refer to this share of the context: one local event, not half the window."""
MAX_REDRAWS = 5
"""Redraws (new position, length, parameters) of a planted anomaly below ``min_effect`` before it is left out."""


class CorpusConfig(BaseModel):
    """What goes into the corpus; with the seed it fixes the corpus byte for byte."""

    model_config = ConfigDict(extra="forbid")

    window: int = Field(512, ge=16, le=100_000, description="context rows the model reads")
    horizon: int = Field(16, ge=1, le=10_000, description="rows it forecasts after the context")
    stride: int | None = Field(None, ge=1, description="step between window starts; default window // 2")
    n_synthetic: int = Field(2000, ge=0, le=10_000_000, description="KernelSynth series")
    synthetic_length: int = Field(1024, ge=16, le=100_000, description="length of each KernelSynth series")
    max_kernels: int = Field(5, ge=1, le=20, description="KernelSynth: most kernels combined in one series")
    include_real: bool = Field(True, description="the training splits of NAB and SMAP/MSL")
    include_bench: bool = Field(True, description="TimeAnomalyBench's tune scenarios")
    anomaly_fraction: float = Field(0.5, ge=0, le=1, description="share of windows without a bench anomaly that get a planted one")
    horizon_share: float = Field(0.5, ge=0, le=1, description="share of planted anomalies that start inside the horizon")
    min_effect: float = Field(1.0, ge=0, le=100, description="smallest planted change, in local robust scales")
    bank: str = Field("generic", description="rule bank the pseudo-anomalies are drawn from")
    seed: int = Field(0, ge=0)
    data_root: Path | None = Field(None, description="folder with NAB/ and SMAP_MSL/; default: the settings' benchmark root")

    @property
    def total(self) -> int:
        """Rows per window: context plus horizon."""
        return self.window + self.horizon

    @property
    def step(self) -> int:
        return self.stride or max(1, self.window // 2)


@dataclass
class PlantedAnomalies:
    """Windows after planting, with where each planted anomaly is."""

    values: np.ndarray  # [N, W] float32
    labels: np.ndarray  # [N, W] int8, 1 = planted row
    rule: np.ndarray  # [N] str, the rule planted in the window, "" none
    start: np.ndarray  # [N] int64, its first row in the window, -1 none
    dropped: dict[str, int] = field(default_factory=dict)  # rule -> anomalies left out (below min_effect)


@dataclass
class Corpus:
    """Univariate windows ``[N, window + horizon]`` with pseudo-labels and where each came from."""

    values: np.ndarray  # [N, W] float32, raw (unscaled)
    labels: np.ndarray  # [N, W] int8, 1 = pseudo-anomaly row (planted, or a TimeAnomalyBench injection)
    source: np.ndarray  # [N] str: "kernelsynth", "nab/<name>", "smap_msl/<name>", "bench/<scenario>"
    channel: np.ndarray  # [N] str, the channel of a multichannel source ("value" for univariate ones)
    anomaly: np.ndarray  # [N] str: "" none, "planted:<rule>" or "bench:<rule>[,<rule>]"
    anomaly_start: np.ndarray  # [N] int64, first labelled row of the window, -1 none
    config: CorpusConfig
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.values)

    def manifest(self) -> dict[str, Any]:
        """Counts, configuration and SHA-256 of the arrays: what a model card says went in (JSON-able)."""
        c = self.config
        dataset = np.array([s.split("/", 1)[0] for s in self.source], dtype=object)
        kinds = np.array([a.split(":", 1)[0] for a in self.anomaly], dtype=object)
        planted = kinds == "planted"
        rules = Counter(a.split(":", 1)[1] for a in self.anomaly[planted])
        in_horizon = planted & (self.anomaly_start >= c.window)
        return {
            "format": CORPUS_FORMAT,
            "labels": "pseudo-labels: anomalies planted with the rule-bank operators, plus TimeAnomalyBench's "
                      "synthetic injections; no real anomaly label is used",
            "config": c.model_dump(mode="json"),
            "data_root": self.info.get("data_root"),
            "shape": list(self.values.shape),
            "n_windows": len(self),
            "windows_per_dataset": _counts(dataset),
            "windows_per_source": _counts(self.source),
            "series_per_dataset": self.info.get("series_per_dataset", {}),
            "anomalous_windows": {"planted": int(planted.sum()), "bench": int((kinds == "bench").sum()),
                                  "none": int((kinds == "").sum())},
            "planted_by_rule": dict(sorted(rules.items())),
            "planted_by_kind": _kinds(rules, self.info.get("rule_operators", {})),
            "planted_start": {"context": int((planted & ~in_horizon).sum()), "horizon": int(in_horizon.sum())},
            "planted_left_out": self.info.get("planted_left_out", {}),
            "labelled_rows": int(self.labels.sum()),
            "labelled_horizon_rows": int(self.labels[:, c.window :].sum()),
            "label_rate": float(self.labels.mean()) if self.labels.size else 0.0,
            "dropped_constant_windows": self.info.get("dropped_constant", {}),
            "skipped": self.info.get("skipped", []),
            "excluded": self.info.get("excluded", []),
            "bench": {"split": BENCH_SPLIT, "scenarios": self.info.get("bench_scenarios", [])},
            "kernelsynth": self.info.get("kernelsynth", {}),
            "load_warnings": self.info.get("load_warnings", 0),
            "sha256": {"values": _sha256(self.values), "labels": _sha256(self.labels)},
        }


def _counts(items: np.ndarray) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(Counter(items.tolist()).items())}


def _kinds(rules: Counter[str], operators: Mapping[str, str]) -> dict[str, int]:
    """Planted anomalies by kind (point, level, shape), as :mod:`~anomalygraph.rulebank.injection` names them."""
    kinds: Counter[str] = Counter()
    for rule, n in rules.items():
        kinds[KIND_OF.get(operators.get(rule, rule), "shape")] += n
    return dict(sorted(kinds.items()))


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def as_config(config: CorpusConfig | Mapping[str, Any] | None) -> CorpusConfig:
    """A checked :class:`CorpusConfig`; a bad field or combination is a :class:`ConfigError`."""
    if config is None:
        config = CorpusConfig()
    elif not isinstance(config, CorpusConfig):
        try:
            config = CorpusConfig.model_validate(dict(config))
        except ValidationError as exc:
            problems = validation_problems(exc)
            raise ConfigError(f"invalid corpus configuration: {problems}") from exc
    if config.n_synthetic and config.synthetic_length < config.total:
        raise ConfigError(f"synthetic_length {config.synthetic_length} is shorter than one window "
                          f"(window {config.window} + horizon {config.horizon} = {config.total})")
    if not (config.n_synthetic or config.include_real or config.include_bench):
        raise ConfigError("the corpus has no source: set n_synthetic > 0, include_real or include_bench")
    return config


# ------------------------------------------------------------------- sources
@dataclass
class _Segment:
    source: str
    channel: str
    values: np.ndarray  # [T] float32
    labels: np.ndarray | None = None  # [T] int8 (bench only)
    rules: np.ndarray | None = None  # [T] str (bench only)


def _check_exclude(exclude: Sequence[str]) -> set[str]:
    names = set()
    for item in exclude:
        name = str(item).strip()
        dataset, _, rest = name.partition("/")
        if dataset not in (*REAL_DATASETS, "bench") or not rest:
            raise ConfigError(f"exclude: {item!r} is not '<dataset>/<name>' with dataset one of nab, smap_msl, bench")
        if dataset == "bench" and rest not in SCENARIOS:
            raise ConfigError(f"exclude: {item!r}: TimeAnomalyBench has no scenario '{rest}' ({', '.join(SCENARIOS)})")
        names.add(name)
    return names


def _real_segments(root: Path, total: int, exclude: set[str], info: dict[str, Any]) -> list[_Segment]:
    """The value channels of each real series' training rows; what was skipped goes into ``info``."""
    segments: list[_Segment] = []
    seen: set[str] = set()
    n_warnings = 0
    for dataset in REAL_DATASETS:
        for path in dataset_files(dataset, root):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DataWarning)
                series = load_series(path)
            n_warnings += sum(1 for w in caught if issubclass(w.category, DataWarning))
            key = f"{dataset}/{series.name}"
            seen.add(key)
            if key in exclude:
                info["excluded"].append(key)
                continue
            train_end = series.train_end
            if train_end is None and dataset == "nab":
                train_end = int(NAB_PROBATIONARY * series.length)
            if train_end is None:
                info["skipped"].append({"series": key, "reason": "no train split"})
                continue
            # Only the training rows, and no labels: everything below reads this copy alone.
            train = TimeSeries(values=series.values[:train_end].copy(), channels=series.channels, name=key)
            del series
            if train.length < total:
                info["skipped"].append({"series": key, "reason": f"train split of {train.length} rows < one window of {total}"})
                continue
            # Roles from the training rows; no fallback to flags when the value is flat there (SMAP A-1).
            value_channels = [c.index for c in channel_roles(train) if c.role in SCORED_ROLES]
            if not value_channels:
                info["skipped"].append({"series": key, "reason": "no varying value channel in the train split"})
            for c in value_channels:
                segments.append(_Segment(key, train.channels[c], train.values[:, c]))
    unknown = sorted(e for e in exclude if e.split("/", 1)[0] in REAL_DATASETS and e not in seen)
    if unknown:
        raise ConfigError(f"exclude: no such series under {root}: {', '.join(unknown)}")
    info["load_warnings"] = n_warnings
    return segments


def _bench_segments(seed: int, exclude: set[str], info: dict[str, Any]) -> list[_Segment]:
    """Each tune scenario's value channels, labelled on the channels its injected anomalies touch."""
    segments: list[_Segment] = []
    for name in scenarios_in(BENCH_SPLIT):
        key = f"bench/{name}"
        if key in exclude:
            info["excluded"].append(key)
            continue
        bench = generate(name, seed)
        series = bench.series
        info["bench_scenarios"].append(name)
        for c in scored_channels(series):
            labels = np.zeros(series.length, dtype=np.int8)
            rules = np.full(series.length, "", dtype=object)
            for event in bench.events:
                if series.channels[c] in event.channels:
                    labels[event.start : event.end + 1] = 1
                    rules[event.start : event.end + 1] = event.rule_id
            segments.append(_Segment(key, series.channels[c], series.values[:, c], labels, rules))
    return segments


# ------------------------------------------------------------------ planting
def _rules(bank: str) -> list[Rule]:
    rules = [r for r in load_bank(bank).rules
             if get_operator(r.operator).min_channels == 1 and r.duration.unit != "seconds"]
    if not rules:
        raise ConfigError(f"rule bank '{bank}' has no rule for a univariate window with a duration in steps or window shares")
    return rules


def _placement(rule: Rule, in_horizon: np.ndarray, context: int, total: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each anomaly: a start in the context or in the horizon, a length from the rule."""
    b = len(in_horizon)
    min_len = get_operator(rule.operator).min_length
    raw = rule.duration.dist.sample(rng, b)
    steps = raw * max(8, round(context * EVENT_SHARE)) if rule.duration.unit == "window" else raw
    hi = np.where(in_horizon, total - min_len, min(context - 1, total - min_len))
    lo = np.minimum(np.where(in_horizon, context, 0), hi)  # a horizon shorter than the operator: just before it
    start = rng.integers(lo, hi + 1)
    length = np.clip(np.rint(steps), min_len, total - start).astype(np.int64)
    return start.astype(np.int64), length


def plant_pseudo_anomalies(
    values: np.ndarray,
    group: np.ndarray,
    *,
    context: int,
    fraction: float,
    horizon_share: float = 0.5,
    rng: np.random.Generator,
    eligible: np.ndarray | None = None,
    bank: str = "generic",
    min_effect: float = 1.0,
) -> PlantedAnomalies:
    """One anomaly in a seeded ``fraction`` of the ``eligible`` windows ``values[N, W]``; rows outside it unchanged.

    Rules are drawn by weight from ``bank``; an anomaly starts in the last ``W - context`` rows
    with probability ``horizon_share``. Magnitudes are in each window's robust scale; one whose
    largest change stays below ``min_effect`` scales after ``MAX_REDRAWS`` redraws is left out
    (counted in ``dropped``) rather than labelled where nothing shows. ``group`` (one id per
    window) says which windows come from one series: transplanted segments are cut from those.
    """
    values = np.asarray(values, dtype=np.float32)
    n, total = values.shape
    out = values.copy()
    labels = np.zeros((n, total), dtype=np.int8)
    rule_of = np.full(n, "", dtype=object)
    start_of = np.full(n, -1, dtype=np.int64)
    pool = np.arange(n) if eligible is None else np.flatnonzero(eligible)
    k = round(fraction * len(pool))
    result = PlantedAnomalies(out, labels, rule_of, start_of)
    if k == 0:
        return result
    rules = _rules(bank)
    weights = np.array([r.weight for r in rules], dtype=np.float64)
    chosen = np.sort(rng.choice(pool, size=k, replace=False))
    which = rng.choice(len(rules), size=k, p=weights / weights.sum())
    horizon = rng.random(k) < horizon_share
    group = np.asarray(group)
    for r, rule in enumerate(rules):
        sel = which == r
        idx, in_horizon = chosen[sel], horizon[sel]
        if not len(idx):
            continue
        spec = get_operator(rule.operator)
        x = values[idx][:, :, None]
        scale = robust_scale(x)
        period = np.array([estimate_period(values[i, :context]) for i in idx], dtype=np.float64) if spec.uses_period else None
        donor = None
        if spec.uses_donor:
            picks = []
            for i in idx:
                members = np.flatnonzero(group == group[i])
                others = members[members != i]
                picks.append(int(rng.choice(others)) if len(others) else int(i))
            donor = values[picks][:, :, None]
        pending = np.arange(len(idx))
        for _ in range(MAX_REDRAWS + 1):
            start, length = _placement(rule, in_horizon[pending], context, total, rng)
            params = {name: dist.sample(rng, len(pending)) for name, dist in rule.params.items()}
            x_pa, mask, effect = apply_with_effect(
                rule.operator, x[pending], start=start, length=length, scale=scale[pending], params=params, rng=rng,
                donor=None if donor is None else donor[pending], period=None if period is None else period[pending],
            )
            ok = effect >= min_effect
            rows = idx[pending[ok]]
            out[rows] = x_pa[ok, :, 0]
            labels[rows] = mask[ok]
            rule_of[rows] = rule.id
            start_of[rows] = start[ok]
            pending = pending[~ok]
            if not len(pending):
                break
        if len(pending):
            result.dropped[rule.id] = len(pending)
    return result


# -------------------------------------------------------------------- corpus
def _windows(seg: _Segment, total: int, stride: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    starts = window_starts(len(seg.values), total, stride)
    rows = starts[:, None] + np.arange(total)[None, :]
    labels = None if seg.labels is None else seg.labels[rows]
    rules = None if seg.rules is None else seg.rules[rows]
    return seg.values[rows], labels, rules


def build_corpus(config: CorpusConfig | Mapping[str, Any] | None = None, *, exclude: Sequence[str] = ()) -> Corpus:
    """Windows from KernelSynth, real training splits and TimeAnomalyBench, with planted pseudo-anomalies.

    ``exclude`` names ``dataset/name`` series (``smap_msl/A-1``, ``nab/nyc_taxi``,
    ``bench/pump``) to leave out; a name that matches no series is a :class:`ConfigError`, so a
    typo cannot quietly let a held-out series in.
    """
    config = as_config(config)
    excluded = _check_exclude(exclude)
    total, stride = config.total, config.step
    info: dict[str, Any] = {"skipped": [], "excluded": [], "bench_scenarios": [], "dropped_constant": {}}
    segments: list[_Segment] = []
    if config.n_synthetic:
        samples = kernelsynth_samples(config.n_synthetic, config.synthetic_length,
                                      max_kernels=config.max_kernels, seed=config.seed)
        info["kernelsynth"] = describe_kernels(samples)
        segments += [_Segment("kernelsynth", "value", s.values) for s in samples]
    if config.include_real:
        root = config.data_root or get_settings().data.benchmark_root
        root = root.resolve()
        info["data_root"] = str(root)
        segments += _real_segments(root, total, excluded, info)
    if config.include_bench:
        segments += _bench_segments(config.seed, excluded, info)

    values, labels, sources, channels, bench_rules, groups = [], [], [], [], [], []
    dropped: Counter[str] = Counter()
    used: dict[str, set[str]] = {}  # dataset -> series that gave a window
    for number, seg in enumerate(segments):
        if len(seg.values) < total:
            continue  # a real series this short was skipped above; bench scenarios are longer
        w, lab, rules = _windows(seg, total, stride)
        varying = np.ptp(w, axis=1) > 0
        dropped[seg.source] += int((~varying).sum())
        values.append(w[varying])
        labels.append(np.zeros(w[varying].shape, np.int8) if lab is None else lab[varying])
        bench_rules.append(np.full(int(varying.sum()), "", dtype=object) if rules is None else
                           np.array([",".join(sorted(set(r) - {""})) for r in rules[varying]], dtype=object))
        sources += [seg.source] * int(varying.sum())
        channels += [seg.channel] * int(varying.sum())
        groups += [number] * int(varying.sum())
        if varying.any():
            counted = used.setdefault(seg.source.split("/", 1)[0], set())
            counted.add(f"{seg.source}#{len(counted)}" if seg.source == "kernelsynth" else seg.source)
    info["dropped_constant"] = {k: v for k, v in sorted(dropped.items()) if v}
    info["series_per_dataset"] = {k: len(v) for k, v in sorted(used.items())}
    if not values or not sum(len(v) for v in values):
        raise ConfigError("the corpus is empty: no source gave a non-constant window of "
                          f"{total} rows (window {config.window} + horizon {config.horizon})")
    x = np.concatenate(values).astype(np.float32)
    y = np.concatenate(labels).astype(np.int8)
    source = np.array(sources, dtype=object)
    native = np.concatenate(bench_rules)

    # transplanted segments are cut from another window of the same series and channel
    planted = plant_pseudo_anomalies(
        x, np.array(groups), context=config.window, fraction=config.anomaly_fraction, horizon_share=config.horizon_share,
        rng=np.random.default_rng([config.seed, 1]), eligible=~y.any(axis=1), bank=config.bank,
        min_effect=config.min_effect,
    )
    info["planted_left_out"] = dict(sorted(planted.dropped.items()))
    info["rule_operators"] = {r.id: r.operator for r in _rules(config.bank)}
    y = np.maximum(y, planted.labels)
    anomaly = np.where(planted.rule != "", "planted:" + planted.rule.astype(str), "")
    anomaly = np.where(native != "", "bench:" + native.astype(str), anomaly).astype(object)
    first = np.where(y.any(axis=1), y.argmax(axis=1), -1).astype(np.int64)
    return Corpus(
        values=planted.values, labels=y, source=source.astype(str), channel=np.array(channels, dtype=str),
        anomaly=anomaly.astype(str), anomaly_start=first, config=config, info=info,
    )


__all__ = ["CORPUS_FORMAT", "Corpus", "CorpusConfig", "PlantedAnomalies", "as_config", "build_corpus", "plant_pseudo_anomalies"]
