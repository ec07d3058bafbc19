"""Scoring a mined bank against a hidden one: morphology P/R/F1, weights, rule matching, overlaps."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from anomalygraph.cli.rulebank import app
from anomalygraph.rulebank.schema import RuleBank
from anomalygraph.rulebank.scoring import duration_steps, jaccard, log_overlap, score_bank
from anomalygraph.rulebank.store import builtin_banks, load_bank


def bank(name: str, *rules: dict) -> RuleBank:
    return RuleBank.model_validate({"name": name, "rules": list(rules)})


def rule(rid: str, operator: str, *, channels: list[str] | None = None, steps: tuple[float, float] = (5, 10),
         weight: float = 1.0, **extra) -> dict:
    out = {"id": rid, "operator": operator, "weight": weight,
           "duration": {"unit": "steps", "dist": {"kind": "uniform", "low": steps[0], "high": steps[1]}}}
    if channels:
        out["channels"] = {"mode": "named", "names": channels}
    return out | extra


def test_a_bank_scores_perfectly_against_itself() -> None:
    for name in builtin_banks():
        hidden = load_bank(name)
        s = score_bank(hidden, hidden, step_seconds=60, window=100, channels=["a", "b", "c"])
        assert s.morphology_precision == s.morphology_recall == s.morphology_f1 == 1.0
        assert s.weighted_precision == s.weighted_recall == 1.0
        assert len(s.matches) == len(hidden.rules)
        assert all(m.mined == m.hidden for m in s.matches)
        assert s.channel_jaccard in (None, 1.0) and s.duration_overlap == 1.0


def test_precision_recall_and_weights_follow_the_sets() -> None:
    hidden = bank("h", rule("a", "spike", channels=["x"]), rule("b", "dropout", weight=3), rule("c", "flatline"))
    mined = bank("m", rule("s", "spike", channels=["x", "y"]), rule("d", "drift", weight=3))
    s = score_bank(mined, hidden)
    assert (s.found, s.spurious, s.missed) == (["spike"], ["drift"], ["dropout", "flatline"])
    assert s.morphology_precision == 0.5 and s.morphology_recall == pytest.approx(1 / 3, abs=1e-4)
    assert s.morphology_f1 == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3), abs=1e-4)
    assert s.weighted_precision == 0.25  # 1 of the mined bank's 4 weight units is on a real shape
    assert s.weighted_recall == 0.2  # the hidden spike carries 1 of 5 weight units
    (m,) = s.matches
    assert (m.mined, m.hidden, m.channel_jaccard, m.duration_overlap) == ("s", "a", 0.5, 1.0)


def test_dip_and_spike_share_an_operator_but_not_a_morphology() -> None:
    hidden = bank("h", rule("a", "spike", morphology="dip"))
    mined = bank("m", rule("b", "spike"))
    s = score_bank(mined, hidden)
    assert s.morphology_precision == 0.0 and s.operator_precision == s.operator_recall == 1.0 and s.matches == []


def test_matching_is_one_to_one_and_picks_the_closest_rule() -> None:
    hidden = bank("h", rule("on_x", "spike", channels=["x"]), rule("on_y", "spike", channels=["y"], steps=(100, 200)))
    mined = bank("m", rule("mine", "spike", channels=["y"], steps=(120, 150)))
    (m,) = score_bank(mined, hidden).matches
    assert m.hidden == "on_y" and m.channel_jaccard == 1.0 and m.duration_overlap > 0.3
    two = bank("m2", rule("p", "spike", channels=["x"]), rule("q", "spike", channels=["x"]))
    matches = score_bank(two, hidden).matches
    assert sorted(x.hidden for x in matches) == ["on_x", "on_y"] and len({x.mined for x in matches}) == 2


def test_channel_sets_for_random_and_all() -> None:
    hidden = bank("h", rule("a", "level_shift", channels=["x", "y"]))
    anywhere = bank("m", rule("r", "level_shift"))
    everywhere = bank("m", rule("r", "level_shift", channels=None) | {"channels": {"mode": "all"}})
    assert score_bank(anywhere, hidden).matches[0].channel_jaccard == 0.0  # names no channel
    assert score_bank(everywhere, hidden).matches[0].channel_jaccard is None  # 'all' is unknown without the series
    assert score_bank(everywhere, hidden, channels=["x", "y", "z", "w"]).matches[0].channel_jaccard == 0.5
    assert jaccard(set(), set()) == 1.0


def test_durations_convert_units_and_overlap_on_a_log_scale() -> None:
    seconds = RuleBank.model_validate({"name": "s", "rules": [
        {"id": "a", "operator": "flatline", "duration": {"unit": "seconds", "dist": {"kind": "uniform", "low": 600, "high": 3600}}}]}).rules[0]
    assert duration_steps(seconds, step_seconds=60) == (10, 60)
    assert duration_steps(seconds) is None
    share = RuleBank.model_validate({"name": "w", "rules": [
        {"id": "a", "operator": "flatline", "duration": {"unit": "window", "dist": {"kind": "uniform", "low": 0.1, "high": 0.5}}}]}).rules[0]
    assert duration_steps(share, window=200) == (20, 100)
    assert log_overlap((10, 60), (10, 60)) == 1.0
    assert log_overlap((1, 2), (100, 200)) == 0.0
    assert log_overlap((10, 10), (5, 20)) == pytest.approx(math.log(2) / math.log(4))  # a point widened to a factor of 2
    assert log_overlap((10, 60), None) is None
    hidden = bank("h", rule("a", "flatline", steps=(10, 60)))
    mined = RuleBank.model_validate({"name": "m", "rules": [seconds.model_dump()]})
    assert score_bank(mined, hidden, step_seconds=60).duration_overlap == 1.0
    assert score_bank(mined, hidden).duration_overlap is None


def test_the_heuristic_bank_covers_only_part_of_each_scenario() -> None:
    heuristic = load_bank("cutaddpaste")
    shapes = {str(r.morphology) for r in heuristic.rules}
    for name in ("scenario_pump", "scenario_web_server", "scenario_building_energy"):
        hidden = load_bank(name)
        real = {str(r.morphology) for r in hidden.rules}
        s = score_bank(heuristic, hidden, step_seconds=60, window=100)
        assert s.morphology_precision == pytest.approx(len(shapes & real) / len(shapes), abs=1e-4)
        assert s.morphology_recall == pytest.approx(len(shapes & real) / len(real), abs=1e-4)
        assert s.morphology_recall < 1


def test_score_command() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["score", "cutaddpaste", "scenario_pump", "--step-seconds", "60"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "morphology" in result.output and "missed:" in result.output and "flatline" in result.output
    result = runner.invoke(app, ["score", "scenario_pump", "scenario_pump", "--json"])
    assert result.exit_code == 0 and '"morphology_f1": 1.0' in result.output
