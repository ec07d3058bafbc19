"""Property tests of the operator registry: shape, dtype, mask, bounds, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anomalygraph.core.errors import ConfigError
from anomalygraph.rulebank.operators import (
    OPERATORS,
    ParamSpec,
    apply_batch,
    apply_operator,
    apply_with_effect,
)

NAMES = sorted(OPERATORS)
PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _param_value(spec: ParamSpec, draw: st.DrawFn) -> float | str:
    if spec.choices is not None:
        return draw(st.sampled_from(spec.choices))
    return draw(st.floats(spec.low, spec.high, allow_nan=False, allow_infinity=False))


@st.composite
def cases(draw: st.DrawFn, name: str) -> dict:
    spec = OPERATORS[name]
    b = draw(st.integers(1, 4))
    n = draw(st.integers(max(8, spec.min_length), 48))
    d = draw(st.integers(spec.min_channels, 4))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((b, n, d)) * rng.uniform(0.1, 50) + rng.uniform(-100, 100)).astype(dtype)
    length = draw(st.integers(spec.min_length, n))
    start = draw(st.integers(0, n - length))
    channels = rng.random((b, d)) < 0.6
    channels[np.arange(b), rng.integers(0, d, b)] = True
    params = {p.name: _param_value(p, draw) for p in spec.params}
    return {"x": x, "start": start, "length": length, "channels": channels, "params": params, "seed": seed}


def _run(name: str, case: dict, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return apply_with_effect(
        name, case["x"], start=case["start"], length=case["length"], channels=case["channels"],
        params=case["params"], rng=np.random.default_rng(case["seed"] if seed is None else seed), period=12.0,
    )


@pytest.mark.parametrize("name", NAMES)
def test_operator_properties(name: str) -> None:
    @PROPERTY_SETTINGS
    @given(cases(name))
    def check(case: dict) -> None:
        x = case["x"]
        before = x.copy()
        out, mask, effect = _run(name, case)
        # shape and dtype are kept, the input is not modified
        assert out.shape == x.shape and out.dtype == x.dtype
        assert np.array_equal(x, before)
        # the mask is exactly the requested segment
        expected = np.zeros(mask.shape, dtype=bool)
        expected[:, case["start"] : case["start"] + case["length"]] = True
        assert mask.dtype == bool and np.array_equal(mask, expected)
        # values change only inside mask x channels
        region = mask[:, :, None] & case["channels"][:, None, :]
        assert not (out != x)[~region].any()
        assert np.isfinite(out).all()
        assert effect.shape == (x.shape[0],) and (effect >= 0).all()
        # same seed, same output
        again, _, _ = _run(name, case)
        assert np.array_equal(out, again)

    check()


def _scale(x: np.ndarray) -> np.ndarray:
    from anomalygraph.core.stats import robust_scale

    return robust_scale(x)


@pytest.mark.parametrize("name", ["spike", "level_shift", "drift"])
def test_additive_operators_stay_within_their_magnitude(name: str) -> None:
    @PROPERTY_SETTINGS
    @given(cases(name))
    def check(case: dict) -> None:
        out, _, _ = _run(name, case)
        x = case["x"].astype(np.float64)
        limit = case["params"]["magnitude"] * _scale(case["x"]).astype(np.float64)[:, None, :]
        delta = np.abs(out.astype(np.float64) - x)
        assert (delta <= limit * (1 + 1e-4) + 1e-3 * (1 + np.abs(x))).all()
        if name == "level_shift":  # a constant shift of exactly the magnitude
            region = (delta > 0)
            assert np.allclose(delta[region], np.broadcast_to(limit, delta.shape)[region], rtol=1e-3, atol=1e-3 * (1 + np.abs(x).max()))

    check()


@pytest.mark.parametrize("name", ["frequency_change", "time_warp", "contextual"])
def test_resampling_operators_stay_within_the_window_range(name: str) -> None:
    """Interpolating or re-reading the window never leaves its per-channel range."""

    @PROPERTY_SETTINGS
    @given(cases(name))
    def check(case: dict) -> None:
        out, _, _ = _run(name, case)
        x = case["x"]
        tol = 1e-5 * (1 + np.abs(x).max())
        assert (out >= x.min(axis=1, keepdims=True) - tol).all()
        assert (out <= x.max(axis=1, keepdims=True) + tol).all()

    check()


def test_flatline_holds_the_previous_value() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 40, 2)).astype(np.float32)
    out, mask = apply_batch("flatline", x, start=10, length=15, params={"value": "previous", "jitter": 0.0}, rng=rng)
    assert np.array_equal(out[:, 10:25], np.repeat(x[:, 9:10], 15, axis=1))
    assert mask[:, 10:25].all() and not mask[:, :10].any()


def test_dropout_fills_with_zero_or_the_window_minimum() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(5, 10, (4, 30, 3))
    out, _ = apply_batch("dropout", x, start=5, length=10, params={"fill": "zero", "fraction": 1.0}, rng=rng)
    assert (out[:, 5:15] == 0).all()
    out, _ = apply_batch("dropout", x, start=5, length=10, params={"fill": "window_min", "fraction": 1.0}, rng=rng)
    assert np.allclose(out[:, 5:15], x.min(axis=1, keepdims=True))


def test_amplitude_scaling_multiplies_deviations_from_the_segment_mean() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 50, 2))
    out, _ = apply_batch("amplitude_scaling", x, start=10, length=20, params={"factor": 3.0}, rng=rng)
    mean = x[:, 10:30].mean(axis=1, keepdims=True)
    assert np.allclose(out[:, 10:30] - mean, 3.0 * (x[:, 10:30] - mean))


def test_transplant_pastes_a_donor_segment() -> None:
    rng = np.random.default_rng(3)
    x = np.zeros((2, 40, 1))
    donor = np.arange(80, dtype=np.float64).reshape(2, 40, 1)
    out, _ = apply_batch("segment_transplant", x, start=5, length=10, donor=donor, rng=rng,
                         params={"source": "other_window", "trend": 0.0, "align": "none"})
    for b in range(2):
        seg = out[b, 5:15, 0]
        assert np.array_equal(np.diff(seg), np.ones(9))  # a contiguous run of the donor
        assert seg[0] in donor[b, :, 0]


def test_correlation_break_needs_two_channels() -> None:
    with pytest.raises(ConfigError, match="at least 2 channels"):
        apply_batch("correlation_break", np.zeros((1, 20, 1)), start=0, length=5)


@pytest.mark.parametrize("name", NAMES)
def test_out_of_range_parameters_are_rejected_by_name(name: str) -> None:
    spec = OPERATORS[name]
    x = np.random.default_rng(0).standard_normal((2, 32, 3))
    for p in spec.params:
        bad: float | str = "no_such_choice" if p.choices else (p.high + 1.0 if p.high is not None else p.low - 1.0)
        with pytest.raises(ConfigError, match=f"'{p.name}'"):
            apply_batch(name, x, start=2, length=8, params={p.name: bad})


@pytest.mark.parametrize("name", NAMES)
def test_default_draws_respect_the_bounds(name: str) -> None:
    rng = np.random.default_rng(0)
    for p in OPERATORS[name].params:
        p.check(p.default)  # the default distribution itself fits
        drawn = p.default.sample(rng, 500)
        p.check_values(drawn, name)


def test_unknown_operator_and_parameter() -> None:
    x = np.zeros((1, 20, 1))
    with pytest.raises(ConfigError, match="unknown operator 'melt'"):
        apply_batch("melt", x, start=0, length=2)
    with pytest.raises(ConfigError, match="no parameter 'height'"):
        apply_batch("spike", x, start=0, length=2, params={"height": 3.0})


def test_segments_outside_the_window_are_rejected() -> None:
    with pytest.raises(ConfigError, match="start \\+ length"):
        apply_batch("spike", np.zeros((1, 20, 1)), start=15, length=10)


def test_single_window_api_round_trips_one_dimensional_input() -> None:
    window = np.sin(np.linspace(0, 6, 100)).astype(np.float32)
    out, mask = apply_operator("level_shift", window, {"magnitude": 2.0, "direction": "down"},
                               np.random.default_rng(0), start=40, length=10)
    assert out.shape == window.shape and out.dtype == window.dtype
    assert (out[40:50] < window[40:50]).all() and np.array_equal(out[:40], window[:40])
    assert mask.sum() == 10


def test_untouched_channels_are_skipped_but_results_match_full_computation() -> None:
    """The channel-subset fast path gives what the operator gives when every channel is in play."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 30, 6))
    channels = np.zeros((3, 6), dtype=bool)
    channels[:, 2] = True
    params = {"magnitude": 4.0, "direction": "up"}
    sub, _ = apply_batch("level_shift", x, start=3, length=9, channels=channels, params=params)
    full, _ = apply_batch("level_shift", x, start=3, length=9, params=params)
    assert np.array_equal(sub[:, :, 2], full[:, :, 2])
    assert np.array_equal(np.delete(sub, 2, axis=2), np.delete(x, 2, axis=2))
