"""Nodes and routes of the analyst graph: small functions of (state, runtime) returning partial updates.

Two ways round the loop, chosen per turn from the model's declared capabilities:

* native: ``agent`` (the model, tools bound, picks calls itself) -> ``tools`` -> ``agent`` ...
* guided: ``classify`` (a structured ``QuestionKind``) plans the tools that produce that kind of
  fact, then ``act`` (their arguments from the question or the last result) -> ``tools`` -> ``act``
  ... -> ``respond``; with ``planner="steps"``, or when no plan fits, ``plan`` (a structured
  ``NextAction``: a tool or ``answer``) -> ``act`` (that tool's arguments as structured output,
  validated and repaired) -> ``tools`` -> ``plan`` ... -> ``respond``.

Every tool call is answered by a ``ToolMessage``, errors included (invalid arguments, unknown
tool, tool refusal, duplicate, over budget), so the model can correct itself and the message
sequence stays valid for any OpenAI-compatible server. The step budget counts those messages.
"""

from __future__ import annotations

import json
import logging
import re
import time
import warnings
from collections.abc import Callable
from functools import cache
from typing import Any, Literal, get_origin

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.tool import invalid_tool_call
from langchain_core.tools import BaseTool
from langgraph.graph import END
from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from anomalygraph.agents.analyst.plans import (
    direct_answer,
    key_facts,
    kind_schema,
    kinds_in,
    kinds_menu,
    plan_for,
    planned_args,
)
from anomalygraph.agents.analyst.turns import (
    ANSWER,
    Outcome,
    last_turn,
    next_action_schema,
    steps_used,
    turn_start,
)
from anomalygraph.agents.analyst.view import PROMPTS as VIEW_PROMPTS
from anomalygraph.agents.analyst.view import compact_result, cut, model_view, render_call, summarize
from anomalygraph.graphs.analyst.context import AnalystContext
from anomalygraph.graphs.analyst.state import AnalystState
from anomalygraph.graphs.context import context_of as run_context
from anomalygraph.llm.errors import LLMContextLengthError, StructuredOutputError
from anomalygraph.llm.grounding import invented_names, invented_numbers
from anomalygraph.llm.messages import new_call_id, text_of
from anomalygraph.llm.structured import PROMPTS as STRUCTURED_PROMPTS
from anomalygraph.llm.structured import describe_errors, structured
from anomalygraph.prompts import load_prompt

logger = logging.getLogger("anomalygraph.graphs.analyst")

PROMPTS = (
    "analyst/system", "analyst/classify", "analyst/plan", "analyst/act", "analyst/respond", "analyst/respond_facts",
    "analyst/file_named", "analyst/file_unnamed", "analyst/plan_answer", "analyst/plan_no_calls", "analyst/plan_calls",
    "analyst/act_file_bound", "analyst/act_file_named", "analyst/act_unknown_tool", "analyst/act_too_long",
    "analyst/call_not_json", "analyst/call_unreadable", "analyst/call_unknown_tool", "analyst/call_invalid_args",
    "analyst/call_duplicate", "analyst/call_crashed", "analyst/call_warnings", "analyst/call_not_run",
    "analyst/respond_no_steps", "analyst/respond_all_failed", "analyst/respond_invented",
    *VIEW_PROMPTS, *STRUCTURED_PROMPTS,
)
"""Every prompt a turn of the analyst may send, for the provenance of eval reports."""
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_FILE_NAME = re.compile(r"\S+\.(?:csv|tsv|npy|txt|parquet|pq)\b", re.IGNORECASE)
MIN_FAILED_BEFORE_ANSWER = 2


def context_of(runtime: Runtime[AnalystContext] | None) -> AnalystContext:
    """The run's context; a LangGraph server run without one gets the defaults."""
    return run_context(runtime, AnalystContext)


def _writer() -> Callable[[dict[str, Any]], None]:
    """LangGraph's custom stream writer inside a run; a no-op when a node is called directly."""
    try:
        from langgraph.config import get_stream_writer

        return get_stream_writer()
    except RuntimeError:
        return lambda _event: None


def _question(state: AnalystState) -> str:
    messages = state.get("messages", [])
    return text_of(messages[turn_start(messages)]) if messages else ""


