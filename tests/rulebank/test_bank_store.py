"""Bank files: round trips, clear load errors, safe YAML, diffs, built-in banks."""

from __future__ import annotations

from pathlib import Path

import pytest

from anomalygraph.core.errors import ConfigError
from anomalygraph.rulebank.checks import check_bank
from anomalygraph.rulebank.schema import BankOrigin
from anomalygraph.rulebank.store import builtin_banks, diff_banks, load_bank, parse_bank, save_bank

GOOD = """
name: tiny
version: 0.2.0
origin: {made_by: llm, model: qwen3-vl, prompt_version: prior-miner/3}
rules:
  - id: up_spike
    operator: spike
    params: {magnitude: {kind: uniform, low: 3, high: 5}, direction: up}
    duration: {unit: steps, dist: 1}
  - id: stuck
    operator: flatline
    duration: {unit: window, dist: {kind: uniform, low: 0.1, high: 0.3}}
"""


def test_builtin_banks_are_listed_and_valid() -> None:
    names = builtin_banks()
    assert {"cutaddpaste", "generic", "scenario_web_server", "scenario_pump", "scenario_building_energy"} <= set(names)
    for name in names:
        bank = load_bank(name)
        report = check_bank(bank, n=32)
        assert report.ok, report.problems
        assert not [w for w in report.warnings if "whole" in w or "no position" in w], report.warnings


def test_cutaddpaste_bank_mirrors_the_original_generators() -> None:
    bank = load_bank("cutaddpaste")
    main = bank.rule("cut_add_paste")
    assert main.operator == "segment_transplant" and main.channels.mode == "all"
    assert main.params["source"].value == "other_window"
    assert main.params["trend"].support() == (0.0, 0.01)  # CutAddPaste's trend_rate
    assert {r.operator for r in bank.rules} >= {"spike", "drift", "dropout", "frequency_change"}
    assert bank.origin.made_by == "heuristic"


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_and_load_round_trip(tmp_path: Path, suffix: str) -> None:
    bank = parse_bank(GOOD, "good")
    bank = bank.model_copy(update={"report": check_bank(bank, n=16)})
    path = save_bank(bank, tmp_path / f"bank{suffix}")
    assert load_bank(path) == bank
    assert load_bank(str(path)).rules[0].params["direction"].value == "up"


def test_validation_errors_name_the_file_rule_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("high: 5}", "high: 500}"))
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid rule bank: rules\[0\] \(id 'up_spike'\): params\.magnitude: U\(3, 500\) reaches 500"):
        load_bank(path)
    path.write_text(GOOD.replace("dist: 1}", "dist: {kind: uniform, low: 1}}"))
    with pytest.raises(ConfigError, match=r"rules\[0\] \(id 'up_spike'\): duration\.dist\.high: Field required"):
        load_bank(path)


def test_yaml_syntax_and_shape_errors(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nrules: [\n  - id: a\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML at line"):
        load_bank(path)
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_bank("- 1\n- 2\n", "list")
    with pytest.raises(ConfigError, match="bank file not found"):
        load_bank(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="built-in banks: cutaddpaste"):
        load_bank("no_such_bank")


def test_yaml_tags_are_never_constructed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"!!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_bank(text, "evil")
    assert not marker.exists()


def test_diff_reports_metadata_rules_and_fields() -> None:
    a = parse_bank(GOOD, "a")
    b = parse_bank(
        GOOD.replace("version: 0.2.0", "version: 0.3.0").replace("low: 3, high: 5", "low: 3, high: 6")
        .replace("  - id: stuck\n    operator: flatline", "  - id: frozen\n    operator: flatline"),
        "b",
    )
    diff = diff_banks(a, b)
    assert not diff.identical
    assert [c.path for c in diff.metadata] == ["version"]
    assert diff.added == ["frozen"] and diff.removed == ["stuck"]
    assert [(c.path, c.old, c.new) for c in diff.changed["up_spike"]] == [("params.magnitude.high", 5.0, 6.0)]
    lines = diff.lines()
    assert "+ rule frozen" in lines and "- rule stuck" in lines
    assert diff_banks(a, a).identical


def test_origin_keeps_who_made_it() -> None:
    bank = parse_bank(GOOD, "good")
    assert bank.origin == BankOrigin(made_by="llm", model="qwen3-vl", prompt_version="prior-miner/3")
