"""The analyst chat for the page: threads (the same SQLite file as ``anomalygraph chat``), a turn
streamed as events, and a stored thread read back as turns with their tool steps and plots."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from pydantic import BaseModel, Field

from anomalygraph.agents.analyst.turns import split_turns
from anomalygraph.agents.analyst.view import render_call
from anomalygraph.graphs.analyst import (
    AnalystContext,
    build_graph,
    last_turn,
    run_config,
    thread_store,
)
from anomalygraph.graphs.analyst.context import DEFAULT_MAX_STEPS
from anomalygraph.graphs.analyst.graph import (
    THREADS_FILE,
    check_thread_id,
    thread_ids,
    turn_events,
    turn_input,
)
from anomalygraph.llm.messages import text_of
from anomalygraph.ui.render import markdown_html

NAMES_FILE = "thread_names.json"
Event = dict[str, Any]


class ToolStep(BaseModel):
    name: str
    call: str
    outcome: str
    seconds: float = 0.0
    summary: str = ""
    detail: str = ""
    plot: str | None = None
    warnings: list[str] = Field(default_factory=list)


class ChatTurn(BaseModel):
    question: str
    steps: list[ToolStep]
    answer_html: str
    notes: list[str]


class ThreadInfo(BaseModel):
    id: str
    name: str
    turns: int
    file: str | None


@dataclass
class ChatService:
    """One analyst graph over one threads file; ``plot_url`` turns a plot path into a link the page can load."""

    out_dir: Path
    data_roots: list[Path]
    plot_url: Callable[[str], str]
    model: str = "settings"
    planner: str = "kinds"
    tools_per_turn: int | None = None
    max_steps: int = DEFAULT_MAX_STEPS

    @property
    def threads_file(self) -> Path:
        return self.out_dir / THREADS_FILE

    def context(self) -> AnalystContext:
        return AnalystContext(model=self.model, data_roots=[str(r) for r in self.data_roots],
                              output_dir=str(self.out_dir / "plots"), max_steps=self.max_steps,
                              tools_per_turn=self.tools_per_turn, planner=self.planner)  # type: ignore[arg-type]

    # ------------------------------------------------------------ threads
    def names(self) -> dict[str, str]:
        path = self.out_dir / NAMES_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def rename(self, thread: str, name: str) -> None:
        check_thread_id(thread)
        names = self.names() | {thread: name.strip()[:100]}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.out_dir / (NAMES_FILE + ".tmp")
        tmp.write_text(json.dumps(names, indent=1), encoding="utf-8")
        tmp.replace(self.out_dir / NAMES_FILE)

    def threads(self) -> list[ThreadInfo]:
        names = self.names()
        found = []
        with thread_store(self.threads_file) as saver:
            graph = build_graph(saver)
            for tid in thread_ids(self.threads_file):
                values = graph.get_state({"configurable": {"thread_id": tid}}).values
                messages = values.get("messages", [])
                questions = [text_of(m) for m in messages if isinstance(m, HumanMessage)]
                name = names.get(tid) or (questions[0][:60] if questions else tid)
                found.append(ThreadInfo(id=tid, name=name, turns=len(questions), file=values.get("file")))
        return found

    def history(self, thread: str) -> tuple[list[ChatTurn], str | None]:
        """The thread's turns as the page shows them, and its file."""
        check_thread_id(thread)
        if not self.threads_file.exists():
            return [], None
        with thread_store(self.threads_file) as saver:
            values = build_graph(saver).get_state({"configurable": {"thread_id": thread}}).values
        return turns_of(values.get("messages", []), self.plot_url), values.get("file")

    # --------------------------------------------------------------- turn
    def stream(self, thread: str, question: str, file: str | None) -> Iterator[Event]:
        """Run one turn, yielding events: node, tool_start, tool_end, token, then done (or error)."""
        check_thread_id(thread)
        context = self.context()
        config = run_config(thread, context.max_steps)
        started = time.perf_counter()
        with thread_store(self.threads_file) as saver:
            graph = build_graph(saver)
            stored = graph.get_state({"configurable": {"thread_id": thread}}).values.get("file")
            send_file = file if file and file != stored else None
            for kind, data in turn_events(graph, turn_input(question, send_file), config, context):
                if kind == "tool":
                    yield self._tool_event(data)
                elif kind == "token":
                    yield {"type": "token", "text": data}
                elif kind == "node":
                    yield {"type": "node", "node": data[0]}
            values = graph.get_state(config).values
        turn = last_turn(values.get("messages", []), values.get("notes"))
        yield {"type": "done", "thread": thread, "answer_html": markdown_html(turn.answer or ""),
               "notes": list(turn.notes), "calls": len(turn.calls), "ok": turn.valid_calls,
               "seconds": round(time.perf_counter() - started, 2)}

    def _tool_event(self, event: dict[str, Any]) -> Event:
        if event["event"] == "tool_start":
            return {"type": "tool_start", "name": event["name"], "call": render_call(event["name"], event.get("args") or {})}
        plot = event.get("plot")
        return {"type": "tool_end", "name": event["name"], "outcome": event["outcome"], "seconds": round(event.get("seconds", 0.0), 3),
                "summary": event.get("summary", ""), "warnings": [str(w)[:200] for w in event.get("warnings") or []],
                "plot": self.plot_url(plot) if plot else None}


def turns_of(messages: list[BaseMessage], plot_url: Callable[[str], str]) -> list[ChatTurn]:
    """Split a thread into turns (one per question) with each tool step's call, result and plot."""
    turns = []
    for group in split_turns(messages):
        record = last_turn(group)
        steps = []
        for m in group:
            if not isinstance(m, ToolMessage):
                continue
            art = m.artifact if isinstance(m.artifact, dict) else {}
            args = art.get("args") or {}
            content = text_of(m)
            steps.append(ToolStep(
                name=m.name or "tool", call=render_call(m.name or "tool", args if isinstance(args, dict) else {}),
                outcome=str(art.get("outcome", "ok")), seconds=round(float(art.get("seconds") or 0.0), 3),
                summary=" ".join(content.split())[:200], detail=content[:20000],
                plot=plot_url(art["plot"]) if art.get("plot") else None,
                warnings=[str(w)[:200] for w in art.get("warnings") or []],
            ))
        turns.append(ChatTurn(question=record.question, steps=steps, answer_html=markdown_html(record.answer or ""),
                              notes=list(record.notes)))
    return turns