def _prompt(name: str, **values: object) -> str:
    """The analyst prompt ``analyst/<name>`` rendered with ``values``."""
    return load_prompt(f"analyst/{name}").render(**values)


def system_message(state: AnalystState, ctx: AnalystContext) -> SystemMessage:
    file = state.get("file")
    file_line = _prompt("file_named", file=file) if file else _prompt("file_unnamed")
    roots = ", ".join(str(r) for r in ctx.tool_context().data_roots)
    return SystemMessage(content=load_prompt("analyst/system").render(file_line=file_line, roots=roots))


def _invoke_fitting(ctx: AnalystContext, state: AnalystState, transcript: Literal["native", "text"],
                    tail: list[BaseMessage], call: Callable[[list[BaseMessage]], Any], *, earlier_turns: bool = True) -> Any:
    """``call`` on system + history + ``tail``; when the server says the prompt is too long, retry
    with half the history (twice at most) before giving up with its error.

    ``earlier_turns=False`` shows only the current turn.
    """
    budget = ctx.history_chars
    messages = state.get("messages", [])
    if not earlier_turns:
        messages = messages[turn_start(messages):]
    for attempt in range(3):
        view = model_view(messages, transcript=transcript, history_chars=budget)
        try:
            return call([system_message(state, ctx), *view, *tail])
        except LLMContextLengthError:
            if attempt == 2 or budget <= 1000:
                raise
            budget = max(1000, budget // 2)
            logger.warning("prompt too long for the model; retrying with %d characters of history", budget)
    raise AssertionError("unreachable")  # pragma: no cover


# ------------------------------------------------------------------- begin
def begin(state: AnalystState, runtime: Runtime[AnalystContext]) -> dict[str, Any]:
    """A new turn: clear the previous turn's notes and plan."""
    return {"notes": None, "next_action": None, "kind": None, "planned": None}


def route_after_begin(state: AnalystState, runtime: Runtime[AnalystContext]) -> Literal["classify", "plan", "agent", "__end__"]:
    messages = state.get("messages", [])
    if not messages or not isinstance(messages[-1], HumanMessage):
        return END  # e.g. an input that only sets the file: nothing to answer
    ctx = context_of(runtime)
    if ctx.resolved_strategy() == "native":
        return "agent"
    return "classify" if ctx.planner == "kinds" else "plan"


# ---------------------------------------------------------------- classify
def classify(state: AnalystState, runtime: Runtime[AnalystContext]) -> dict[str, Any]:
    """Name what the question asks for; the tools that produce that kind of fact become the plan.

    A question that needs no data, a kind with no fixed plan ("other") or an unusable answer
    leaves the choice to the step-by-step plan.
    """
    ctx = context_of(runtime)
    question = _question(state)
    if not needs_data(question, state.get("file")):
        return {"planned": []}
    worded = kinds_in(question)
    if len(worded) == 1:
        kind, how = worded[0], "its wording asks for this"
    else:
        model = ctx.structured_model()
        choices = tuple(worded) or None
        instruction = _prompt("classify", question=question, kinds=kinds_menu(choices))
        try:
            answer = _invoke_fitting(ctx, state, "text", [HumanMessage(content=instruction)],
                                     lambda convo: structured(model, kind_schema(choices), convo), earlier_turns=False)
        except (StructuredOutputError, LLMContextLengthError) as exc:
            return {"planned": [], "notes": [f"the question's kind could not be read ({cut(str(exc), 200)}); planning step by step"]}
        kind = answer.kind
        how = f"the model chose it from {', '.join(worded)}" if worded else "the model named it"
    names = [t.name for t in ctx.toolset()]
    planned = plan_for(kind, names, question)[: ctx.max_steps]
    update: dict[str, Any] = {"kind": kind, "planned": planned}
    if planned:
        update["next_action"] = planned[0]
        update["notes"] = [f"a '{kind}' question ({how}): running {', '.join(planned)}"]
    return update


def route_after_classify(state: AnalystState) -> Literal["act", "plan"]:
    return "act" if state.get("planned") else "plan"


# -------------------------------------------------------------------- plan
def _menu(tools: list[BaseTool]) -> str:
    return "\n".join(f"- {t.name}: {t.description}" for t in tools)


def _done(state: AnalystState) -> str:
    calls = last_turn(state.get("messages", [])).calls
    if not calls:
        return _prompt("plan_no_calls")
    lines = [
        f"- {render_call(c.name, c.args)}: {'ok' if c.outcome == 'ok' else 'error (' + c.outcome.replace('_', ' ') + ')'}"
        for c in calls
    ]
    return _prompt("plan_calls", calls="\n".join(lines))


def needs_data(question: str, file: str | None) -> bool:
    """Whether a question is about data: a file is open, or the question names one."""
    return bool(file) or _FILE_NAME.search(question) is not None


def plan(state: AnalystState, runtime: Runtime[AnalystContext]) -> dict[str, Any]:
    ctx = context_of(runtime)
    used = steps_used(state.get("messages", []))
    if used >= ctx.max_steps:
        return {"next_action": ANSWER, "notes": [budget_note(ctx.max_steps)]}
    tools = ctx.toolset()
    question = _question(state)
    # Grounding rule: in guided mode a question about data gets a successful tool call in its own
    # turn before any answer (or two failed ones, so the failure can be reported). Measured with the
    # embedded 0.5B model: allowed to answer from earlier turns, it answers follow-ups from nothing.
    calls = last_turn(state.get("messages", [])).calls
    grounded = (
        any(c.outcome == "ok" for c in calls) or len(calls) >= MIN_FAILED_BEFORE_ANSWER
        or not needs_data(question, state.get("file"))
    )
    # Loop breaking: a tool that already succeeded (or repeated itself) in this turn is not offered
    # again. Measured with the embedded 0.5B model: offered again, it re-calls the tool it just ran,
    # identically, until the budget is gone.
    spent = {c.name for c in calls if c.outcome in ("ok", "duplicate")}
    offered = [t for t in tools if t.name not in spent]
    if not offered:
        return {"next_action": ANSWER, "notes": ["every tool has been called; answering with what was found"]}
    schema = next_action_schema(tuple(t.name for t in offered), allow_answer=grounded)
    answer_line = _prompt("plan_answer", answer=ANSWER) + "\n" if grounded else ""
    instruction = load_prompt("analyst/plan").render(
        question=question, menu=answer_line + _menu(offered), done=_done(state), left=ctx.max_steps - used,
    )
    model = ctx.structured_model()
    try:
        choice = _invoke_fitting(ctx, state, "text", [HumanMessage(content=instruction)],
                                 lambda convo: structured(model, schema, convo))
    except (StructuredOutputError, LLMContextLengthError) as exc:
        return {"next_action": ANSWER, "notes": [f"the plan step gave no usable next action ({exc}); answering from the results so far"]}
    return {"next_action": choice.action}


def route_after_plan(state: AnalystState) -> Literal["act", "respond"]:
    return "respond" if state.get("next_action") in (None, ANSWER) else "act"


# --------------------------------------------------------------------- act
MAX_LISTED_DETECTORS = 4


def _narrowed(name: str, info: FieldInfo, detectors: tuple[str, ...]) -> tuple[Any, FieldInfo]:
    """A detector field as a choice among the registered names (a list of them, at most four).

    The tools accept any string and reject unknown names; the model is given the closed set, so
    the server's grammar (llama.cpp) or guided decoding (vLLM) cannot produce a name that does
    not exist, nor a list that runs on until the token limit (both measured with the 0.5B model).
    """
    choice = Literal[detectors]  # type: ignore[valid-type]
    keep: dict[str, Any] = {"description": info.description}
    if info.default_factory is not None:
        keep["default_factory"] = info.default_factory
    elif not info.is_required():
        keep["default"] = info.default
    if name == "detector" and info.annotation is str:
        return choice, Field(**keep)
    if name == "detectors" and get_origin(info.annotation) is list:
        lengths = [m.min_length for m in info.metadata if getattr(m, "min_length", None) is not None]
        return list[choice], Field(**keep, min_length=lengths[0] if lengths else None,  # type: ignore[valid-type]
                                   max_length=MAX_LISTED_DETECTORS)
    return info.annotation, info


@cache
def _call_schema(tool_name: str, args_schema: type[BaseModel], description: str, bind_path: bool,
                 detectors: tuple[str, ...] = ()) -> type[BaseModel] | None:
    """The tool's argument schema under the tool's own name, so "call detect" means function ``detect``.

    With ``bind_path`` the ``path`` field is left out (the agent fills it in); ``None`` when no
    field is left for the model to choose. Detector fields are narrowed to ``detectors``.
    """
    fields = {
        name: _narrowed(name, info, detectors) if detectors else (info.annotation, info)
        for name, info in args_schema.model_fields.items()
        if not (bind_path and name == "path")
        # free-form mappings (detector settings) stay at their defaults: a grammar cannot constrain
        # them, and small models fill them with keys that do not exist
        and not (get_origin(info.annotation) is dict and not info.is_required())
    }
    if not fields:
        return None
    return create_model(tool_name, __config__=ConfigDict(extra="forbid"), __doc__=description, **fields)  # type: ignore[call-overload]


def offered_detectors(ctx: AnalystContext) -> tuple[str, ...]:
    """Detector names the model may choose: deep ones only when the tools have a GPU."""
    from anomalygraph.detectors import affordable_detectors

    return tuple(affordable_detectors(ctx.tool_context().has_gpu()))


def subject_file(state: AnalystState) -> str | None:
    """The file the current question is about: the one it names, else the conversation's file.

    A question naming several files leaves the choice to the model.
    """
    named = list(dict.fromkeys(_FILE_NAME.findall(_question(state))))
    if len(named) == 1:
        return named[0].strip("'\"`()[],;:")
    if named:
        return None
    return state.get("file")


def act(state: AnalystState, runtime: Runtime[AnalystContext]) -> dict[str, Any]:
    """Arguments for the tool the plan chose, as validated structured output.

    The file under discussion is bound by the agent rather than copied by the model (small
    models garble long paths); a tool whose only argument is the file needs no model call.
    """
    ctx = context_of(runtime)
    name = state.get("next_action") or ""
    call_id = new_call_id()
    tool = ctx.tool(name)
    if tool is None or not (isinstance(tool.args_schema, type) and issubclass(tool.args_schema, BaseModel)):
        bad = invalid_tool_call(name=name, args="", id=call_id, error=_prompt("act_unknown_tool", tool=name))
        return {"messages": [AIMessage(content="", invalid_tool_calls=[bad])]}
    file = subject_file(state)
    bind_path = file is not None and "path" in tool.args_schema.model_fields
    schema = _call_schema(name, tool.args_schema, tool.description, bind_path, offered_detectors(ctx))
    bound: dict[str, Any] = {"path": file} if bind_path else {}
    planned = state.get("planned") or []
    if planned and planned[0] == name and (bind_path or "path" not in tool.args_schema.model_fields):
        messages = state.get("messages", [])
        extra = planned_args(name, _question(state), messages[turn_start(messages):], offered_detectors(ctx))
        if extra is not None:
            return _calling(name, {**bound, **extra}, call_id)
    if schema is None:
        return _calling(name, bound, call_id)
    hint = _prompt("act_file_bound", file=file) if bind_path else (_prompt("act_file_named", file=file) if file else "")
    instruction = load_prompt("analyst/act").render(tool=name, question=_question(state), file_hint=hint)
    model = ctx.structured_model()
    try:
        args = _invoke_fitting(ctx, state, "text", [HumanMessage(content=instruction)],
                               lambda convo: structured(model, schema, convo))
    except StructuredOutputError as exc:
        bad = invalid_tool_call(name=name, args=cut(exc.last_output or "", 500), id=call_id, error=cut(exc.last_error, 500))
        return {"messages": [AIMessage(content="", invalid_tool_calls=[bad])]}
    except LLMContextLengthError as exc:
        bad = invalid_tool_call(name=name, args="", id=call_id, error=_prompt("act_too_long", error=exc))
        return {"messages": [AIMessage(content="", invalid_tool_calls=[bad])]}
    return _calling(name, {**bound, **args.model_dump(mode="json", exclude_unset=True)}, call_id)


def _calling(name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    """The update that makes ``name(**args)`` the turn's next tool call."""
    return {"messages": [AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}])]}


