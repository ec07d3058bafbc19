"""TimesNet: parity with TSB-AD's model, period selection, the loss, detection of a planted anomaly, persistence."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from anomalygraph.detectors import Detector, create_detector
from anomalygraph.detectors.deep.runtime import gather_windows
from anomalygraph.detectors.deep.timesnet import (
    InceptionBlock,
    TimesBlock,
    TimesNetConfig,
    TimesNetDetector,
    TimesNetModel,
)
from tests.detectors.deep.conftest import adam_losses, all_windows, run_reference, sine

TINY = {"window": 32, "d_ff": 8, "num_kernels": 3, "top_k": 2, "epochs": 3, "max_train_windows": 400,
        "lr": 1e-3, "batch_size": 64, "threads": 1}


def test_defaults_are_tsbads_and_the_detector_is_registered() -> None:
    config = TimesNetConfig()
    assert (config.window, config.lr, config.batch_size, config.epochs, config.patience) == (96, 1e-4, 128, 10, 3)
    assert (config.d_model, config.d_ff, config.e_layers, config.top_k, config.num_kernels) == (8, 16, 1, 3, 6)
    assert (config.dropout, config.inference_periods) == (0.1, "window")
    assert isinstance(create_detector("timesnet", window=12), TimesNetDetector)
    assert sum(p.numel() for p in TimesNetModel(1, 96).parameters()) == 73_409
    assert sum(p.numel() for p in TimesNetModel(25, 96).parameters()) == 74_201
    with pytest.raises(ValidationError, match="top_k"):
        TimesNetConfig(window=8, top_k=5)  # a window of 8 has 4 non-zero frequencies


# ------------------------------------------------------------ the building blocks
def test_inception_block_is_the_mean_of_its_convolutions() -> None:
    torch.manual_seed(0)
    block = InceptionBlock(3, 4, 4).double()
    with torch.no_grad():
        for conv in block.kernels:
            conv.bias.normal_()
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    expected = torch.stack([conv(x) for conv in block.kernels], -1).mean(-1)
    torch.testing.assert_close(block(x), expected, rtol=1e-12, atol=1e-12)


def test_periods_come_from_the_batch_spectrum_or_each_windows_own() -> None:
    t = torch.arange(32, dtype=torch.float32)
    x = torch.stack([torch.sin(2 * math.pi * t / 8), 0.5 * torch.sin(2 * math.pi * t / 16)])[:, :, None].repeat(1, 1, 3)
    block = TimesBlock(3, 4, 1, 2)
    periods, weights = block.periods(x, per_window=True)
    assert periods[:, 0].tolist() == [8, 16]
    periods, _ = block.periods(x, per_window=False)  # the batch average: the louder period wins for both
    assert periods[:, 0].tolist() == [8, 8]
    periods, weights = TimesBlock(3, 4, 2, 2).periods(x, per_window=False)
    assert periods.tolist() == [[8, 16], [8, 16]]
    amplitude = torch.fft.rfft(x, dim=1).abs().mean(-1)
    torch.testing.assert_close(weights, torch.softmax(amplitude[:, [4, 2]], dim=1))


def test_per_window_periods_make_a_windows_output_independent_of_its_batch() -> None:
    torch.manual_seed(3)
    model = TimesNetModel(2, 24, d_ff=6, num_kernels=3, top_k=3, e_layers=2).eval()
    x = torch.randn(9, 24, 2) * torch.linspace(0.5, 3, 9)[:, None, None]
    with torch.no_grad():
        alone = torch.cat([model(w[None]) for w in x])
        torch.testing.assert_close(model(x, per_window=True), alone, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(model(x), alone, atol=1e-3)  # batch periods mix the windows
        torch.testing.assert_close(model.window_scores(x[:4]), model.window_scores(x)[:4], rtol=1e-5, atol=1e-6)
        model.per_window = False
        assert not torch.allclose(model.window_scores(x[:4]), model.window_scores(x)[:4], atol=1e-4)


# ------------------------------------------------------------------- the model
def test_encode_pools_the_last_blocks_output_and_gradients_reach_the_encoder() -> None:
    torch.manual_seed(0)
    model = TimesNetModel(3, 24, d_model=6, d_ff=8, num_kernels=3, e_layers=2).eval()
    x = torch.randn(5, 24, 3)
    z = model.encode(x)
    assert z.shape == (5, 6)
    torch.testing.assert_close(z, model.features(x, per_window=True)[0].mean(1))
    z.pow(2).sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    encoder = [n for n in grads if not n.startswith("projection.")]
    assert all(grads[n] is not None and grads[n].abs().sum() > 0 for n in encoder), encoder
    assert grads["projection.weight"] is None and grads["projection.bias"] is None
    assert {id(p) for p in model.encoder_parameters()} == {id(model.get_parameter(n)) for n in encoder}


def test_reconstruction_is_in_the_windows_units_and_scores_are_its_squared_error() -> None:
    torch.manual_seed(1)
    model = TimesNetModel(2, 16, d_ff=8, num_kernels=2).eval()
    x = torch.randn(4, 16, 2)
    y = model(x, per_window=True)
    shifted = model(3.0 * x + 7.0, per_window=True)  # the per-window normalisation undoes any affine map
    torch.testing.assert_close(shifted, 3.0 * y + 7.0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(model.window_scores(x), (x - y).pow(2).mean(-1))
    torch.testing.assert_close(model.backbone_loss(x), (x - model(x)).pow(2).mean())


def test_backbone_loss_is_a_finite_scalar_that_adam_lowers() -> None:
    torch.manual_seed(0)
    model = TimesNetModel(1, 32, d_ff=8, num_kernels=3, top_k=2, dropout=0.0)
    x = all_windows(sine(96), 32)
    losses = adam_losses(model, x, 25)
    assert losses[-1] < 0.5 * losses[0], losses


# --------------------------------------------------------------- the detector
def test_a_planted_spike_scores_above_the_normal_95th_percentile() -> None:
    train, test = sine(600), sine(400, seed=1)
    test[200:204] += 3.0
    scores = create_detector("timesnet", **TINY).fit(train).score(test)
    assert scores.shape == (400,) and np.isfinite(scores).all()
    normal = np.r_[scores[:160], scores[240:]]  # windows (32 steps) that contain the spike are left out
    assert scores[200:204].mean() > np.percentile(normal, 95), (scores[200:204], np.percentile(normal, 95))
    assert 196 <= int(np.argmax(scores)) < 208


def test_scores_do_not_depend_on_the_scoring_batch() -> None:
    train, test = sine(300, channels=2), sine(250, channels=2, seed=3)
    detector = create_detector("timesnet", **{**TINY, "epochs": 1}).fit(train)
    series = detector.standardise(test)
    windows = gather_windows(series, torch.arange(len(test) - 32 + 1), 32)
    with torch.no_grad():
        together = detector.window_scores(windows)
        in_sevens = torch.cat([detector.window_scores(w) for w in windows.split(7)])
    torch.testing.assert_close(together, in_sevens, rtol=1e-5, atol=1e-7)
    scores = detector.score_standardised(series)
    expected = np.zeros(len(test))
    for start, row in enumerate(together.double().numpy()):  # the mean over the windows covering a step
        expected[start:start + 32] += row
    expected /= np.convolve(np.ones(len(test) - 31), np.ones(32))
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


def test_save_load_round_trips_scores(tmp_path) -> None:
    train, test = sine(300, channels=2), sine(200, channels=2, seed=3)
    detector = create_detector("timesnet", **{**TINY, "patience": 10, "inference_periods": "batch"}).fit(train)
    assert detector.training_ is not None and detector.training_.epochs_run == 3
    loaded = Detector.load(detector.save(tmp_path / "timesnet"))
    assert isinstance(loaded.model_, TimesNetModel) and not loaded.model_.per_window
    np.testing.assert_array_equal(loaded.score(test), detector.score(test))
    windows = detector.standardise(test)[None, :32]
    loaded.model_.eval()
    detector.model_.eval()
    torch.testing.assert_close(loaded.encode(windows), detector.encode(windows), rtol=0, atol=0)


# ------------------------------------------------- against TSB-AD's model
# Runs in the reference environment: TSB-AD's TimesNet with our weights, in eval mode (no dropout).
# Outputs, the loss and its gradients in float64 on one batch (batch periods, as TSB-AD trains);
# the same windows one at a time (a batch of one = our per-window periods) and the encoder output
# there (the projection's input, pooled over time); decision_function's float32 scores of a raw
# series in small batches (batch periods per scoring batch) and in batches of one.
REFERENCE_RUNNER = r"""
import importlib.util, json, sys, types
import numpy as np
import torch
from torch import nn
if importlib.util.find_spec("torchinfo") is None:  # imported by TimesNet.py only for param_statistic
    sys.modules["torchinfo"] = types.ModuleType("torchinfo")
