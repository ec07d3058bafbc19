"""Donut: TSB-AD's outputs, losses and scores with the same weights and noise; the contract; detection."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from anomalygraph.detectors import Detector, create_detector
from anomalygraph.detectors.deep.donut import DonutDetector, DonutModel
from tests.detectors.deep.conftest import adam_losses, run_reference

# One thread: tiny models gain nothing from more, and CI may run tests in parallel workers.
TINY = {
    "window": 16,
    "hidden_sizes": [32],
    "latent_dim": 4,
    "mc_samples": 16,
    "epochs": 8,
    "lr": 3e-3,
    "batch_size": 64,
    "threads": 1,
}


def _sine(length: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length)[:, None]
    return (np.sin(2 * np.pi * t / 24 + np.arange(channels)) + 0.05 * rng.standard_normal((length, channels))).astype(
        np.float32
    )


def _windows(values: np.ndarray, window: int) -> torch.Tensor:
    """Every ``[L, D]`` window of ``values`` ``[T, D]``, start by start."""
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)  # [N, D, L]
    return torch.from_numpy(np.ascontiguousarray(view.transpose(0, 2, 1)))


def _tiny_model(channels: int = 2, window: int = 8, **kwargs) -> DonutModel:
    torch.manual_seed(0)
    return DonutModel(channels, window, hidden_sizes=(16,), latent_dim=3, mc_samples=8, **kwargs)


# ------------------------------------------------------------ reference parity
REFERENCE_RUNNER = r"""
import json, sys, types
import numpy as np
import torch
sys.modules.setdefault("torchinfo", types.ModuleType("torchinfo"))
from TSB_AD.models.Donut import Donut, MaskedVAELoss

folder = sys.argv[1]
cfg = json.load(open(f"{folder}/cfg.json"))
weights = {k: torch.from_numpy(v) for k, v in np.load(f"{folder}/weights.npz").items()}
x = torch.from_numpy(np.load(f"{folder}/x.npy"))
series = np.load(f"{folder}/series.npy")
clf = Donut(win_size=cfg["window"], input_c=cfg["channels"], batch_size=cfg["batch_size"], mc_samples=cfg["samples"],
            hidden_dim=cfg["hidden"], latent_dim=cfg["latent"], inject_ratio=cfg["inject_ratio"])
model = clf.model
model.load_state_dict(weights)

# record the noise TSB-AD draws (its code runs unchanged), so ours can be fed the same
drawn = {"randn_like": [], "rand": []}
def recording(name, draw):
    def wrapper(*args, **kwargs):
        out = draw(*args, **kwargs)
        drawn[name].append(out.clone())
        return out
    return wrapper
torch.randn_like = recording("randn_like", torch.randn_like)
torch.rand = recording("rand", torch.rand)

torch.manual_seed(0)
model.train()
mean_z, std_z, mean_x, std_x, z, mask = out = model(x)
loss = MaskedVAELoss()(out, (x,))
loss.backward()
model.eval()
with torch.no_grad():
    ev = model(x)
    eval_loss = MaskedVAELoss()(ev, (x,))
scores = clf.decision_function(series)
np.savez(f"{folder}/out.npz", mean_z=mean_z.detach().numpy(), std_z=std_z.detach().numpy(),
         mean_x=mean_x.detach().numpy(), std_x=std_x.detach().numpy(), z=z.detach().numpy(), mask=mask.numpy(),
         eps=drawn["randn_like"][0].numpy(), loss=loss.detach().numpy(),
         eval_mean_x=ev[2].numpy(), eval_std_x=ev[3].numpy(), eval_loss=eval_loss.numpy(),
         score_noise=torch.cat(drawn["rand"], dim=1).numpy(), scores=scores,
         **{"grad." + n: p.grad.numpy() for n, p in model.named_parameters()})
"""


def _tsbad_names(model: DonutModel, grads: bool = False) -> dict[str, np.ndarray]:
    """Our parameters (or their gradients) under TSB-AD's names: ``vae.{encoder,decoder}.mlp.layers.{i}``."""
    out = {}
    for part in ("encoder", "decoder"):
        net = getattr(model, part)
        linears = [m for m in net.hidden if isinstance(m, torch.nn.Linear)] + [net.out]
        for i, layer in enumerate(linears):
            for kind in ("weight", "bias"):
                p = getattr(layer, kind)
                out[f"vae.{part}.mlp.layers.{i}.{kind}"] = (p.grad if grads else p).detach().numpy().copy()
    return out


