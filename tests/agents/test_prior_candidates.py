"""Candidate priors from wording and measurement, and the measured checks of sampled rules."""

from __future__ import annotations

import numpy as np
import pytest

from anomalygraph.agents.prior_candidates import (
    candidates_for,
    channel_descriptions,
    check_samples,
    fault_context,
    measure_channels,
)
from anomalygraph.data.series import TimeSeries
from anomalygraph.rulebank.sampler import PseudoAnomalyBatch
from anomalygraph.rulebank.schema import Rule


@pytest.fixture(scope="module")
def cyclic() -> TimeSeries:
    rng = np.random.default_rng(0)
    t = np.arange(2000)
    load = np.sin(2 * np.pi * t / 48)
    values = np.stack([50 + 10 * load + rng.normal(0, 1, t.size),       # flow, follows the cycle
                       5 + 1 * load + rng.normal(0, 0.1, t.size),       # pressure, correlated with flow
                       rng.normal(20, 1, t.size)], axis=1)              # temperature, white noise
    return TimeSeries(values=values, channels=["flow", "pressure", "temp"], name="cyclic")


@pytest.fixture(scope="module")
def noise() -> TimeSeries:
    rng = np.random.default_rng(1)
    return TimeSeries(values=rng.normal(10, 1, (1500, 2)), channels=["a", "b"], name="noise")


def test_measures_find_the_cycle_and_the_correlated_partner(cyclic: TimeSeries) -> None:
    flow, pressure, temp = measure_channels(cyclic)
    assert flow.period == 48 and pressure.period == 48 and temp.period is None
    assert flow.partner == "pressure" and flow.partner_corr > 0.9
    assert abs(temp.partner_corr) < 0.2 and temp.minimum > 0


def test_shapes_the_data_cannot_carry_are_struck(noise: TimeSeries, cyclic: TimeSeries) -> None:
    scenario = "Operators saw the flow no longer follow the pressure, and lights left on at night."
    on_noise = candidates_for("readings decoupled", scenario, measure_channels(noise))
    assert "correlation_break" not in [s.morphology for s in on_noise.shapes]
    assert any("no channel correlates" in s for s in on_noise.struck)
    on_cyclic = candidates_for("readings decoupled", scenario, measure_channels(cyclic))
    assert [s.morphology for s in on_cyclic.shapes] == ["correlation_break"] and on_cyclic.source == "text"
    night = candidates_for("lights left on at night", scenario, measure_channels(noise))
    assert night.source == "data" and "contextual" not in [s.morphology for s in night.shapes]


def test_a_fault_without_shape_words_leaves_every_shape_the_data_carries(cyclic: TimeSeries) -> None:
    cands = candidates_for("trouble with the pump", "The pump had trouble.", measure_channels(cyclic))
    assert cands.source == "data" and len(cands.shapes) == 13
    assert "Its wording names no shape" in cands.describe()


def test_the_fault_is_read_with_its_sentence_and_channels_from_the_text(cyclic: TimeSeries) -> None:
    scenario = ("| `temp` | °C | bearing temperature |\n"
                "A pump in a treatment plant, sampled every minute, at a duty the control room sets. "
                "Logs mention a bearing that ran hot, and a flow meter that froze.")
    assert fault_context("bearing trouble", scenario)[0] == "Logs mention a bearing that ran hot"
    desc = channel_descriptions(scenario, cyclic.channels)
    cands = candidates_for("bearing trouble", scenario, measure_channels(cyclic), desc)
    assert cands.channels == ["temp"] and [s.morphology for s in cands.shapes] == ["drift"]
    assert cands.shapes[0].cues == ["ran hot"]


def _batch(x_raw: np.ndarray, x_pa: np.ndarray, mask: np.ndarray, channel: int, effect: float) -> PseudoAnomalyBatch:
    b, _, d = x_raw.shape
    chans = np.zeros((b, d), dtype=bool)
    chans[:, channel] = True
    return PseudoAnomalyBatch(x_raw, x_pa, np.repeat(mask[None], b, 0), chans, np.zeros(b, dtype=int), ["r"],
                              np.zeros(b, dtype=int), np.full(b, effect))


def _rule(operator: str, channel: str, **params) -> Rule:
    return Rule.model_validate({"id": "r", "operator": operator, "params": params,
                                "duration": {"unit": "steps", "dist": {"kind": "fixed", "value": 10}},
                                "channels": {"mode": "named", "names": [channel]}})


def test_checks_keep_a_visible_plausible_rule_and_send_back_the_rest(cyclic: TimeSeries) -> None:
    measures = measure_channels(cyclic)
    raw = cyclic.values[:100][None].repeat(2, 0).astype(np.float32)
    mask = np.zeros(100, dtype=bool)
    mask[40:50] = True
    rule = _rule("level_shift", "temp")
    shifted = raw.copy()
    shifted[:, 40:50, 2] += 5
    assert check_samples(rule, _batch(raw, shifted, mask, 2, 5.0), measures, {}, min_effect=1.0).verdict == "keep"
    weak = check_samples(rule, _batch(raw, shifted, mask, 2, 0.3), measures, {}, min_effect=1.0)
    assert weak.verdict == "revise" and "not visible" in weak.reason
    huge = shifted.copy()
    huge[:, 40:50, 2] += 1000
    far = check_samples(rule, _batch(raw, huge, mask, 2, 900.0), measures, {}, min_effect=1.0)
    assert far.verdict == "revise" and far.outside == 1.0 and "not plausible" in far.reason
    below = raw.copy()
    below[:, 40:50, 0] = -5.0  # flow never goes negative; 55 below its mean is within 3 of its ranges
    negative = check_samples(_rule("level_shift", "flow"), _batch(raw, below, mask, 0, 20.0), measures, {},
                             min_effect=1.0)
    assert negative.verdict == "revise" and "never negative" in negative.reason


def test_a_dropout_may_go_to_zero_and_a_duplicate_is_rejected(cyclic: TimeSeries) -> None:
    measures = measure_channels(cyclic)
    raw = cyclic.values[:100][None].astype(np.float32)
    mask = np.zeros(100, dtype=bool)
    mask[10:20] = True
    zero = raw.copy()
    zero[:, 10:20, 0] = 0.0
    drop = _rule("dropout", "flow", fill="zero")
    assert check_samples(drop, _batch(raw, zero, mask, 0, 8.0), measures, {}, min_effect=1.0).verdict == "keep"
    again = check_samples(drop, _batch(raw, zero, mask, 0, 8.0), measures, {"first": drop}, min_effect=1.0)
    assert again.verdict == "reject" and "duplicates rule 'first'" in again.reason
