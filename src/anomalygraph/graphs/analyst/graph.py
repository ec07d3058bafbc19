"""Wiring of the analyst graph, its thread store, and the one-call ``ask`` used by the evals.

    begin -> classify -> act -> tools -> act ... -> respond  (guided: the kind of question decides the tools)
    begin -> plan -> act -> tools -> plan ... -> respond      (guided, planner="steps", or when no plan fits)
    begin -> agent -> tools -> agent ... [-> respond]         (native)

A thread is a conversation: compiled with a SQLite checkpointer, the same ``thread_id`` in a
later process continues it with its whole history.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from anomalygraph.agents.analyst.turns import TurnRecord, last_turn
from anomalygraph.core.errors import ConfigError
from anomalygraph.graphs.analyst import nodes
from anomalygraph.graphs.analyst.context import AnalystContext
from anomalygraph.graphs.analyst.state import AnalystInput, AnalystOutput, AnalystState
from anomalygraph.llm.messages import text_of

NODES_PER_STEP = 3  # plan, act, tools
THREADS_FILE = "threads.sqlite"
_THREAD_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def recursion_limit(max_steps: int) -> int:
    """Enough super-steps for ``max_steps`` tool calls plus begin and respond; the budget stops the loop first."""
    return NODES_PER_STEP * max_steps + 10


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    graph = StateGraph(AnalystState, context_schema=AnalystContext, input_schema=AnalystInput, output_schema=AnalystOutput)
    graph.add_node("begin", nodes.begin)
    graph.add_node("classify", nodes.classify)
    graph.add_node("plan", nodes.plan)
    graph.add_node("act", nodes.act)
    graph.add_node("agent", nodes.agent)
    graph.add_node("tools", nodes.tools)
    graph.add_node("respond", nodes.respond)
    graph.add_edge(START, "begin")
    graph.add_conditional_edges("begin", nodes.route_after_begin, ["classify", "plan", "agent", END])
    graph.add_conditional_edges("classify", nodes.route_after_classify, ["act", "plan"])
    graph.add_conditional_edges("plan", nodes.route_after_plan, ["act", "respond"])
    graph.add_edge("act", "tools")
    graph.add_conditional_edges("agent", nodes.route_after_agent, ["tools", "respond", END])
    graph.add_conditional_edges("tools", nodes.route_after_tools, ["act", "plan", "agent", "respond"])
    graph.add_edge("respond", END)
    return graph.compile(checkpointer=checkpointer, name="analyst")


def make_graph(config: RunnableConfig | None = None) -> CompiledStateGraph:
    """Entry point for ``langgraph dev`` / LangGraph server, which brings its own checkpointer."""
    del config
    return build_graph()


@contextmanager
def thread_store(path: Path) -> Iterator[BaseCheckpointSaver]:
    """A SQLite checkpointer at ``path`` (created with its folder), closed on exit."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


def new_thread_id() -> str:
    return "chat-" + datetime.now().strftime("%Y%m%d-%H%M%S")


def check_thread_id(thread: str) -> str:
    """A thread id is a file-system and URL-safe name, the same rule in the terminal and the page."""
    if not _THREAD_ID.match(thread):
        raise ConfigError(f"thread {thread!r}: use 1-100 letters, digits, '.', '_', ':' or '-'")
    return thread


def thread_ids(threads_file: Path) -> list[str]:
    """Threads stored in ``threads_file``, most recently active first."""
    if not threads_file.exists():
        return []
    with thread_store(threads_file) as saver:
        seen: dict[str, None] = {}
        for item in saver.list(None):
            seen.setdefault(item.config["configurable"]["thread_id"], None)
        return list(seen)


def run_config(thread_id: str, max_steps: int, callbacks: Sequence[BaseCallbackHandler] = ()) -> RunnableConfig:
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}, "recursion_limit": recursion_limit(max_steps)}
    if callbacks:
        config["callbacks"] = list(callbacks)
    return config


def turn_input(question: str, file: str | None = None) -> dict[str, Any]:
    """One user turn; ``file`` is only sent when given, so a resumed thread keeps its file."""
    inputs: dict[str, Any] = {"messages": [HumanMessage(content=question)]}
    if file is not None:
        inputs["file"] = file
    return inputs


ANSWER_NODES = frozenset({"agent", "respond"})
"""Nodes whose model tokens are the answer (the others' are tool arguments or plans)."""


def turn_events(graph: CompiledStateGraph, inputs: dict[str, Any], config: RunnableConfig,
                context: AnalystContext) -> Iterator[tuple[str, Any]]:
    """One turn's stream, decoded for a display: ``("node", (name, input values))`` as a node starts,
    ``("planned", action)`` when the planner picks a step, ``("tool", event)`` for the tools node's
    start / end events, ``("token", text)`` for the answer as it is written."""
    for mode, chunk in graph.stream(inputs, config, context=context, stream_mode=["messages", "custom", "tasks", "updates"]):
        if mode == "custom" and isinstance(chunk, dict) and chunk.get("event") in ("tool_start", "tool_end"):
            yield "tool", chunk
        elif mode == "messages":
            message, meta = chunk
            if isinstance(message, AIMessageChunk) and meta.get("langgraph_node") in ANSWER_NODES:
                text = text_of(message)
                if text:
                    yield "token", text
        elif mode == "tasks" and "input" in chunk:
            yield "node", (chunk["name"], chunk["input"] if isinstance(chunk["input"], dict) else {})
        elif mode == "updates" and isinstance(chunk, dict):
            action = (chunk.get("plan") or {}).get("next_action")
            if action:
                yield "planned", action


def ask(
    graph: CompiledStateGraph,
    question: str,
    *,
    context: AnalystContext,
    thread_id: str = "default",
    file: str | None = None,
    callbacks: Sequence[BaseCallbackHandler] = (),
) -> TurnRecord:
    """Answer one question in ``thread_id`` (without streaming) and return the turn."""
    final = graph.invoke(turn_input(question, file), run_config(thread_id, context.max_steps, callbacks), context=context)
    return last_turn(final["messages"], final.get("notes"))