@pytest.mark.integration
def test_same_weights_and_noise_give_tsbads_outputs_losses_gradients_and_scores(tmp_path) -> None:
    """TSB-AD's model with our weights, fed the same injection mask and noise: equal posterior and likelihood
    parameters, equal M-ELBO (training) and ELBO (eval) losses and gradients, and our last-step scores equal
    ``decision_function``'s (with its uniform scoring noise injected into ours)."""
    cfg = {"window": 8, "channels": 3, "hidden": [12, 10], "latent": 4, "inject_ratio": 0.2, "samples": 7,
           "batch_size": 8}
    torch.manual_seed(0)
    model = DonutModel(cfg["channels"], cfg["window"], hidden_sizes=cfg["hidden"], latent_dim=cfg["latent"],
                       inject_ratio=cfg["inject_ratio"], std_epsilon=0.0, mc_samples=cfg["samples"])
    x = torch.randn(5, cfg["window"], cfg["channels"])
    series = _sine(30, cfg["channels"], seed=2)
    np.savez(tmp_path / "weights.npz", **_tsbad_names(model))
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "series.npy", series)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    run_reference(REFERENCE_RUNNER, tmp_path)
    ref = np.load(tmp_path / "out.npz")
    close = {"rtol": 1e-4, "atol": 1e-6}
    mask, eps = torch.from_numpy(ref["mask"]), torch.from_numpy(ref["eps"])
    assert 0 < mask.mean() < 1  # the injection really masked some points

    model.train()
    out = model(x, mask, eps)
    for name in ("mean_z", "std_z", "z", "mean_x", "std_x"):
        np.testing.assert_allclose(getattr(out, name).detach().numpy(), ref[name], **close, err_msg=name)
    model.zero_grad(set_to_none=True)
    loss = model.backbone_loss(x, mask, eps)
    np.testing.assert_allclose(loss.item(), ref["loss"], rtol=1e-5)
    loss.backward()
    for name, grad in _tsbad_names(model, grads=True).items():
        np.testing.assert_allclose(grad, ref["grad." + name], rtol=1e-3, atol=1e-6, err_msg=name)

    model.eval()
    with torch.no_grad():
        ev = model(x)
        np.testing.assert_allclose(ev.mean_x.numpy(), ref["eval_mean_x"], **close)
        np.testing.assert_allclose(ev.std_x.numpy(), ref["eval_std_x"], **close)
        np.testing.assert_allclose(model.backbone_loss(x).item(), ref["eval_loss"], rtol=1e-5)

        # TSB-AD's multivariate dataset yields one window per row (the last rows repeat the last window), so its
        # first N - L + 1 scores are the windows' last-step scores in order
        windows = _windows(series, cfg["window"])
        noise = torch.from_numpy(ref["score_noise"][:, : len(windows)])
        expected = ref["scores"][: len(windows)]
        per_step = model.window_scores(windows, noise)
        assert per_step.shape == (len(windows), cfg["window"])
        np.testing.assert_allclose(per_step[:, -1].numpy(), expected, rtol=1e-4, atol=1e-5)
        model.last_point_only = True
        np.testing.assert_allclose(model.window_scores(windows, noise).numpy(), expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- the model
def test_encode_is_the_posterior_mean_with_gradients_and_the_loss_decreases() -> None:
    model = _tiny_model()
    x = torch.from_numpy(_sine(48, 2)).unfold(0, 8, 4).transpose(1, 2).contiguous()  # [11, 8, 2]
    h = model.encode(x)
    assert h.shape == (len(x), 3)
    torch.testing.assert_close(h, model.eval()(x).mean_z)  # mu_z, not a sample
    h.pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert all(p.grad is None for p in model.decoder.parameters())

    model.train()
    torch.manual_seed(1)
    losses = adam_losses(model, x, 30)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.2, losses


def test_eval_loss_is_deterministic_and_sum_weighs_the_reconstruction_l_times() -> None:
    model = _tiny_model().eval()
    x = torch.randn(6, 8, 2)
    with torch.no_grad():
        mean_loss = model.backbone_loss(x)
        np.testing.assert_array_equal(mean_loss.numpy(), model.backbone_loss(x).numpy())
        model.reconstruction = "sum"
        sum_loss = model.backbone_loss(x)
        out = model(x)
        recon = torch.nn.functional.gaussian_nll_loss(out.mean_x, x, out.std_x**2, reduction="none").sum((1, 2)).mean()
    # sum - mean = (1 - 1/L) * reconstruction, the KL part being the same in both
    torch.testing.assert_close(sum_loss - mean_loss, recon * (1 - 1 / 8), rtol=1e-5, atol=1e-5)


def test_scores_are_seeded_batch_independent_and_last_point_only_is_the_last_step() -> None:
    model = _tiny_model(channels=3).eval()
    x = torch.randn(10, 8, 3)
    with torch.no_grad():
        scores = model.window_scores(x)
        assert scores.shape == (10, 8) and torch.isfinite(scores).all()
        torch.testing.assert_close(model.window_scores(x), scores, rtol=0, atol=0)
        torch.testing.assert_close(model.window_scores(x[3:5]), scores[3:5])  # a window's score ignores its batch
        model.seed = 1
        assert not torch.allclose(model.window_scores(x), scores)  # the noise is drawn, not constant
        model.seed, model.last_point_only = 0, True
        torch.testing.assert_close(model.window_scores(x), scores[:, -1])
        # an obviously wrong last step is the most anomalous
        x[:, -1] += 8.0
        assert (model.window_scores(x) > scores[:, -1]).all()


# ------------------------------------------------------------ the detector
def test_a_planted_level_shift_scores_above_the_95th_percentile_of_normal_steps() -> None:
    train, test = _sine(1200), _sine(480, seed=1)
    test[300:312] += 2.5
    detector = create_detector("donut", **TINY).fit(train)
    assert isinstance(detector, DonutDetector) and detector.training_ is not None
    scores = detector.score(test)
    assert scores.shape == (480,) and np.isfinite(scores).all()
    normal = np.r_[scores[:280], scores[340:]]  # the shift's windows reach 16 steps either side
    assert scores[300:312].mean() > np.percentile(normal, 95), (scores[300:312].mean(), np.percentile(normal, 95))


def test_save_load_round_trips_scores_exactly(tmp_path) -> None:
    train, test = _sine(300, channels=2), _sine(150, channels=2, seed=3)
    detector = create_detector("donut", **{**TINY, "epochs": 1, "last_point_only": True}).fit(train)
    saved = detector.save(tmp_path / "donut")
    loaded = Detector.load(saved)
    assert isinstance(loaded, DonutDetector) and loaded.config == detector.config
    np.testing.assert_array_equal(loaded.score(test), detector.score(test))
    assert loaded.training_ == detector.training_
