"""Pretraining on a corpus of windows, the weights folder it writes, and zero-shot use of it."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from anomalygraph.core.errors import DataError
from anomalygraph.detectors import create_detector
from anomalygraph.detectors.f2a import F2AConfig
from anomalygraph.detectors.f2a.pretraining import CARD_FILE, pretrain, write_weights

TINY = {"context_length": 32, "patch_length": 8, "horizon": 4, "adaptive_patching_levels": 1, "d_model": 16,
        "num_layers": 1, "decoder_d_model": 8, "decoder_num_layers": 1, "rag_k": 2}


def corpus(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(36)
    values = np.sin(2 * np.pi * (t[None] + rng.integers(0, 16, (n, 1))) / 16) + 0.05 * rng.standard_normal((n, 36))
    labels = np.zeros((n, 36), np.int8)
    for i in range(0, n, 3):  # a planted spike in the horizon of every third window
        values[i, 33] += 4
        labels[i, 33] = 1
    return values.astype(np.float32), labels


def test_pretrained_weights_load_for_zero_shot_use_with_a_true_card(tmp_path):
    values, labels = corpus()
    result = pretrain(values, labels, F2AConfig(**TINY), backbone_epochs=1, head_epochs=1)
    assert [r.stage for r in result.reports] == ["encoder", "f2a"]
    out = write_weights(result, tmp_path / "w", command="anomalygraph f2a pretrain --test", manifest={"n_windows": 120})
    digest = hashlib.sha256((out / "f2a.pt").read_bytes()).hexdigest()
    card = (out / CARD_FILE).read_text()
    assert digest in card and "anomalygraph f2a pretrain --test" in card and f"{result.n_parameters:,}" in card
    # zero-shot: the weights' shape wins over the detector's defaults, nothing is trained on the target
    series = np.sin(2 * np.pi * np.arange(400) / 16).astype(np.float32)[:, None]
    a = create_detector("f2a", weights=out, fine_tune=False).fit(series)
    b = create_detector("f2a", weights=out, fine_tune=False).fit(series)
    assert a.config.context_length == 32 and a.weights_source_.startswith("F2A weights")
    assert a.training_ == []
    np.testing.assert_array_equal(a.score(series), b.score(series))


def test_a_corpus_of_the_wrong_width_is_refused():
    values, labels = corpus()
    with pytest.raises(DataError, match=r"\[N, 36\]"):
        pretrain(values[:, :30], labels[:, :30], F2AConfig(**TINY), backbone_epochs=1, head_epochs=1)


def test_the_shipped_card_names_the_shipped_weights():
    from anomalygraph.detectors.f2a.detector import load_net, shipped_weights

    folder = shipped_weights()
    assert folder is not None, "the package ships F2A weights (anomalygraph f2a pretrain)"
    card = (folder / CARD_FILE).read_text()
    assert hashlib.sha256((folder / "f2a.pt").read_bytes()).hexdigest() in card
    net, config = load_net(folder, F2AConfig())
    assert f"parameters: {sum(p.numel() for p in net.parameters()):,}" in card
    assert f"context {config.context_length}, horizon {config.horizon}" in card