# ------------------------------------------------------------------- agent
def agent(state: AnalystState, runtime: Runtime[AnalystContext]) -> dict[str, Any]:
    """Native tool calling: the model sees the tools and decides (auto tool choice)."""
    ctx = context_of(runtime)
    bound = ctx.chat_model().bind_tools(ctx.toolset())
    reply = _invoke_fitting(ctx, state, "native", [], bound.invoke)
    return {"messages": [reply]}


def route_after_agent(state: AnalystState) -> Literal["tools", "respond", "__end__"]:
    last = state["messages"][-1]
    if isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls):
        return "tools"
    if not clean_answer(text_of(last)):
        return "respond"  # an empty reply is no answer: ask for one
    return END


# ------------------------------------------------------------------- tools
def budget_note(max_steps: int) -> str:
    return f"the step budget of {max_steps} tool calls for this question was reached; answering with what was found"


def _canonical(name: str, args: BaseModel) -> tuple[str, str]:
    return name, json.dumps(args.model_dump(mode="json"), sort_keys=True, default=str)


class _Call(BaseModel):
    name: str
    args: dict[str, Any] | str
    id: str
    error: str | None = None  # set for calls whose arguments did not even parse


def _pending_calls(ai: AIMessage) -> tuple[list[_Call], AIMessage | None]:
    """The calls to answer, with ids; the message itself is returned fixed when a call had no id."""
    fixed = False
    calls, valid, invalid = [], [], []
    for c in ai.tool_calls:
        cid = c.get("id") or new_call_id()
        fixed |= cid != c.get("id")
        valid.append({**c, "id": cid})
        calls.append(_Call(name=c["name"], args=dict(c.get("args") or {}), id=cid))
    for c in ai.invalid_tool_calls:
        cid = c.get("id") or new_call_id()
        fixed |= cid != c.get("id")
        invalid.append({**c, "id": cid})
        calls.append(_Call(name=c.get("name") or "?", args=str(c.get("args") or ""), id=cid,
                           error=c.get("error") or _prompt("call_not_json")))
    update = ai.model_copy(update={"tool_calls": valid, "invalid_tool_calls": invalid}) if fixed else None
    return calls, update


