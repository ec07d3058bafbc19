"""Score fusion: robust-z on training rows, agreement weights without labels, intervals with agreement."""

from __future__ import annotations

import numpy as np
import pytest

from anomalygraph.core.errors import DataError
from anomalygraph.detectors.fusion import (
    agreement_weights,
    fuse_scores,
    masks_from_intervals,
    robust_z,
)


def _tracks(seed: int = 0) -> dict[str, np.ndarray]:
    """Two detectors that track the same latent deviation (with an event at rows 800..819) and one
    that sees only heavy-tailed noise of its own."""
    rng = np.random.default_rng(seed)
    latent = np.convolve(rng.normal(size=1000), np.ones(25) / 5, mode="same")
    latent[800:820] += 12.0
    return {
        "a": latent + 0.5 * rng.normal(size=1000),
        "b": 10 * (latent + 0.5 * rng.normal(size=1000)) + 50,  # another scale and offset
        "blind": rng.standard_t(2, size=1000) * 5,
    }


def test_robust_z_uses_the_reference_rows_median_and_mad():
    ref = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    z = robust_z(np.array([3.0, 4.4826]), ref)
    np.testing.assert_allclose(z, [0.0, 1.0], atol=1e-4)  # median 3, MAD 1 -> sigma 1.4826


def test_agreement_weights_give_little_say_to_a_detector_that_sees_what_no_other_sees():
    tracks = _tracks()
    parts = {n: robust_z(s, s[:500]) for n, s in tracks.items()}
    w = agreement_weights(parts)
    assert sum(w.values()) == pytest.approx(1.0)
    assert w["blind"] < 0.1 and w["a"] > 0.4 and w["b"] > 0.4
    two = agreement_weights({n: parts[n] for n in ("a", "blind")})
    assert two == {"a": 0.5, "blind": 0.5}  # two detectors agree equally with each other


def test_weighted_fusion_ranks_the_event_above_a_blind_detectors_outliers():
    tracks = _tracks()
    masks = masks_from_intervals({"a": [(800, 819)], "b": [(800, 819)], "blind": [(10, 12)]}, 1000)
    fused, result = fuse_scores(tracks, masks, fit_rows=slice(0, 500))
    plain, _ = fuse_scores(tracks, masks, fit_rows=slice(0, 500), method="robust_z_mean")
    inside = np.zeros(1000, bool)
    inside[800:820] = True

    def margin(x: np.ndarray) -> float:  # how far the event stands above everything else
        return float(np.min(x[inside]) - np.max(x[~inside]))

    assert margin(fused) > margin(plain)
    assert result.method == "agreement_weighted" and set(result.weights) == {"a", "b", "blind"}
    top = result.intervals[0]
    assert top.start <= 819 and top.end >= 800 and top.detectors == ["a", "b"] and top.agreement == pytest.approx(2 / 3)
    assert result.threshold.fitted_on.startswith("fused scores of the rows")


def test_plain_methods_weigh_detectors_equally_and_bad_input_is_refused():
    tracks = _tracks()
    masks = masks_from_intervals({n: [] for n in tracks}, 1000)
    for method in ("robust_z_mean", "rank_mean"):
        _, result = fuse_scores(tracks, masks, fit_rows=slice(0, 500), method=method)
        assert list(result.weights.values()) == pytest.approx([1 / 3] * 3)
    with pytest.raises(DataError, match="no detector scores"):
        fuse_scores({}, {}, fit_rows=slice(None))
    with pytest.raises(DataError, match="different lengths"):
        fuse_scores({"a": np.zeros(5), "b": np.zeros(6)}, {}, fit_rows=slice(None))
