"""The shared window-backbone machinery: the validation split, last-step score mapping, early stopping."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from anomalygraph.detectors.deep.base import WindowModel
from anomalygraph.detectors.deep.runtime import chronological_split
from tests.detectors.ape.conftest import TinyAEDetector, TinyAutoencoder, seasonal


def test_validation_windows_share_no_row_with_training_windows() -> None:
    starts = np.arange(0, 200, 3)
    train, val = chronological_split(starts, 0.25, window=16)
    assert len(val) == int(len(starts) * 0.25)
    assert (train + 16 <= val.min()).all()  # every training window ends before the first validation row
    assert len(train) + len(val) < len(starts)  # the windows straddling the cut are dropped
    tiny_train, tiny_val = chronological_split(np.arange(3), 0.2, window=16)
    assert len(tiny_val) == 0 and len(tiny_train) == 3


class LastStep(TinyAutoencoder):
    """Scores each window by its last value, so the mapping back to timestamps can be checked exactly."""

    def window_scores(self, windows: Tensor) -> Tensor:
        return windows[:, -1, 0]


class LastStepDetector(TinyAEDetector):
    name = "test_last_step"

    def build_model(self, n_channels: int) -> WindowModel:
        return LastStep(self.config.window, n_channels)


def test_last_step_scores_land_on_each_windows_last_timestamp() -> None:
    values = seasonal(300, d=1)
    detector = LastStepDetector(epochs=1).fit(values)
    z = (values[:, 0] - detector.mean_[0]) / detector.scale_[0]
    scores = detector.score(values)
    np.testing.assert_allclose(scores[15:], z[15:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores[:15], z[15], rtol=1e-5)  # before the first window ends: its score
    strided = LastStepDetector(epochs=1, score_stride=4).fit(values).score(values)
    np.testing.assert_allclose(strided[15::4], z[15::4], rtol=1e-5, atol=1e-6)


def test_training_keeps_the_best_validation_epoch_and_reports_each_epoch() -> None:
    seen = []
    detector = TinyAEDetector(epochs=6, patience=6, lr=5e-2)
    detector.on_epoch = seen.append
    torch.manual_seed(0)
    detector.fit(seasonal(600))
    report = detector.training_
    assert [r.epoch for r in seen] == list(range(report.epochs_run))
    best = min(r.val_loss for r in report.history)
    assert report.history[report.best_epoch].val_loss == best
    # the restored weights give the best epoch's validation loss again
    series = detector.standardise(seasonal(600))
    starts = detector.train_starts(len(series))
    _, val = chronological_split(starts, detector.config.validation_fraction, detector.config.window)
    assert abs(detector.mean_loss(series, torch.as_tensor(val)) - best) < 1e-5