def _run_call(ctx: AnalystContext, state: AnalystState, call: _Call, done: set[tuple[str, str]],
              write: Callable[[dict[str, Any]], None]) -> ToolMessage:
    write({"event": "tool_start", "id": call.id, "name": call.name, "args": call.args})
    started = time.perf_counter()
    tool = ctx.tool(call.name)
    result: Any = None
    caught: list[str] = []
    args = call.args
    outcome: Outcome
    if call.error is not None:
        outcome, error = "invalid_arguments", _prompt("call_unreadable", tool=call.name, error=call.error)
    elif tool is None:
        outcome, error = "unknown_tool", _prompt("call_unknown_tool", tool=call.name, tools=", ".join(t.name for t in ctx.toolset()))
    else:
        assert isinstance(args, dict)
        schema = tool.args_schema
        fields = getattr(schema, "model_fields", {})
        if "path" in fields and not args.get("path") and state.get("file"):
            args = {**args, "path": state["file"]}  # the conversation's file is the default series
        try:
            parsed = schema.model_validate(args) if isinstance(schema, type) and issubclass(schema, BaseModel) else None
        except ValidationError as exc:
            outcome, error = "invalid_arguments", _prompt("call_invalid_args", tool=call.name, errors=describe_errors(exc))
        else:
            key = _canonical(call.name, parsed) if parsed is not None else (call.name, json.dumps(args, sort_keys=True, default=str))
            if key in done:
                outcome, error = "duplicate", _prompt("call_duplicate", tool=call.name)
            else:
                with warnings.catch_warnings(record=True) as seen:
                    warnings.simplefilter("always")
                    try:
                        result = tool.invoke(args)
                    except Exception as exc:  # a bug in a tool must not end the conversation; it is logged whole
                        logger.exception("tool %s failed", call.name)
                        result = _prompt("call_crashed", tool=call.name, error_type=type(exc).__name__, error=exc)
                caught = list(dict.fromkeys(str(w.message) for w in seen))
                if isinstance(result, str):
                    outcome, error = "tool_error", result
                    result = None
                else:
                    outcome, error = "ok", None
                done.add(key)
    seconds = round(time.perf_counter() - started, 3)
    plot = None
    if outcome == "ok" and isinstance(result, dict) and str(result.get("path", "")).endswith(".png"):
        plot = str(result["path"])
    if outcome == "ok":
        content = compact_result(result, ctx.result_chars)
        if caught:
            content += "\n" + _prompt("call_warnings", warnings="; ".join(cut(w, 160) for w in caught[:2]))
    else:
        content = cut(error or "error", ctx.result_chars)
    write({"event": "tool_end", "id": call.id, "name": call.name, "outcome": outcome, "seconds": seconds,
           "summary": summarize(result) if outcome == "ok" else cut(" ".join(content.split()), 200), "plot": plot, "warnings": caught[:2]})
    return ToolMessage(
        content=content, name=call.name, tool_call_id=call.id, status="success" if outcome == "ok" else "error",
        artifact={"outcome": outcome, "args": args, "seconds": seconds, "result": result, "plot": plot, "warnings": caught},
    )


