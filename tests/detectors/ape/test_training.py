"""The post-training loop: it reshapes z as the loss says, keeps its best epoch, honours 'encoder'."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anomalygraph.core.errors import ConfigError
from anomalygraph.detectors.ape import APEConfig, post_train
from anomalygraph.detectors.ape.ncad import OutlierExposure
from tests.detectors.ape.conftest import TinyAEDetector, seasonal

FAST = {"epochs": 3, "steps_per_epoch": 15, "batch_size": 32, "lr": 3e-3, "weight": 1.0, "validation_batches": 2}


def _sources(values: np.ndarray, window: int = 16) -> tuple[OutlierExposure, OutlierExposure]:
    return OutlierExposure(values[:450], window, seed=1), OutlierExposure(values[450:], window, seed=2)


def test_post_training_pushes_pseudo_anomalies_away_and_keeps_the_best_epoch(fitted: TinyAEDetector) -> None:
    values = seasonal(600)
    before_scores = fitted.decision_scores_.copy()
    report = post_train(fitted, values, *_sources(values), APEConfig(**FAST))
    assert report.after.negative_similarity < report.before.negative_similarity - 0.05
    assert report.after.positive_similarity > report.after.negative_similarity
    # the restored weights are the best epoch's: L_post on the validation batches is the minimum seen
    best = min([report.val_post_before] + [e.val_post for e in report.history])
    chosen = report.val_post_before if report.best_epoch == -1 else report.history[report.best_epoch].val_post
    assert chosen == best
    # training scores and the threshold now describe the post-trained model
    assert not np.allclose(fitted.decision_scores_, before_scores)
    assert fitted.threshold_.value == pytest.approx(np.quantile(fitted.decision_scores_, 1 - fitted.config.contamination))


def test_adjust_encoder_leaves_the_decoder_untouched(fitted: TinyAEDetector) -> None:
    values = seasonal(600)
    decoder = {k: v.clone() for k, v in fitted.model_.decoder.state_dict().items()}
    encoder = {k: v.clone() for k, v in fitted.model_.encoder.state_dict().items()}
    report = post_train(fitted, values, *_sources(values), APEConfig(**FAST, adjust="encoder"))
    for k, v in fitted.model_.decoder.state_dict().items():
        torch.testing.assert_close(v, decoder[k], rtol=0, atol=0)
    assert any(not torch.equal(v, encoder[k]) for k, v in fitted.model_.encoder.state_dict().items()) or report.best_epoch == -1
    assert report.trainable_parameters == sum(p.numel() for p in fitted.model_.encoder.parameters())
    assert all(p.requires_grad for p in fitted.model_.parameters())  # frozen only inside the loop


def test_a_batch_without_augmented_windows_is_refused(fitted: TinyAEDetector) -> None:
    class NoAug(OutlierExposure):
        def sample(self, n, *, with_augmented=False):
            return super().sample(n, with_augmented=False)

    values = seasonal(600)
    with pytest.raises(ConfigError, match="augmented"):
        post_train(fitted, values, NoAug(values[:450], 16), NoAug(values[450:], 16), APEConfig(**FAST))


def test_unfitted_backbone_is_refused() -> None:
    values = seasonal(600)
    with pytest.raises(ConfigError, match="fit the backbone"):
        post_train(TinyAEDetector(), values, *_sources(values), APEConfig(**FAST))


def test_ncad_exposure_changes_only_the_suspect_part() -> None:
    values = seasonal(400, d=3)
    source = OutlierExposure(values, 20, suspect_share=0.25, seed=0)
    batch = source.sample(64, with_augmented=True)
    changed = (batch.x_pa != batch.x_raw).any(axis=2)  # [B, L]
    assert not changed[:, :15].any()  # the context part (first 75 %) is never touched
    assert changed.any(axis=1).all()  # every window is changed somewhere
    points = batch.kind == 1
    assert points.any() and (~points).any()
    assert (changed[points].sum(axis=1) == 1).all()  # a point outlier is one step
    np.testing.assert_array_equal(changed, changed & batch.mask)
    assert batch.x_aug.shape == batch.x_raw.shape and not np.array_equal(batch.x_aug, batch.x_raw)
