"""TranAD: parity with TSB-AD's model, the two-phase loss, detection of a planted anomaly, persistence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from anomalygraph.detectors import Detector, create_detector
from anomalygraph.detectors.deep.tranad import (
    TranADConfig,
    TranADDetector,
    TranADModel,
    positional_encoding,
)
from tests.detectors.deep.conftest import adam_losses, all_windows, run_reference, sine

TINY = {"epochs": 3, "max_train_windows": 400, "threads": 1}


def test_defaults_are_tsbads_and_the_detector_is_registered() -> None:
    config = TranADConfig()
    assert (config.window, config.lr, config.batch_size, config.epochs) == (10, 1e-3, 128, 50)
    assert (config.d_ff, config.dropout, config.negative_slope) == (16, 0.1, 1.0)
    assert isinstance(create_detector("tranad", window=12), TranADDetector)
    model = TranADModel(1, 10)
    assert sum(p.numel() for p in model.parameters()) == 369
    assert sum(p.numel() for p in TranADModel(25, 10).parameters()) == 57_273


def test_positional_encoding_sums_sine_and_cosine_in_every_dimension() -> None:
    pe = positional_encoding(7, 4)
    angle = 3 * math.exp(-2 * math.log(10000.0) / 4)  # position 3, dimension 2
    assert pe.shape == (7, 4)
    assert pe[3, 2].item() == pytest.approx(math.sin(angle) + math.cos(angle), rel=1e-6)
    torch.testing.assert_close(pe[0], torch.ones(4))


# ------------------------------------------------------------------ the model
def test_encode_is_the_flattened_phase1_memory_and_gradients_reach_the_encoder() -> None:
    torch.manual_seed(0)
    model = TranADModel(3, 10).eval()
    x = torch.randn(5, 10, 3)
    z = model.encode(x)
    assert z.shape == (5, 10 * 6)
    torch.testing.assert_close(z, model.memory(x, torch.zeros_like(x)).reshape(5, -1))
    z.pow(2).sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    encoder = [n for n in grads if n.startswith("encoder.")]
    assert encoder and all(grads[n] is not None and grads[n].abs().sum() > 0 for n in encoder)
    assert all(grads[n] is None for n in grads if not n.startswith("encoder."))
    assert {id(p) for p in model.encoder_parameters()} == {id(model.get_parameter(n)) for n in encoder}


def test_phase2_is_conditioned_on_the_phase1_error() -> None:
    """Decoder 2 sees the focus score (x1 - window)^2: changing decoder 1 changes x2."""
    torch.manual_seed(1)
    model = TranADModel(2, 10).eval()
    x = torch.randn(4, 10, 2)
    _, before = model(x)
    with torch.no_grad():
        model.decoder1.linear2.bias.add_(1.0)
    x1, after = model(x)
    assert x1.shape == after.shape == (4, 2)
    assert not torch.allclose(before, after)
    assert ((x1 > 0) & (x1 < 1)).all()  # the sigmoid head
    torch.testing.assert_close(model.window_scores(x), (after - x[:, -1]).pow(2).mean(-1))


def test_loss_weights_the_phases_by_one_over_the_epoch() -> None:
    torch.manual_seed(2)
    model = TranADModel(2, 10).eval()
    x = torch.randn(6, 10, 2)
    x1, x2 = model(x)
    mse1, mse2 = (x1 - x[:, -1]).pow(2).mean(), (x2 - x[:, -1]).pow(2).mean()
    model.start_epoch(0)  # first epoch: phase 1 only, decoder 2 gets no gradient
    loss = model.backbone_loss(x)
    torch.testing.assert_close(loss, mse1)
    loss.backward()
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in model.decoder2.parameters())
    model.start_epoch(3)
    torch.testing.assert_close(model.backbone_loss(x), mse1 / 4 + mse2 * 3 / 4)


def test_backbone_loss_is_a_finite_scalar_that_adam_lowers() -> None:
    torch.manual_seed(0)
    model = TranADModel(1, 10, dropout=0.0)
    model.start_epoch(2)
    x = all_windows(sine(80), 10)
    losses = adam_losses(model, x, 30)
    assert losses[-1] < 0.8 * losses[0], losses


# --------------------------------------------------------------- the detector
def test_a_planted_spike_scores_above_the_normal_95th_percentile() -> None:
    train, test = sine(600), sine(400, seed=1)
    test[200:204] += 4.0
    scores = create_detector("tranad", **TINY).fit(train).score(test)
    assert scores.shape == (400,) and np.isfinite(scores).all()
    normal = np.r_[scores[:190], scores[220:]]  # windows that contain the spike are left out
    assert scores[200:204].mean() > np.percentile(normal, 95), (scores[200:204], np.percentile(normal, 95))
    assert 200 <= int(np.argmax(scores)) < 204  # the score is about the window's last step


def test_save_load_round_trips_scores_and_the_loss_epoch(tmp_path) -> None:
    train, test = sine(300, channels=2), sine(200, channels=2, seed=3)
    detector = create_detector("tranad", **{**TINY, "patience": 10}).fit(train)
    report = detector.training_
    assert report is not None and report.epochs_run == 3
    model = detector.model_
    assert isinstance(model, TranADModel) and model.epoch == report.best_epoch
    loaded = Detector.load(detector.save(tmp_path / "tranad"))
    np.testing.assert_array_equal(loaded.score(test), detector.score(test))
    assert isinstance(loaded.model_, TranADModel) and loaded.model_.epoch == report.best_epoch
    windows = detector.standardise(test)[None, :10]
    model.eval()
    loaded.model_.eval()
    torch.testing.assert_close(loaded.backbone_loss(windows), detector.backbone_loss(windows), rtol=0, atol=0)


# ------------------------------------------------- against TSB-AD's model
# Runs in the reference environment: TSB-AD's TranAD with our weights. Eval mode (dropout off) for
# every comparison, so both sides are deterministic. Outputs, the loss (``fit``'s expression for a
# 1-based epoch) and its gradients in float64, so a real difference cannot hide in float32 noise;
# the scores are ``decision_function`` (float32) on a raw series (its windows are never scaled).
REFERENCE_RUNNER = r"""
import json, sys
import numpy as np
import torch
from TSB_AD.models.TranAD import TranAD

