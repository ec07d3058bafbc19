"""Our metrics against TSB-AD 1.5, the reference implementation, to 1e-6 on randomized inputs.

TSB-AD pins numpy<2, so it lives in its own virtual environment (``make reference-env``,
interpreter in ANOMALYGRAPH_REFERENCE_PYTHON). Each test writes its cases to .npz/.json files,
runs tests/evals/tsbad_reference.py once in that interpreter, and compares. The cases are
short (T <= 1,500) so that hundreds of reference calls fit in CI time.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anomalygraph.core.errors import DataError
from anomalygraph.data.periods import estimate_period
from anomalygraph.metrics import all_metrics, best_f1_over_grid, vus
from anomalygraph.metrics.detection import prf_at
from anomalygraph.metrics.ranking import auc_pr, auc_roc, best_f1
from anomalygraph.metrics.vus import range_auc_curves
from tests.conftest import reference_python
from tests.metrics.cases import (
    LABEL_STYLES,
    SCORE_STYLES,
    periodic_series,
    random_labels,
    random_scores,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TOL = 1e-6
RUNNER = Path(__file__).with_name("tsbad_reference.py")
LENGTHS = (30, 64, 150, 400, 1000, 1500)


def run_reference(jobs: list[dict[str, Any]], arrays: dict[str, np.ndarray], tmp_path: Path) -> dict[str, dict[str, float]]:
    python = reference_python()
    if not python.exists():
        pytest.fail(f"reference interpreter {python} is missing: run `make reference-env` or set ANOMALYGRAPH_REFERENCE_PYTHON")
    np.savez(tmp_path / "arrays.npz", **arrays)
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    done = subprocess.run(
        [str(python), str(RUNNER), str(tmp_path / "jobs.json"), str(tmp_path / "arrays.npz"), str(tmp_path / "out.json")],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp_path / "out.json").read_text())


def random_case(seed: int, lengths: tuple[int, ...] = LENGTHS) -> tuple[np.ndarray, np.ndarray, str]:
    rng = np.random.default_rng(seed)
    length = int(rng.choice(lengths))
    label_style = LABEL_STYLES[seed % len(LABEL_STYLES)]
    score_style = SCORE_STYLES[(seed // len(LABEL_STYLES)) % len(SCORE_STYLES)]
    labels = random_labels(rng, length, label_style)
    return labels, random_scores(rng, labels, score_style).astype(np.float64), f"seed {seed}: T={length}, {label_style} labels, {score_style} scores"


def assert_close(ours: dict[str, float], ref: dict[str, float], where: str) -> None:
    assert "error" not in ref, f"{where}: reference failed: {ref['error']}"
    for name, value in ref.items():
        assert abs(ours[name] - value) <= TOL, f"{where}: {name} ours={ours[name]!r} reference={value!r}"


def test_vus_and_range_auc_match_reference_for_fixed_windows(tmp_path: Path) -> None:
    jobs, arrays, cases = [], {}, {}
    for seed in range(56):
        labels, scores, where = random_case(seed)
        rng = np.random.default_rng(1000 + seed)
        window = int(rng.choice([0, 1, 2, 3, 5, int(rng.integers(4, 40)), int(rng.integers(40, 90))]))
        if seed == 7:
            scores = np.full(labels.size, 0.5)  # constant scores: every threshold flags everything
        arrays[f"y{seed}"], arrays[f"s{seed}"] = labels, scores
        jobs.append({"id": str(seed), "kind": "vus", "labels": f"y{seed}", "scores": f"s{seed}", "window": window})
        cases[str(seed)] = (labels, scores, window, f"{where}, window {window}")
    ref = run_reference(jobs, arrays, tmp_path)
    for key, (labels, scores, window, where) in cases.items():
        vus_roc, vus_pr, used, source = vus(labels, scores, window)
        assert (used, source) == (window, "given")
        auc, ap = range_auc_curves(labels.astype(bool), scores, np.array([window]))
        ours = {"vus_roc": vus_roc, "vus_pr": vus_pr, "range_auc_roc": auc[0], "range_auc_pr": ap[0]}
        assert_close(ours, ref[key], where)


def test_period_choice_and_vus_match_find_length_rank(tmp_path: Path) -> None:
    jobs, arrays, cases = [], {}, {}
    rng = np.random.default_rng(2024)
    for i in range(48):
        length = int(rng.choice([40, 200, 800, 2000, 25_000]))
        kind = i % 4
        if kind == 3:
            x = rng.normal(size=length)  # no season: the reference falls back to 125 or a noise peak
        elif kind == 2:
            x = np.round(3 * np.sin(2 * np.pi * np.arange(length) / rng.uniform(6, 80)))  # flat ACF stretches
        else:
            x = periodic_series(rng, length, rng.uniform(4, 320))
        arrays[f"x{i}"] = x
        job: dict[str, Any] = {"id": str(i), "kind": "period", "series": f"x{i}"}
        if i < 12 and length <= 2000:  # VUS with the period as buffer on a few short ones
            labels = random_labels(rng, length, LABEL_STYLES[i % len(LABEL_STYLES)])
            scores = random_scores(rng, labels, "smooth")
            arrays[f"y{i}"], arrays[f"s{i}"] = labels, scores
            job |= {"labels": f"y{i}", "scores": f"s{i}"}
        jobs.append(job)
        cases[str(i)] = job
    arrays["x_const"] = np.ones(300)
    jobs.append({"id": "const", "kind": "period", "series": "x_const"})
    ref = run_reference(jobs, arrays, tmp_path)
    assert ref["const"]["window"] == estimate_period(arrays["x_const"]) == 125
    checked_vus = 0
    for key, job in cases.items():
        x = arrays[job["series"]]
        assert estimate_period(x) == ref[key]["window"], f"series {key} (T={x.size})"
        if "labels" in job:
            labels, scores = arrays[job["labels"]], arrays[job["scores"]]
            vus_roc, vus_pr, used, source = vus(labels, scores, None, series=x)
            assert source == "series period" and used == ref[key]["window"]
            assert_close({"vus_roc": vus_roc, "vus_pr": vus_pr}, {k: ref[key][k] for k in ("vus_roc", "vus_pr")}, f"series {key}")
            checked_vus += 1
    assert checked_vus >= 6


def test_threshold_free_and_oracle_metrics_match_reference(tmp_path: Path) -> None:
    jobs, arrays, cases = [], {}, {}
    for seed in range(200, 224):
        labels, scores, where = random_case(seed, lengths=(30, 64, 150, 400))
        arrays[f"y{seed}"], arrays[f"s{seed}"] = labels, scores
        jobs.append({"id": str(seed), "kind": "grid", "labels": f"y{seed}", "scores": f"s{seed}"})
        cases[str(seed)] = (labels, scores, where)
    ref = run_reference(jobs, arrays, tmp_path)
    for key, (labels, scores, where) in cases.items():
        grid = best_f1_over_grid(labels, scores)
        ours = {
            "auc_roc": auc_roc(labels, scores), "auc_pr": auc_pr(labels, scores), "f1_best": best_f1(labels, scores),
            "f1_point_adjusted": grid["point_adjusted"], "event_f1_best": grid["event"],
            "range_f1_best": grid["range"], "affiliation_f1_best": grid["affiliation"],
        }
        assert_close(ours, ref[key], where)


def test_metrics_at_a_threshold_match_reference(tmp_path: Path) -> None:
    jobs, arrays, cases = [], {}, {}
    for seed in range(300, 324):
        labels, scores, where = random_case(seed, lengths=(30, 64, 150, 400))
        rng = np.random.default_rng(seed)
        threshold = float(np.quantile(scores, rng.choice([0.0, 0.5, 0.8, 0.95, 0.99, 1.0])))
        arrays[f"y{seed}"], arrays[f"s{seed}"] = labels, scores
        jobs.append({"id": str(seed), "kind": "at", "labels": f"y{seed}", "scores": f"s{seed}", "threshold": threshold})
        cases[str(seed)] = (labels, scores, threshold, f"{where}, threshold {threshold:.4g}")
    ref = run_reference(jobs, arrays, tmp_path)
    flagged_nothing = 0
    for key, (labels, scores, threshold, where) in cases.items():
        prf = prf_at(labels, scores, threshold, ["point", "point_adjusted", "event", "range", "affiliation"])
        ours = {
            "precision": prf["point"].precision, "recall": prf["point"].recall, "f1": prf["point"].f1,
            "f1_point_adjusted": prf["point_adjusted"].f1, "event_f1": prf["event"].f1,
            "range_precision": prf["range"].precision, "range_recall": prf["range"].recall, "range_f1": prf["range"].f1,
            "affiliation_precision": prf["affiliation"].precision, "affiliation_recall": prf["affiliation"].recall,
            "affiliation_f1": prf["affiliation"].f1,
        }
        expected = dict(ref[key])
        if not (scores > threshold).any():
            # Nothing flagged: the reference's affiliation F1 is NaN (0/0 precision); ours reports 0.
            assert math.isnan(expected.pop("affiliation_f1")) and ours["affiliation_f1"] == 0.0
            flagged_nothing += 1
        assert_close(ours, expected, where)
    assert flagged_nothing >= 1


def test_get_metrics_end_to_end_and_refusals(tmp_path: Path) -> None:
    names = {
        "AUC-PR": "auc_pr", "AUC-ROC": "auc_roc", "VUS-PR": "vus_pr", "VUS-ROC": "vus_roc",
        "Standard-F1": "f1_best", "PA-F1": "f1_point_adjusted", "Event-based-F1": "event_f1_best",
        "R-based-F1": "range_f1_best", "Affiliation-F": "affiliation_f1_best",
    }
    jobs, arrays, cases = [], {}, {}
    for seed in (400, 401, 402):
        labels, scores, where = random_case(seed, lengths=(150, 300))
        window = int(np.random.default_rng(seed).integers(5, 30))
        arrays[f"y{seed}"], arrays[f"s{seed}"] = labels, scores
        jobs.append({"id": str(seed), "kind": "get_metrics", "labels": f"y{seed}", "scores": f"s{seed}", "window": window})
        cases[str(seed)] = (labels, scores, window, where)
    arrays["normal"], arrays["normal_s"] = np.zeros(200, dtype=np.int64), np.random.default_rng(0).random(200)
    jobs.append({"id": "all_normal", "kind": "get_metrics", "labels": "normal", "scores": "normal_s", "window": 10})
    ref = run_reference(jobs, arrays, tmp_path)
    for key, (labels, scores, window, where) in cases.items():
        report = all_metrics(labels, scores, sliding_window=window).model_dump()
        assert_close({theirs: report[ours] for theirs, ours in names.items()}, ref[key], where)
    # With no labelled anomaly the reference fails or returns NaN somewhere; we refuse outright.
    assert "error" in ref["all_normal"] or any(math.isnan(v) for v in ref["all_normal"].values())
    with pytest.raises(DataError, match="no anomalous timestamp"):
        all_metrics(arrays["normal"], arrays["normal_s"], sliding_window=10)