def tools(state: AnalystState, runtime: Runtime[AnalystContext]) -> dict[str, Any]:
    ctx = context_of(runtime)
    messages = state.get("messages", [])
    ai = messages[-1] if messages else None
    if not isinstance(ai, AIMessage):
        return {"next_action": ANSWER, "notes": ["no tool call to run"]}
    calls, fixed = _pending_calls(ai)
    used = steps_used(messages)
    done = set()
    for m in messages[turn_start(messages):]:
        # tools are deterministic: a call that ran (and succeeded or was refused) would give the same again
        if isinstance(m, ToolMessage) and isinstance(m.artifact, dict) and m.artifact.get("outcome") in ("ok", "tool_error"):
            tool = ctx.tool(m.name or "")
            args = m.artifact.get("args") or {}
            try:
                done.add(_canonical(m.name or "", tool.args_schema.model_validate(args)) if tool else (m.name or "", ""))
            except (ValidationError, AttributeError):
                continue
    write = _writer()
    out: list[BaseMessage] = [fixed] if fixed is not None else []
    for call in calls:
        if used >= ctx.max_steps:
            out.append(ToolMessage(
                content=_prompt("call_not_run", max_steps=ctx.max_steps),
                name=call.name, tool_call_id=call.id, status="error",
                artifact={"outcome": "not_run", "args": call.args, "seconds": 0.0},
            ))
            continue
        used += 1
        out.append(_run_call(ctx, state, call, done, write))
    update: dict[str, Any] = {"messages": out, "next_action": None}
    notes: list[str] = []
    succeeded = sum(c.outcome == "ok" for c in last_turn([*messages, *out]).calls)
    planned = list(state.get("planned") or [])
    plan_done = plan_failed = False
    if planned:
        ran = [m for m in out if isinstance(m, ToolMessage)]
        if ran and ran[-1].name == planned[0] and ran[-1].status == "success":
            planned = planned[1:]
            plan_done = not planned
        else:  # a planned call failed: the step-by-step plan takes over from here
            planned, plan_failed = [], True
            notes.append("a planned tool call failed; planning step by step")
        update["planned"] = planned
    if used >= ctx.max_steps:
        update["next_action"] = ANSWER
        notes.append(budget_note(ctx.max_steps))
    elif planned:
        update["next_action"] = planned[0]
    elif plan_done or (not plan_failed and succeeded >= ctx.answer_after()):
        update["next_action"] = ANSWER
    if notes:
        update["notes"] = notes
    return update


