"""The analyst's plans: the kind of question decides the tools, their arguments come from the question or the last result."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, ToolMessage

from anomalygraph.agents.analyst.plans import (
    KINDS,
    PLANS,
    kind_schema,
    latest_interval,
    plan_for,
    planned_args,
    rows_in,
)
from anomalygraph.tools import TOOL_NAMES


@pytest.mark.parametrize(("question", "rows"), [
    ("Rows 1200..1225 of T-5.npy are labelled anomalous. Which channel deviates most?", (1200, 1225)),
    ("Explain rows 4187 to 4199", (4187, 4199)),
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
