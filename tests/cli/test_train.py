"""``anomalygraph train``: fit, post-train with a bank, save with provenance; bad input is exit 2 in one line."""

from __future__ import annotations

import json

from anomalygraph.cli.main import main
from anomalygraph.rulebank.store import bank_sha256, load_bank
from tests.detectors.ape.conftest import TinyAEDetector

CHANNEL = "SMAP_MSL/test/T-2.npy"
FAST = ["--ape-set", "epochs=2", "--ape-set", "steps_per_epoch=5", "--ape-set", "batch_size=16", "--ape-set", "validation_batches=1"]


def test_train_post_trains_and_prints_the_provenance_it_saved(shared_data, tmp_path, capsys) -> None:
    assert TinyAEDetector.name == "test_tiny_ae"
    out = tmp_path / "model"
    code = main(["train", str(shared_data / CHANNEL), "--detector", "test_tiny_ae", "--post-train", "cutaddpaste",
                 "--set", "epochs=1", "--out", str(out), *FAST])
    printed = capsys.readouterr().out
    assert code == 0, printed
    sha = bank_sha256(load_bank("cutaddpaste"))
    record = json.loads((out / "ape.json").read_text())
    assert record["bank"]["sha256"] == sha and record["backbone"]["detector"] == "test_tiny_ae"
    assert sha in printed and record["backbone"]["weights_sha256"] in printed
    assert "post-trained" in printed and "VUS-PR" in printed and f"saved to {out}" in printed


def test_train_without_post_training_saves_a_plain_detector(shared_data, tmp_path, capsys) -> None:
    out = tmp_path / "plain"
    assert main(["train", str(shared_data / CHANNEL), "-d", "test_tiny_ae", "--set", "epochs=1", "--out", str(out)]) == 0
    assert (out / "detector.json").is_file() and not (out / "ape.json").exists()
    assert "provenance" not in capsys.readouterr().out


def test_bad_input_is_one_line_and_exit_2(shared_data, tmp_path, capsys) -> None:
    path = str(shared_data / CHANNEL)
    cases = [
        (["train", path, "-d", "test_tiny_ae", "--post-train", "no_such_bank"], "ncad"),
        (["train", path, "-d", "test_tiny_ae", "--post-train", "ncad", "--ape-set", "temperature=-1"], "invalid --ape-set: temperature"),
        (["train", path, "-d", "iforest", "--post-train", "cutaddpaste"], "has no encoder"),
        (["train", str(tmp_path / "missing.csv"), "-d", "test_tiny_ae"], "missing.csv"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
