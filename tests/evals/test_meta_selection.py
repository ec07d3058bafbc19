"""Meta-learned selection: it learns what the surrogates say about accuracy, and never reads a series' labels."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from anomalygraph.detectors.selection import BEST_ON_TUNE, CandidateSurrogates
from anomalygraph.evals import meta_selection as meta
from anomalygraph.evals.selection import Scores, SelectionEval, SeriesResult

CANDIDATES = (BEST_ON_TUNE, "iforest", "poly")


def s(v: float) -> Scores:
    return Scores(vus_pr=v, auc_pr=v, range_f1=v, event_f1=v)


def row(name: str, fold: str, seed: int) -> SeriesResult:
    """A series where the candidate best at finding planted shapes is the truly best one; other metrics are noise."""
    rng = np.random.default_rng(seed)
    shape = rng.random(len(CANDIDATES))
    vus = 0.2 + 0.6 * shape
    surrogates = {c: CandidateSurrogates(synthetic={"all": float(rng.random()), "point": float(rng.random()),
                                                    "level": float(rng.random()), "shape": float(shape[i])},
                                         centrality=float(rng.random()), rank=float(rng.integers(1, 4)))
                  for i, c in enumerate(CANDIDATES)}
    return SeriesResult(dataset="d", series=name, fold=fold, status="ok", roles="1 value (value)",
                        candidates={c: s(float(vus[i])) for i, c in enumerate(CANDIDATES)}, surrogates=surrogates)


def report() -> SelectionEval:
    rows = [row(f"t{i}", "tune", i) for i in range(40)] + [row(f"v{i}", "validate", 100 + i) for i in range(15)]
    return SelectionEval(created_at=datetime.now(UTC), detectors=["sub_pca", "iforest", "poly"],
                         default_strategy="best_on_tune", rows=rows)


def test_the_meta_selector_learns_which_surrogate_predicts_accuracy():
    result = meta.run_meta_eval(report(), {("d", f"t{i}"): f"g{i % 4}" for i in range(40)})
    oracle = result.reference["validate"]["oracle (best candidate per series)"]
    ridge = next(m for m in result.rows if m.regressor == "ridge_1")
    # the planted-shape surrogate orders the candidates exactly, so a learnt ranking finds the oracle
    assert ridge.validate_mean == pytest.approx(oracle, abs=0.02)
    assert ridge.validate_mean > result.reference["validate"][f"fixed:{BEST_ON_TUNE}"] + 0.05
    assert result.chosen in meta.REGRESSORS and "(chosen on tune)" in meta.markdown(result)


def test_choosing_never_reads_the_series_scores():
    data = report()
    model = meta.fit([r for r in data.rows if r.fold == "tune"], "ridge_1", data.detectors)
    target = data.rows[-1]
    picked = meta.choose(model, target, data.detectors)
    # give the chosen candidate the worst score: a choice that read the scores would move away from it
    flipped = target.model_copy(update={"candidates": {c: s(0.0 if c == picked else 1.0) for c in CANDIDATES}})
    assert meta.choose(model, flipped, data.detectors) == picked
