"""F2A: its losses, the frozen encoder, retrieval without leakage, forecasts and persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.detectors import Detector, create_detector
from anomalygraph.detectors.f2a import F2AConfig, F2ANet, focal_loss, weighted_mae
from anomalygraph.detectors.f2a.backbone import TTMBackbone
from anomalygraph.detectors.f2a.training import build_memory, train, window_starts

TINY = {"weights": "none", "context_length": 32, "patch_length": 8, "horizon": 4, "adaptive_patching_levels": 1, "d_model": 16,
        "num_layers": 1, "decoder_d_model": 8, "decoder_num_layers": 1, "epochs": 2, "encoder_epochs": 1,
        "rag_k": 2, "max_windows": 300}


def wave(length: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return (np.sin(2 * np.pi * t / 16) + 0.05 * rng.standard_normal(length)).astype(np.float32)[:, None]


def test_focal_loss_equals_its_formula_on_hand_computed_values():
    logits, target = torch.tensor([0.0, 2.0, -1.0]), torch.tensor([1.0, 0.0, 1.0])
    gamma, alpha = 2.0, 0.25
    expected = []
    for z, y in zip(logits.tolist(), target.tolist(), strict=True):
        p = 1 / (1 + math.exp(-z))
        pt, at = (p, alpha) if y == 1 else (1 - p, 1 - alpha)
        expected.append(-at * (1 - pt) ** gamma * math.log(pt))
    assert float(focal_loss(logits, target, gamma, alpha)) == pytest.approx(sum(expected) / 3, rel=1e-6)
    # the first term by hand: p = 0.5, so 0.25 * 0.5^2 * ln 2
    assert expected[0] == pytest.approx(0.25 * 0.25 * math.log(2))
    # gamma 0, alpha 0.5 is half the binary cross-entropy
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert float(focal_loss(logits, target, 0.0, 0.5)) == pytest.approx(0.5 * float(bce), rel=1e-6)


def test_weighted_mae_counts_anomalous_steps_three_times():
    forecast, target = torch.zeros(1, 2, 1), torch.tensor([[[1.0], [2.0]]])
    anomalous = torch.tensor([[0.0, 1.0]])
    # (1 * 1 + 3 * 2) / (1 + 3)
    assert float(weighted_mae(forecast, target, anomalous, 3.0)) == pytest.approx(7 / 4)


def test_the_encoder_does_not_change_while_f2a_trains():
    config = F2AConfig(**TINY)
    net = F2ANet(TTMBackbone.build(config))
    net.freeze_encoder()
    values = torch.as_tensor(wave(600))
    labels = np.zeros(600, dtype=np.int8)
    labels[300:305] = 1
    encoder_before = [p.detach().clone() for p in net.backbone.encoder_parameters()]
    head_before = [p.detach().clone() for p in net.anomaly.parameters()]
    memory = build_memory(net, values, labels, config)
    train(net, values, labels, config, memory, stage="f2a", epochs=2)
    assert all(torch.equal(a, b) for a, b in zip(encoder_before, net.backbone.encoder_parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(head_before, net.anomaly.parameters(), strict=True))


def test_training_windows_never_retrieve_a_window_that_overlaps_them():
    config = F2AConfig(**TINY)
    net = F2ANet(TTMBackbone.build(config))
    values = torch.as_tensor(wave(800))
    memory = build_memory(net, values, np.zeros(800, dtype=np.int8), config)
    starts = window_starts(800, config)
    from anomalygraph.detectors.f2a.training import embed_windows

    emb, _, _ = embed_windows(net, values, starts, config.context_length)
    span = config.context_length + config.horizon
    _, ids = memory.neighbours(emb, 3, torch.device("cpu"), query_starts=starts, span=span)
    used = ids >= 0
    assert used.any()
    assert (np.abs(memory.starts[ids[used]] - np.repeat(starts, 3).reshape(-1, 3)[used]) >= span).all()
    # without the rule a query that is itself in memory finds itself first: its own future as "evidence"
    own = np.isin(starts, memory.starts)
    dist, plain = memory.index.search(emb[own], 1)
    assert (memory.starts[plain[:, 0]] == starts[own]).mean() > 0.9 and np.allclose(dist, 0, atol=1e-5)


def test_forecast_quantiles_are_ordered_and_horizon_checked():
    det = create_detector("f2a", **TINY).fit(wave(600))
    f = det.forecast(wave(400, seed=1), quantiles=(0.8, 0.2, 0.3, 0.7))
    q = np.array([f.quantiles[k] for k in ("0.2", "0.3", "0.7", "0.8")])  # [4, h, C]
    assert q.shape == (4, 4, 1) and (np.diff(q, axis=0) >= 0).all() and (q[-1] > q[0]).all()
    assert f.issued_at == 400 and len(f.anomaly_probability) == 4
    with pytest.raises(ConfigError, match="horizon"):
        det.forecast(wave(400), horizon=5)
    with pytest.raises(ConfigError, match="quantiles"):
        det.forecast(wave(400), quantiles=(1.5,))


def test_a_saved_model_with_its_memory_scores_and_retrieves_identically(tmp_path):
    det = create_detector("f2a", **TINY).fit(wave(600))
    det.save(tmp_path / "f2a")
    loaded = Detector.load(tmp_path / "f2a")
    test = wave(300, seed=2)
    np.testing.assert_array_equal(loaded.score(test), det.score(test))
    np.testing.assert_array_equal(loaded.predict_windows(test).neighbours, det.predict_windows(test).neighbours)
    assert loaded.weights_source_ == det.weights_source_ and loaded.weights_source_.startswith("no pretrained")


def test_the_joint_score_is_the_mean_of_both_parts_in_held_out_sigmas_and_survives_a_reload(tmp_path):
    from anomalygraph.detectors.f2a.training import per_timestamp, residual_per_timestamp

    det = create_detector("f2a", **TINY | {"score": "joint"}).fit(wave(600))
    test = wave(300, seed=2)
    windows = det.predict_windows(test)
    p, e = per_timestamp(windows, len(test)), residual_per_timestamp(windows, test)
    (pc, ps), (ec, es) = det.reference_
    logit = np.log(np.clip(p, 1e-7, 1 - 1e-7)) - np.log1p(-np.clip(p, 1e-7, 1 - 1e-7))
    np.testing.assert_allclose(det.score(test), 0.5 * ((logit - pc) / ps + (e - ec) / es), rtol=1e-6)
    assert ps > 0 and es > 0 and det.reference_.shape == (2, 2)
    det.save(tmp_path / "joint")
    np.testing.assert_array_equal(Detector.load(tmp_path / "joint").score(test), det.score(test))


def test_too_short_training_rows_are_one_clear_error():
    with pytest.raises(DataError, match="at least 36 training rows"):
        create_detector("f2a", **TINY).fit(wave(35))


def test_fine_tuned_f2a_predicts_what_follows_a_precursor():
    """Each anomaly follows a small precursor bump by 3 steps: trained with labels, F2A should raise its
    probability in the rows after a precursor, before the anomaly itself is in its context."""
    rng = np.random.default_rng(0)
    length = 3000
    x = (0.1 * rng.standard_normal(length)).astype(np.float32)
    labels = np.zeros(length, dtype=np.int8)
    onsets = np.arange(100, length - 20, 60)
    for s in onsets:
        x[s - 4 : s - 2] += 1.5  # precursor
        x[s : s + 3] += 4.0  # anomaly
        labels[s : s + 3] = 1
    config = TINY | {"epochs": 15, "encoder_epochs": 3, "max_windows": 3000, "lr": 3e-3}
    det = create_detector("f2a", **config).fit(x[:2000, None], labels=labels[:2000])
    scores = det.score(x[:, None])
    test = np.arange(2000, length)
    hit = labels[test] == 1
    assert scores[test][hit].mean() > 2 * scores[test][~hit].mean()


@pytest.mark.parametrize(("name", "settings"), [
    ("f2a", TINY),
    ("tspulse", {"weights": "none", "context_length": 64, "patch_length": 8, "masked_tail": 16, "epochs": 1}),
])
def test_without_the_extra_the_error_names_it(monkeypatch, name, settings):
    import builtins

    real = builtins.__import__

    def no_tsfm(name, *args, **kwargs):
        if name.startswith("tsfm_public"):
            raise ImportError("No module named 'tsfm_public'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tsfm)
    with pytest.raises(ConfigError, match=r"\[f2a\] extra"):
        create_detector(name, **settings).fit(wave(200))


def test_the_ttm_backbone_meets_the_encoder_contract():
    from anomalygraph.detectors import Encoder

    config = F2AConfig(**TINY)
    backbone = TTMBackbone.build(config)
    assert isinstance(backbone, Encoder)
    windows = torch.as_tensor(np.stack([wave(36, seed=s) for s in range(5)]))  # [5, L + h, 1]
    z = backbone.encode(windows[:, :32])
    assert z.shape == (5, 2 * config.d_model)
    loss = backbone.backbone_loss(windows)
    loss.backward()  # a post-trainer can add to it and backpropagate into the encoder
    assert loss.ndim == 0 and any(p.grad is not None for p in backbone.encoder_parameters())
