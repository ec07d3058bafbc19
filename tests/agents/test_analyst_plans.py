"""The analyst's plans: the kind of question decides the tools, their arguments come from the question or the last result."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, ToolMessage

from anomalygraph.agents.analyst.plans import (
    KINDS,
    PLANS,
    channel_named,
    direct_answer,
    kind_schema,
    kinds_in,
    latest_interval,
    plan_for,
    planned_args,
    rows_in,
)
from anomalygraph.tools import TOOL_NAMES


@pytest.mark.parametrize(("question", "rows"), [
    ("Rows 1200..1225 of T-5.npy are labelled anomalous. Which channel deviates most?", (1200, 1225)),
    ("Explain rows 4187 to 4199", (4187, 4199)),
    ("Which channel deviates in rows 10..20.", (10, 20)),  # a full stop after the range
    ("what happens between rows 10 and 20?", (10, 20)),
    ("rows 4187-4199 and 4187–4199", (4187, 4199)),  # one range, written twice
    ("Which rows hold the anomaly of x.csv?", None),
    ("rows 10..20 and 30..40", None),  # two ranges: not one to explain
    ("the level moved from 2.5-3.5", None),  # decimals are values, not rows
    ("rows 30..20", None),
])
def test_rows_in_reads_one_range(question, rows):
    assert rows_in(question) == rows


def test_every_kind_has_a_plan_of_real_tools_and_a_schema_choice():
    assert set(PLANS) == set(KINDS)
    assert all(t in TOOL_NAMES for plan in PLANS.values() for t in plan)
    assert kind_schema().model_json_schema()["properties"]["kind"]["enum"] == list(KINDS)
    assert plan_for("channel", ["detect"]) == ["detect"]  # a tool that is not offered is left out
    assert plan_for("unknown", list(TOOL_NAMES)) == []


def test_rows_in_the_question_replace_the_search_for_them():
    assert plan_for("channel", list(TOOL_NAMES), "Rows 5..9: which channel?") == ["explain_window"]
    assert plan_for("channel", list(TOOL_NAMES), "Which channel deviates?") == ["detect", "explain_window"]


def test_explain_window_takes_the_question_rows_else_the_interval_just_found():
    found = ToolMessage(content="...", tool_call_id="c1", name="detect", status="success",
                        artifact={"result": {"top_intervals": [{"start": 40, "end": 44}, {"start": 7, "end": 8}]}})
    failed = ToolMessage(content="error", tool_call_id="c2", name="detect", status="error", artifact={"result": None})
    turn = [HumanMessage(content="q"), found, failed]
    assert latest_interval(turn) == (40, 44)
    assert planned_args("explain_window", "Which channel deviates?", turn) == {"start": 40, "end": 44}
    assert planned_args("explain_window", "Rows 5..9: which channel?", turn) == {"start": 5, "end": 9}
    assert planned_args("explain_window", "Which channel deviates?", [HumanMessage(content="q")]) is None
    assert planned_args("detect", "When?", turn) == {}


def test_key_facts_are_the_sentences_the_tools_wrote_in_order():
    from anomalygraph.agents.analyst.plans import key_facts

    def result(name, content):
        return ToolMessage(content="...", tool_call_id=name, name=name, status="success", artifact={"result": content})

    turn = [
        HumanMessage(content="q"),
        result("load_series", {"path": "x", "summary": {"length": 3}}),  # a structure, not a sentence
        result("profile_series", {"facts": "3 rows; 1 channel(s)"}),
        result("explain_window", {"summary": "1 of 2 channel(s) deviate", "top_channel": "cmd3"}),
        ToolMessage(content="error", tool_call_id="e", name="detect", status="error", artifact={"result": None}),
    ]
    assert key_facts(turn) == [
        "profile_series: 3 rows; 1 channel(s)",
        "explain_window: 1 of 2 channel(s) deviate; the channel that deviates most is cmd3",
    ]


# ------------------------------------------------------------- wording -> kinds
PARAPHRASES = [  # how users ask, in words the eval's questions do not use
    ("what happened last night, which channels?", {"when", "channel"}),
    ("Which sensor is the odd one out between rows 500 and 560?", {"channel"}),
    ("At what time did the outage start?", {"when"}),
    ("Give me the row indices of the anomalous segment.", {"where"}),
    ("Do iforest and matrix_profile agree on this file?", {"comparison"}),
    ("What kind of anomaly is it, a level shift or a drift?", {"shape"}),
    ("How frequently is this metric recorded?", {"facts"}),
    ("What's the sampling rate of cpu.csv?", {"facts"}),
    ("Is there a daily cycle in it?", {"facts"}),
    ("Which detectors flag rows 10..20?", {"comparison"}),
    ("Will this metric go anomalous in the next hour?", {"forecast"}),
    ("Is something odd coming over the next 8 samples?", {"forecast"}),
    ("Can you predict whether the pump fails?", {"forecast"}),
    ("What happened last week?", {"when"}),  # the past is not a prediction
]


@pytest.mark.parametrize(("question", "expected"), PARAPHRASES)
def test_the_wording_names_the_kinds_a_user_asks_for(question: str, expected: set[str]) -> None:
    assert set(kinds_in(question)) == expected


def test_stated_rows_do_not_make_a_question_about_rows() -> None:
    assert kinds_in("Rows 1826..1836 of S-2.npy are labelled anomalous. Which channel deviates most there?") == ["channel"]
    assert kinds_in("Which rows of S-2.npy hold the anomaly?") == ["where"]
    assert kinds_in("Tell me something.") == []


@pytest.mark.parametrize(("question", "name"), [
    ("Rows 5..9 of x.npy are labelled anomalous. What shape is the anomaly in the value channel?", "value"),
    ("Is channel cmd9 a spike there?", "cmd9"),
    ("What does the `temp` sensor do in rows 5..9?", "temp"),
    ("Which channel deviates most?", None),  # asks for a channel, names none
    ("What happens in the first channel?", None),
])
def test_channel_named_reads_the_channel_a_question_asks_about(question: str, name: str | None) -> None:
    assert channel_named(question) == name
    args = planned_args("explain_window", question + " Rows 5..9.", [])
    assert args is not None and args.get("channel") == name



def _ok(name: str, result: dict) -> ToolMessage:
    return ToolMessage(content="...", tool_call_id=name, name=name, status="success", artifact={"result": result})


def test_the_direct_answer_of_a_shape_question_rejects_hedges_and_other_shapes() -> None:
    explained = _ok("explain_window", {"start": 5, "end": 9, "summary": "s", "deviating_channels": [
        {"channel": "value", "morphology": "level_shift", "peak_z": 28.4, "level_z": 20.0, "spread_ratio": 1.0}]})
    direct = direct_answer("shape", "What shape is it?", [explained])
    assert direct is not None and direct.tool == "explain_window" and direct.terms == ["level shift"]
    assert direct.sentence == "In rows 5..9, channel value shows a level shift (peak 28.4 sigma)"
    assert direct.stated_by("It is a level_shift in value.")
    assert not direct.stated_by("It is a spike, a dip, a level shift or a flatline.")  # echoes the choices
    assert not direct.stated_by("It is a spike.")
    channel = direct_answer("channel", "Which channel?", [explained])
    assert channel is not None and channel.terms == ["value"] and channel.stated_by("The value channel deviates most.")


def test_the_direct_answer_of_a_comparison_needs_rows_of_interest() -> None:
    over = _ok("compare_detectors", {"summary": "over rows 5..9: flagged by iforest; not by sub_pca; overall: 3 interval(s)",
                                     "over_rows": {"iforest": True, "sub_pca": False}})
    direct = direct_answer("comparison", "Which detectors flag rows 5..9?", [over])
    assert direct is not None and direct.sentence == "Over rows 5..9: flagged by iforest; not by sub_pca"
    assert direct.stated_by("Only iforest flags them.") and not direct.stated_by("iforest and sub_pca flag them.")
    nobody = _ok("compare_detectors", {"summary": "over rows 5..9: flagged by none; overall: 3 interval(s)",
                                       "over_rows": {"iforest": False, "sub_pca": False}})
    none = direct_answer("comparison", "Which detectors flag rows 5..9?", [nobody])
    assert none is not None and none.terms == ["none"] and none.stated_by("None of them flags those rows.")
    assert not none.stated_by("The tools flagged an interval overlapping rows 5..9.")
    no_rows = _ok("compare_detectors", {"summary": "3 interval(s)", "over_rows": None})
    assert direct_answer("comparison", "Do they agree?", [no_rows]) is None
    assert direct_answer("facts", "How many rows?", [over]) is None


def test_the_direct_answer_of_a_when_question_is_the_strongest_interval_day() -> None:
    found = _ok("detect", {"summary": "s", "top_intervals": [
        {"start": 40, "end": 44, "day": "2024-03-11", "peak_time": "2024-03-11 10:05:00"}, {"start": 7, "end": 8}]})
    when = direct_answer("when", "When?", [found])
    assert when is not None and when.terms == ["2024-03-11"] and "peak at 2024-03-11 10:05:00" in when.sentence
    where = direct_answer("where", "Which rows?", [found])
    assert where is not None and where.terms == ["40", "44"] and where.stated_by("Rows 40 to 44.")
    assert not where.stated_by("Row 40.")


def test_compare_detectors_takes_the_question_rows_and_the_detectors_it_names() -> None:
    q = "Rows 5..9 of x.csv are labelled anomalous. Which of the detectors iforest, sub_pca flag them?"
    assert planned_args("compare_detectors", q, [], ("iforest", "sub_pca", "matrix_profile")) == {
        "start": 5, "end": 9, "detectors": ["iforest", "sub_pca"]}
    assert planned_args("compare_detectors", "Do the detectors agree?", [], ("iforest", "sub_pca")) == {}


def test_a_forecast_question_plans_predict_anomaly_with_the_steps_it_names() -> None:
    assert plan_for("forecast", list(TOOL_NAMES)) == ["predict_anomaly"]
    assert planned_args("predict_anomaly", "Will it go anomalous in the next 8 steps?", []) == {"horizon": 8}
    assert planned_args("predict_anomaly", "Will it go anomalous in the next hour?", []) == {}  # hours are not steps
    predicted = _ok("predict_anomaly", {"summary": "F2A gives rows 10..25 an anomaly probability of at most 0.31, higher "
                                                   "than 97% of the file's 40 earlier windows: elevated; ...",
                                        "max_probability": 0.3104})
    direct = direct_answer("forecast", "Will it go anomalous?", [predicted])
    assert direct is not None and direct.terms == ["0.31"] and direct.sentence.startswith("F2A gives rows 10..25")
    assert direct.stated_by("Probability 0.31: elevated.") and not direct.stated_by("It looks fine.")