def route_after_tools(state: AnalystState, runtime: Runtime[AnalystContext]) -> Literal["act", "plan", "agent", "respond"]:
    if state.get("next_action") == ANSWER:
        return "respond"
    if context_of(runtime).resolved_strategy() == "native":
        return "agent"
    return "act" if state.get("planned") else "plan"


# ----------------------------------------------------------------- respond
def _normalised(text: str) -> str:
    return " ".join(text.lower().split())


def earlier_answers(messages: list[BaseMessage]) -> set[str]:
    """Normalised final answers of the turns before the current one."""
    return {
        _normalised(text_of(m)) for m in messages[: turn_start(messages)]
        if isinstance(m, AIMessage) and not m.tool_calls and text_of(m).strip()
    }


def clean_answer(text: str) -> str:
    """The answer without reasoning blocks or llama.cpp's ``message:`` prefix."""
    text = _THINK.sub("", text).strip()
    if text.lower().startswith("message:"):
        text = text[len("message:") :].strip()
    return text


def _fallback_answer(state: AnalystState) -> str:
    calls = last_turn(state.get("messages", [])).calls
    if not calls:
        return "The model gave no answer, and no tool was called for this question."
    made = "; ".join(f"{render_call(c.name, c.args)} -> {c.outcome}" for c in calls)
    return f"The model gave no answer. Tool calls made for this question: {made}."