from TSB_AD.models.TimesNet import Model, TimesBlock, TimesNet

folder = sys.argv[1]
for case in json.load(open(f"{folder}/cases.json")):
    tag, channels, window = case["tag"], case["channels"], case["window"]
    clf = TimesNet(win_size=window, enc_in=channels, batch_size=case["batch"])
    if "blocks" in case:  # TSB-AD's Model builds its blocks with fixed sizes; rebuild them for this case
        b = case["blocks"]
        clf.model = Model(seq_len=window, d_model=b["d_model"], enc_in=channels, c_out=channels, e_layers=b["e_layers"])
        clf.model.model = nn.ModuleList([
            TimesBlock(seq_len=window, top_k=b["top_k"], d_model=b["d_model"], d_ff=b["d_ff"], num_kernels=b["num_kernels"])
            for _ in range(b["e_layers"])])
    model = clf.model
    weights = dict(np.load(f"{folder}/{tag}_weights.npz"))
    state = model.state_dict()
    unused = {"enc_embedding.position_embedding.pe", "enc_embedding.temporal_embedding.embed.weight"}
    assert set(state) - set(weights) == unused and set(weights) <= set(state), sorted(set(state) ^ set(weights))
    state.update({k: torch.from_numpy(v) for k, v in weights.items()})
    model.load_state_dict(state)
    model.eval().double()
    x = torch.from_numpy(np.load(f"{folder}/{tag}_windows.npy")).double()
    out = model(x)
    loss = clf.criterion(out, x)
    loss.backward()
    hidden = []
    hook = model.projection.register_forward_hook(lambda m, inputs, output: hidden.append(inputs[0].mean(1)))
    with torch.no_grad():
        single = torch.cat([model(x[i:i + 1]) for i in range(len(x))])
    hook.remove()
    model.float()
    series = np.load(f"{folder}/{tag}_series.npy")
    scores = clf.decision_function(series)
    clf.batch_size = 1
    scores_one = clf.decision_function(series)
    np.savez(f"{folder}/{tag}_out.npz", out=out.detach().numpy(), loss=loss.detach().numpy(),
             single=single.numpy(), hidden=torch.cat(hidden).numpy(), scores=np.asarray(scores),
             scores_one=np.asarray(scores_one), pe=model.enc_embedding.position_embedding.pe[0, :window].numpy(),
             **{"grad." + n: p.grad.numpy() for n, p in model.named_parameters() if p.grad is not None})
