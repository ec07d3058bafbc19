"""Wiring of the rule-bank generation graph, and the one function the CLI and Python callers use.

prepare -> list_faults -> propose <-> compile_rule -> sample -> critique -> (propose ...) -> approve -> store

Compiled with a SQLite checkpointer, a run is a thread: the approval step pauses it (a LangGraph
interrupt) until :func:`run_generation` is called again with a decision, in this process or a
later one, and a run that crashed resumes from its last completed node.
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
from langgraph.types import Command
from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.core.errors import ConfigError
from anomalygraph.graphs.rulebank_generation import nodes
from anomalygraph.graphs.rulebank_generation.state import (
    ApprovalDecision,
    ApprovalRequest,
    GenerationContext,
    GenerationResult,
    GenerationState,
    Outcome,
)


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    """The compiled graph (``langgraph dev`` calls this with no checkpointer and brings its own)."""
    graph = StateGraph(GenerationState, context_schema=GenerationContext)
    for name, fn in (
        ("prepare", nodes.prepare),
        ("list_faults", nodes.list_faults),
        ("propose", nodes.propose),
        ("compile_rule", nodes.compile_rule),
        ("sample", nodes.sample),
        ("critique", nodes.critique),
        ("approve", nodes.approve),
        ("store", nodes.store),
    ):
        graph.add_node(name, nodes.timed(name, fn))
    graph.add_edge(START, "prepare")
    graph.add_edge("prepare", "list_faults")
    graph.add_conditional_edges("list_faults", nodes.route_after_list, ["propose", "store"])
    graph.add_edge("propose", "compile_rule")
    graph.add_conditional_edges("compile_rule", nodes.route_after_compile, ["propose", "sample", "approve", "store"])
    graph.add_edge("sample", "critique")
    graph.add_conditional_edges("critique", nodes.route_after_critique, ["propose", "approve", "store"])
    graph.add_edge("approve", "store")
    graph.add_edge("store", END)
    return graph.compile(checkpointer=checkpointer, name="rulebank_generation")


def make_graph(config: RunnableConfig | None = None) -> CompiledStateGraph:
    """Entry point for ``langgraph dev`` / LangGraph server, which brings its own checkpointer.

    There the model comes from the LLM settings (``context.model`` is unset) and the approval
    step is a regular interrupt the server's clients answer with ``Command(resume=...)``.
    """
    del config
    return build_graph()


def recursion_limit(ctx: GenerationContext) -> int:
    """Enough super-steps for the worst run the budgets allow, and no more.

    Each model step is at most one propose + compile pair; each review round adds sample and
    critique; a budget-drained queue costs one more propose + compile.
    """
    return 2 * ctx.max_steps + 2 * (ctx.max_revisions + 1) + 10


class GenerationRequest(BaseModel):
    """What to mine a bank from, and where to write it."""

    model_config = ConfigDict(extra="forbid")

    scenario: str = Field(min_length=1, description="the scenario text: the system, its signals, its known faults")
    series_path: str = Field(description="file with the normal series (any format load_series reads)")
    out_path: str = Field(description="bank file to write (.yaml or .json)")
    train_end: int | None = Field(None, gt=0, description="rows [0, train_end) are normal; default: the file's split, else all")
    name: str | None = Field(None, description="bank name; default: from the out file's name")
    work_dir: str | None = Field(None, description="plots, run record, checkpoints; default: <out stem>_run/ beside the bank")

    def folder(self) -> Path:
        if self.work_dir:
            return Path(self.work_dir)
        out = Path(self.out_path)
        return out.with_name(f"{out.stem}_run")


class GenerationOutcome(BaseModel):
    """Where a call to :func:`run_generation` left the run."""

    model_config = ConfigDict(extra="forbid")

    status: Outcome
    thread_id: str
    resumed: bool
    result: GenerationResult | None = None
    pending: ApprovalRequest | None = None


def thread_id(request: GenerationRequest, ctx: GenerationContext) -> str:
    """One thread per series file version, scenario text, output, split and prior form."""
    real = Path(request.series_path).resolve()
    stamp = f"{real.stat().st_mtime_ns}:{real.stat().st_size}" if real.exists() else "missing"
    scenario = hashlib.sha256(request.scenario.encode("utf-8")).hexdigest()
    key = "|".join([str(real), stamp, scenario, str(Path(request.out_path).resolve()), str(request.train_end),
                    request.name or "", ctx.form])
    return "rulebank-" + hashlib.sha1(key.encode()).hexdigest()[:16]


def _pending(snapshot: Any) -> ApprovalRequest | None:
    for task in snapshot.tasks:
        for intr in task.interrupts:
            return ApprovalRequest.model_validate(intr.value)
    return None


def run_generation(
    request: GenerationRequest,
    context: GenerationContext,
    *,
    decision: ApprovalDecision | None = None,
    resume: bool = True,
    on_update: Callable[[str, dict[str, Any]], None] | None = None,
) -> GenerationOutcome:
    """Run, resume or answer a generation run; returns where it stopped.

    A run paused for approval returns ``status="awaiting_approval"`` with the request; call again
    with ``decision`` (or with ``context.auto_approve``) to finish it. ``resume=False`` discards
    an earlier run of the same thread. ``on_update(node, update)`` sees each completed node.
    """
    from langgraph.checkpoint.sqlite import SqliteSaver

    folder = request.folder()
    folder.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(folder / "checkpoints.sqlite", check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        graph = build_graph(saver)
        tid = thread_id(request, context)
        config: dict[str, Any] = {"configurable": {"thread_id": tid}, "recursion_limit": recursion_limit(context)}
        if not resume:
            saver.delete_thread(tid)
        snapshot = graph.get_state(config)
        resumed = bool(snapshot.values)
        pending = _pending(snapshot) if snapshot.next else None
        if snapshot.values.get("result") and not snapshot.next:
            if decision is not None:
                raise ConfigError(f"run {tid} is already finished; there is nothing to approve")
            result = GenerationResult.model_validate(snapshot.values["result"])
            return GenerationOutcome(status=result.status, thread_id=tid, resumed=True, result=result)
        if pending is not None:
            if decision is None and not context.auto_approve:
                return GenerationOutcome(status="awaiting_approval", thread_id=tid, resumed=True, pending=pending)
            answer = decision or ApprovalDecision(action="approve", by="auto")
            unknown = [rid for rid in answer.drop if rid not in {r.id for r in pending.rules}]
            if unknown:
                raise ConfigError(f"cannot drop unknown rule id(s) {unknown}; the bank holds: "
                                  + ", ".join(r.id for r in pending.rules))
            inputs: Any = Command(resume=answer.model_dump())
        elif decision is not None:
            raise ConfigError(f"run {tid} is not waiting for approval")
        elif snapshot.next:
            inputs = None  # continue a run that stopped (crash, dead server) after its last completed node
        else:
            inputs = {
                "scenario": request.scenario, "series_path": request.series_path, "train_end": request.train_end,
                "out_path": request.out_path, "work_dir": str(folder), "bank_name": request.name,
                "notes": [], "dropped": [], "trace": [], "plots": [],
            }
        for chunk in graph.stream(inputs, config, context=context, stream_mode="updates"):
            if on_update is not None:
                for node, update in chunk.items():
                    if node != "__interrupt__":
                        on_update(node, update or {})
        snapshot = graph.get_state(config)
        pending = _pending(snapshot) if snapshot.next else None
        if pending is not None:
            return GenerationOutcome(status="awaiting_approval", thread_id=tid, resumed=resumed, pending=pending)
        result = GenerationResult.model_validate(snapshot.values["result"])
        return GenerationOutcome(status=result.status, thread_id=tid, resumed=resumed, result=result)
    finally:
        conn.close()
