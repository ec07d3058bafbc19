"""Anomaly Transformer: the math against the paper's formulas, the minimax gradients, the contract."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pytest
import torch

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.data import load_series
from anomalygraph.detectors import Detector, create_detector, detector_names
from anomalygraph.detectors.anomaly_transformer import (
    AnomalyTransformerDetector,
    AnomalyTransformerModel,
    anomaly_criterion,
    fused_minimax_loss,
    minimax_losses,
    symmetric_kl,
    training,
)
from anomalygraph.detectors.anomaly_transformer.config import AnomalyTransformerConfig
from anomalygraph.detectors.anomaly_transformer.model import KL_EPS, gaussian_prior
from anomalygraph.metrics import vus_pr
from tests.conftest import reference_python

# One thread: tiny models gain nothing from more, and CI may run tests in parallel workers.
TINY = {
    "window": 16,
    "d_model": 16,
    "n_heads": 2,
    "e_layers": 2,
    "d_ff": 16,
    "batch_size": 32,
    "epochs": 2,
    "threads": 1,
}


def _tiny_model(channels: int = 2, window: int = 8) -> AnomalyTransformerModel:
    torch.manual_seed(0)
    return AnomalyTransformerModel(channels, window, d_model=8, n_heads=2, e_layers=2, d_ff=8)


def _sine(length: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length)[:, None]
    return (
        np.sin(2 * np.pi * t / 25 + np.arange(channels))
        + 0.05 * rng.standard_normal((length, channels))
    ).astype(np.float32)


# ------------------------------------------------------------------ the math
def test_prior_is_the_row_normalised_gaussian_of_the_paper() -> None:
    torch.manual_seed(1)
    window = 12
    sigma = torch.rand(2, 3, 4, window) * 2 + 1e-3  # [E, B, H, L]
    index = torch.arange(window, dtype=torch.float32)
    distance = (index[:, None] - index[None, :]).abs()
    gaussian = torch.exp(-(distance**2) / (2 * sigma[..., None] ** 2)) / (
        math.sqrt(2 * math.pi) * sigma[..., None]
    )
    expected = gaussian / gaussian.sum(-1, keepdim=True)  # the reference's prior / prior.sum(-1)
    actual = gaussian_prior(sigma, -0.5 * distance**2)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_symmetric_kl_equals_the_references_two_kl_terms() -> None:
    torch.manual_seed(2)
    p = torch.softmax(torch.randn(3, 5, 7), -1)
    q = torch.softmax(torch.randn(3, 5, 7) * 3, -1)

    def reference_kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * (torch.log(a + KL_EPS) - torch.log(b + KL_EPS))).sum(-1)

    torch.testing.assert_close(symmetric_kl(p, q), reference_kl(p, q) + reference_kl(q, p))
    assert (symmetric_kl(p, q) > 0).all() and torch.allclose(symmetric_kl(p, p), torch.zeros(3, 5))


def test_associations_are_distributions_and_the_criterion_has_one_value_per_step() -> None:
    model = _tiny_model(channels=3, window=10)
    x = torch.randn(4, 10, 3)
    out = model(x)
    assert out.reconstruction.shape == (4, 10, 3)
    assert out.series.shape == out.prior.shape == (2, 4, 2, 10, 10)
    torch.testing.assert_close(out.series.sum(-1), torch.ones(2, 4, 2, 10))
    torch.testing.assert_close(out.prior.sum(-1), torch.ones(2, 4, 2, 10))
    assert ((out.sigma > 0) & (out.sigma < 2)).all()
    criterion = anomaly_criterion(out, x, temperature=50.0)
    assert criterion.shape == (4, 10) and torch.isfinite(criterion).all() and (criterion >= 0).all()


# ------------------------------------------------------------ minimax gradients
def _grads(model: torch.nn.Module, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {
        name: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
        for name, p in model.named_parameters()
    }


def _association_grads(
    model: AnomalyTransformerModel, x: torch.Tensor, phase: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients reaching the series and prior association tensors from one phase's loss."""
    out = model(x)
    out.series.retain_grad()
    out.prior.retain_grad()
    model.zero_grad(set_to_none=True)
    minimax_losses(out, x, 3.0)[phase].backward()
    zero = torch.zeros_like(out.series)
    return (
        out.series.grad if out.series.grad is not None else zero,
        out.prior.grad if out.prior.grad is not None else zero,
    )