folder = sys.argv[1]
for case in json.load(open(f"{folder}/cases.json")):
    tag, feats, window, epoch = case["tag"], case["channels"], case["window"], case["epoch"]
    clf = TranAD(win_size=window, feats=feats, batch_size=case["batch"])
    model = clf.model
    weights = dict(np.load(f"{folder}/{tag}_weights.npz"))
    state = model.state_dict()
    assert set(state) - set(weights) == {"pos_encoder.pe"} and set(weights) <= set(state), sorted(set(state) ^ set(weights))
    state.update({k: torch.from_numpy(v) for k, v in weights.items()})
    model.load_state_dict(state)
    model.eval().double()
    x = torch.from_numpy(np.load(f"{folder}/{tag}_windows.npy")).double().permute(1, 0, 2)
    bs = x.shape[1]
    elem = x[-1, :, :].view(1, bs, feats)
    z = model(x, elem)
    loss = (1 / epoch) * clf.criterion(z[0], elem) + (1 - 1 / epoch) * clf.criterion(z[1], elem)
    loss.backward()
    model.float()
    scores = clf.decision_function(np.load(f"{folder}/{tag}_series.npy"))
    np.savez(f"{folder}/{tag}_out.npz", x1=z[0][0].detach().numpy(), x2=z[1][0].detach().numpy(),
             loss=loss.detach().numpy(), pe=model.pos_encoder.pe[:, 0].numpy(), scores=np.asarray(scores),
             **{"grad." + n: p.grad.numpy() for n, p in model.named_parameters() if p.grad is not None})
