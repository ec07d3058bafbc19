"""The analyst's prompts, rendered: each template with fixed inputs, then the texts the graph and
the transcript view actually send, byte for byte (the texts the code wrote inline before the
prompts moved to files)."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.tool import invalid_tool_call

from anomalygraph.agents.analyst.view import PROMPTS as VIEW_PROMPTS
from anomalygraph.agents.analyst.view import model_view
from anomalygraph.core.llm_settings import ModelCapabilities
from anomalygraph.graphs.analyst import PROMPTS, AnalystContext, ask, build_graph
from anomalygraph.graphs.analyst.nodes import _done
from anomalygraph.llm.scripted import ScriptedChatModel, tool_call
from anomalygraph.llm.structured import PROMPTS as STRUCTURED_PROMPTS
from anomalygraph.prompts import load_prompt
from tests.prompts.test_files import shipped_names
from tests.synthetic import server_csv

NATIVE = ModelCapabilities(vision=False, tool_calling=True, auto_tool_choice=True, json_schema=False, legacy_max_tokens=False)
GUIDED = ModelCapabilities(vision=False, tool_calling=True, auto_tool_choice=False, json_schema=False, legacy_max_tokens=True)

RENDERED = [
    # (name, version, values, the exact text)
    ("analyst/file_named", 1, {"file": "/data/server.csv"}, "The user's file: /data/server.csv"),
    ("analyst/file_unnamed", 1, {}, "No file has been named yet; ask the user for one if the question needs it."),
    ("analyst/plan_answer", 1, {"answer": "answer"}, "- answer: reply to the user now, from the results above."),
    ("analyst/plan_no_calls", 1, {}, "No tool has been called for this question yet."),
    ("analyst/plan_calls", 1, {"calls": "- load_series(path=x.csv): ok\n- detect(detector=nope): error (invalid arguments)"},
     "Already called for this question:\n- load_series(path=x.csv): ok\n- detect(detector=nope): error (invalid arguments)"),
    ("analyst/act_file_bound", 1, {"file": "/data/server.csv"}, "The file is /data/server.csv; it is filled in for you."),
    ("analyst/act_file_named", 1, {"file": "/data/server.csv"}, "The user's file is /data/server.csv."),
    ("analyst/act_unknown_tool", 1, {"tool": "bogus"}, "no tool named 'bogus'"),
    ("analyst/act_too_long", 1, {"error": RuntimeError("the prompt has 9000 tokens")},
     "the arguments did not fit the model's context: the prompt has 9000 tokens"),
    ("analyst/call_not_json", 1, {}, "the arguments are not valid JSON"),
    ("analyst/call_unreadable", 1, {"tool": "profile_series", "error": "the arguments are not valid JSON"},
     "the call to profile_series could not be read: the arguments are not valid JSON"),
    ("analyst/call_unknown_tool", 1, {"tool": "nope", "tools": "load_series, detect"},
     "there is no tool named 'nope'; the tools are: load_series, detect"),
    ("analyst/call_invalid_args", 1, {"tool": "detect", "errors": "- detector: Input should be a valid string (got 5)"},
     "invalid arguments for detect:\n- detector: Input should be a valid string (got 5)"),
    ("analyst/call_duplicate", 1, {"tool": "load_series"},
     "load_series was already called with these arguments for this question; its result (or error) is above. "
     "Use it, call something else, or answer."),
    ("analyst/call_crashed", 1, {"tool": "crashes", "error_type": "RuntimeError", "error": RuntimeError("boom")},
     "crashes failed unexpectedly: RuntimeError: boom"),
    ("analyst/call_warnings", 1, {"warnings": "careful; again"}, "warnings: careful; again"),
    ("analyst/call_not_run", 1, {"max_steps": 3}, "not run: the budget of 3 tool calls for this question is used up"),
    ("analyst/respond_no_steps", 1, {}, "You have no tool calls left for this question: say briefly what remains unknown."),
    ("analyst/respond_all_failed", 1, {}, "No tool call succeeded for this question: say what failed and do not guess an answer."),
    ("analyst/respond_invented", 2, {"instruction": "Now answer. ", "numbers": "99999, 7"},
     "Now answer. \nYour previous answer quoted numbers or names that no tool reported (99999, 7). "
     "Answer again using only numbers and names that appear in the tool results."),
    ("analyst/exchange_result", 1, {"call": "load_series(path=x.csv)", "result": "length: 1500"},
     "Tool result of load_series(path=x.csv):\nlength: 1500"),
    ("analyst/exchange_error", 1, {"call": "detect(detector=nope)", "result": "unknown detector"},
     "Tool error from detect(detector=nope):\nunknown detector"),
    ("analyst/recap_header", 1, {"recaps": "- The user asked: A?\n- The user asked: B?"},
     "Earlier in this conversation:\n- The user asked: A?\n- The user asked: B?"),
    ("analyst/recap_question", 1, {"question": "How long is it?"}, "- The user asked: How long is it?"),
    ("analyst/recap_tools", 1, {"calls": "load_series(); detect() (failed)"}, "Tools called: load_series(); detect() (failed)"),
    ("analyst/recap_failed", 1, {}, "(failed)"),
    ("analyst/recap_answer", 1, {"answer": "It has 1500 rows."}, "The answer given: It has 1500 rows."),
]


@pytest.mark.parametrize(("name", "version", "values", "expected"), RENDERED, ids=[r[0] for r in RENDERED])
def test_analyst_prompt_renders_exactly(name, version, values, expected) -> None:
    template = load_prompt(name)
    assert template.version == version
    assert template.render(**values) == expected


def test_provenance_lists_every_analyst_prompt() -> None:
    analyst = {n for n in shipped_names() if n.startswith("analyst/")}
    assert analyst <= set(PROMPTS)
    assert set(VIEW_PROMPTS) <= set(PROMPTS) and set(STRUCTURED_PROMPTS) <= set(PROMPTS)
    assert len(PROMPTS) == len(set(PROMPTS))
    for name in PROMPTS:
        load_prompt(name)


# ------------------------------------------------------------- the text transcript
def _turn(question: str, answer: str | None) -> list:
    ai = AIMessage(content="", tool_calls=[
        {"name": "load_series", "args": {"path": "x.csv"}, "id": "a1", "type": "tool_call"},
        {"name": "detect", "args": {"detector": "nope"}, "id": "a2", "type": "tool_call"},
    ])
    turn = [
        HumanMessage(content=question), ai,
        ToolMessage(content="length: 1500", name="load_series", tool_call_id="a1", status="success"),
        ToolMessage(content="unknown detector nope", name="detect", tool_call_id="a2", status="error"),
    ]
    return [*turn, AIMessage(content=answer)] if answer else turn


def test_text_transcript_writes_exchanges_and_recaps_exactly() -> None:
    messages = [SystemMessage(content="sys"), *_turn("How long is it?", "It has 1500 rows."), *_turn("And the anomaly?", None)]
    view = model_view(messages, transcript="text", history_chars=6000)
    assert [type(m) for m in view] == [HumanMessage] * 4
    assert [m.content for m in view] == [
        "Earlier in this conversation:\n"
        "- The user asked: How long is it?\n"
        "  Tools called: load_series(path=x.csv); detect(detector=nope) (failed)\n"
        "  The answer given: It has 1500 rows.",
        "And the anomaly?",
        "Tool result of load_series(path=x.csv):\nlength: 1500",
        "Tool error from detect(detector=nope):\nunknown detector nope",
    ]


def test_plan_lists_the_calls_made_exactly() -> None:
    assert _done({"messages": [HumanMessage(content="Q?")]}) == "No tool has been called for this question yet."
    state = {"messages": [
        *_turn("Q?", None)[:3],
        ToolMessage(content="unknown detector nope", name="detect", tool_call_id="a2", status="error",
                    artifact={"outcome": "tool_error", "args": {"detector": "nope"}}),
    ]}
    state["messages"][2] = state["messages"][2].model_copy(update={"artifact": {"outcome": "ok", "args": {"path": "x.csv"}}})
    assert _done(state) == (
        "Already called for this question:\n"
        "- load_series(path=x.csv): ok\n"
        "- detect(detector=nope): error (tool error)"
    )


# ---------------------------------------------------------------------- the graph
@pytest.fixture
def series_file(tmp_path):
    return server_csv(tmp_path / "server.csv")


def _run(tmp_path, script, question, *, caps=GUIDED, file=None, **kw):
    from langgraph.checkpoint.memory import InMemorySaver

    model = ScriptedChatModel.with_capabilities(script, caps)
    ctx = AnalystContext(model=model, data_roots=[tmp_path], output_dir=tmp_path / "plots", **{"planner": "steps"} | kw)
    graph = build_graph(InMemorySaver())
    ask(graph, question, context=ctx, thread_id="t", file=file)
    return model, graph.get_state({"configurable": {"thread_id": "t"}}).values["messages"]


def _step(action: str) -> AIMessage:
    return tool_call("NextAction", {"action": action})


def test_guided_turn_sends_the_moved_texts_exactly(series_file, tmp_path) -> None:
    file = str(series_file)
    model, _ = _run(tmp_path, [
        _step("load_series"), _step("detect"), tool_call("detect", {"detector": "robust_z"}),
        "The anomaly is at row 99999.", "The anomaly is at row 1200.",
    ], "Where is the anomaly?", file=file, tools_per_turn=2)
    system = model.calls[-1][0]
    assert isinstance(system, SystemMessage)
    assert system.content.endswith(f"\n\nThe user's file: {file}\nFiles can be read under: {tmp_path}.")
    second_plan = model.calls[1][-1].content
    assert "\n\nSteps:\n- answer: reply to the user now, from the results above.\n- profile_series: " in second_plan
    assert f"\n\nAlready called for this question:\n- load_series(path={file}): ok\nCalls left for this question: 5.\n" in second_plan
    assert model.calls[2][-1].content == (
        f"Call detect now with the arguments this question needs: Where is the anomaly?\n"
        f"The file is {file}; it is filled in for you."
    )
    assert model.calls[3][-2].content.startswith(f"Tool result of detect(path={file}, detector=robust_z):\nsummary: robust_z flags ")
    facts, _, retry = model.calls[4][-1].content.partition("\n\n")
    # load_series writes no sentence of its own; detect's summary is the one fact line
    assert facts.startswith("The facts the tools reported for this question:\n- detect: robust_z flags ")
    assert facts.count("\n- ") == 1
    assert retry == (
        "Now answer the question in plain sentences, without code: Where is the anomaly?\n"
        "Use only the tool results above and quote rows, times, channels and numbers exactly as they were reported. \n"
        "Your previous answer quoted numbers or names that no tool reported (99999). "
        "Answer again using only numbers and names that appear in the tool results."
    )


def test_guided_turn_without_a_file(tmp_path) -> None:
    model, _ = _run(tmp_path, [_step("answer"), "I load and detect."], "What can you do?")
    system, _, plan = model.calls[0]
    assert "\n\nNo file has been named yet; ask the user for one if the question needs it.\n" in system.content
    assert "\n\nSteps:\n- answer: reply to the user now, from the results above.\n- load_series: " in plan.content
    assert "\n\nNo tool has been called for this question yet.\nCalls left for this question: 6.\n" in plan.content


def test_tool_errors_and_budget_reach_the_model_exactly(series_file, tmp_path) -> None:
    calls = AIMessage(content="", tool_calls=[
        {"name": "detect", "args": {"detector": 5, "zzz": 1}, "id": "c1", "type": "tool_call"},
        {"name": "nope", "args": {}, "id": "c2", "type": "tool_call"},
    ], invalid_tool_calls=[
        invalid_tool_call(name="profile_series", args="{oops", id="c3", error=None),
        invalid_tool_call(name="detect", args="{", id="c4", error="Expecting value"),
    ])
    model, messages = _run(tmp_path, [calls, "Nothing worked."], "Where is the anomaly?", caps=NATIVE,
                           file=str(series_file), max_steps=3)
    tools = [m.content for m in messages if isinstance(m, ToolMessage)]
    names = ", ".join(["load_series", "profile_series", "detect", "compare_detectors", "explain_window", "plot_series", "evaluate",
                       "predict_anomaly"])
    assert tools == [
        "invalid arguments for detect:\n- detector: Input should be a valid string (got 5)\n"
        "- zzz: Extra inputs are not permitted (got 1)",
        f"there is no tool named 'nope'; the tools are: {names}",
        "the call to profile_series could not be read: the arguments are not valid JSON",
        "not run: the budget of 3 tool calls for this question is used up",
    ]
    assert model.calls[-1][-1].content == (
        "Now answer the question in plain sentences, without code: Where is the anomaly?\n"
        "Use only the tool results above and quote rows, times, channels and numbers exactly as they were reported. "
        "You have no tool calls left for this question: say briefly what remains unknown. "
        "No tool call succeeded for this question: say what failed and do not guess an answer."
    )


def test_a_duplicate_call_is_answered_exactly(series_file, tmp_path) -> None:
    calls = AIMessage(content="", tool_calls=[
        {"name": "load_series", "args": {}, "id": "d1", "type": "tool_call"},
        {"name": "load_series", "args": {}, "id": "d2", "type": "tool_call"},
    ])
    _, messages = _run(tmp_path, [calls, "It has 1500 rows."], "How long is it?", caps=NATIVE, file=str(series_file))
    duplicate = [m.content for m in messages if isinstance(m, ToolMessage)][1]
    assert duplicate == (
        "load_series was already called with these arguments for this question; its result (or error) is above. "
        "Use it, call something else, or answer."
    )