"""


def _tsbad_name(name: str) -> str:
    name = name.replace("embedding.token.", "enc_embedding.value_embedding.tokenConv.")
    name = re.sub(r"^blocks\.(\d+)\.inception_in\.", r"model.\1.conv.0.", name)
    return re.sub(r"^blocks\.(\d+)\.inception_out\.", r"model.\1.conv.2.", name)


@pytest.mark.integration
def test_same_weights_give_tsbads_outputs_loss_gradients_and_scores(tmp_path) -> None:
    """Univariate at TSB-AD's architecture, and 3 channels with two blocks (the shared LayerNorm) and
    other sizes: equal reconstructions with batch and per-window periods, encoder output, loss and its
    gradients, and decision_function's last-step scores (after undoing its placement)."""
    blocks = {"d_model": 6, "d_ff": 10, "e_layers": 2, "top_k": 2, "num_kernels": 3}
    cases = [
        {"tag": "uni", "channels": 1, "window": 32, "rows": 60, "batch": 16},
        {"tag": "multi", "channels": 3, "window": 24, "rows": 50, "batch": 16, "blocks": blocks},
    ]
    models, inputs = {}, {}
    for case in cases:
        tag, channels, window = case["tag"], case["channels"], case["window"]
        torch.manual_seed(len(tag))
        model = TimesNetModel(channels, window, **{k: v for k, v in case.get("blocks", {}).items()})
        with torch.no_grad():  # off their neutral initial values, so a misplaced one shows
            model.layer_norm.weight.add_(0.3 * torch.randn_like(model.layer_norm.weight))
            model.layer_norm.bias.add_(0.3 * torch.randn_like(model.layer_norm.bias))
            for name, p in model.named_parameters():
                if name.endswith("kernels.0.bias") or name.endswith("kernels.1.bias"):
                    p.add_(0.1 * torch.randn_like(p))
        rng = np.random.default_rng(channels)
        t = np.arange(case["rows"])[:, None]
        # raw values (TSB-AD scales none): noise over a weak cycle, so windows pick different periods
        series = (5.0 + 2.0 * rng.standard_normal((case["rows"], channels)) + np.sin(2 * np.pi * t / 6)).astype(np.float32)
        windows = all_windows(series, window)[:7]
        np.savez(tmp_path / f"{tag}_weights.npz", **{_tsbad_name(n): p.detach().numpy() for n, p in model.named_parameters()})
        np.save(tmp_path / f"{tag}_windows.npy", windows.numpy())
        np.save(tmp_path / f"{tag}_series.npy", series)
        models[tag], inputs[tag] = model, (windows, series)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    run_reference(REFERENCE_RUNNER, tmp_path)

    exact, close = {"rtol": 1e-9, "atol": 1e-12}, {"rtol": 1e-4, "atol": 1e-6}
    for case in cases:
        tag, window = case["tag"], case["window"]
        ref = np.load(tmp_path / f"{tag}_out.npz")
        model, (windows, series) = models[tag].eval().double(), inputs[tag]
        np.testing.assert_allclose(model.embedding.positions.numpy(), ref["pe"], rtol=1e-6, atol=1e-6)
        windows = windows.double()
        with torch.no_grad():
            np.testing.assert_allclose(model(windows).numpy(), ref["out"], **exact, err_msg=tag)
            np.testing.assert_allclose(model(windows, per_window=True).numpy(), ref["single"], **exact, err_msg=tag)
            np.testing.assert_allclose(model.encode(windows).numpy(), ref["hidden"], **exact, err_msg=tag)
        assert not np.allclose(ref["out"], ref["single"], atol=1e-3), tag  # the periods differ, so each is checked

        loss = model.backbone_loss(windows)
        np.testing.assert_allclose(loss.item(), ref["loss"], **exact, err_msg=tag)
        model.zero_grad(set_to_none=True)
        loss.backward()
        for name, p in model.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), ref["grad." + _tsbad_name(name)], rtol=1e-7, atol=1e-12,
                                       err_msg=f"{tag} {name}")

        model.float()
        n, rows = len(series) - window + 1, len(series)
        if case["channels"] == 1:  # one window per start, padded so each score sits at its window's centre
            starts = torch.arange(n)
            front = math.ceil((window - 1) / 2)
            place = slice(front, front + n)
        else:  # one window per row from its start; the last L rows all take the last window
            starts = torch.arange(rows).clamp(max=n - 1)
            place = slice(0, rows)
        scored = gather_windows(torch.from_numpy(series), starts, window)
        with torch.no_grad():
            model.per_window = False  # TSB-AD's batches: periods from each scoring batch
            batched = torch.cat([model.window_scores(w)[:, -1] for w in scored.split(case["batch"])]).numpy()
            model.per_window = True  # our default equals TSB-AD scoring one window at a time
            one = model.window_scores(scored)[:, -1].numpy()
        assert ref["scores"].shape == ref["scores_one"].shape == (rows,)
        np.testing.assert_allclose(ref["scores"][place], batched, **close, err_msg=tag)
        np.testing.assert_allclose(ref["scores_one"][place], one, **close, err_msg=tag)
        assert not np.allclose(batched, one, rtol=1e-3), tag
