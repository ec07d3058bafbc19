"""TimeAnomalyBench: every scenario generates, and its labels say exactly what was injected."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from anomalygraph.core.errors import ConfigError
from anomalygraph.rulebank.operators import OPERATORS
from anomalygraph.rulebank.store import builtin_banks, load_bank
from anomalygraph.rulebank.timeanomalybench import (
    SCENARIOS,
    SPLITS,
    BenchSeries,
    generate,
    read_bench,
    scenarios_in,
    split_of,
    write_bench,
)

NAMES = sorted(SCENARIOS)


@cache
def bench(name: str, seed: int = 0) -> BenchSeries:
    return generate(name, seed=seed)


@pytest.mark.parametrize("name", NAMES)
def test_scenario_shape_split_and_regular_time(name: str) -> None:
    b = bench(name)
    s, spec = b.series, b.spec
    assert s.values.shape == (spec.length, len(spec.channels)) and s.values.dtype == np.float32
    assert s.channels == [c.name for c in spec.channels]
    assert s.train_end == round(spec.length * spec.train_fraction)
    assert not s.labels[: s.train_end].any()  # the training part is normal
    assert len(set(np.diff(s.timestamps.as_unit("ns").asi8))) == 1
    test_ratio = s.labels[s.train_end :].mean()
    assert 0.02 < test_ratio < 0.25
    assert len(b.events) == spec.n_events


@pytest.mark.parametrize("name", NAMES)
def test_labels_morphology_rules_and_events_agree(name: str) -> None:
    b = bench(name)
    labels = b.series.labels.astype(bool)
    assert np.array_equal(labels, b.morphology != "") and np.array_equal(labels, b.rule_ids != "")
    hidden = load_bank(b.spec.bank)
    covered = np.zeros_like(labels)
    previous_end = -1
    for e in b.events:
        assert e.start > previous_end + b.spec.min_gap_steps  # ordered, separated
        previous_end = e.end
        span = slice(e.start, e.end + 1)
        assert labels[span].all() and not labels[e.start - 1] and not labels[min(e.end + 1, len(labels) - 1)]
        assert set(b.morphology[span]) == {e.morphology} and set(b.rule_ids[span]) == {e.rule_id}
        rule = hidden.rule(e.rule_id)
        assert (e.operator, e.morphology) == (rule.operator, rule.morphology)
        if rule.channels.mode == "named":
            assert set(e.channels) <= set(rule.channels.names)
        covered[span] = True
    assert np.array_equal(covered, labels)
    assert {e.rule_id for e in b.events} == set(hidden.rule_ids)  # every hidden rule shows up


@pytest.mark.parametrize("name", NAMES)
def test_values_change_only_inside_events_on_their_channels(name: str) -> None:
    b = bench(name)
    changed = b.series.values != b.clean
    allowed = np.zeros_like(changed)
    for e in b.events:
        cols = [b.series.channels.index(c) for c in e.channels]
        allowed[e.start : e.end + 1, cols] = True
    assert not (changed & ~allowed).any()
    for e in b.events:  # and every event did change something
        assert changed[e.start : e.end + 1].any(), e.rule_id


@pytest.mark.parametrize("name", NAMES)
def test_each_morphology_looks_like_its_label(name: str) -> None:
    b = bench(name)
    s = b.series
    for e in b.events:
        cols = [s.channels.index(c) for c in e.channels]
        seg = s.values[e.start : e.end + 1, cols].astype(np.float64)
        clean = b.clean[e.start : e.end + 1, cols].astype(np.float64)
        delta = seg - clean
        if e.morphology == "flatline":
            assert np.ptp(seg, axis=0).max() == 0
        elif e.morphology == "dropout" and e.params["fill"] == "window_min":
            for j in range(seg.shape[1]):  # dropped steps hold one value, the lowest in sight
                dropped = seg[delta[:, j] != 0, j]
                assert len(set(dropped.tolist())) <= 1 and seg[0, j] == seg[:, j].min() <= clean[:, j].min()
        elif e.morphology == "dropout":
            assert (seg[delta != 0] == 0).all() and (seg[0] == 0).all()
        elif e.morphology in ("spike", "dip", "level_shift", "drift"):
            sign = -1.0 if e.params["direction"] == "down" else 1.0  # the direction this event drew
            assert (sign * delta >= -1e-4).all() and (sign * delta).max() > 0
            assert sign < 0 or e.morphology != "dip"  # a dip always goes down
        elif e.morphology == "amplitude_scaling":
            assert np.std(seg) > np.std(clean)
        elif e.morphology == "variance_burst":
            assert np.abs(delta).max() > 0 and np.std(delta) > 0
        else:
            assert np.abs(delta).max() > 0
        assert e.effect >= 0


def test_generation_is_reproducible() -> None:
    a, b, c = generate("building_energy", seed=3), generate("building_energy", seed=3), generate("building_energy", seed=4)
    assert np.array_equal(a.series.values, b.series.values) and a.events == b.events
    assert not np.array_equal(a.series.values, c.series.values)


def test_write_and_read_back(tmp_path: Path) -> None:
    b = bench("pump")
    folder = write_bench(b, tmp_path)
    for name in ("series.csv", "labels.csv", "events.json", "domain.md", "meta.json", "hidden/bank.yaml"):
        assert (folder / name).is_file(), name
    series, events = read_bench(folder)
    assert series.train_end == b.series.train_end and series.channels == b.series.channels
    assert np.array_equal(series.labels, b.series.labels)
    np.testing.assert_allclose(series.values, b.series.values, rtol=1e-5, atol=1e-4)
    assert events == b.events
    assert load_bank(folder / "hidden" / "bank.yaml") == load_bank(b.spec.bank)
    text = (folder / "domain.md").read_text()
    assert "flow_m3h" in text and "hidden" not in text.lower()


def test_cli_generate(tmp_path: Path) -> None:
    from anomalygraph.cli.data import app

    runner = CliRunner()
    result = runner.invoke(app, ["--scenario", "building_energy", "--out", str(tmp_path), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "building_energy" / "series.csv").is_file()
    result = runner.invoke(app, ["--scenario", "volcano", "--out", str(tmp_path)])
    assert isinstance(result.exception, ConfigError) and "web_server" in str(result.exception)


# ------------------------------------------------------------ scenarios and banks
@pytest.mark.parametrize("name", NAMES)
def test_hidden_bank_is_built_in_and_names_only_the_scenarios_channels(name: str) -> None:
    spec = SCENARIOS[name]
    assert spec.bank == f"scenario_{name}" and spec.bank in builtin_banks()
    bank = load_bank(spec.bank)
    assert 4 <= len(bank.rules) <= 7 and spec.n_events >= len(bank.rules)
    channels = {c.name for c in spec.channels}
    assert 3 <= len(channels) <= 6
    for rule in bank.rules:
        assert rule.mechanism, rule.id
        if rule.channels.mode == "named":
            assert set(rule.channels.names) <= channels, (rule.id, rule.channels.names)
        else:
            assert rule.channels.mode == "all", rule.id  # the hidden banks say where each fault shows
        assert rule.duration.unit in ("seconds", "steps"), rule.id


@pytest.mark.parametrize("name", NAMES)
def test_descriptions_name_faults_in_domain_words_not_operator_names(name: str) -> None:
    text = SCENARIOS[name].description.lower()
    for word in ("flatline", "flat line", "level shift", "level_shift", "spike", "variance burst", "dropout",
                 "contextual", "time warp", "correlation break", "transplant", "amplitude scaling", "frequency change"):
        assert word not in text, word


def test_hidden_banks_use_every_operator_and_scenarios_differ() -> None:
    used = {r.operator for name in NAMES for r in load_bank(SCENARIOS[name].bank).rules}
    assert used == set(OPERATORS)
    assert len({(s.freq, len(s.channels)) for s in SCENARIOS.values()}) >= 8  # sampling and channel structure vary
    assert {s.freq for s in SCENARIOS.values()} >= {"1s", "30s", "1min", "5min", "1h"}
    assert all(2_000 <= s.length <= 15_000 for s in SCENARIOS.values())


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_other_seeds_generate_every_rule_mostly_above_min_effect(name: str, seed: int) -> None:
    b = bench(name, seed)
    assert {e.rule_id for e in b.events} == set(load_bank(b.spec.bank).rule_ids)
    assert not b.series.labels[: b.series.train_end].any()
    strong = [e.effect >= b.spec.min_effect for e in b.events]
    assert sum(strong) >= 0.8 * len(strong), [(e.rule_id, e.effect) for e in b.events]


def test_default_seed_effects_reach_min_effect() -> None:
    weak = [(name, e.rule_id, e.effect) for name in NAMES for e in bench(name).events if e.effect < SCENARIOS[name].min_effect]
    assert len(weak) <= 3, weak  # building_energy's late HVAC start may fall a little short


# ----------------------------------------------------------------------- split
def test_split_is_disjoint_covers_every_scenario_and_keeps_the_originals_in_tune() -> None:
    tune, validate = set(SPLITS["tune"]), set(SPLITS["validate"])
    assert set(SPLITS) == {"tune", "validate"}
    assert len(SPLITS["tune"]) == len(tune) == 6 and len(SPLITS["validate"]) == len(validate) == 6
    assert not tune & validate and tune | validate == set(SCENARIOS)
    assert {"web_server", "pump", "building_energy"} <= tune
    assert scenarios_in("tune") == [n for n in SCENARIOS if n in tune]
    assert scenarios_in("validate") == [n for n in SCENARIOS if n in validate]
    assert scenarios_in("all") == list(SCENARIOS)
    assert [split_of(n) for n in SPLITS["validate"]] == ["validate"] * 6 and split_of("pump") == "tune"
    # the validate fold spans domains: IT, industrial, energy, medical, traffic, utilities
    assert validate == {"db_server", "cnc_machine", "solar_pv", "icu_monitor", "road_traffic", "water_district"}


def test_unknown_split_or_scenario_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown split 'bogus'"):
        scenarios_in("bogus")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown scenario"):
        split_of("volcano")
