"""Properties of the metrics that hold whatever the reference says, and their refusals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from anomalygraph import metrics as M
from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.core.thresholds import Threshold
from anomalygraph.data.periods import estimate_period
from tests.metrics.cases import (
    LABEL_STYLES,
    SCORE_STYLES,
    periodic_series,
    random_labels,
    random_scores,
)


def case(seed: int, length: int = 600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = random_labels(rng, length, LABEL_STYLES[seed % len(LABEL_STYLES)])
    return labels, random_scores(rng, labels, SCORE_STYLES[seed % len(SCORE_STYLES)]).astype(float)


def long_events(length: int = 10_000, n_events: int = 5, size: int = 400) -> np.ndarray:
    labels = np.zeros(length, dtype=int)
    for start in np.linspace(500, length - size - 500, n_events).astype(int):
        labels[start : start + size] = 1
    return labels


# ------------------------------------------------------------------ the honest-yardstick demo
def test_random_scores_look_great_with_point_adjustment_but_not_with_vus_pr() -> None:
    labels = long_events()  # five events of 400 points: 20% of the series
    ratio = labels.mean()
    for seed in range(3):
        scores = np.random.default_rng(seed).random(labels.size)
        report = M.all_metrics(labels, scores, sliding_window=100, threshold=float(np.quantile(scores, 0.99)))
        assert report.f1_point_adjusted > 0.9  # one random hit per event credits the whole event
        assert report.at_threshold is not None and report.at_threshold.point_adjusted.f1 > 0.5
        assert abs(report.vus_pr - ratio) < 0.05  # the headline stays at chance level
        assert abs(report.auc_pr - ratio) < 0.02
        assert report.f1_point_adjusted - report.vus_pr > 0.6
    assert next(iter(report.summary())) == M.MetricReport.headline == "vus_pr"


# ------------------------------------------------------------------------ threshold-free
@pytest.mark.parametrize("seed", range(8))
def test_auc_matches_scikit_learn(seed: int) -> None:
    labels, scores = case(seed)
    assert M.auc_roc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert M.auc_pr(labels, scores) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_perfect_scores_reach_one_and_inverted_scores_do_not() -> None:
    labels, _ = case(3)
    perfect = labels.astype(float)
    for metric in (M.auc_roc, M.auc_pr, M.vus_pr, M.vus_roc):
        assert metric(labels, perfect) == pytest.approx(1.0, abs=1e-12)
    assert M.auc_roc(labels, -perfect) == pytest.approx(0.0, abs=1e-12)
    assert M.vus_pr(labels, -perfect, 20) < 0.5


def test_best_f1_threshold_reports_the_highest_of_tied_thresholds() -> None:
    # >= 4: one hit, no false alarm; >= 1: both hits, two false alarms; the same F1 (p*r, p+r).
    f1, at = M.best_f1_threshold([1, 0, 0, 1], [4.0, 3.0, 3.0, 1.0])
    assert at == 4.0 and f1 == pytest.approx(2 / 3, abs=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_vus_is_the_mean_of_range_auc_over_buffer_lengths(seed: int) -> None:
    labels, scores = case(seed, length=500)
    window = 9 + seed
    pr = [M.range_auc_pr(labels, scores, w) for w in range(window + 1)]
    roc = [M.range_auc_roc(labels, scores, w) for w in range(window + 1)]
    assert M.vus_pr(labels, scores, window) == pytest.approx(np.mean(pr), abs=1e-12)
    assert M.vus_roc(labels, scores, window) == pytest.approx(np.mean(roc), abs=1e-12)
    assert M.vus_pr(labels, scores, 0) == pytest.approx(pr[0], abs=1e-15)


@pytest.mark.parametrize("seed", range(4))
def test_ranking_metrics_ignore_monotone_rescaling(seed: int) -> None:
    labels, scores = case(seed)
    rescaled = np.exp(3 * scores) - 7
    for metric in (M.auc_roc, M.auc_pr, M.best_f1):
        assert metric(labels, rescaled) == pytest.approx(metric(labels, scores), abs=1e-12)
    assert M.vus_pr(labels, rescaled, 30) == pytest.approx(M.vus_pr(labels, scores, 30), abs=1e-12)


def test_buffer_credits_a_detector_that_fires_just_after_each_event() -> None:
    labels = np.zeros(3000, dtype=int)
    for start in (400, 1200, 2100):
        labels[start : start + 30] = 1
    rng = np.random.default_rng(0)
    late = rng.random(labels.size) * 0.5 + np.roll(labels, 20)  # fires 20 steps late
    assert M.vus_pr(labels, late, 60) > M.auc_pr(labels, late) + 0.1
    assert M.range_auc_pr(labels, late, 60) > M.range_auc_pr(labels, late, 0)


def test_sliding_window_none_uses_the_series_period_else_the_score_period() -> None:
    rng = np.random.default_rng(4)
    series = periodic_series(rng, 2000, 48)
    labels = random_labels(rng, 2000, "short")
    scores = random_scores(rng, labels, "smooth")
    period = estimate_period(series)
    assert M.vus_pr(labels, scores, series=series) == M.vus_pr(labels, scores, period)
    report = M.all_metrics(labels, scores, series=series[:, None])
    assert (report.sliding_window, report.sliding_window_source) == (period, "series period")
    report = M.all_metrics(labels, scores)
    assert (report.sliding_window, report.sliding_window_source) == (estimate_period(scores), "score period")
    assert M.all_metrics(labels, scores, sliding_window=7).sliding_window_source == "given"


# ------------------------------------------------------------------------ at a threshold
def test_point_and_point_adjusted_by_hand() -> None:
    labels = np.zeros(100, dtype=int)
    labels[10:20] = 1
    scores = np.zeros(100)
    scores[[12, 50]] = 1.0
    point = M.point_prf(labels, scores, 0.5)
    assert (point.precision, point.recall) == (0.5, 0.1)
    assert point.f1 == pytest.approx(2 * 0.5 * 0.1 / 0.6)
    # adjusted: the whole event [10, 19] counts, the flag at 50 stays a false alarm
    assert M.f1_point_adjusted(labels, scores, 0.5) == pytest.approx(2 * 10 / (2 * 10 + 1))
    assert M.f1_point_adjusted(labels, scores, Threshold(value=0.5, method="percentile")) == pytest.approx(20 / 21)
    # strictly above: a score equal to the threshold is not flagged
    assert M.point_prf(labels, scores, 1.0).f1 == 0.0


def test_range_precision_recall_by_hand() -> None:
    labels = np.zeros(60, dtype=int)
    labels[10:20] = 1
    scores = np.zeros(60)
    scores[15:25] = 1.0
    prf = M.range_prf(labels, scores, 0.5)
    assert prf.recall == pytest.approx(0.2 * 1 + 0.8 * 5 / 10)  # existence + overlap
    assert prf.precision == pytest.approx(5 / 10)
    # the same overlap split into two flagged runs halves the overlap reward (cardinality)
    scores[17] = 0.0
    assert M.range_prf(labels, scores, 0.5).recall == pytest.approx(0.2 + 0.8 * 4 / 10 / 2)


def test_event_f1_counts_events_and_keeps_the_reference_trailing_event_rule() -> None:
    labels = np.zeros(50, dtype=int)
    labels[[5, 6, 7, 20, 21]] = 1
    labels[45:] = 1
    scores = np.zeros(50)
    scores[[6, 30]] = 1.0
    prf = M.event_prf(labels, scores, 0.5)
    assert prf.recall == pytest.approx(1 / 3) and prf.precision == 0.5
    scores[49] = 1.0  # only the last point of the trailing event: TSB-AD does not count it
    assert M.event_prf(labels, scores, 0.5).recall == pytest.approx(1 / 3)
    scores[48] = 1.0
    assert M.event_prf(labels, scores, 0.5).recall == pytest.approx(2 / 3)


def test_affiliation_rewards_closeness() -> None:
    labels = np.zeros(400, dtype=int)
    labels[100:110] = 1
    labels[300:310] = 1
    exact = M.affiliation_prf(labels, labels.astype(float), 0.5)
    assert exact.precision == pytest.approx(1.0) and exact.recall == pytest.approx(1.0)
    near, far = np.zeros(400), np.zeros(400)
    near[112:115] = 1.0
    far[180:183] = 1.0
    p_near, p_far = M.affiliation_prf(labels, near, 0.5), M.affiliation_prf(labels, far, 0.5)
    assert 0.9 < p_near.precision <= 1.0 and p_far.precision < p_near.precision
    assert p_near.recall < 0.75  # the second event is missed entirely
    assert M.affiliation_prf(labels, np.zeros(400), 0.5) == M.PRF(precision=0.0, recall=0.0, f1=0.0)


def test_oracle_metrics_bound_the_decision_metrics() -> None:
    for seed in range(5):
        labels, scores = case(seed)
        threshold = float(np.quantile(scores, 0.9))
        report = M.all_metrics(labels, scores, sliding_window=20, threshold=threshold)
        d = report.at_threshold
        assert d is not None
        assert report.f1_best + 1e-4 >= d.point.f1  # best over every threshold (1e-5 in its denominator)
        assert d.point_adjusted.f1 >= d.point.f1  # adjustment only ever adds true positives
        f1, best_at = M.best_f1_threshold(labels, scores)
        assert f1 == report.f1_best and best_at in scores


def test_all_metrics_agrees_with_the_single_metric_functions() -> None:
    labels, scores = case(5, length=900)
    report = M.all_metrics(labels, scores, sliding_window=25, threshold=Threshold(value=0.8, method="k_sigma"))
    assert report.vus_pr == M.vus_pr(labels, scores, 25)
    assert report.vus_roc == M.vus_roc(labels, scores, 25)
    assert report.range_auc_pr == M.range_auc_pr(labels, scores, 25)
    assert report.auc_pr == M.auc_pr(labels, scores)
    assert report.f1_point_adjusted == M.f1_point_adjusted(labels, scores)
    assert report.range_f1_best == M.range_f1_best(labels, scores)
    assert report.event_f1_best == M.event_f1_best(labels, scores)
    assert report.affiliation_f1_best == M.affiliation_f1_best(labels, scores)
    assert report.at_threshold is not None and report.at_threshold.range == M.range_prf(labels, scores, 0.8)
    assert report.label_ratio == labels.mean() and report.length == 900
    summary = report.summary()
    assert list(summary)[:2] == ["vus_pr", "vus_roc"]
    assert {"f1", "range_f1", "affiliation_f1", "f1_point_adjusted", "f1_point_adjusted_at_threshold"} <= set(summary)
    assert all(isinstance(v, float) for v in summary.values())
    assert M.MetricReport.model_validate_json(report.model_dump_json()) == report
    assert "precision" not in M.all_metrics(labels, scores, sliding_window=5).summary()


def test_inputs_of_other_types_are_accepted() -> None:
    labels, scores = case(1, length=300)
    expected = M.vus_pr(labels, scores, 10)
    assert M.vus_pr(labels.astype(bool), scores, 10) == expected
    assert M.vus_pr(labels.astype(float).tolist(), scores.tolist(), 10) == expected
    assert M.vus_pr(labels[:, None], scores.astype(np.float32).astype(float), 10) == expected


# ------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([0, 1, 0], [0.1, 0.2], "differ in length: 3 labels but 2 scores"),
        ([0, 2, 1], [0.1, 0.2, 0.3], "labels must be 0/1: found 2 at index 1"),
        ([0, 0.5, 1], [0.1, 0.2, 0.3], "labels must be 0/1: found 0.5 at index 1"),
        ([0, np.nan, 1], [0.1, 0.2, 0.3], "labels must be 0/1: found nan at index 1"),
        ([0, 1, 0], [0.1, np.nan, 0.3], "scores must be finite: found nan at index 1"),
        ([0, 1, 0], [0.1, np.inf, 0.3], "scores must be finite: found inf at index 1"),
        ([0, 0, 0], [0.1, 0.2, 0.3], "no anomalous timestamp"),
        ([1, 1, 1], [0.1, 0.2, 0.3], "every timestamp is labelled anomalous"),
        ([[0, 1], [1, 0]], [0.1, 0.2, 0.3, 0.4], "one-dimensional"),
        (["a", "b"], [0.1, 0.2], "0/1 numbers"),
        ([], [], "empty"),
    ],
)
@pytest.mark.parametrize("metric", [M.vus_pr, M.auc_roc, M.auc_pr, M.best_f1, M.f1_point_adjusted, M.affiliation_f1_best])
def test_bad_inputs_are_refused_with_a_clear_message(labels: list, scores: list, message: str, metric) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        metric(np.asarray(labels), np.asarray(scores))


@pytest.mark.parametrize("window", [-1, 2.5, True, "10"])
def test_bad_sliding_window_is_a_config_error(window: object) -> None:
    with pytest.raises(ConfigError, match="sliding_window must be a non-negative integer"):
        M.vus_pr([0, 1, 0, 0], [0.1, 0.9, 0.2, 0.3], window)  # type: ignore[arg-type]


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), "high"])
def test_bad_threshold_is_a_config_error(threshold: object) -> None:
    with pytest.raises(ConfigError, match="threshold must be"):
        M.point_prf([0, 1, 0, 0], [0.1, 0.9, 0.2, 0.3], threshold)  # type: ignore[arg-type]
