"""Wiring of the diagnosis graph, and the one function the CLI and Python callers use.

profile (+ planted anomalies) -> choose_detectors -> (Send) run_detector x N -> select -> explain -> report

Compiled with a SQLite checkpointer, a run is a thread: re-running the same thread after a
crash continues from the last completed node instead of starting over.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from anomalygraph.core.errors import AnomalyGraphError
from anomalygraph.data.feedback import FeedbackMark, marks_digest
from anomalygraph.graphs.diagnosis import nodes
from anomalygraph.graphs.diagnosis.state import DiagnosisContext, DiagnosisState, DiagnosisVerdict
from anomalygraph.tools.context import resolve_in_roots

RECURSION_LIMIT = 25


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    graph = StateGraph(DiagnosisState, context_schema=DiagnosisContext)
    graph.add_node("profile", nodes.profile)
    graph.add_node("choose_detectors", nodes.choose_detectors)
    graph.add_node("run_detector", nodes.run_one)
    graph.add_node("select", nodes.select)
    graph.add_node("explain", nodes.explain)
    graph.add_node("report", nodes.report)
    graph.add_edge(START, "profile")
    graph.add_edge("profile", "choose_detectors")
    graph.add_conditional_edges("choose_detectors", nodes.route_detectors, ["run_detector"])
    graph.add_edge("run_detector", "select")
    graph.add_edge("select", "explain")
    graph.add_edge("explain", "report")
    graph.add_edge("report", END)
    return graph.compile(checkpointer=checkpointer, name="diagnosis")


def make_graph(config: RunnableConfig | None = None) -> CompiledStateGraph:
    """Entry point for ``langgraph dev`` / LangGraph server, which brings its own checkpointer."""
    del config
    return build_graph()


def thread_id(path: str, out_dir: Path, detectors: list[str] | None, choice: str = "") -> str:
    """One thread per input file version, output folder, detector choice and selection / threshold choice."""
    real = Path(path).resolve()
    stamp = f"{real.stat().st_mtime_ns}:{real.stat().st_size}" if real.exists() else "missing"
    key = f"{real}|{stamp}|{out_dir.resolve()}|{','.join(detectors or [])}|{choice}"
    return "diagnosis-" + hashlib.sha1(key.encode()).hexdigest()[:16]


def run_diagnosis(
    path: str,
    out_dir: Path,
    context: DiagnosisContext,
    *,
    detectors: list[str] | None = None,
    resume: bool = True,
    on_update: Callable[[str, dict[str, Any]], None] | None = None,
) -> tuple[DiagnosisVerdict, bool]:
    """Run (or resume) a diagnosis; returns the verdict and whether an earlier run was resumed.

    The thread depends on the file's version, the choices and the feedback marks on the file, so
    a new mark makes a new run rather than returning the stored verdict. ``on_update(node, update)``
    sees each node as it finishes (the web page's progress).
    """
    from langgraph.checkpoint.sqlite import SqliteSaver

    out_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(out_dir / "checkpoints.sqlite", check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        graph = build_graph(saver)
        choice = f"{context.selection}|{context.threshold_method}|{context.top_k}|{context.contamination}"
        marks = _marks_for_thread(path, context)
        if marks:  # without marks the thread stays what it was before feedback existed
            choice += f"|feedback:{marks_digest(marks)}"
        config: RunnableConfig = {"configurable": {"thread_id": thread_id(path, out_dir, detectors, choice)},
                                  "recursion_limit": RECURSION_LIMIT}
        snapshot = graph.get_state(config)
        resumed = bool(resume and snapshot.next)
        if snapshot.values and not snapshot.next and resume and "verdict" in snapshot.values:
            return DiagnosisVerdict.model_validate(snapshot.values["verdict"]), True
        if not resume:
            saver.delete_thread(config["configurable"]["thread_id"])
        inputs = None if resumed else {"path": path, "out_dir": str(out_dir), "requested": detectors, "notes": []}
        if on_update is None:
            final = graph.invoke(inputs, config, context=context)
        else:
            for chunk in graph.stream(inputs, config, context=context, stream_mode="updates"):
                for node, update in chunk.items():
                    if node != "__interrupt__":
                        on_update(node, update or {})
            final = graph.get_state(config).values
        return DiagnosisVerdict.model_validate(final["verdict"]), resumed
    finally:
        conn.close()


def _marks_for_thread(path: str, context: DiagnosisContext) -> list[FeedbackMark]:
    """The marks the select node will read; none for a file outside the roots (the graph refuses it, in its words)."""
    try:
        resolve_in_roots(path, context.roots())
    except AnomalyGraphError:
        return []
    return nodes.feedback_marks(path, context)
