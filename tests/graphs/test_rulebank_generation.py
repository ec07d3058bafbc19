"""Every path of the rule-bank generation graph with a scripted model.

Happy path, invalid structured output (fault list, prior, critic), compile errors sent back to
the model, the critique-driven revise loop, step budget, human approval (interrupt, resume in a
new process, drop, reject), crash and resume, the CLI and the TimeAnomalyBench eval.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from anomalygraph.agents.prior_miner import PROMPTS
from anomalygraph.graphs.rulebank_generation import (
    ApprovalDecision,
    GenerationContext,
    GenerationRequest,
    build_graph,
    run_generation,
)
from anomalygraph.graphs.rulebank_generation.graph import recursion_limit
from anomalygraph.llm.errors import LLMContextLengthError, LLMUnavailableError
from anomalygraph.llm.messages import TEXT_RENDERING_INTRO
from anomalygraph.llm.scripted import ScriptedChatModel, tool_call
from anomalygraph.prompts import load_prompt
from anomalygraph.rulebank.store import load_bank

SCENARIO = (
    "A water pump sampled every minute: flow, discharge pressure and casing vibration. Maintenance notes "
    "mention cavitation that shakes the casing, a clogged pressure line that freezes the reading, and a "
    "flow meter that drops out."
)
TRAIN = 1500
DRAFT = {"mechanism": "bubbles collapse and shake the casing", "morphology": "variance_burst", "channels": ["vibration"],
         "size": 4, "duration": "5-30 minutes"}


def faults(*names: str):
    return tool_call("FaultList", {"faults": list(names)})


def prior(**kw):
    return tool_call("AnomalyPriorDraft", DRAFT | kw)


FROZEN = {"mechanism": "the reading freezes", "morphology": "flatline", "channels": ["pressure"], "size": None}


def verdict(v: str = "keep", reason: str = "the text names it and the samples look like it"):
    return tool_call("Critique", {"reason": reason, "verdict": v})


@pytest.fixture(scope="module")
def series_file(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(2000)
    daily = np.sin(2 * np.pi * t / 240)
    frame = pd.DataFrame({
        "timestamp": pd.date_range("2024-03-01", periods=t.size, freq="1min"),
        "flow": 120 + 20 * daily + rng.normal(0, 2, t.size),
        "pressure": 6 + 0.5 * daily + rng.normal(0, 0.05, t.size),
        "vibration": 2.2 + 0.3 * daily + rng.normal(0, 0.1, t.size),
    })
    path = tmp_path_factory.mktemp("data") / "pump.csv"
    frame.to_csv(path, index=False)
    return path


TMP_ROOT = str(Path(tempfile.gettempdir()).resolve())  # pytest's tmp folders lie below


def request(series_file: Path, tmp_path: Path, **kw) -> GenerationRequest:
    return GenerationRequest(scenario=SCENARIO, series_path=str(series_file), out_path=str(tmp_path / "pump_mined.yaml"),
                             **{"train_end": TRAIN} | kw)


def context(model, **kw) -> GenerationContext:
    """The model critic unless ``critic`` says otherwise: most tests here script its verdicts."""
    defaults = {"auto_approve": True, "samples_per_rule": 2, "data_roots": [TMP_ROOT], "critic": "model"}
    return GenerationContext(model=model, **defaults | kw)


def test_happy_path_stores_a_valid_bank_with_provenance(series_file, tmp_path):
    model = ScriptedChatModel(script=[
        faults("cavitation", "clogged pressure line"),
        prior(),
        prior(**FROZEN),
        verdict(), verdict(),
    ])
    outcome = run_generation(request(series_file, tmp_path), context(model))
    assert outcome.status == "stored" and not outcome.resumed
    result = outcome.result
    bank = load_bank(result.bank_path)  # validates on load
    assert bank.rule_ids == ["cavitation", "clogged_pressure_line"]
    assert [r.morphology for r in bank.rules] == ["variance_burst", "flatline"]
    assert bank.rule("cavitation").channels.names == ["vibration"]
    assert bank.rule("cavitation").where.regime == "any"
    assert bank.rule("cavitation").duration.unit == "seconds"
    assert bank.origin.made_by == "llm" and bank.origin.model == "ScriptedChatModel"
    assert all(load_prompt(name).ref in bank.origin.prompt_version for name in PROMPTS)
    digest = hashlib.sha256(series_file.read_bytes()).hexdigest()
    assert any(digest in line and f"train_end={TRAIN}" in line for line in bank.origin.inputs)
    assert any(hashlib.sha256(SCENARIO.encode()).hexdigest() in line for line in bank.origin.inputs)
    assert bank.report is not None and bank.report.ok
    assert bank.rule("cavitation").provenance.prior.mechanism == DRAFT["mechanism"]
    assert "critique (keep)" in bank.rule("cavitation").provenance.note
    assert result.model_steps == 5 and len(model.calls) == 5
    for plot in result.plots:
        assert Path(plot).read_bytes()[:4] == b"\x89PNG"
    run = json.loads((tmp_path / "pump_mined_run" / "run.json").read_text())
    assert run["status"] == "stored" and {t["node"] for t in run["trace"]} >= {"prepare", "propose", "critique", "approve"}
    # the critic saw descriptions of the samples, not raw arrays
    critic_prompt = model.calls[3][-1].content
    assert "What its samples look like" in critic_prompt and "- sample 2: vibration" in critic_prompt
    # a rerun of the finished thread returns the stored result without calling the model
    again = run_generation(request(series_file, tmp_path), context(ScriptedChatModel(script=[])))
    assert again.resumed and again.result.bank_path == result.bank_path


def test_the_default_critic_checks_samples_by_measurement_and_shapes_come_from_the_wording(series_file, tmp_path):
    model = ScriptedChatModel(script=[
        faults("cavitation", "clogged pressure line", "vibration trouble"),
        prior(),
        prior(**FROZEN),
        prior(),  # the same shape on the same channel as cavitation's rule
    ])
    result = run_generation(request(series_file, tmp_path), context(model, critic="checks")).result
    assert result.status == "stored" and len(model.calls) == 4  # no critic call
    assert [r.id for r in result.rules] == ["cavitation", "clogged_pressure_line"]
    assert all(r.critique.startswith("visible") for r in result.rules)
    (dup,) = result.dropped
    assert dup.rule_id == "vibration_trouble" and dup.stage == "critique" and "duplicates rule 'cavitation'" in dup.reason
    # the wording's shapes reach the prompt and limit the schema: cavitation may only be a variance burst
    assert "variance_burst ('cavitation')" in model.calls[1][-1].content
    def shapes_allowed(call: int) -> list[str]:
        tool = next(t for t in model.bound[call]["tools"] if t["function"]["name"] == "AnomalyPriorDraft")
        field = tool["function"]["parameters"]["properties"]["morphology"]
        return field["enum"] if "enum" in field else [field["const"]]

    assert shapes_allowed(1) == ["variance_burst"] and shapes_allowed(2) == ["flatline"]
    assert len(shapes_allowed(3)) > 1  # "vibration trouble" names no shape


def test_an_unusable_fault_list_fails_cleanly(series_file, tmp_path):
    model = ScriptedChatModel(script=["I cannot help", "{not json", tool_call("FaultList", {"faults": []})])
    outcome = run_generation(request(series_file, tmp_path), context(model))
    assert outcome.status == "failed" and outcome.result.bank_path is None
    assert "could not list the scenario's faults" in outcome.result.notes[-1]
    assert not (tmp_path / "pump_mined.yaml").exists()


def test_an_invalid_prior_drops_only_its_fault(series_file, tmp_path):
    model = ScriptedChatModel(script=[
        faults("cavitation", "clogged pressure line"),
        "no", "still no", prior(morphology="wobble"),  # three invalid answers: the repair budget (2) is spent
        prior(**FROZEN), verdict(),
    ])
    result = run_generation(request(series_file, tmp_path), context(model)).result
    assert result.status == "stored" and [r.id for r in result.rules] == ["clogged_pressure_line"]
    (dropped,) = result.dropped
    assert dropped.rule_id == "cavitation" and dropped.stage == "propose" and "invalid structured output" in dropped.reason


def test_a_prior_that_does_not_compile_goes_back_with_the_error(series_file, tmp_path):
    model = ScriptedChatModel(script=[
        faults("odd behaviour"),  # no shape word: every shape stays a candidate
        prior(morphology="spike", size=90, duration="1-3 steps"),  # 1.25 x 90 > bound 100
        prior(),
        verdict(),
    ])
    result = run_generation(request(series_file, tmp_path), context(model)).result
    assert result.status == "stored" and result.rules[0].morphology == "variance_burst"
    fix = model.calls[2][-1].content
    assert "above the operator's bound 100" in fix and '"size": 90' in fix
    assert "proposals: 2" in load_bank(result.bank_path).rules[0].provenance.note


def test_compile_retries_are_bounded_and_weak_rules_are_sent_back(series_file, tmp_path):
    weak = prior(morphology="level_shift", size=0.05, direction="up")
    model = ScriptedChatModel(script=[faults("sensor offset", "cavitation"), weak, weak, prior(), verdict()])
    result = run_generation(request(series_file, tmp_path), context(model, max_attempts=2)).result
    assert [r.id for r in result.rules] == ["cavitation"]
    (dropped,) = result.dropped
    assert dropped.stage == "compile" and "after 2 proposals" in dropped.reason and "barely show" in dropped.reason
    assert "barely show" in model.calls[2][-1].content


def test_critique_revise_loop_rewrites_the_rule(series_file, tmp_path):
    model = ScriptedChatModel(script=[
        faults("odd behaviour"),
        prior(morphology="spike", channels=["pressure"], duration="1-3 steps", size=5),
        verdict("revise", "a clogged line freezes the reading, it does not spike"),
        prior(**FROZEN),
        verdict("keep"),
    ])
    result = run_generation(request(series_file, tmp_path), context(model)).result
    (rule,) = result.rules
    assert rule.morphology == "flatline"
    revise_prompt = model.calls[3][-1].content
    assert "does not spike" in revise_prompt and '"morphology": "spike"' in revise_prompt
    bank = load_bank(result.bank_path)
    assert "revisions: 1" in bank.rules[0].provenance.note
    assert len([p for p in result.plots if "samples_round" in p]) == 2


def test_revision_budget_and_rejection(series_file, tmp_path):
    model = ScriptedChatModel(script=[
        faults("cavitation", "alien interference"),
        prior(),
        prior(morphology="spike", channels=["flow"], duration="1-3 steps", size=6),
        verdict("revise", "too short"),
        verdict("reject", "nothing in the text suggests it"),
    ])
    result = run_generation(request(series_file, tmp_path), context(model, max_revisions=0)).result
    (kept,) = result.rules
    assert kept.id == "cavitation" and "budget (0) is spent" in kept.critique
    (dropped,) = result.dropped
    assert dropped.rule_id == "alien_interference" and dropped.stage == "critique"


def test_step_budget_stops_the_model_and_keeps_what_is_valid(series_file, tmp_path):
    model = ScriptedChatModel(script=[faults("cavitation", "clogged pressure line", "flow dropout"), prior(), prior(**FROZEN)])
    result = run_generation(request(series_file, tmp_path, train_end=None), context(model, max_steps=3)).result
    assert result.status == "stored" and result.model_steps == 3
    assert any("no training split given: all 2000 rows" in n for n in result.notes)
    assert [r.id for r in result.rules] == ["cavitation", "clogged_pressure_line"]
    assert all("step budget" in (r.critique or "") for r in result.rules)
    assert [(d.rule_id, d.stage) for d in result.dropped] == [("flow_dropout", "budget")]
    assert any("step budget of 3" in n for n in result.notes)


def test_budget_bounds_an_endless_repair_loop(series_file, tmp_path):
    bad = prior(morphology="spike", size=95, duration="1-3 steps")
    ctx = context(ScriptedChatModel(script=[faults("spikes"), *[bad] * 5]), max_steps=6, max_attempts=50)
    assert recursion_limit(ctx) < 40
    result = run_generation(request(series_file, tmp_path), ctx).result
    assert result.status == "failed" and result.model_steps == 6
    assert result.dropped[0].stage == "budget"


def test_interrupt_for_approval_and_resume_in_a_new_process(series_file, tmp_path):
    model = ScriptedChatModel(script=[faults("cavitation", "clogged pressure line"), prior(), prior(**FROZEN), verdict(), verdict()])
    first = run_generation(request(series_file, tmp_path), context(model, auto_approve=False))
    assert first.status == "awaiting_approval" and first.result is None
    assert [r.id for r in first.pending.rules] == ["cavitation", "clogged_pressure_line"]
    assert first.pending.rules[0].critique and any("samples_round1" in p for p in first.pending.plots)
    assert not (tmp_path / "pump_mined.yaml").exists()
    # later, another process: a fresh context and a model that must not be called again
    idle = ScriptedChatModel(script=[])
    still = run_generation(request(series_file, tmp_path), context(idle, auto_approve=False))
    assert still.status == "awaiting_approval" and still.resumed
    with pytest.raises(Exception, match="unknown rule id"):
        run_generation(request(series_file, tmp_path), context(idle, auto_approve=False),
                       decision=ApprovalDecision(action="approve", drop=["nope"]))
    done = run_generation(request(series_file, tmp_path), context(idle, auto_approve=False),
                          decision=ApprovalDecision(action="approve", drop=["clogged_pressure_line"], note="not convinced"))
    assert done.status == "stored" and idle.calls == []
    bank = load_bank(done.result.bank_path)
    assert bank.rule_ids == ["cavitation"] and "approved by a person" in bank.origin.note
    assert done.result.decision.drop == ["clogged_pressure_line"]
    assert [(d.rule_id, d.stage, d.reason) for d in done.result.dropped] == [("clogged_pressure_line", "approval", "not convinced")]


def test_rejecting_at_approval_writes_nothing(series_file, tmp_path):
    model = ScriptedChatModel(script=[faults("cavitation"), prior(), verdict()])
    assert run_generation(request(series_file, tmp_path), context(model, auto_approve=False)).status == "awaiting_approval"
    outcome = run_generation(request(series_file, tmp_path), context(model, auto_approve=False),
                             decision=ApprovalDecision(action="reject"))
    assert outcome.status == "rejected" and not (tmp_path / "pump_mined.yaml").exists()


def test_a_crashed_run_resumes_from_its_last_completed_node(series_file, tmp_path):
    crashing = ScriptedChatModel(script=[faults("cavitation", "clogged pressure line"), prior(),
                                         LLMUnavailableError("server at http://127.0.0.1:1 refused the connection")])
    with pytest.raises(LLMUnavailableError):
        run_generation(request(series_file, tmp_path), context(crashing))
    fresh = ScriptedChatModel(script=[prior(**FROZEN), verdict(), verdict()])
    outcome = run_generation(request(series_file, tmp_path), context(fresh))
    assert outcome.resumed and outcome.status == "stored"
    assert len(fresh.calls) == 3  # the fault list and the first prior were not asked again
    assert [r.id for r in outcome.result.rules] == ["cavitation", "clogged_pressure_line"]
    # --fresh semantics: resume=False starts over
    over = ScriptedChatModel(script=[faults("cavitation"), prior(), verdict()])
    outcome = run_generation(request(series_file, tmp_path), context(over), resume=False)
    assert not outcome.resumed and [r.id for r in outcome.result.rules] == ["cavitation"]


def test_a_plot_too_long_for_the_context_is_dropped_for_the_run(series_file, tmp_path):
    model = ScriptedChatModel(script=[
        faults("cavitation", "clogged pressure line"),
        LLMContextLengthError("the prompt does not fit the context window"),
        prior(), prior(**FROZEN), verdict(), verdict(),
    ])
    result = run_generation(request(series_file, tmp_path), context(model)).result
    assert result.status == "stored" and len(result.rules) == 2
    assert TEXT_RENDERING_INTRO in model.calls[1][1].content  # first try: the plot's text rendering
    assert TEXT_RENDERING_INTRO not in model.calls[2][1].content and "local sd" in model.calls[2][1].content
    assert TEXT_RENDERING_INTRO not in model.calls[3][1].content  # later priors skip it
    assert any("did not fit the model's context" in n for n in result.notes)


def test_the_graph_compiles_without_a_checkpointer_for_the_langgraph_server():
    from anomalygraph.graphs.rulebank_generation import make_graph

    graph = make_graph({"configurable": {}})
    assert graph.checkpointer is None and build_graph().name == "rulebank_generation"
    assert set(graph.get_graph().nodes) >= {"prepare", "list_faults", "propose", "compile_rule", "sample", "critique",
                                            "approve", "store"}


def test_cli_generate_and_score(series_file, tmp_path, monkeypatch):
    from anomalygraph.cli.rulebank import app

    model = ScriptedChatModel(script=[faults("cavitation"), prior(), verdict()])
    monkeypatch.setattr("anomalygraph.llm.factory.get_chat_model", lambda settings=None, **_: model)
    scenario = tmp_path / "domain.md"
    scenario.write_text(SCENARIO)
    out = tmp_path / "mined.yaml"
    runner = CliRunner()
    args = ["generate", "--scenario", str(scenario), "--series", str(series_file), "--out", str(out), "--train-end", str(TRAIN)]
    result = runner.invoke(app, [*args, "--approve"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert out.is_file() and "cavitation" in result.output and "wrote" in result.output
    result = runner.invoke(app, ["score", str(out), str(out)], terminal_width=200)
    assert result.exit_code == 0 and "1.00" in result.output
    bad = runner.invoke(app, [*args[:-2], "--out", str(tmp_path / "x.txt")])
    assert bad.exit_code != 0 and "must end in .yaml" in str(bad.exception)
    judge = runner.invoke(app, [*args, "--critic", "judge"])
    assert judge.exit_code != 0 and "--critic must be 'checks' or 'model'" in str(judge.exception)


def test_cli_critic_model_asks_the_model_for_a_verdict(series_file, tmp_path, monkeypatch):
    from anomalygraph.cli.rulebank import app

    model = ScriptedChatModel(script=[faults("cavitation"), prior(), verdict("keep", "the text names it")])
    monkeypatch.setattr("anomalygraph.llm.factory.get_chat_model", lambda settings=None, **_: model)
    out = tmp_path / "mined.yaml"
    result = CliRunner().invoke(app, ["generate", "--scenario", SCENARIO, "--series", str(series_file), "--out", str(out),
                                      "--train-end", str(TRAIN), "--critic", "model", "--approve"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert len(model.calls) == 3 and load_bank(out).rules[0].provenance.note.count("the text names it") == 1


def test_eval_scores_mined_and_heuristic_banks_on_a_bench_scenario(tmp_path):
    from anomalygraph.evals.agents.rulebank import run_rulebank_eval

    model = ScriptedChatModel(script=[
        faults("meter gateway froze", "gaps in the weather feed"),
        prior(mechanism="the meter repeats its last reading", morphology="flatline", channels=["total_kw"], size=None,
              duration="2-6 hours"),
        prior(mechanism="the feed drops to zero", morphology="dropout", channels=["outdoor_temp_c"], size=None,
              duration="1-3 steps"),
        verdict(), verdict(),
    ])
    report = run_rulebank_eval(["building_energy"], tmp_path, model=model)
    mined, heuristic = report.rows
    assert mined.status == "stored" and mined.rules == 2
    assert mined.morphology_precision == 1.0 and mined.morphology_recall == pytest.approx(2 / 6, abs=1e-3)
    assert mined.channel_jaccard == 1.0 and 0 < mined.duration_overlap < 1  # 2-6 h vs 1-6 h, 1-3 steps vs 2-12 steps
    saved = json.loads((tmp_path / "rulebank_eval.json").read_text())["rows"][0]
    assert saved["found"] == ["dropout", "flatline"] and "spike" in saved["missed"]
    assert heuristic.bank_name == "cutaddpaste" and heuristic.morphology_recall < 1
    table = (tmp_path / "rulebank_eval.md").read_text()
    assert "| building_energy | mined" in table and "cutaddpaste" in table
    assert json.loads((tmp_path / "rulebank_eval.json").read_text())["rows"][0]["scenario"] == "building_energy"


@pytest.mark.llm
@pytest.mark.slow
def test_the_embedded_model_mines_a_valid_bank_for_a_bench_scenario(tmp_path):
    """Integration, small subset: the real embedded model on one TimeAnomalyBench scenario (about 2 min on 2 cores)."""
    from tests.llm.conftest import embedded_skip_reason

    if reason := embedded_skip_reason():
        pytest.skip(reason)
    from anomalygraph.rulebank.scoring import score_bank
    from anomalygraph.rulebank.timeanomalybench import generate, write_bench

    bench = generate("building_energy", seed=0)
    folder = write_bench(bench, tmp_path / "bench")
    req = GenerationRequest(scenario=(folder / "domain.md").read_text(), series_path=str(folder / "series.csv"),
                            train_end=bench.series.train_end, out_path=str(tmp_path / "mined.yaml"))
    outcome = run_generation(req, GenerationContext(auto_approve=True, max_priors=2, critique=False, max_steps=6,
                                                    data_roots=[tmp_path]))
    assert outcome.status == "stored", outcome.result.notes
    bank = load_bank(outcome.result.bank_path)
    assert 1 <= len(bank.rules) <= 2 and bank.origin.model and bank.report.ok
    score = score_bank(bank, bench.bank, step_seconds=900)
    assert 0 <= score.morphology_precision <= 1 and 0 <= score.morphology_recall <= 1