"""

PREFIXES = {
    "encoder.": "transformer_encoder.layers.0.",
    "decoder1.": "transformer_decoder1.layers.0.",
    "decoder2.": "transformer_decoder2.layers.0.",
    "head.": "fcn.0.",
}


def _tsbad_name(name: str) -> str:
    prefix = next(p for p in PREFIXES if name.startswith(p))
    return PREFIXES[prefix] + name[len(prefix):]


@pytest.mark.integration
def test_same_weights_give_tsbads_outputs_loss_gradients_and_scores(tmp_path) -> None:
    """Univariate and 3-channel: equal reconstructions of both phases, positional encoding, loss and
    its gradients at a later epoch, and decision_function's scores (after undoing its placement)."""
    cases = [
        {"tag": "uni", "channels": 1, "window": 10, "epoch": 3, "batch": 16},
        {"tag": "multi", "channels": 3, "window": 10, "epoch": 2, "batch": 16},
    ]
    models, inputs = {}, {}
    for case in cases:
        tag, channels, window = case["tag"], case["channels"], case["window"]
        torch.manual_seed(len(tag))
        model = TranADModel(channels, window)
        with torch.no_grad():  # move the sigmoid's input off 0 so the outputs differ visibly
            for p in model.parameters():
                p.add_(0.3 * torch.randn_like(p))
        rng = np.random.default_rng(channels)
        series = (2.0 * rng.standard_normal((40, channels))).astype(np.float32)  # raw values: TSB-AD scales none
        windows = all_windows(series, window)[:7]
        np.savez(tmp_path / f"{tag}_weights.npz", **{_tsbad_name(n): p.detach().numpy() for n, p in model.named_parameters()})
        np.save(tmp_path / f"{tag}_windows.npy", windows.numpy())
        np.save(tmp_path / f"{tag}_series.npy", series)
        models[tag], inputs[tag] = model, (windows, series)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    run_reference(REFERENCE_RUNNER, tmp_path)

    close, exact = {"rtol": 1e-5, "atol": 1e-6}, {"rtol": 1e-9, "atol": 1e-12}
    for case in cases:
        tag, window = case["tag"], case["window"]
        ref = np.load(tmp_path / f"{tag}_out.npz")
        model, (windows, series) = models[tag].eval().double(), inputs[tag]
        np.testing.assert_allclose(model.pe.numpy(), ref["pe"], rtol=1e-6, atol=1e-6)
        windows = windows.double()
        x1, x2 = model(windows)
        np.testing.assert_allclose(x1.detach().numpy(), ref["x1"], **exact, err_msg=tag)
        np.testing.assert_allclose(x2.detach().numpy(), ref["x2"], **exact, err_msg=tag)
        assert not np.allclose(ref["x1"], ref["x2"], atol=1e-3)  # the phases differ, so each is checked

        model.start_epoch(case["epoch"] - 1)  # our epochs are 0-based
        loss = model.backbone_loss(windows)
        np.testing.assert_allclose(loss.item(), ref["loss"], **exact, err_msg=tag)
        model.zero_grad(set_to_none=True)
        loss.backward()
        for name, p in model.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), ref["grad." + _tsbad_name(name)], rtol=1e-7, atol=1e-10,
                                       err_msg=f"{tag} {name}")

        model.float()
        with torch.no_grad():
            ours = model.window_scores(all_windows(series, window)).numpy()
        theirs, n = ref["scores"], len(series) - window + 1
        assert theirs.shape == (len(series),)
        if case["channels"] == 1:  # padded so each score sits at its window's centre
            front = math.ceil((window - 1) / 2)
            np.testing.assert_allclose(theirs[front:front + n], ours, **close)
        else:  # one window per row from its start; the last L rows all take the last window
            np.testing.assert_allclose(theirs[:n], ours, **close)
            np.testing.assert_allclose(theirs[n:], ours[-1], **close)