def test_minimax_phases_route_the_discrepancy_gradient_as_in_the_paper() -> None:
    """Paper Eq. 5: the minimise phase moves the prior towards the series association (series
    detached); the maximise phase moves the series association away (prior detached)."""
    model = _tiny_model()
    x = torch.randn(6, 8, 2)
    series_grad, prior_grad = _association_grads(model, x, phase=0)  # minimise
    assert torch.count_nonzero(series_grad) == 0 and torch.count_nonzero(prior_grad) > 0
    series_grad, prior_grad = _association_grads(model, x, phase=1)  # maximise
    assert torch.count_nonzero(prior_grad) == 0 and torch.count_nonzero(series_grad) > 0


def test_minimax_phases_at_the_parameters() -> None:
    """Maximise phase: no sigma (prior) parameter of any layer moves. Minimise phase: the last
    layer's query/key weights get only the reconstruction gradient (earlier layers' Q/K still
    reach later priors through the hidden state, as in the reference)."""
    model = _tiny_model()
    x = torch.randn(6, 8, 2)
    k = 3.0
    rec_only = _grads(model, torch.nn.functional.mse_loss(model(x).reconstruction, x))
    minimise = _grads(model, minimax_losses(model(x), x, k)[0])
    maximise = _grads(model, minimax_losses(model(x), x, k)[1])
    sigma_names = [n for n in maximise if "sigma_projection" in n]
    assert len(sigma_names) == 4
    assert all(torch.count_nonzero(maximise[n]) == 0 for n in sigma_names)
    assert all(torch.count_nonzero(minimise[n]) > 0 for n in sigma_names)
    last_qk = "layers.1.attention.qkv.weight"
    torch.testing.assert_close(minimise[last_qk][:16], rec_only[last_qk][:16], rtol=1e-5, atol=1e-8)
    assert not torch.allclose(maximise[last_qk][:16], rec_only[last_qk][:16])


def test_fused_loss_gradient_equals_the_sum_of_both_phases() -> None:
    model = _tiny_model()
    x = torch.randn(6, 8, 2)
    minimise, maximise = minimax_losses(model(x), x, 3.0)
    expected = _grads(model, minimise + maximise)
    fused, rec, dis = fused_minimax_loss(model(x), x, 3.0)
    actual = _grads(model, fused)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-5, atol=1e-7, msg=name)
    torch.testing.assert_close(fused, 2 * rec + 3.0 * dis)


# --------------------------------------------------------------- the contract
def test_registered_by_name_and_rejects_bad_configuration() -> None:
    assert "anomaly_transformer" in detector_names()
    assert isinstance(create_detector("anomaly_transformer", window=20), AnomalyTransformerDetector)
    with pytest.raises(ConfigError, match="divisible by n_heads"):
        create_detector("anomaly_transformer", d_model=10, n_heads=3)
    with pytest.raises(ConfigError, match="score_stride"):
        create_detector("anomaly_transformer", window=10, score_stride=11)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_uses_bf16_on_cpu_only_with_native_bf16(monkeypatch, native: bool) -> None:
    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    auto = AnomalyTransformerConfig()
    assert training.resolve_precision(auto, cpu) == ("bf16" if native else "fp32")
    for forced in ("fp32", "bf16"):
        assert training.resolve_precision(AnomalyTransformerConfig(precision=forced), cpu) == forced


def test_bf16_training_scores_every_timestamp_and_round_trips(tmp_path) -> None:
    train, test = _sine(300), _sine(200, seed=1)
    detector = create_detector("anomaly_transformer", **{**TINY, "epochs": 1, "precision": "bf16"})
    scores = detector.fit(train).score(test)
    assert scores.shape == (200,) and np.isfinite(scores).all() and scores.std() > 0
    detector.save(tmp_path / "m")
    np.testing.assert_array_equal(Detector.load(tmp_path / "m").score(test), scores)


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
def test_requesting_cuda_without_a_gpu_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="CUDA is not available"):
        create_detector("anomaly_transformer", **{**TINY, "device": "cuda"}).fit(_sine(60))


