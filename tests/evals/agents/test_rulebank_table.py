"""The rule-bank eval's report table: each row's fold of the split, and means per fold."""

from __future__ import annotations

from anomalygraph.evals.agents.rulebank import (
    EvalRow,
    RulebankEval,
    choose_scenarios,
    markdown_table,
)


def _row(scenario: str, bank: str, split: str, f1: float) -> EvalRow:
    return EvalRow(scenario=scenario, bank=bank, bank_name=f"{scenario}_{bank}", split=split, status="stored",  # type: ignore[arg-type]
                   rules=3, morphology_precision=f1, morphology_recall=f1, morphology_f1=f1)


def test_table_has_a_split_column_and_means_per_split_and_bank() -> None:
    rows = [_row("pump", "mined", "tune", 1.0), _row("pump", "heuristic", "tune", 0.2),
            _row("cold_store", "mined", "tune", 0.5), _row("cold_store", "heuristic", "tune", 0.4),
            _row("solar_pv", "mined", "validate", 0.3), _row("solar_pv", "heuristic", "validate", 0.1),
            _row("icu_monitor", "mined", "validate", 0.2), _row("icu_monitor", "heuristic", "validate", 0.3)]
    table = markdown_table(RulebankEval(model="fake", seed=0, created_at="2026-01-01T00:00:00Z", rows=rows))
    lines = table.splitlines()
    assert "| scenario | bank | split |" in table and "| pump | mined (pump_mined) | tune | stored |" in table
    means = {line.split(" | ")[0] + " " + line.split(" | ")[1]: line.split(" | ")[7] for line in lines if "**mean" in line}
    assert means == {
        "| **mean (validate)** mined": "0.25", "| **mean (tune)** mined": "0.75", "| **mean** mined": "0.50",
        "| **mean (validate)** heuristic": "0.20", "| **mean (tune)** heuristic": "0.30", "| **mean** heuristic": "0.25",
    }
    # the validate means come first: that is the fold to report
    assert lines.index(next(x for x in lines if "**mean (validate)** | mined" in x)) < lines.index(
        next(x for x in lines if "**mean (tune)** | mined" in x))


def test_one_fold_gets_its_mean_and_no_duplicate_overall_mean() -> None:
    rows = [_row("solar_pv", "mined", "validate", 0.4), _row("icu_monitor", "mined", "validate", 0.2)]
    table = markdown_table(RulebankEval(model="fake", seed=0, created_at="2026-01-01T00:00:00Z", rows=rows))
    assert "**mean (validate)** | mined | validate |" in table and "**mean** |" not in table


def test_choose_scenarios_follows_subset_split_and_names() -> None:
    assert choose_scenarios("all", "tune")[:3] == ["web_server", "pump", "building_energy"]
    assert len(choose_scenarios("all", "all")) == 12 and len(choose_scenarios()) == 6
    assert choose_scenarios("ci", "tune") == ["building_energy"]
    assert choose_scenarios("all", "validate", ["pump", "solar_pv"]) == ["pump", "solar_pv"]
