"""``anomalygraph eval``: subsets, model flags and errors, with the evals themselves stubbed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from anomalygraph.cli import eval as eval_cli
from anomalygraph.cli.main import main
from anomalygraph.evals.agents import rulebank
from anomalygraph.evals.agents.rulebank import RulebankEval
from anomalygraph.rulebank.timeanomalybench import SCENARIOS, SPLITS


@pytest.fixture
def recorded(monkeypatch):
    calls: list[dict] = []

    def fake(scenarios, out, **kwargs):
        calls.append({"scenarios": list(scenarios), **kwargs})
        return RulebankEval(model="fake", seed=0, created_at="2026-01-01T00:00:00Z", rows=[])

    monkeypatch.setattr(rulebank, "run_rulebank_eval", fake)
    return calls


@pytest.mark.parametrize(("args", "scenarios", "priors"), [
    (["--subset", "ci"], list(rulebank.CI_SCENARIOS), rulebank.CI_MAX_PRIORS),
    (["--subset", "ci", "--split", "validate"], list(rulebank.CI_SCENARIOS), rulebank.CI_MAX_PRIORS),
    ([], ["db_server", "cnc_machine", "solar_pv", "icu_monitor", "road_traffic", "water_district"], 8),
    (["--split", "validate"], list(SPLITS["validate"]), 8),
    (["--split", "tune"], ["web_server", "pump", "building_energy", "queue_consumer", "wind_turbine", "cold_store"], 8),
    (["--subset", "all", "--split", "all"], list(SCENARIOS), 8),
    (["-s", "pump"], ["pump"], 8),
    (["-s", "pump", "--split", "validate"], ["pump"], 8),
])
def test_rulebank_subsets_choose_scenarios_and_prior_budget(recorded, tmp_path, args, scenarios, priors):
    result = CliRunner().invoke(eval_cli.app, ["rulebank", "--out", str(tmp_path), *args])
    assert result.exit_code == 0, result.output
    [call] = recorded
    assert call["scenarios"] == scenarios and call["max_priors"] == priors


def test_served_model_flags_reach_the_settings():
    settings = eval_cli.model_settings(None, "http://gpu:8000/v1", "qwen3-vl", None, vision=True)
    assert settings.provider.value == "vllm" and settings.base_url == "http://gpu:8000/v1" and settings.model == "qwen3-vl"


@pytest.mark.parametrize(("argv", "message"), [
    (["eval", "rulebank", "--subset", "some"], "--subset must be ci or all"),
    (["eval", "rulebank", "-s", "nope"], "unknown scenario(s) ['nope']"),
    (["eval", "rulebank", "--split", "test"], "--split must be tune, validate or all"),
    (["eval", "rulebank", "--base-url", "http://gpu:8000/v1"], "--base-url needs --model"),
    (["eval", "diagnosis", "--data", "/nonexistent/data"], "data root /nonexistent/data does not exist"),
    (["eval", "meta-selection", "/nonexistent/diagnosis_eval.json"], "no such file"),
    (["eval", "f2a", "--variants", "f2a k=99"], "--variants: unknown ['f2a k=99']"),
    (["eval", "f2a", "--detectors", "nope"], "--detectors: unknown ['nope']"),
    (["eval", "f2a", "-s", "smap_msl/A-1"], "no series ['smap_msl/A-1'] in the validate fold"),
    (["eval", "f2a", "--protocol", "oracle"], "--protocol must be one of paper, pseudo"),
    (["eval", "f2a", "--fold", "test"], "--fold must be tune or validate"),
    (["f2a", "pretrain", "--out", "/dev/null"], "exists and is not a folder"),
])
def test_bad_flags_are_one_line_errors(recorded, argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not recorded
