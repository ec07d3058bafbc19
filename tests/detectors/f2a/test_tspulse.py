"""TSPulse: the Encoder contract, its masked loss, the masked scoring recipe, the detector and persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("tsfm_public")

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.detectors import Detector, Encoder, create_detector
from anomalygraph.detectors.deep.runtime import torch_threads
from anomalygraph.detectors.f2a.tspulse import TSPulseBackbone, TSPulseDetectorConfig

TINY = {"weights": "none", "context_length": 64, "patch_length": 8, "d_model": 16, "num_layers": 1,
        "decoder_num_layers": 1, "epochs": 12, "masked_tail": 16, "stride": 8, "max_windows": 400, "lr": 3e-3,
        "threads": 1}


def wave(length: int, seed: int = 0, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length)[:, None]
    phase = np.arange(channels)[None, :]
    return (np.sin(2 * np.pi * t / 16 + phase) + 0.05 * rng.standard_normal((length, channels))).astype(np.float32)


def windows(n: int, length: int = 64, channels: int = 1) -> torch.Tensor:
    series = wave(n + length, channels=channels)
    return torch.as_tensor(np.stack([series[s : s + length] for s in range(n)]))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one thread is fastest, and far faster than several on a busy machine."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def fitted(one_thread):
    return create_detector("tspulse", **TINY).fit(wave(600))


def test_the_backbone_meets_the_encoder_contract():
    backbone = TSPulseBackbone.build(TSPulseDetectorConfig(**TINY))
    assert isinstance(backbone, Encoder)
    z = backbone.encode(windows(5, channels=2))
    assert z.shape == (5, 2 * 16)
    loss = backbone.backbone_loss(windows(5, channels=2))
    loss.backward()  # a post-trainer can add to it and backpropagate into the encoder
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone.encoder_parameters())


def test_a_few_training_steps_reduce_the_masked_loss_on_a_periodic_series():
    torch.manual_seed(0)
    backbone = TSPulseBackbone.build(TSPulseDetectorConfig(**TINY))
    batch = windows(64)

    def fixed_loss() -> float:
        backbone.eval()
        with torch.no_grad():
            return float(backbone.backbone_loss(batch, torch.Generator().manual_seed(1)))

    before = fixed_loss()
    optimiser = torch.optim.Adam(backbone.parameters(), lr=1e-2)
    backbone.train()
    for _ in range(40):
        loss = backbone.backbone_loss(batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert fixed_loss() < 0.5 * before


def test_channels_are_reconstructed_independently():
    backbone = TSPulseBackbone.build(TSPulseDetectorConfig(**TINY)).eval()
    batch = windows(3, channels=3)
    with torch.no_grad():
        together = backbone.reconstruct(batch)
        alone = backbone.reconstruct(batch[:, :, 1:2])
        patches = backbone.reconstruct_patches(batch, [2, 7])
    assert together.shape == (3, 64, 3) and patches.shape == (3, 2, 8, 3)
    torch.testing.assert_close(together[:, :, 1:2], alone)


def test_a_hidden_patch_is_rebuilt_without_seeing_its_values():
    backbone = TSPulseBackbone.build(TSPulseDetectorConfig(**TINY)).eval()
    batch = windows(2)
    changed = batch.clone()
    changed[:, 40:48] += 10.0  # patch 5
    with torch.no_grad():
        hidden = backbone.reconstruct_patches(batch, [5])
        torch.testing.assert_close(backbone.reconstruct_patches(changed, [5]), hidden)
        # unmasked, the same change does reach the reconstruction
        assert not torch.allclose(backbone.reconstruct(changed)[:, 40:48], backbone.reconstruct(batch)[:, 40:48])


def test_a_planted_spike_scores_above_the_99th_percentile_of_the_other_test_rows(fitted):
    test = wave(400, seed=3)
    test[250] += 3.0
    scores = fitted.score(test)
    others = np.delete(scores, 250)
    assert scores[250] > np.percentile(others, 99)
    # training matters: here the spike is about 90x the 99th percentile; with epochs=0 it is 1.8x
    assert scores[250] > 5 * np.percentile(others, 99)
    assert fitted.training_ is not None and fitted.training_.epochs and fitted.weights_source_.startswith("no pretrained")


def test_a_saved_detector_scores_identically(fitted, tmp_path):
    fitted.save(tmp_path / "tspulse")
    loaded = Detector.load(tmp_path / "tspulse")
    test = wave(300, seed=2)
    np.testing.assert_array_equal(loaded.score(test), fitted.score(test))
    assert loaded.config == fitted.config and loaded.training_ == fitted.training_


def test_official_style_weights_load_from_a_folder_and_are_used_zero_shot(fitted, tmp_path):
    assert fitted.backbone_ is not None
    fitted.backbone_.save_directory(tmp_path / "weights")
    det = create_detector("tspulse", weights=tmp_path / "weights", context_length=512, masked_tail=16, epochs=50)
    det.fit(wave(600))
    assert det.config.context_length == 64 and det.training_ is None  # shape from the folder; no training
    np.testing.assert_array_equal(det.score(wave(200, seed=4)), fitted.score(wave(200, seed=4)))


def test_from_directory_on_an_empty_folder_names_it(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path}: not a TSPulse weights directory"):
        TSPulseBackbone.from_directory(tmp_path)
    with pytest.raises(DataError, match=str(tmp_path)):
        create_detector("tspulse", **TINY | {"weights": tmp_path}).fit(wave(300))


def test_too_short_input_is_one_clear_error(fitted):
    with pytest.raises(DataError, match="has 40 timestamps, shorter than tspulse's window of 64"):
        create_detector("tspulse", **TINY).fit(wave(40))
    with pytest.raises(DataError, match="has 63 timestamps, shorter than tspulse's window of 64"):
        fitted.score(wave(63))


def test_stride_beyond_the_masked_tail_is_refused():
    with pytest.raises(ConfigError, match="stride 32 must be at most masked_tail 16"):
        create_detector("tspulse", **TINY | {"stride": 32})