def respond(state: AnalystState, runtime: Runtime[AnalystContext]) -> dict[str, Any]:
    """The final answer, without tools: from the results gathered in this turn."""
    ctx = context_of(runtime)
    transcript: Literal["native", "text"] = "native" if ctx.resolved_strategy() == "native" else "text"
    messages = state.get("messages", [])
    calls = last_turn(messages).calls
    notes_for_model = []
    if steps_used(messages) >= ctx.max_steps:
        notes_for_model.append(_prompt("respond_no_steps"))
    if calls and not any(c.outcome == "ok" for c in calls):
        notes_for_model.append(_prompt("respond_all_failed"))
    note = " ".join(notes_for_model)
    instruction = load_prompt("analyst/respond").render(question=_question(state), budget_note=note)
    turn = messages[turn_start(messages):]
    facts = key_facts(turn)
    # the tools' own answer to this kind of question: shown first, and the reply when the model's misses it
    direct = direct_answer(state.get("kind"), _question(state), turn) if transcript == "text" else None
    if direct is not None and direct.terms:
        facts = [f"answer ({direct.tool}): {direct.sentence}", *facts]
    if facts and transcript == "text":
        # the sentences the tools wrote for this question, last before the question: small models
        # answer from what they read last, and the YAML results above are long
        instruction = _prompt("respond_facts", facts="\n".join(f"- {f}" for f in facts)) + "\n\n" + instruction
    model = ctx.answer_model() if transcript == "text" else ctx.chat_model()
    reply = _invoke_fitting(ctx, state, transcript, [HumanMessage(content=instruction)], model.invoke)
    text = clean_answer(text_of(reply))
    notes: list[str] = []
    earlier_turns = True
    if text and _normalised(text) in earlier_answers(messages):
        # Small models copy an earlier answer instead of answering the new question (seen with the
        # embedded 0.5B model in `anomalygraph chat`); ask once more from this turn's results alone.
        earlier_turns = False
        reply = _invoke_fitting(ctx, state, transcript, [HumanMessage(content=instruction)], model.invoke, earlier_turns=False)
        text = clean_answer(text_of(reply))
        notes.append("the first answer repeated an earlier one; it was asked again from this question's results only")
    said = [text_of(m) for m in messages]
    channels = [c for s in ctx.tool_context().series.values() for c in s.channels]

    def unsupported(answer: str) -> list[str]:
        return (invented_numbers(answer, *said) + invented_names(answer, channels, *said)) if answer else []

    invented = unsupported(text)
    if invented:
        again = _prompt("respond_invented", instruction=instruction, numbers=", ".join(invented[:5]))
        reply = _invoke_fitting(ctx, state, transcript, [HumanMessage(content=again)], model.invoke, earlier_turns=earlier_turns)
        text = clean_answer(text_of(reply))
        invented = unsupported(text)
        notes.append("the first answer quoted numbers or names no tool reported; it was asked again"
                     + (f", and still quotes {', '.join(invented[:5])}: check them against the tool results" if invented else ""))
    if direct is not None and direct.terms and not direct.stated_by(text):
        # A small model echoes the question's choices or a neighbouring fact; the tool's own
        # sentence is the answer then, with its source (measured: see the analyst eval's notes).
        text = f"{direct.sentence} (from {direct.tool})."
        notes.append(f"the model's answer did not state what {direct.tool} reported; the reply is {direct.tool}'s own answer")
    if not text:
        text = _fallback_answer(state)
        notes.append("the model's answer was empty; the reply lists the tool calls instead")
    if isinstance(reply, AIMessage):
        answer = reply.model_copy(update={"content": text, "tool_calls": [], "invalid_tool_calls": []})
    else:
        answer = AIMessage(content=text)
    return {"messages": [answer], "notes": notes}
