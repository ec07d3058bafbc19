"""``eval ape``: one fit per backbone, one row per pseudo-anomaly source, and tables that add up."""

from __future__ import annotations

import copy

import pytest

from anomalygraph.detectors.ape import APEConfig
from anomalygraph.evals.ape import (
    APERow,
    EvalSeries,
    evaluate_one,
    markdown,
    read_rows,
    run_ape_eval,
)
from anomalygraph.rulebank.timeanomalybench import generate
from tests.detectors.ape.conftest import TinyAEDetector

FAST = APEConfig(epochs=1, steps_per_epoch=4, batch_size=16, validation_batches=1)


@pytest.fixture(scope="module")
def scenario() -> EvalSeries:
    return EvalSeries(dataset="timeanomalybench", name="db_server", fold="validate", series=generate("db_server", seed=0).series)


def test_one_fit_many_variants_and_a_missing_mined_bank_is_said(scenario, tmp_path) -> None:
    fits = []
    original = TinyAEDetector._fit

    def counting(self, values, labels):
        fits.append(len(values))
        return original(self, values, labels)

    TinyAEDetector._fit = counting  # type: ignore[method-assign]
    try:
        rows = evaluate_one(scenario, "test_tiny_ae", ["none", "rec_only", "cutaddpaste", "ncad", "mined"], FAST, {"epochs": 1})
    finally:
        TinyAEDetector._fit = original  # type: ignore[method-assign]
    assert len(fits) == 1 and fits[0] == scenario.series.train_end  # fitted once, on the training rows only
    by = {r.variant: r for r in rows}
    assert by["none"].status == "ok" and by["none"].bank is None and by["none"].pseudo_auc_before is None
    assert by["cutaddpaste"].bank.startswith("cutaddpaste@") and len(by["cutaddpaste"].bank_sha256) == 64
    assert by["ncad"].status == "ok" and by["ncad"].bank is None and by["ncad"].post_epochs == 1
    assert by["mined"].status.startswith("skipped: no mined bank")
    # the control: same bank and batches, lambda 0, so the contrastive loss cannot have changed anything it gives
    assert by["rec_only"].bank == by["cutaddpaste"].bank and by["rec_only"].status == "ok"


def test_markdown_counts_mined_against_heuristic_on_matching_pairs() -> None:
    base = {"dataset": "smap_msl", "fold": "validate", "backbone": "tranad", "auc_pr": 0.1}
    rows = [APERow(**base, series="A", variant="none", vus_pr=0.20), APERow(**base, series="A", variant="cutaddpaste", vus_pr=0.25),
            APERow(**base, series="A", variant="mined", vus_pr=0.30), APERow(**base, series="B", variant="none", vus_pr=0.40),
            APERow(**base, series="B", variant="cutaddpaste", vus_pr=0.50), APERow(**base, series="B", variant="mined", vus_pr=0.45),
            APERow(**base, series="C", variant="mined", vus_pr=0.9)]  # no heuristic row for C: not a pair
    text = markdown(rows)
    assert "mined higher in 1 of 2 pairs (0 ties), mean VUS-PR difference +0.000" in text
    assert "0.375 (0.100) Δ+0.075 n=2" in text  # cutaddpaste: mean of 0.25, 0.50; delta vs none +0.05, +0.10


def test_rows_are_written_as_they_finish(scenario, tmp_path) -> None:
    item = copy.copy(scenario)
    rows = run_ape_eval([item], tmp_path, backbones=["test_tiny_ae"], variants=["none", "ncad"], config=FAST)
    assert read_rows(tmp_path / "rows.jsonl") == rows and (tmp_path / "ape_eval.md").is_file()
