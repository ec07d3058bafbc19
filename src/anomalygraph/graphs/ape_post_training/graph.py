"""Wiring of the APE post-training graph, and the call the CLI and Python use.

bank (load, NCAD, or mine with the rule-bank generation graph) -> sample -> fit -> post_train -> report

Checkpointed in SQLite under the output folder: a rerun of the same request resumes after the last
finished node (a fitted backbone is not fitted again).
"""

from __future__ import annotations

import hashlib
import sqlite3
from itertools import pairwise
from pathlib import Path

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from anomalygraph.graphs.ape_post_training import nodes
from anomalygraph.graphs.ape_post_training.state import APEContext, APERequest, APEState, APEVerdict

STEPS = ("bank", "sample", "fit", "post_train", "report")


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    graph = StateGraph(APEState, context_schema=APEContext)
    for name in STEPS:
        graph.add_node(name, nodes.timed(name, getattr(nodes, name)))
    graph.add_edge(START, STEPS[0])
    for a, b in pairwise(STEPS):
        graph.add_edge(a, b)
    graph.add_edge(STEPS[-1], END)
    return graph.compile(checkpointer=checkpointer, name="ape_post_training")


def make_graph(config: RunnableConfig | None = None) -> CompiledStateGraph:
    """Entry point for ``langgraph dev`` / LangGraph server, which brings its own checkpointer."""
    del config
    return build_graph()


def thread_id(request: APERequest) -> str:
    return "ape-" + hashlib.sha1(request.model_dump_json().encode()).hexdigest()[:16]


def run_post_training(request: APERequest, context: APEContext | None = None, *, resume: bool = True) -> APEVerdict:
    from langgraph.checkpoint.sqlite import SqliteSaver

    out = Path(request.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(out / "checkpoints.sqlite", check_same_thread=False)
    try:
        graph = build_graph(SqliteSaver(conn))
        config = {"configurable": {"thread_id": thread_id(request)}}
        snapshot = graph.get_state(config)
        if resume and snapshot.values.get("verdict") and not snapshot.next:
            return APEVerdict.model_validate(snapshot.values["verdict"])
        start = None if resume and snapshot.next else {"request": request.model_dump(mode="json")}
        final = graph.invoke(start, config, context=context or APEContext())
        return APEVerdict.model_validate(final["verdict"])
    finally:
        conn.close()
