"""KernelSynth: seeded, finite, varying series; a periodic kernel gives its period; the bank fits the length."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.gaussian_process.kernels import ExpSineSquared

from anomalygraph.core.errors import ConfigError
from anomalygraph.data.kernelsynth import (
    PERIODS,
    describe_kernels,
    kernel_bank,
    kernelsynth,
    kernelsynth_samples,
    random_kernel,
    sample_gp,
)


def acf(x: np.ndarray, lag: int) -> float:
    """Correlation of the series with itself ``lag`` steps later."""
    return float(np.corrcoef(x[:-lag], x[lag:])[0, 1])


def test_deterministic_per_seed_and_different_across_seeds():
    a, b = kernelsynth(8, 256, seed=3), kernelsynth(8, 256, seed=3)
    assert a.dtype == np.float32 and a.shape == (8, 256)
    assert np.array_equal(a, b)
    c = kernelsynth(8, 256, seed=4)
    assert not np.allclose(a, c)
    # each series has its own seed: the first ones do not depend on how many are asked for
    assert np.array_equal(kernelsynth(3, 256, seed=3), a[:3])


def test_every_series_is_finite_and_varies():
    x = kernelsynth(24, 200, seed=0)
    assert np.isfinite(x).all()
    assert (x.std(axis=1) > 0).all() and (np.ptp(x, axis=1) > 0).all()
    assert len({row.tobytes() for row in x}) == len(x)


def test_a_periodic_kernel_repeats_at_its_period():
    length, period = 480, 24
    label, kernel = next((lab, k) for lab, k in kernel_bank(length) if lab == f"periodic({period})")
    x = sample_gp(kernel, length, np.random.default_rng(0))
    assert acf(x, period) > 0.99  # the same value one period later
    assert acf(x, period) > acf(x, period // 2) + 0.3  # and not at half of it
    # the bank's periodicity is in steps of linspace(0, 1, length)
    y = sample_gp(ExpSineSquared(periodicity=period / (length - 1)), length, np.random.default_rng(0))
    assert np.allclose(x, y)
    assert label == "periodic(24)"


def test_bank_periods_fit_the_length():
    labels = [lab for lab, _ in kernel_bank(16)]
    assert [lab for lab in labels if lab.startswith("periodic")] == ["periodic(4)", "periodic(7)", "periodic(12)"]
    assert len(kernel_bank(1024)) == len(PERIODS) + 12  # 3 linear, 3 rbf, 3 rq, 2 white, 1 constant
    with pytest.raises(ConfigError):
        kernel_bank(1)


def test_compositions_use_between_one_and_max_kernels():
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(200):
        _, expr, components = random_kernel(rng, 128, max_kernels=3)
        assert 1 <= len(components) <= 3
        assert expr.count("+") + expr.count("*") == len(components) - 1
        assert all(c in expr for c in components)
        sizes.add(len(components))
    assert sizes == {1, 2, 3}
    with pytest.raises(ConfigError):
        random_kernel(rng, 128, max_kernels=0)


def test_a_constant_draw_is_replaced_and_the_samples_say_what_went_in():
    # with one kernel per series, the constant kernel alone comes up about once in 20
    samples = kernelsynth_samples(200, 32, max_kernels=1, seed=1)
    assert all(s.components != ("constant",) for s in samples)
    assert any(s.tries > 1 for s in samples)
    assert all(np.ptp(s.values) > 0 for s in samples)
    info = describe_kernels(samples)
    assert info["n_series"] == 200 and info["kernels_per_series"] == {"1": 200}
    assert sum(info["components"].values()) == 200
    assert "constant" not in info["components"]
