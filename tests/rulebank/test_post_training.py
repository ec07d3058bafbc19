"""APE fed by a rule bank: the bank's canonical hash, the record saved with the model, strict provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anomalygraph.core.errors import ConfigError
from anomalygraph.data import TimeSeries
from anomalygraph.detectors.ape import APEConfig, ProvenanceError, load_post_trained
from anomalygraph.rulebank.post_training import bank_record, post_train_detector, save_post_trained
from anomalygraph.rulebank.store import bank_sha256, dump_bank, load_bank, parse_bank
from tests.detectors.ape.conftest import TinyAEDetector, seasonal

FAST = APEConfig(epochs=2, steps_per_epoch=8, batch_size=16, validation_batches=1, lr=3e-3)


def test_bank_hash_ignores_format_and_key_order_but_not_content() -> None:
    bank = load_bank("cutaddpaste")
    as_json = parse_bank(dump_bank(bank, "json"), "json")
    reordered = parse_bank(json.dumps(dict(reversed(list(json.loads(dump_bank(bank, "json")).items())))), "reordered")
    assert bank_sha256(bank) == bank_sha256(as_json) == bank_sha256(reordered)
    heavier = bank.model_copy(deep=True)
    heavier.rules[0].weight += 1
    assert bank_sha256(heavier) != bank_sha256(bank)
    assert bank_record(bank).rules == len(bank.rules)


@pytest.fixture
def trained(tmp_path):
    series = TimeSeries(values=seasonal(600), name="toy")
    detector = TinyAEDetector().fit(series)
    record = post_train_detector(detector, series, "cutaddpaste", FAST)
    out = save_post_trained(detector, record, tmp_path / "model")
    return detector, record, out, series


def test_the_saved_record_names_bank_and_backbone(trained) -> None:
    detector, record, out, series = trained
    saved = json.loads((out / "ape.json").read_text())
    bank = load_bank("cutaddpaste")
    assert saved["source"] == "bank"
    assert saved["bank"] == {"name": "cutaddpaste", "version": bank.version, "sha256": bank_sha256(bank),
                             "made_by": "heuristic", "rules": len(bank.rules)}
    assert saved["backbone"]["detector"] == "test_tiny_ae" and len(saved["backbone"]["weights_sha256"]) == 64
    loaded, again = load_post_trained(out, bank_sha256=bank_sha256(bank), strict=True)
    np.testing.assert_array_equal(loaded.score(series), detector.score(series))
    assert again == record


def test_strict_provenance_refuses_a_bank_whose_hash_differs(trained) -> None:
    _, _, out, _ = trained
    other = load_bank("cutaddpaste").model_copy(deep=True)
    other.rules[0].weight += 1
    with pytest.raises(ProvenanceError, match="refusing to load"):
        load_post_trained(out, bank_sha256=bank_sha256(other), strict=True)
    with pytest.raises(ProvenanceError, match="no bank was given"):
        load_post_trained(out, strict=True)
    detector, _ = load_post_trained(out, bank_sha256=bank_sha256(other))  # not strict: loads, the record tells
    assert detector.name == "test_tiny_ae"


def test_ncad_has_no_bank_so_strict_provenance_refuses_it(tmp_path) -> None:
    series = TimeSeries(values=seasonal(600))
    detector = TinyAEDetector().fit(series)
    record = post_train_detector(detector, series, "ncad", FAST)
    out = save_post_trained(detector, record, tmp_path / "m")
    assert record.source == "ncad" and record.bank is None
    with pytest.raises(ProvenanceError, match="not a rule bank"):
        load_post_trained(out, bank_sha256="0" * 64, strict=True)


def test_too_short_training_rows_and_unknown_banks_are_one_clear_error() -> None:
    short = TimeSeries(values=seasonal(60), name="short")
    detector = TinyAEDetector().fit(short)
    with pytest.raises(ConfigError, match="at least 32 training rows"):
        post_train_detector(detector, short, "cutaddpaste", FAST)
    with pytest.raises(ConfigError, match="ncad"):
        post_train_detector(detector, short, "no_such_bank", FAST)