def test_fit_and_score_give_one_finite_score_per_timestamp_deterministically() -> None:
    train, test = _sine(300), _sine(200, seed=1)
    test[120:126] += 4.0
    first = create_detector("anomaly_transformer", **TINY).fit(train)
    second = create_detector("anomaly_transformer", **TINY).fit(train)
    scores = first.score(test)
    assert scores.shape == (200,) and np.isfinite(scores).all()
    np.testing.assert_array_equal(scores, second.score(test))
    assert first.threshold_ is not None and first.threshold_.fitted_on == "train scores"
    report = first.training_
    assert report is not None and report.validation_rows == 60 and report.epochs_run >= 1
    assert [h.lr for h in report.history] == [1e-4, 1e-4][: report.epochs_run]
    # The injected burst is where the criterion peaks.
    assert 110 <= int(np.argmax(scores)) < 136


def test_early_stopping_ends_training_when_validation_stalls_and_keeps_the_best_epoch() -> None:
    # Demanding a 99 % drop per epoch makes every epoch after the first "stale".
    config = {**TINY, "epochs": 5, "patience": 1, "min_improvement": 0.99}
    report = create_detector("anomaly_transformer", **config).fit(_sine(300)).training_
    assert report is not None
    assert report.epochs_run == 2 and report.stopped_early
    assert [h.improved for h in report.history] == [True, False]
    losses = [h.val_reconstruction for h in report.history]
    assert report.best_epoch == int(np.argmin(losses))


def test_save_load_round_trips_scores_exactly(tmp_path) -> None:
    train, test = _sine(240, channels=2), _sine(150, channels=2, seed=3)
    detector = create_detector("anomaly_transformer", **{**TINY, "epochs": 1}).fit(train)
    saved = detector.save(tmp_path / "at")
    assert (saved / "model.pt").is_file() and (saved / "training.json").is_file()
    loaded = Detector.load(saved)
    assert isinstance(loaded, AnomalyTransformerDetector)
    np.testing.assert_array_equal(loaded.score(test), detector.score(test))
    assert loaded.threshold_ == detector.threshold_
    np.testing.assert_array_equal(loaded.predict(test), detector.predict(test))
    assert loaded.training_ == detector.training_


