"""The APE post-training graph on a real SMAP channel: provenance in the artifact, a verdict that matches its files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.data.loaders import load_series
from anomalygraph.graphs.ape_post_training import APEContext, APERequest, run_post_training
from anomalygraph.metrics.evaluate import evaluate_scores
from anomalygraph.rulebank.store import bank_sha256, load_bank
from tests.detectors.ape.conftest import TinyAEDetector

CHANNEL = "SMAP_MSL/test/T-2.npy"
FAST_APE = {"epochs": 2, "steps_per_epoch": 6, "batch_size": 16, "validation_batches": 1}


def _request(shared_data: Path, out: Path, bank: str = "cutaddpaste") -> APERequest:
    assert TinyAEDetector.name == "test_tiny_ae"  # registered by importing it
    return APERequest(series_path=str(shared_data / CHANNEL), out_dir=str(out), backbone="test_tiny_ae", bank=bank,
                      fit={"epochs": 1}, ape=FAST_APE)


def test_graph_post_trains_records_the_bank_and_reports_the_measured_delta(shared_data: Path, tmp_path: Path) -> None:
    context = APEContext(model=None, data_roots=[str(shared_data)])
    verdict = run_post_training(_request(shared_data, tmp_path / "run"), context)
    bank = load_bank("cutaddpaste")
    assert verdict.bank == {"name": "cutaddpaste", "version": bank.version, "sha256": bank_sha256(bank),
                            "made_by": "heuristic", "rules": len(bank.rules)}
    record = json.loads((Path(verdict.artifact) / "ape.json").read_text())
    assert record["bank"]["sha256"] == bank_sha256(bank) and record["backbone"]["detector"] == "test_tiny_ae"
    # the verdict's figures are the files' figures
    series = load_series(shared_data / CHANNEL)
    before = np.load(tmp_path / "run" / "scores_before.npy")
    after = np.load(tmp_path / "run" / "scores_after.npy")
    vus = [evaluate_scores(series, s, float(np.quantile(s, 0.99))).vus_pr for s in (before, after)]
    assert verdict.before.vus_pr == pytest.approx(vus[0]) and verdict.after.vus_pr == pytest.approx(vus[1])
    assert verdict.delta_vus_pr == pytest.approx(vus[1] - vus[0])
    expected = "improved" if vus[1] - vus[0] > 0.01 else "worse" if vus[1] - vus[0] < -0.01 else "unchanged"
    assert verdict.outcome == expected and f"{vus[1] - vus[0]:+.3f}" in verdict.explanation
    assert Path(verdict.plot).is_file() and Path(verdict.samples_plot).is_file()
    # a rerun of the same request returns the stored verdict without fitting again
    stamp = (tmp_path / "run" / "scores_before.npy").stat().st_mtime_ns
    again = run_post_training(_request(shared_data, tmp_path / "run"), context)
    assert again == verdict and (tmp_path / "run" / "scores_before.npy").stat().st_mtime_ns == stamp


def test_generate_without_scenario_and_unknown_banks_fail_at_the_first_node(shared_data: Path, tmp_path: Path) -> None:
    context = APEContext(model=None, data_roots=[str(shared_data)])
    with pytest.raises(ConfigError, match="scenario text"):
        run_post_training(_request(shared_data, tmp_path / "a", bank="generate"), context)
    with pytest.raises(ConfigError, match="ncad"):
        run_post_training(_request(shared_data, tmp_path / "b", bank="no_such_bank"), context)
    assert not (tmp_path / "b" / "scores_before.npy").exists()


def test_a_file_outside_the_data_roots_is_refused(shared_data: Path, tmp_path: Path) -> None:
    context = APEContext(model=None, data_roots=[str(tmp_path / "elsewhere")])
    with pytest.raises(DataError, match="outside the configured data roots"):
        run_post_training(_request(shared_data, tmp_path / "c"), context)
