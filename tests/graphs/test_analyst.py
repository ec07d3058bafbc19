"""Every path of the analyst graph with scripted chat models: guided and native tool choice, tool
errors, invalid arguments, unknown tools, duplicates, the step budget, fallbacks, and resuming a
thread from its SQLite store."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.tool import invalid_tool_call

from anomalygraph.agents.analyst.plans import KINDS
from anomalygraph.agents.analyst.view import compact_result, model_view
from anomalygraph.core.errors import ConfigError
from anomalygraph.core.llm_settings import ModelCapabilities
from anomalygraph.graphs.analyst import AnalystContext, ask, build_graph, thread_store
from anomalygraph.graphs.analyst.graph import recursion_limit
from anomalygraph.graphs.analyst.nodes import subject_file
from anomalygraph.llm.errors import LLMContextLengthError, LLMUnavailableError
from anomalygraph.llm.scripted import ScriptedChatModel, tool_call
from tests.synthetic import server_csv

NATIVE = ModelCapabilities(vision=False, tool_calling=True, auto_tool_choice=True, json_schema=False, legacy_max_tokens=False)
GUIDED = ModelCapabilities(vision=False, tool_calling=True, auto_tool_choice=False, json_schema=False, legacy_max_tokens=True)


def step(action: str) -> AIMessage:
    """A plan-step reply: the structured NextAction."""
    return tool_call("NextAction", {"action": action})


@pytest.fixture
def series_file(tmp_path):
    return server_csv(tmp_path / "server.csv")


def make(tmp_path, script, *, caps=GUIDED, **kw):
    model = ScriptedChatModel.with_capabilities(script, caps)
    ctx = AnalystContext(model=model, data_roots=[tmp_path], output_dir=tmp_path / "plots", **{"planner": "steps"} | kw)
    return model, ctx


def run(ctx, question, *, file=None, graph=None, thread="t"):
    from langgraph.checkpoint.memory import InMemorySaver

    graph = graph or build_graph(InMemorySaver())
    return ask(graph, question, context=ctx, thread_id=thread, file=file)


def tools_schema(model, call):
    """The function schema a call was forced to, by name and JSON parameters."""
    bound = model.bound[call]
    (tool,) = bound["tools"]
    return bound["tool_choice"], tool["function"]["parameters"]


# ------------------------------------------------------------------ guided
def test_guided_turn_plans_forces_the_call_and_answers_from_its_result(series_file, tmp_path):
    model, ctx = make(tmp_path, [
        step("detect"),
        tool_call("detect", {"detector": "robust_z"}),
        "The strongest interval starts at row 1200.",
    ])
    turn = run(ctx, "Where is the strongest anomaly?", file=str(series_file))
    assert turn.answer == "The strongest interval starts at row 1200."
    [call] = turn.calls
    assert call.name == "detect" and call.outcome == "ok"
    assert call.args == {"path": str(series_file), "detector": "robust_z"}  # the file is bound by the agent
    # plan and act are forced calls of one function each; the act schema has no path to garble
    assert tools_schema(model, 0)[0] == "NextAction"
    choice, params = tools_schema(model, 1)
    assert choice == "detect" and "path" not in params["properties"] and "detector" in params["properties"]
    assert "settings" not in params["properties"]  # free-form settings stay at their defaults in guided mode
    # one successful call answers in guided mode (no third plan step); the answer call binds no
    # tools, and sees the result as text (llama.cpp drops tool messages)
    assert len(model.calls) == 3 and "tools" not in model.bound[2]
    seen = model.calls[2]
    assert not any(isinstance(m, ToolMessage) for m in seen)
    result = next(m.content for m in seen if isinstance(m, HumanMessage) and m.content.startswith(f"Tool result of detect(path={series_file}, detector=robust_z)"))
    assert "top_intervals" in result
    assert isinstance(seen[0], SystemMessage) and str(series_file) in seen[0].content


def test_a_tool_whose_only_argument_is_the_file_needs_no_model_call(series_file, tmp_path):
    model, ctx = make(tmp_path, [step("load_series"), "It has 1500 rows."])
    turn = run(ctx, "How long is it?", file=str(series_file))
    assert [c.outcome for c in turn.calls] == ["ok"] and turn.answer == "It has 1500 rows."
    assert len(model.calls) == 2  # plan, respond: no act call


def test_question_naming_a_file_must_call_a_tool_before_answering(series_file, tmp_path):
    model, ctx = make(tmp_path, [step("load_series"), step("answer"), "1500 rows."], tools_per_turn=2)
    run(ctx, f"How many rows does {series_file.name} have?")
    first = tools_schema(model, 0)[1]["properties"]["action"]["enum"]
    assert "answer" not in first and "load_series" in first
    assert "answer" in tools_schema(model, 1)[1]["properties"]["action"]["enum"]
    # the path named in the question is the one bound to the call
    assert subject_file({"messages": [HumanMessage(f"Is {series_file.name} ok?")], "file": "other.csv"}) == series_file.name


def test_guided_answers_after_one_result_and_native_after_the_budget(tmp_path):
    _, guided = make(tmp_path, [])
    _, native = make(tmp_path, [], caps=NATIVE, max_steps=5)
    _, chosen = make(tmp_path, [], tools_per_turn=3)
    assert (guided.answer_after(), native.answer_after(), chosen.answer_after()) == (1, 5, 3)
    with pytest.raises(ConfigError, match="tools_per_turn"):
        AnalystContext(tools_per_turn=0)


def test_a_general_question_may_be_answered_without_tools(tmp_path):
    model, ctx = make(tmp_path, [step("answer"), "I load, profile, detect and plot time series."])
    turn = run(ctx, "What can you do?")
    assert turn.calls == [] and "detect" in turn.answer
    assert "answer" in tools_schema(model, 0)[1]["properties"]["action"]["enum"]


def test_tool_error_goes_back_to_the_model_which_corrects_the_call(series_file, tmp_path):
    model, ctx = make(tmp_path, [
        step("explain_window"),
        tool_call("explain_window", {"start": 5000, "end": 5010}),
        step("explain_window"),
        tool_call("explain_window", {"start": 1200, "end": 1209}),
        "cpu spikes in rows 1200..1209.",
    ])
    turn = run(ctx, "Explain the spike", file=str(series_file))
    assert [c.outcome for c in turn.calls] == ["tool_error", "ok"]
    assert "outside series" in turn.calls[0].error
    plan_view = model.calls[2]
    assert any(isinstance(m, HumanMessage) and m.content.startswith(f"Tool error from explain_window(path={series_file}, start=5000, end=5010)") for m in plan_view)
    assert "explain_window" in plan_view[-1].content and "error (tool error)" in plan_view[-1].content


def test_file_outside_the_data_roots_is_refused_and_the_answer_says_so(tmp_path):
    model, ctx = make(tmp_path / "sandbox", [step("load_series"), step("load_series"), step("answer"), "I may not read that file."])
    (tmp_path / "sandbox").mkdir()
    turn = run(ctx, "Load ../../etc/passwd.csv")
    assert [c.outcome for c in turn.calls] == ["tool_error", "duplicate"]  # the same refusal is not asked for twice
    assert "outside the configured data roots" in turn.calls[0].error
    # one failure does not ground an answer; two let the model report the failure, without guessing
    assert "answer" not in tools_schema(model, 1)[1]["properties"]["action"]["enum"]
    assert "answer" in tools_schema(model, 2)[1]["properties"]["action"]["enum"]
    assert "No tool call succeeded" in model.calls[3][-1].content


def test_invalid_arguments_in_guided_mode_are_repaired_then_recorded(series_file, tmp_path):
    bad = tool_call("explain_window", {"start": "the spike"})
    model, ctx = make(tmp_path, [step("explain_window"), bad, bad, bad, step("load_series"), "1500 rows."])
    turn = run(ctx, "Explain the spike", file=str(series_file))
    call = turn.calls[0]
    assert call.outcome == "invalid_arguments" and "start" in call.error
    assert [c.outcome for c in turn.calls] == ["invalid_arguments", "ok"]
    assert len(model.calls) == 6  # the act step tried 1 + 2 repairs


def test_plan_that_never_validates_falls_back_to_answering(series_file, tmp_path):
    _model, ctx = make(tmp_path, ["no idea", "still prose", tool_call("NextAction", {"action": "dance"}), "Sorry."])
    turn = run(ctx, "Explain", file=str(series_file))
    assert turn.calls == [] and turn.answer == "Sorry."
    assert any("plan step gave no usable next action" in n for n in turn.notes)


def test_step_budget_stops_the_loop_and_the_answer_says_so(series_file, tmp_path):
    model, ctx = make(tmp_path, [
        step("detect"), tool_call("detect", {"detector": "robust_z"}),
        step("explain_window"), tool_call("explain_window", {"start": 1200, "end": 1209}),
        "Partial answer: robust_z flags rows 1200..1209, where cpu spikes.",
    ], max_steps=2, tools_per_turn=3)
    turn = run(ctx, "Compare everything", file=str(series_file))
    assert [c.outcome for c in turn.calls] == ["ok", "ok"]
    assert any("step budget of 2" in n for n in turn.notes)
    assert "no tool calls left" in model.calls[-1][-1].content
    assert turn.answer.startswith("Partial answer")
    assert recursion_limit(2) > 3 * 2  # the budget, not the recursion limit, ends the turn


def test_a_tool_that_succeeded_is_not_offered_again_in_the_turn(series_file, tmp_path):
    model, ctx = make(tmp_path, [
        step("detect"), tool_call("detect", {"detector": "robust_z"}),
        step("load_series"),
        step("answer"), "robust_z flags rows 1200..1209.",
    ], tools_per_turn=3)
    turn = run(ctx, "Detect", file=str(series_file))
    assert [c.outcome for c in turn.calls] == ["ok", "ok"]
    second, third = (tools_schema(model, i)[1]["properties"]["action"]["enum"] for i in (2, 3))
    assert "detect" not in second and "load_series" in second and "answer" in second
    assert "detect" not in third and "load_series" not in third
    assert model.calls[2][-1].content.index("- answer:") < model.calls[2][-1].content.index("- load_series:")


def test_a_failed_call_repeated_identically_is_not_run_again(series_file, tmp_path):
    bad = {"path": series_file.name, "start": 9000, "end": 9010}
    _model, ctx = make(tmp_path, [tool_call("explain_window", bad), tool_call("explain_window", bad), "No such rows."], caps=NATIVE)
    turn = run(ctx, "Explain rows 9000..9010")
    assert [c.outcome for c in turn.calls] == ["tool_error", "duplicate"]


def test_context_overflow_in_plan_falls_back_to_answering(series_file, tmp_path):
    overflow = LLMContextLengthError("the prompt does not fit")
    _model, ctx = make(tmp_path, [overflow, overflow, overflow, "I could not plan; the conversation is too long."])
    turn = run(ctx, "Anything about it?", file=str(series_file))
    assert turn.answer.startswith("I could not plan") and any("plan step" in n for n in turn.notes)


def test_duplicate_call_is_not_run_again(series_file, tmp_path, monkeypatch):
    from anomalygraph.tools import analysis

    runs = []
    real = analysis.ensure_run
    monkeypatch.setattr(analysis, "ensure_run", lambda *a, **k: runs.append(a) or real(*a, **k))
    again = {"path": series_file.name, "detector": "robust_z"}
    _model, ctx = make(tmp_path, [tool_call("detect", again), tool_call("detect", again), "robust_z: rows 1200..1209."], caps=NATIVE)
    turn = run(ctx, "Detect")
    assert [c.outcome for c in turn.calls] == ["ok", "duplicate"]
    assert len(runs) == 1 and "already called" in turn.calls[1].error


def test_empty_answer_is_replaced_by_the_list_of_calls(series_file, tmp_path):
    _model, ctx = make(tmp_path, [step("load_series"), "   "])
    turn = run(ctx, "Describe it", file=str(series_file))
    assert "load_series" in turn.answer and "-> ok" in turn.answer
    assert any("empty" in n for n in turn.notes)


def test_prompt_too_long_is_retried_with_less_history(series_file, tmp_path):
    model, ctx = make(tmp_path, [LLMContextLengthError("prompt does not fit"), "Short answer."], caps=NATIVE)
    history = [HumanMessage("old question " + "x" * 3000), AIMessage("old answer " + "y" * 2500)]
    from langgraph.checkpoint.memory import InMemorySaver

    graph = build_graph(InMemorySaver())
    graph.update_state({"configurable": {"thread_id": "t"}}, {"messages": history})
    turn = run(ctx, "What now?", graph=graph)
    assert turn.answer == "Short answer."
    first, second = model.calls
    assert sum(len(str(m.content)) for m in second) < sum(len(str(m.content)) for m in first)


def test_llm_errors_reach_the_caller(series_file, tmp_path):
    _model, ctx = make(tmp_path, [LLMUnavailableError("cannot reach the LLM server")])
    with pytest.raises(LLMUnavailableError, match="cannot reach"):
        run(ctx, "Anything?", file=str(series_file))


# ------------------------------------------------------------------ native
def test_native_turn_lets_the_model_choose_and_sends_tool_messages(series_file, tmp_path):
    model, ctx = make(tmp_path, [
        tool_call("load_series", {"path": series_file.name}),
        "1500 rows, one channel (cpu).",
    ], caps=NATIVE)
    turn = run(ctx, "Describe the file")
    assert turn.calls[0].outcome == "ok" and turn.answer.startswith("1500 rows")
    assert model.bound[0].get("tool_choice") in (None, "auto")
    assert {t["function"]["name"] for t in model.bound[0]["tools"]} >= {"load_series", "detect", "plot_series"}
    assert isinstance(model.calls[1][-1], ToolMessage)  # native servers get real tool messages


def test_native_invalid_unknown_and_unparsable_calls_are_answered_with_errors(series_file, tmp_path):
    broken = AIMessage(content="", tool_calls=[
        {"name": "explain_window", "args": {"path": series_file.name, "start": "x"}, "id": "c1", "type": "tool_call"},
        {"name": "forecast", "args": {}, "id": "c2", "type": "tool_call"},
    ], invalid_tool_calls=[invalid_tool_call(name="detect", args="{not json", id=None, error="bad JSON")])
    model, ctx = make(tmp_path, [broken, "I could not run those."], caps=NATIVE)
    turn = run(ctx, "Explain rows 1200..1209")
    assert [c.outcome for c in turn.calls] == ["invalid_arguments", "unknown_tool", "invalid_arguments"]
    errors = [c.error for c in turn.calls]
    assert "start" in errors[0] and "end" in errors[0]  # the validation problems name the fields
    assert "no tool named 'forecast'" in errors[1]
    assert "could not be read" in errors[2]
    replies = [m for m in model.calls[1] if isinstance(m, ToolMessage)]
    assert len(replies) == 3 and all(m.tool_call_id for m in replies)  # every call answered, ids filled in


def test_native_budget_refuses_extra_calls_in_one_message(series_file, tmp_path):
    many = AIMessage(content="", tool_calls=[
        {"name": "detect", "args": {"path": series_file.name, "detector": d}, "id": f"c{i}", "type": "tool_call"}
        for i, d in enumerate(["robust_z", "iforest", "sub_pca"])
    ])
    model, ctx = make(tmp_path, [many, "Two detectors ran."], caps=NATIVE, max_steps=2)
    turn = run(ctx, "Run three detectors")
    assert [c.outcome for c in turn.calls] == ["ok", "ok", "not_run"]
    assert turn.made_calls == 2 and turn.valid_calls == 2
    assert "tools" not in model.bound[1]  # the respond step, without tools


def test_native_file_argument_defaults_to_the_conversation_file(series_file, tmp_path):
    _model, ctx = make(tmp_path, [tool_call("load_series", {}), "ok."], caps=NATIVE)
    turn = run(ctx, "Describe it", file=str(series_file))
    assert turn.calls[0].outcome == "ok" and turn.calls[0].args["path"] == str(series_file)


# ------------------------------------------------------------------ memory
def test_thread_resumes_from_the_sqlite_store_in_a_new_graph(series_file, tmp_path):
    db = tmp_path / "threads.sqlite"
    _, ctx = make(tmp_path, [step("load_series"), "1500 rows."])
    with thread_store(db) as saver:
        run(ctx, "How long is it?", file=str(series_file), graph=build_graph(saver), thread="t1")
    model, ctx = make(tmp_path, [step("profile_series"), "Still 1500 rows, with a period of 100."])
    with thread_store(db) as saver:  # a new process would do exactly this
        turn = run(ctx, "And its period?", graph=build_graph(saver), thread="t1")
    assert turn.answer.startswith("Still 1500 rows") and [c.name for c in turn.calls] == ["profile_series"]
    assert turn.calls[0].args == {"path": str(series_file)}  # the thread kept its file
    seen = model.calls[0]
    recap = next(m.content for m in seen if isinstance(m, HumanMessage) and m.content.startswith("Earlier in this conversation"))
    assert "The user asked: How long is it?" in recap and "The answer given: 1500 rows." in recap
    assert f"Tools called: load_series(path={series_file})" in recap
    assert not any(isinstance(m, AIMessage) for m in seen)  # earlier answers are recapped, not replayed
    assert str(series_file) in seen[0].content
    # a follow-up about the file is grounded in its own turn, not only in earlier results
    assert "answer" not in tools_schema(model, 0)[1]["properties"]["action"]["enum"]


def test_an_answer_copied_from_an_earlier_turn_is_asked_again_without_the_history(series_file, tmp_path):
    from langgraph.checkpoint.memory import InMemorySaver

    graph = build_graph(InMemorySaver())
    _, ctx = make(tmp_path, [step("load_series"), "It has 1500 rows."])
    run(ctx, "How long is it?", file=str(series_file), graph=graph)
    model, ctx = make(tmp_path, [step("profile_series"), "It has 1500 rows.", "Its period is 100 rows."])
    turn = run(ctx, "What is its period?", graph=graph)
    assert turn.answer == "Its period is 100 rows."
    assert any("repeated an earlier one" in note for note in turn.notes)
    retry = model.calls[-1]
    assert not any("Earlier in this conversation" in str(m.content) for m in retry)
    assert any("Earlier in this conversation" in str(m.content) for m in model.calls[-2])


def test_an_answer_with_numbers_no_tool_reported_is_asked_again_then_flagged(series_file, tmp_path):
    model, ctx = make(tmp_path, [step("load_series"), "It has 2157 rows.", "It has 1500 rows."])
    turn = run(ctx, "How long is it?", file=str(series_file))
    assert turn.answer == "It has 1500 rows." and any("quoted numbers or names no tool reported" in n for n in turn.notes)
    assert "quoted numbers or names that no tool reported (2157)" in model.calls[-1][-1].content
    model, ctx = make(tmp_path, [step("load_series"), "It has 2157 rows.", "Still 2157 rows."])
    turn = run(ctx, "How long is it?", file=str(series_file), thread="t2")
    assert turn.answer == "Still 2157 rows."
    assert any("still quotes 2157: check them against the tool results" in n for n in turn.notes)


def test_after_a_copied_answer_the_number_retry_also_leaves_earlier_turns_out(series_file, tmp_path):
    from langgraph.checkpoint.memory import InMemorySaver

    graph = build_graph(InMemorySaver())
    _, ctx = make(tmp_path, [step("load_series"), "It has 1500 rows."])
    run(ctx, "How long is it?", file=str(series_file), graph=graph)
    model, ctx = make(tmp_path, [step("load_series"), "It has 1500 rows.", "It has 2157 rows.", "One channel, cpu."])
    turn = run(ctx, "Which channels?", graph=graph)
    assert turn.answer == "One channel, cpu."
    assert not any("Earlier in this conversation" in str(m.content) for m in model.calls[-1])


def test_threads_are_isolated(series_file, tmp_path):
    db = tmp_path / "threads.sqlite"
    _, ctx = make(tmp_path, [step("answer"), "A."])
    with thread_store(db) as saver:
        run(ctx, "first thread question", graph=build_graph(saver), thread="a")
    model, ctx = make(tmp_path, [step("answer"), "B."])
    with thread_store(db) as saver:
        run(ctx, "second thread question", graph=build_graph(saver), thread="b")
    assert not any("first thread" in str(m.content) for m in model.calls[0])


# -------------------------------------------------------------------- view
def test_compact_result_is_short_and_drops_noise():
    result = {
        "length": 4490, "ratio": 0.0057906458, "missing": None, "empty": [],
        "channels": [{"name": f"cmd{i}", "std": 0.0, "constant": True} for i in range(40)]
        + [{"name": f"v{i}", "std": 1.23456789, "constant": False} for i in range(12)],
    }
    text = compact_result(result, 2000)
    assert "0.005791" in text and "missing" not in text and "empty" not in text
    assert "cmd1" not in text and "40 constant channel(s) omitted" in text and "4 more" in text
    assert "constant: false" not in text
    assert len(compact_result(result, 200)) <= 200 and compact_result(result, 200).endswith("(truncated)")


def test_model_view_keeps_the_current_turn_and_drops_old_turns_whole():
    old = [HumanMessage("q1 " + "a" * 3000), AIMessage("a1"), HumanMessage("q2 " + "b" * 3000), AIMessage("a2")]
    current = [
        HumanMessage("q3"),
        AIMessage(content="", tool_calls=[{"name": "detect", "args": {"path": "x"}, "id": "c", "type": "tool_call"}]),
        ToolMessage(content="r" * 500, name="detect", tool_call_id="c"),
    ]
    view = model_view(old + current, transcript="native", history_chars=4000)
    assert [m.content[:2] for m in view[:2]] == ["q2", "a2"]  # q1 dropped with its answer
    assert view[-3:] == current
    text = model_view(old + current, transcript="text", history_chars=4000)
    # the call rides in its result, as a user-role message: the assistant role holds only answers
    assert text[-2].content.startswith("q3") and text[-1].content.startswith("Tool result of detect(path=x):")
    assert not any(isinstance(m, ToolMessage) for m in text) and '"' not in text[-1].content


def test_detector_arguments_are_narrowed_to_registered_names(series_file, tmp_path):
    from anomalygraph.detectors import affordable_detectors

    model, ctx = make(tmp_path, [
        step("compare_detectors"), tool_call("compare_detectors", {"detectors": ["iforest", "robust_z"]}),
        "They agree on one interval.",
    ])
    turn = run(ctx, "Do detectors agree?", file=str(series_file))
    assert turn.calls[0].outcome == "ok"
    listed = tools_schema(model, 1)[1]["properties"]["detectors"]
    offered = affordable_detectors(ctx.tool_context().has_gpu())
    assert listed["items"]["enum"] == offered and listed["maxItems"] == 4 and listed["minItems"] == 2
    assert ctx.tool_context().has_gpu() or "anomaly_transformer" not in offered


def test_step_and_answer_calls_get_their_own_token_caps():
    from anomalygraph.core.llm_settings import CAPABILITY_PRESETS, Provider
    from anomalygraph.llm.client import CompatChatOpenAI

    model = CompatChatOpenAI(model="m", base_url="http://127.0.0.1:9/v1", api_key="x", max_tokens=1024,
                             capabilities=CAPABILITY_PRESETS[Provider.embedded])
    ctx = AnalystContext(model=model, step_max_tokens=200, answer_max_tokens=400)
    step_model, answer_model = ctx.structured_model(), ctx.answer_model()
    assert (step_model.max_tokens, step_model.disable_streaming) == (200, True)
    assert (answer_model.max_tokens, answer_model.disable_streaming) == (400, False)
    assert ctx.structured_model() is step_model and model.max_tokens == 1024  # cached; the original untouched


def test_context_rejects_bad_limits():
    with pytest.raises(ConfigError, match="max_steps"):
        AnalystContext(max_steps=0)
    with pytest.raises(ConfigError, match="strategy"):
        AnalystContext(strategy="clever")


def test_tool_results_in_the_thread_keep_the_full_result(series_file, tmp_path):
    _, ctx = make(tmp_path, [step("detect"), tool_call("detect", {"detector": "robust_z"}), "done"])
    from langgraph.checkpoint.memory import InMemorySaver

    graph = build_graph(InMemorySaver())
    run(ctx, "Detect", file=str(series_file), graph=graph)
    messages = graph.get_state({"configurable": {"thread_id": "t"}}).values["messages"]
    tool_msg = next(m for m in messages if isinstance(m, ToolMessage))
    assert tool_msg.artifact["result"]["detector"] == "robust_z"
    json.dumps(tool_msg.artifact)  # checkpointable


# ------------------------------------------------------------- the kinds planner
def kind(name: str) -> AIMessage:
    """A classify-step reply: the structured QuestionKind."""
    return tool_call("QuestionKind", {"kind": name})


def test_a_when_question_runs_detect_without_asking_for_arguments(series_file, tmp_path):
    model, ctx = make(tmp_path, ["It happens on 2024-03-01."], planner="kinds")
    turn = run(ctx, "On which day is the largest anomaly?", file=str(series_file))
    [call] = turn.calls
    assert (call.name, call.outcome, call.args) == ("detect", "ok", {"path": str(series_file)})
    assert len(model.calls) == 1  # the wording names the kind: no classify call, only the answer
    answer_view = "\n".join(m.content for m in model.calls[0] if isinstance(m, HumanMessage))
    assert "summary: iforest flags" in answer_view and "day:" in answer_view  # the facts the answer needs
    assert turn.answer == "It happens on 2024-03-01."
    assert any("a 'when' question (its wording asks for this): running detect" in n for n in turn.notes)


def test_an_ambiguous_wording_lets_the_model_choose_among_its_kinds(series_file, tmp_path):
    model, ctx = make(tmp_path, [kind("when"), "On 2024-03-01."], planner="kinds")
    turn = run(ctx, "When did the spike happen?", file=str(series_file))
    assert [c.name for c in turn.calls] == ["detect"]
    name, params = tools_schema(model, 0)
    assert name == "QuestionKind" and params["properties"]["kind"]["enum"] == ["shape", "when"]
    assert "What does this question ask for? When did the spike happen?" in model.calls[0][-1].content
    assert any("the model chose it from shape, when" in n for n in turn.notes)


def test_a_wording_without_cues_lets_the_model_choose_among_all_kinds(series_file, tmp_path):
    model, ctx = make(tmp_path, [kind("comparison"), "iforest and robust_z agree."], planner="kinds")
    turn = run(ctx, "Anything odd in it?", file=str(series_file))
    assert [c.name for c in turn.calls] == ["compare_detectors"]
    assert tools_schema(model, 0)[1]["properties"]["kind"]["enum"] == list(KINDS)


def test_a_forecast_question_runs_predict_anomaly_and_the_answer_states_its_probability(series_file, tmp_path):
    pytest.importorskip("tsfm_public", reason="predict_anomaly needs the [f2a] extra")
    model, ctx = make(tmp_path, ["Nothing to worry about."], planner="kinds")
    turn = run(ctx, "Will cpu go anomalous in the next 8 steps?", file=str(series_file))
    [call] = turn.calls
    assert call.name == "predict_anomaly" and call.args == {"path": str(series_file), "horizon": 8} and call.outcome == "ok"
    assert len(model.calls) == 1  # the wording named the kind: the model only phrased the answer
    from anomalygraph.tools import ToolContext
    from anomalygraph.tools.prediction import PredictArgs, predict_anomaly

    expected = predict_anomaly(ToolContext(data_roots=[tmp_path], output_dir=tmp_path / "again"),
                               PredictArgs(path=str(series_file), horizon=8))
    # the scripted answer leaves the probability out, so the reply is the tool's own sentence
    assert f"{expected.max_probability:.2f}" in turn.answer and "predict_anomaly" in turn.answer


def test_a_channel_question_naming_rows_explains_those_rows(series_file, tmp_path):
    model, ctx = make(tmp_path, ["cpu deviates most."], planner="kinds")
    turn = run(ctx, "Rows 1200..1209 are labelled anomalous. Which channel deviates most?", file=str(series_file))
    [call] = turn.calls  # no detect: the rows are given
    assert call.name == "explain_window" and call.args == {"path": str(series_file), "start": 1200, "end": 1209}
    assert call.outcome == "ok" and len(model.calls) == 1


def test_a_shape_question_explains_the_interval_detect_found(series_file, tmp_path):
    model, ctx = make(tmp_path, ["A spike."], planner="kinds")
    turn = run(ctx, "What does the strongest anomaly look like?", file=str(series_file))
    detect, explain = turn.calls
    assert (detect.name, explain.name) == ("detect", "explain_window") and explain.outcome == "ok"
    from anomalygraph.tools import ToolContext
    from anomalygraph.tools import analysis as A

    top = A.detect(ToolContext(data_roots=[tmp_path]), A.DetectArgs(path=str(series_file))).top_intervals[0]
    assert explain.args == {"path": str(series_file), "start": top.start, "end": top.end}
    assert len(model.calls) == 1


def test_an_answer_that_misses_the_tools_fact_is_replaced_by_the_tools_own_answer(series_file, tmp_path):
    _, ctx = make(tmp_path, ["It is a spike, a dip, a level shift or a flatline."], planner="kinds")
    turn = run(ctx, "What does the strongest anomaly look like?", file=str(series_file))
    assert [c.name for c in turn.calls] == ["detect", "explain_window"]
    assert turn.answer.startswith("In rows ") and turn.answer.endswith("(from explain_window).")
    assert any("did not state what explain_window reported" in n for n in turn.notes)


def test_an_unreadable_kind_falls_back_to_the_step_planner(series_file, tmp_path):
    _, ctx = make(tmp_path, ["no idea"] * 3 + [step("load_series"), "It has 1500 rows."], planner="kinds")
    turn = run(ctx, "Tell me about it.", file=str(series_file))
    assert [c.name for c in turn.calls] == ["load_series"] and turn.answer == "It has 1500 rows."
    assert any("could not be read" in n for n in turn.notes)


def test_other_questions_and_questions_without_data_use_the_step_planner(series_file, tmp_path):
    model, ctx = make(tmp_path, [kind("other"), step("plot_series"), tool_call("plot_series", {}), "Plotted."], planner="kinds")
    assert [c.name for c in run(ctx, "Plot it.", file=str(series_file)).calls] == ["plot_series"]
    model, ctx = make(tmp_path, [step("answer"), "I answer questions about time series."], planner="kinds")
    turn = run(ctx, "What can you do?")
    assert turn.calls == [] and tools_schema(model, 0)[0] == "NextAction"  # no classify call without data


def test_a_channel_no_tool_reported_is_asked_again(tmp_path):
    """The file has channels cpu1 and mem2; the model names mem2, which no result named."""
    import numpy as np
    import pandas as pd

    t = np.arange(300)
    path = tmp_path / "two.csv"
    pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=t.size, freq="1min"),
                  "cpu1": np.sin(t / 5.0), "mem2": np.cos(t / 7.0)}).to_csv(path, index=False)
    model, ctx = make(tmp_path, [step("explain_window"), tool_call("explain_window", {"start": 10, "end": 20}),
                                 "mem2 deviates most.", "No channel deviates."])
    turn = run(ctx, "Which channel deviates in rows 10..20?", file=str(path))
    assert "(mem2)" in model.calls[-1][-1].content and turn.answer == "No channel deviates."