def test_corrupt_weights_file_is_a_clear_error(tmp_path) -> None:
    saved = (
        create_detector("anomaly_transformer", **{**TINY, "epochs": 1})
        .fit(_sine(120))
        .save(tmp_path / "at")
    )
    (saved / "model.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=r"model\.pt: not a readable weights file"):
        Detector.load(saved)


def test_one_channel_model_refuses_a_three_channel_series() -> None:
    detector = create_detector("anomaly_transformer", **{**TINY, "epochs": 1}).fit(_sine(120))
    with pytest.raises(
        DataError, match="has 3 channels, but 'anomaly_transformer' was fitted on 1"
    ):
        detector.score(_sine(120, channels=3))


def test_series_shorter_than_the_window_is_refused() -> None:
    with pytest.raises(DataError, match="shorter than anomaly_transformer's window of 16"):
        create_detector("anomaly_transformer", **TINY).fit(_sine(10))


def test_short_training_series_trains_without_validation() -> None:
    detector = create_detector("anomaly_transformer", **{**TINY, "epochs": 2}).fit(_sine(40))
    report = detector.training_
    assert report is not None
    assert report.validation_rows == 0 and report.epochs_run == 2 and not report.stopped_early


# ------------------------------------------------- against TSB-AD's model
# Runs in the reference environment: TSB-AD's AnomalyTransformerModel with our weights, its
# criterion (the loop body of ``decision_function``, every position) and the gradients of its
# two minimax backward passes (the loop body of ``fit``).
REFERENCE_RUNNER = r"""
import json, sys, types
import numpy as np
import torch
torch.Tensor.cuda = lambda self, *args, **kwargs: self
sys.modules.setdefault("torchinfo", types.ModuleType("torchinfo"))
from TSB_AD.models.AnomalyTransformer import AnomalyTransformerModel, my_kl_loss

folder = sys.argv[1]
cfg = json.load(open(f"{folder}/cfg.json"))
weights = dict(np.load(f"{folder}/weights.npz"))
x = torch.from_numpy(np.load(f"{folder}/x.npy"))
L = cfg["window"]
model = AnomalyTransformerModel(win_size=L, enc_in=cfg["channels"], c_out=cfg["channels"], d_model=cfg["d_model"],
                                n_heads=cfg["n_heads"], e_layers=cfg["e_layers"], d_ff=cfg["d_ff"])
state = model.state_dict()
unused = [k for k in state if k not in weights]
assert all(".attention.norm." in k or k.endswith(".pe") for k in unused), unused
state.update({k: torch.from_numpy(v) for k, v in weights.items()})
model.load_state_dict(state)
model.train()

def norm(p):
    return p / torch.unsqueeze(torch.sum(p, dim=-1), dim=-1).repeat(1, 1, 1, L)

output, series, prior, _ = model(x)
with torch.no_grad():
    s_loss = p_loss = 0.0
    for u in range(len(prior)):
        s_loss = s_loss + my_kl_loss(series[u], norm(prior[u]).detach()) * 50
        p_loss = p_loss + my_kl_loss(norm(prior[u]), series[u].detach()) * 50
    loss = torch.mean(torch.nn.MSELoss(reduction="none")(x, output), dim=-1)
    criterion = torch.softmax(-s_loss - p_loss, dim=-1) * loss
series_loss = prior_loss = 0.0
for u in range(len(prior)):
    series_loss += torch.mean(my_kl_loss(series[u], norm(prior[u]).detach())) + torch.mean(
        my_kl_loss(norm(prior[u]).detach(), series[u]))
    prior_loss += torch.mean(my_kl_loss(norm(prior[u]), series[u].detach())) + torch.mean(
        my_kl_loss(series[u].detach(), norm(prior[u])))
series_loss, prior_loss = series_loss / len(prior), prior_loss / len(prior)
rec_loss = torch.nn.MSELoss()(output, x)
(rec_loss - cfg["k"] * series_loss).backward(retain_graph=True)
(rec_loss + cfg["k"] * prior_loss).backward()
np.savez(f"{folder}/out.npz", reconstruction=output.detach().numpy(),
         series=torch.stack(series).detach().numpy(), prior=torch.stack([norm(p) for p in prior]).detach().numpy(),
         criterion=criterion.numpy(),
         **{"grad." + n: p.grad.numpy() for n, p in model.named_parameters() if p.grad is not None})
"""


def _to_tsbad_names(model: AnomalyTransformerModel) -> dict[str, np.ndarray]:
    """Our parameters under TSB-AD's names and shapes (fused QKV split, 1x1 convs for linears)."""
    ours = {k: v.detach().numpy() for k, v in model.named_parameters()}
    out = {
        "embedding.value_embedding.tokenConv.weight": ours["embedding.token.weight"],
        "encoder.norm.weight": ours["norm.weight"],
        "encoder.norm.bias": ours["norm.bias"],
        "projection.weight": ours["projection.weight"],
        "projection.bias": ours["projection.bias"],
    }
    for i in range(len(model.layers)):
        src, dst = f"layers.{i}.", f"encoder.attn_layers.{i}."
        for part in ("weight", "bias"):
            q, k, v = np.split(ours[src + "attention.qkv." + part], 3)
            out[dst + "attention.query_projection." + part] = q
            out[dst + "attention.key_projection." + part] = k
            out[dst + "attention.value_projection." + part] = v
            for name in ("sigma_projection", "out_projection"):
                out[dst + f"attention.{name}." + part] = ours[src + f"attention.{name}." + part]
            for name in ("norm1", "norm2"):
                out[dst + f"{name}." + part] = ours[src + f"{name}." + part]
        out[dst + "conv1.weight"] = ours[src + "ff1.weight"][..., None]
        out[dst + "conv1.bias"] = ours[src + "ff1.bias"]
        out[dst + "conv2.weight"] = ours[src + "ff2.weight"][..., None]
        out[dst + "conv2.bias"] = ours[src + "ff2.bias"]
    return out


@pytest.mark.integration
def test_same_weights_give_tsbads_outputs_criterion_and_minimax_gradients(tmp_path) -> None:
    """With TSB-AD's model loaded with our weights: equal reconstruction, associations and
    criterion, and our single fused backward equals its two minimax backward passes."""
    python = reference_python()
    if not python.exists():
        pytest.fail(f"reference interpreter {python} is missing: run `make reference-env`")
    cfg = {
        "window": 12,
        "channels": 3,
        "d_model": 16,
        "n_heads": 4,
        "e_layers": 2,
        "d_ff": 8,
        "k": 3.0,
    }
    torch.manual_seed(0)
    model = AnomalyTransformerModel(
        cfg["channels"], cfg["window"], d_model=16, n_heads=4, e_layers=2, d_ff=8
    )
    x = torch.randn(5, cfg["window"], cfg["channels"])
    np.savez(tmp_path / "weights.npz", **_to_tsbad_names(model))
    np.save(tmp_path / "x.npy", x.numpy())
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    (tmp_path / "runner.py").write_text(REFERENCE_RUNNER)
    done = subprocess.run(
        [str(python), str(tmp_path / "runner.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ref = np.load(tmp_path / "out.npz")

    out = model(x)
    close = {"rtol": 1e-4, "atol": 1e-6}
    np.testing.assert_allclose(out.reconstruction.detach().numpy(), ref["reconstruction"], **close)
    np.testing.assert_allclose(out.series.detach().numpy(), ref["series"], **close)
    np.testing.assert_allclose(out.prior.detach().numpy(), ref["prior"], **close)
    with torch.no_grad():
        criterion = anomaly_criterion(out, x, temperature=50.0).numpy()
    np.testing.assert_allclose(criterion, ref["criterion"], rtol=1e-3, atol=1e-7)

    model.zero_grad(set_to_none=True)
    fused_minimax_loss(out, x, cfg["k"])[0].backward()
    ours = _to_tsbad_names_grads(model)
    for name, grad in ours.items():
        np.testing.assert_allclose(grad, ref["grad." + name], rtol=1e-3, atol=1e-6, err_msg=name)


def _to_tsbad_names_grads(model: AnomalyTransformerModel) -> dict[str, np.ndarray]:
    saved = {n: p.data.clone() for n, p in model.named_parameters()}
    for p in model.parameters():  # reuse the name mapping by swapping gradients in as values
        p.data = p.grad.clone()
    try:
        return _to_tsbad_names(model)
    finally:
        for n, p in model.named_parameters():
            p.data = saved[n]


# -------------------------------------------------------------- real data
@pytest.mark.slow
def test_tiny_model_beats_random_scores_on_a_real_series(shared_data) -> None:
    """A tiny configuration on NAB machine_temperature_system_failure (real sensor data).

    Fit on rows 0-2,000 (no labelled anomaly), score rows 2,000-8,000 (two labelled windows,
    label ratio 0.19). VUS-PR with TSB-AD's buffer rule (the period of the series). Margin: it
    must exceed the best of 20 seeded random scorings by 0.03. Measured here: seeds 0/1/2 give
    0.347/0.273/0.273 against a random best of 0.218; on UCR 135-137 and the AWS NAB series
    the same tiny model does not beat random, in line with TSB-AD's ranking of the method.
    """
    series = load_series(
        shared_data / "NAB" / "data" / "realKnownCause" / "machine_temperature_system_failure.csv"
    )
    assert series.labels is not None
    train, test_values = series.values[:2000], series.values[2000:8000]
    labels = series.labels[2000:8000]
    assert series.labels[:2000].sum() == 0 and 0.1 < labels.mean() < 0.3
    detector = create_detector(
        "anomaly_transformer",
        window=32,
        d_model=32,
        n_heads=4,
        e_layers=2,
        d_ff=32,
        epochs=3,
        lr=3e-4,
        seed=0,
        threads=1,
    )
    ours = vus_pr(labels, detector.fit(train).score(test_values), series=test_values)
    rng = np.random.default_rng(0)
    random_best = max(
        vus_pr(labels, rng.random(len(labels)), series=test_values) for _ in range(20)
    )
    assert ours > random_best + 0.03, (
        f"VUS-PR: ours {ours:.3f}, best of 20 random {random_best:.3f}"
    )
