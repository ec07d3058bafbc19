"""Selection strategies: robust rank aggregation, centrality, the surrogate on planted anomalies, and no labels."""

from __future__ import annotations

import numpy as np
import pytest

from anomalygraph.core.errors import ConfigError
from anomalygraph.data import TimeSeries
from anomalygraph.detectors.candidates import VIEWS, candidate_name, fit_slice, run_candidates
from anomalygraph.detectors.selection import (
    BEST_ON_TUNE,
    STRATEGIES,
    InjectedRows,
    aggregate_ranks,
    centrality,
    check_strategy,
    select,
    surrogate_table,
    synthetic_metrics,
)
from anomalygraph.rulebank.injection import inject


def seasonal(length: int = 3000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return (np.sin(2 * np.pi * t / 50) + 0.05 * rng.normal(size=length)).astype(np.float32)


def test_median_rank_ignores_one_misleading_metric():
    metrics = {
        "m1": {"a": 0.9, "b": 0.5, "c": 0.1},
        "m2": {"a": 0.8, "b": 0.6, "c": 0.2},
        "m3": {"a": 0.0, "b": 0.5, "c": 1.0},  # the outlier metric prefers c
    }
    ranks = aggregate_ranks(metrics)
    assert sorted(ranks, key=ranks.get) == ["a", "b", "c"]
    # a plain mean would tie a with b at 2.0/1.67...; the median keeps a first by a clear margin
    assert ranks["a"] < 1.01 < ranks["b"]


def test_centrality_is_highest_for_the_consensus_track():
    rng = np.random.default_rng(1)
    base = rng.normal(size=2000)
    tracks = {"x": base + 0.1 * rng.normal(size=2000), "y": base + 0.1 * rng.normal(size=2000),
              "z": base + 0.3 * rng.normal(size=2000), "noise": rng.normal(size=2000)}
    c = centrality(tracks)
    assert min(c["x"], c["y"], c["z"]) > 0.5 > abs(c["noise"])


def test_injected_surrogate_ranks_a_planted_spike_detector_first():
    """Planted anomalies on a seeded series: the track that follows them ranks first, noise and a flat track last."""
    series = TimeSeries(values=seasonal(), name="seeded")
    injected = inject(series, [0], seed=3)
    assert injected is not None and {"point", "level", "shape"} & set(injected.kinds)
    # rows outside the planted mask are untouched; inside, at least some differ
    assert np.array_equal(injected.values[~injected.mask], series.values[~injected.mask])
    assert not np.array_equal(injected.values[injected.mask], series.values[injected.mask])
    rng = np.random.default_rng(0)
    original = series.values[:, 0]
    follows = np.abs(injected.values[:, 0] - original)  # an oracle-like detector of the planted change
    tracks = {"follows": np.zeros(series.length), "noise": rng.normal(size=series.length), "flat": np.zeros(series.length)}
    planted = {"follows": follows, "noise": rng.normal(size=series.length), "flat": np.zeros(series.length)}
    table = surrogate_table(tracks, planted, injected, window=injected.window)
    assert table["follows"].synthetic["all"] > 0.9 > table["noise"].synthetic["all"]
    ranked = sorted(table, key=lambda n: table[n].rank)
    assert ranked[0] == "follows"


def test_a_real_detector_ranks_a_planted_spike_first():
    """robust_z on a seeded series with one planted spike: its top planted-row score is the spike."""
    values = seasonal()
    kinds = np.full(len(values), "", dtype=object)
    spiked = values.copy()
    spiked[1700] += 4.0
    kinds[1700] = "point"
    series = TimeSeries(values=values, name="seeded")
    run = run_candidates(series, "robust_z", spiked[:, None], views=("joint",))
    assert int(np.argmax(run.injected["robust_z"])) == 1700
    metrics = synthetic_metrics(InjectedRows(values=spiked[:, None], kinds=kinds.astype(str), window=50), run.injected["robust_z"], 50)
    assert metrics["point"] == pytest.approx(1.0, abs=0.05)


def test_selection_never_reads_labels():
    """Two copies of a series, labelled so that an oracle would choose differently: every strategy chooses the same."""
    rng = np.random.default_rng(0)
    values = np.column_stack([seasonal(), rng.normal(size=3000)]).astype(np.float32)
    values[2500:2520, 0] += 3.0  # an incident the detectors see
    values[1200:1230, 1] *= 4.0  # a variance burst on the other channel
    labels_a = np.zeros(3000, np.uint8)
    labels_a[2500:2520] = 1
    labels_b = np.zeros(3000, np.uint8)
    labels_b[1200:1230] = 1
    chosen = []
    for labels in (labels_a, labels_b):
        series = TimeSeries(values=values, labels=labels, name="s")
        injected = inject(series.unlabelled(), [0, 1], seed=0)
        tracks, planted = {}, {}
        for detector in ("iforest", "robust_z"):
            run = run_candidates(series, detector, injected.values)
            tracks |= run.scores
            planted |= run.injected
        table = surrogate_table(tracks, planted, injected, window=injected.window)
        picks = {}
        for strategy in STRATEGIES:
            if strategy == "best_on_tune" and BEST_ON_TUNE not in tracks:
                continue
            scores, selection = select(strategy, tracks, fit_rows=fit_slice(series), surrogates=table)
            picks[strategy] = (selection.chosen, scores.round(6).tolist())
        chosen.append((picks, {n: t.rank for n, t in table.items()}))
    assert chosen[0] == chosen[1]
    # and the labels would have changed an oracle's choice: the best track differs per labelling
    from anomalygraph.metrics import auc_pr

    best = [max(tracks, key=lambda n: auc_pr(lab, tracks[n])) for lab in (labels_a, labels_b)]
    assert best[0] != best[1]


def test_strategy_names_are_checked():
    assert check_strategy("fixed:iforest@channels", ["iforest@channels"]) == "fixed:iforest@channels"
    with pytest.raises(ConfigError, match="no candidate 'nope'"):
        check_strategy("fixed:nope", ["iforest"])
    with pytest.raises(ConfigError, match="unknown selection 'magic'"):
        check_strategy("magic")


def test_fixed_and_fusion_pick_what_they_say():
    rng = np.random.default_rng(0)
    tracks = {candidate_name(d, v): rng.normal(size=500) for d in ("iforest", "sub_pca", "matrix_profile") for v in VIEWS}
    scores, sel = select("fixed:sub_pca@channels", tracks, fit_rows=slice(0, 250))
    assert sel.chosen == ["sub_pca@channels"] and np.array_equal(scores, tracks["sub_pca@channels"])
    assert sel.threshold.value == pytest.approx(np.quantile(tracks["sub_pca@channels"][:250], 0.99))
    _, sel = select("fusion", tracks, fit_rows=slice(0, 250))
    assert sel.chosen == ["iforest", "sub_pca", "matrix_profile"] and sum(sel.weights.values()) == pytest.approx(1.0)
    _, sel = select("fusion@channels", tracks, fit_rows=slice(0, 250))
    assert sel.chosen == ["iforest@channels", "sub_pca@channels", "matrix_profile@channels"]


def test_univariate_views_are_aliases_ranked_once():
    series = TimeSeries(values=seasonal(1500), name="u")
    injected = inject(series, [0], seed=0)
    run = run_candidates(series, "robust_z", injected.values)
    assert run.aliases == {"robust_z@channels": "robust_z", "robust_z@channels_top3": "robust_z"}
    # the same order of rows: a channel view of one channel is the joint track in z units
    assert np.array_equal(np.argsort(run.scores["robust_z"], kind="stable"), np.argsort(run.scores["robust_z@channels"], kind="stable"))
    table = surrogate_table(run.scores, run.injected, injected, window=injected.window, aliases=run.aliases)
    assert table["robust_z@channels"] == table["robust_z"]


def test_channel_view_scores_only_value_channels_and_rescores_like_score():
    rng = np.random.default_rng(0)
    flags = (rng.random(3000) > 0.7).astype(np.float32)
    values = np.column_stack([seasonal(), flags, np.zeros(3000), seasonal(seed=2)])
    series = TimeSeries(values=values, name="m", train_end=1500)
    run = run_candidates(series, "robust_z", values[:1500])
    columns, z = run.per_channel["robust_z@channels"]
    assert columns == [0, 3] and z.shape == (3000, 2)
    assert np.allclose(run.injected["robust_z@channels"], run.scores["robust_z@channels"][:1500], atol=1e-5)
    assert "robust_z@channels_top3" in run.scores and "robust_z@channels_top3" not in run.aliases
