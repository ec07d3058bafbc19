"""The prior miner with a scripted model: schemas, conversion to priors, messages, and failures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from anomalygraph.agents.prior_miner import (
    BUCKETS,
    PROMPTS,
    Critique,
    PriorDraft,
    PriorMiner,
    describe_rule,
    describe_samples,
    draft_schema,
    draft_to_prior,
    duration_choices,
    narrative,
    series_facts,
)
from anomalygraph.core.llm_settings import CAPABILITY_PRESETS, Provider
from anomalygraph.data.series import TimeSeries
from anomalygraph.llm.errors import StructuredOutputError
from anomalygraph.llm.messages import TEXT_RENDERING_INTRO, has_image
from anomalygraph.llm.scripted import ScriptedChatModel, tool_call
from anomalygraph.prompts import load_prompt
from anomalygraph.rulebank.sampler import PAGSampler
from anomalygraph.rulebank.schema import RuleBank, compile_prior

TEXT_ONLY = CAPABILITY_PRESETS[Provider.embedded]
VISION = CAPABILITY_PRESETS[Provider.vllm]
CHANNELS = ["flow", "pressure", "vibration"]


@pytest.fixture(scope="module")
def series() -> TimeSeries:
    rng = np.random.default_rng(0)
    t = np.arange(1500)
    values = np.stack([100 + 10 * np.sin(2 * np.pi * t / 200) + rng.normal(size=t.size),
                       6 + 0.5 * np.sin(2 * np.pi * t / 200) + 0.05 * rng.normal(size=t.size),
                       2 + 0.1 * rng.normal(size=t.size)], axis=1)
    stamps = pd.date_range("2024-03-01", periods=t.size, freq="1min")
    return TimeSeries(values=values, timestamps=stamps, channels=CHANNELS, name="pump")


def draft(**kw) -> dict:
    base = {"mechanism": "the sensor freezes", "morphology": "flatline", "channels": ["pressure"], "duration": "5-30 minutes"}
    return base | kw


# --------------------------------------------------------------------- schemas
def test_duration_choices_fit_the_sampling_and_the_data() -> None:
    assert duration_choices(step_seconds=60, length=7200) == ["1-3 steps", "5-30 minutes", "30-90 minutes", "2-6 hours"]
    # 15-minute data: buckets shorter than two steps or longer than a tenth of the data are left out
    assert duration_choices(step_seconds=900, length=1344) == ["1-3 steps", "30-90 minutes", "2-6 hours", "6-24 hours"]
    assert duration_choices(step_seconds=None, length=500) == ["1-3 steps", "5-20 steps"]
    for label in duration_choices(step_seconds=60, length=10_000):
        bucket = BUCKETS[label]
        steps = bucket.high / 60 if bucket.unit == "seconds" else bucket.high
        assert steps <= 1000


def test_draft_schema_limits_channels_and_durations_to_the_series() -> None:
    durations = duration_choices(step_seconds=60, length=7200)
    schema = draft_schema(CHANNELS, durations=durations)
    js = schema.model_json_schema()
    assert js["properties"]["channels"]["items"]["enum"] == CHANNELS
    assert js["properties"]["duration"]["enum"] == durations
    assert set(js["required"]) == {"mechanism", "morphology", "channels", "duration"}
    assert "maximum" not in str(js["properties"]["size"])  # small models copy schema bounds into answers
    with pytest.raises(ValidationError, match="channels"):
        schema.model_validate(draft(channels=["temperature"]))
    with pytest.raises(ValidationError, match="duration"):
        schema.model_validate(draft(duration="6-24 hours"))
    with pytest.raises(ValidationError, match="size must be above 0"):
        schema.model_validate(draft(morphology="spike", size=500))
    assert schema.__name__ == "AnomalyPriorDraft" and issubclass(schema, PriorDraft)


def test_draft_to_prior_converts_durations_and_sizes() -> None:
    prior, notes = draft_to_prior(PriorDraft.model_validate(draft(
        morphology="variance_burst", size=4, duration="2-6 hours", regime="high_level")), fault="cavitation")
    assert notes == []
    assert prior.duration.unit == "seconds" and prior.duration.dist.support() == (7200, 21600)
    assert prior.scale.support() == pytest.approx((3.0, 5.0))
    assert prior.context.regime == "high_level" and prior.context.channels == ["pressure"]
    assert "cavitation" in prior.evidence
    rule = compile_prior(prior, "cavitation")
    assert rule.operator == "variance_burst" and rule.params["noise"].support() == pytest.approx((3.0, 5.0))
    steps, _ = draft_to_prior(PriorDraft.model_validate(draft(duration="1-3 steps")))
    assert steps.duration.unit == "steps" and steps.duration.dist.support() == (1, 3)


def test_draft_to_prior_notes_fields_the_shape_cannot_use() -> None:
    prior, notes = draft_to_prior(PriorDraft.model_validate(draft(size=3, direction="up")))
    assert prior.scale is None and prior.direction == "either"
    assert any("ignored size 3" in n for n in notes) and any("ignored direction 'up'" in n for n in notes)
    compile_prior(prior, "stuck")  # the cleaned prior compiles


def test_out_of_bound_sizes_are_left_for_compile_to_reject() -> None:
    prior, _ = draft_to_prior(PriorDraft.model_validate(draft(morphology="spike", size=90, duration="1-3 steps")))
    with pytest.raises(ValidationError, match="above the operator's bound 100"):
        compile_prior(prior, "huge")


def test_every_prompt_loads_and_renders() -> None:
    values = {"scenario": "S", "channels": "a, b", "max_faults": 3, "facts": "F", "fault": "leak", "units": "steps",
              "previous": "{}", "problem": "P", "rule": "R", "samples": "X", "candidates": "C"}
    for name in PROMPTS:
        template = load_prompt(name)
        assert template.version >= 1
        needed = {k: v for k, v in values.items() if "{" + k in template.text}
        text = template.render(**needed)
        assert "{" not in text.replace("{}", "")


# ---------------------------------------------------------------------- agent
def test_a_sentence_given_as_a_fault_name_is_cut_at_a_word_not_refused() -> None:
    from anomalygraph.agents.prior_miner import FAULT_CHARS, FaultList

    long = ("Replica falling further and further behind while it waited on a long-running report query "
            "that held a lock, until the primary was restarted")
    (name,) = FaultList(faults=[long]).faults
    assert len(name) <= FAULT_CHARS and long.startswith(name) and long[len(name)] == " "
    assert FaultList(faults=["short one."]).faults == ["short one"]


def test_list_faults_dedupes_and_caps() -> None:
    model = ScriptedChatModel(script=[tool_call("FaultList", {"faults": ["Leak.", "leak", "  stuck   sensor ", "spikes", "drift"]})])
    miner = PriorMiner(model=model, capabilities=TEXT_ONLY)
    assert miner.list_faults("a pump with a leak", max_faults=3) == ["Leak", "stuck sensor", "spikes"]
    sent = " ".join(model.calls[0][-1].content.split())
    assert "a pump with a leak" in sent and "at most 3" in sent
    assert "Shapes you may use" not in model.calls[0][0].content  # the listing question stays short
    assert model.bound[0]["tool_choice"] == "FaultList"


def test_propose_sends_the_plot_as_text_to_a_text_model(series: TimeSeries, tmp_path) -> None:
    from anomalygraph.plots.detection import plot_detection

    plot = plot_detection(series, path=tmp_path / "p.png")
    model = ScriptedChatModel(script=[tool_call("AnomalyPriorDraft", draft())])
    miner = PriorMiner(model=model, capabilities=TEXT_ONLY)
    facts = series_facts(series)
    context = miner.context_message("a pump", facts, view=series, plot=plot)
    proposal = miner.propose(context, facts, "clogged line")
    assert proposal.prior.morphology == "flatline" and proposal.prior.duration.unit == "seconds"
    system, ctx_msg, ask = model.calls[0]
    assert "flatline: the reading freezes" in system.content
    assert TEXT_RENDERING_INTRO in ctx_msg.content and "[pressure]" in ctx_msg.content
    assert "Fault: clogged line" in ask.content and "(1-3 steps, 5-30 minutes, 30-90 minutes)" in ask.content
    tool = model.bound[0]["tools"][0]["function"]
    assert tool["name"] == "AnomalyPriorDraft" and tool["parameters"]["properties"]["channels"]["items"]["enum"] == CHANNELS

    vision = ScriptedChatModel(script=[json.dumps(draft())])  # vLLM: schema-guided JSON, not a tool call
    vminer = PriorMiner(model=vision, capabilities=VISION)
    vminer.propose(vminer.context_message("a pump", facts, view=series, plot=plot), facts, "clogged line")
    assert has_image(vision.calls[0][1])


def test_propose_repairs_show_the_previous_answer_and_problem(series: TimeSeries) -> None:
    model = ScriptedChatModel(script=[tool_call("AnomalyPriorDraft", draft(morphology="dropout"))])
    miner = PriorMiner(model=model, capabilities=TEXT_ONLY)
    facts = series_facts(series)
    miner.propose(miner.context_message("a pump", facts), facts, "loose loop",
                  previous='{"morphology": "spike", "size": 500}', problem="params.magnitude: above the bound 100")
    fix = model.calls[0][-1].content
    assert '"size": 500' in fix and "above the bound 100" in fix and 'for "loose loop"' in fix


def test_full_form_asks_for_the_anomaly_prior_schema(series: TimeSeries) -> None:
    prior = {"mechanism": "leak", "morphology": "drift", "duration": {"unit": "steps", "dist": {"kind": "uniform", "low": 10, "high": 50}},
             "context": {"channels": ["flow"]}, "direction": "down"}
    model = ScriptedChatModel(script=[tool_call("AnomalyPrior", prior)])
    miner = PriorMiner(model=model, capabilities=TEXT_ONLY, form="full")
    facts = series_facts(series)
    proposal = miner.propose(miner.context_message("s", facts), facts, "leak")
    assert proposal.prior.direction == "down" and proposal.notes == []
    assert model.bound[0]["tool_choice"] == "AnomalyPrior"


def test_invalid_answers_end_in_a_structured_output_error(series: TimeSeries) -> None:
    model = ScriptedChatModel(script=["no idea", tool_call("AnomalyPriorDraft", {"morphology": "wobble"}), "{broken"])
    miner = PriorMiner(model=model, capabilities=TEXT_ONLY, retries=2)
    facts = series_facts(series)
    with pytest.raises(StructuredOutputError, match="AnomalyPriorDraft"):
        miner.propose(miner.context_message("s", facts), facts, "leak")
    assert len(model.calls) == 3


def test_critique_reads_rule_and_samples_and_shows_the_plot_to_vision_models(series: TimeSeries, tmp_path) -> None:
    rule = compile_prior(draft_to_prior(PriorDraft.model_validate(draft()))[0], "stuck")
    model = ScriptedChatModel(script=[tool_call("Critique", {"reason": "a frozen reading fits", "verdict": "keep"})])
    miner = PriorMiner(model=model, capabilities=TEXT_ONLY)
    verdict = miner.critique("pressure line clogs", "clogged line", rule, "- sample 1: frozen", step_seconds=60)
    assert verdict == Critique(reason="a frozen reading fits", verdict="keep")
    text = model.calls[0][-1].content
    assert "shape: flatline" in text and "channels: pressure" in text and "duration: 5 min to 30 min" in text
    assert "- sample 1: frozen" in text and not has_image(model.calls[0][-1])
    png = tmp_path / "s.png"
    from anomalygraph.plots.detection import plot_detection

    plot_detection(series, path=png)
    vision = ScriptedChatModel(script=['{"reason": "ok", "verdict": "keep"}'])
    PriorMiner(model=vision, capabilities=VISION).critique("s", "f", rule, "x", plot=png)
    assert has_image(vision.calls[0][-1])


# ------------------------------------------------------------------ rendering
def test_describe_samples_names_what_each_rule_did(series: TimeSeries) -> None:
    for prior_kw, expected in ((draft(), "frozen"),
                               (draft(morphology="variance_burst", channels=["vibration"], size=5), "reads as variance_burst")):
        rule = compile_prior(draft_to_prior(PriorDraft.model_validate(prior_kw))[0], "r")
        batch = PAGSampler(RuleBank(name="b", rules=[rule]), series, window=200, seed=1).sample(3)
        text = describe_samples(batch, series.channels, 60.0)
        assert text.count("- sample") == 3 and expected in text
        assert prior_kw["channels"][0] in text
        assert f"shape: {rule.morphology}" in describe_rule(rule)


def test_the_fault_list_is_asked_from_the_narrative() -> None:
    doc = ("# Pump\n\nA pump. Logs mention a leaking seal and a stuck pressure gauge, twice this year.\n\n"
           "- Sampling: every 1min, 14400 steps.\n\n| channel | unit |\n| --- | --- |\n| `flow` | m3/h |\n")
    assert narrative(doc) == "A pump. Logs mention a leaking seal and a stuck pressure gauge, twice this year."
    bullets_only = "- a leaking seal\n- a stuck pressure gauge"
    assert narrative(bullets_only) == bullets_only  # nothing else to go on: the whole text
    model = ScriptedChatModel(script=[tool_call("FaultList", {"faults": ["leaking seal"]})])
    PriorMiner(model=model, capabilities=TEXT_ONLY).list_faults(doc)
    sent = model.calls[0][-1].content
    assert "leaking seal" in sent and "14400" not in sent and "| channel" not in sent


def test_an_over_long_critique_reason_is_cut_not_rejected() -> None:
    from anomalygraph.agents.prior_miner import REASON_CHARS, Critique

    verdict = Critique.model_validate({"reason": "word " * 200, "verdict": "reject"})
    assert len(verdict.reason) == REASON_CHARS and verdict.reason.endswith("…") and verdict.verdict == "reject"
    assert Critique.model_json_schema()["properties"]["reason"]["maxLength"] == REASON_CHARS
    with pytest.raises(ValueError, match="at least 1 character"):
        Critique.model_validate({"reason": "", "verdict": "keep"})
