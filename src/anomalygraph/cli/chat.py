"""``anomalygraph chat [--thread ID] [FILE]``: a terminal chat with the analyst agent.

Answers stream as they are written, tool calls show as they start and finish, plots are saved
and their paths printed. Each conversation is a thread in a SQLite file under the output
folder, so ``--thread ID`` continues it after a restart. Questions come from ``--message``,
from standard input when it is not a terminal (one per line), or from an interactive prompt.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langgraph.graph.state import CompiledStateGraph
from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.markup import escape
from rich.status import Status

from anomalygraph.agents.analyst.turns import split_turns
from anomalygraph.agents.analyst.view import render_call
from anomalygraph.core.errors import AnomalyGraphError, ConfigError, DataError
from anomalygraph.graphs.analyst import (
    AnalystContext,
    TurnRecord,
    build_graph,
    last_turn,
    run_config,
    thread_store,
)
from anomalygraph.graphs.analyst.context import DEFAULT_MAX_STEPS
from anomalygraph.graphs.analyst.graph import (
    THREADS_FILE,
    check_thread_id,
    new_thread_id,
    thread_ids,
    turn_events,
    turn_input,
)
from anomalygraph.llm.usage import UsageLogger

_WAITING = {
    "plan": "choosing the next step",
    "act": "preparing the arguments of {action}",
    "agent": "thinking",
    "respond": "writing the answer",
}
HELP = "Commands: /history (this thread so far), /help, /exit (or Ctrl-D)."


def make_model(llm_config: Path | None) -> BaseChatModel:
    """The chat model from the LLM settings (env vars, ``--llm-config``); the embedded one by default."""
    from anomalygraph.core.settings import get_settings
    from anomalygraph.llm.factory import get_chat_model

    return get_chat_model(get_settings(llm_config).llm)


def data_roots_for(file: Path | None, roots: list[Path]) -> list[Path]:
    """The configured roots, plus the folder of a file the user named outside them (naming it is consent)."""
    roots = [Path(r).resolve() for r in roots]
    if file is not None and not any(file.is_relative_to(r) for r in roots):
        roots.append(file.parent)
    return roots


# ----------------------------------------------------------------- rendering
@dataclass
class TurnView:
    """Renders one turn as it streams: waiting status, tool progress, answer tokens, plots, footer."""

    console: Console
    status: Status | None = None
    live: Live | None = None
    answer: str = ""
    plots: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def wait(self, what: str) -> None:
        if not self.console.is_terminal:
            return
        if self.status is None:
            self.status = self.console.status(f"[dim]{escape(what)}…[/]", spinner="dots")
            self.status.start()
        else:
            self.status.update(f"[dim]{escape(what)}…[/]")

    def stop_waiting(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def node_started(self, node: str, values: dict[str, Any]) -> None:
        if node in _WAITING:
            self.wait(_WAITING[node].format(action=values.get("next_action") or "the tool"))

    def planned(self, action: str) -> None:
        self.stop_waiting()
        self.console.print(f"[dim]· next step: {escape(action)}[/]")

    def tool_event(self, event: dict[str, Any]) -> None:
        self.stop_waiting()
        if event.get("event") == "tool_start":
            self.console.print(f"[cyan]→ {escape(render_call(event['name'], event.get('args') or {}))}[/]")
            self.wait(f"running {event['name']}")
            return
        if event.get("event") != "tool_end":
            return
        if event["outcome"] == "ok":
            self.console.print(f"  [green]✓[/] {event['name']} [dim]{event['seconds']:.2f} s: {escape(event.get('summary', ''))}[/]")
        else:
            reason = event["outcome"].replace("_", " ")
            self.console.print(f"  [red]✗ {event['name']} ({reason})[/] [dim]{escape(event.get('summary', ''))}[/]")
        for warning in event.get("warnings") or []:
            self.console.print(f"  [yellow]! {escape(warning[:200])}[/]")
        if event.get("plot"):
            self.plots.append(event["plot"])
            self.console.print(f"  [magenta]plot saved: {escape(event['plot'])}[/]")

    def token(self, text: str) -> None:
        self.stop_waiting()
        if not self.answer:
            self.console.print("[bold green]analyst:[/]")
        self.answer += text
        if self.console.is_terminal:
            if self.live is None:
                self.live = Live(Markdown(self.answer), console=self.console, refresh_per_second=8)
                self.live.start()
            self.live.update(Markdown(self.answer))
        else:
            self.console.file.write(text)
            self.console.file.flush()

    def close(self) -> None:
        self.stop_waiting()
        if self.live is not None:
            self.live.stop()
            self.live = None
        elif self.answer and not self.console.is_terminal:
            self.console.file.write("\n")

    def finish(self, turn: TurnRecord, usage: UsageLogger, thread: str) -> None:
        self.close()
        if not self.answer.strip() and turn.answer:
            # a model that does not stream: the whole answer arrives at once
            self.console.print("[bold green]analyst:[/]")
            self.console.print(Markdown(turn.answer))
        sources = [render_call(c.name, c.args) for c in turn.calls if c.outcome == "ok"]
        if sources:  # where the answer's facts come from
            self.console.print(f"[dim]sources: {escape('; '.join(sources))}[/]")
        for note in turn.notes:
            self.console.print(f"[yellow]note: {escape(note)}[/]")
        totals = usage.totals()
        ok = turn.valid_calls
        self.console.print(
            f"[dim]thread {escape(thread)} · {len(turn.calls)} tool call(s), {ok} ok · {totals.calls} model call(s) · "
            f"{time.perf_counter() - self.started:.1f} s[/]"
        )


def print_history(console: Console, messages: list[BaseMessage]) -> None:
    for turn in split_turns(messages):
        record = last_turn(turn)
        console.print(f"[bold]you:[/] {escape(record.question)}")
        if record.calls:
            names = ", ".join(f"{c.name}{'' if c.outcome == 'ok' else ' (' + c.outcome.replace('_', ' ') + ')'}" for c in record.calls)
            console.print(f"[dim]  tools: {escape(names)}[/]")
        for m in turn:
            if isinstance(m, ToolMessage) and isinstance(m.artifact, dict) and m.artifact.get("plot"):
                console.print(f"[dim]  plot: {escape(m.artifact['plot'])}[/]")
        if record.answer:
            console.print("[bold green]analyst:[/]")
            console.print(Markdown(record.answer))


# ------------------------------------------------------------------- a turn
def stream_turn(
    graph: CompiledStateGraph,
    context: AnalystContext,
    question: str,
    *,
    thread: str,
    file: str | None,
    console: Console,
) -> TurnRecord:
    """Run one turn, rendering it as it streams; returns the turn as stored in the thread."""
    usage = UsageLogger()
    config = run_config(thread, context.max_steps, [usage])
    view = TurnView(console)
    try:
        for kind, data in turn_events(graph, turn_input(question, file), config, context):
            if kind == "tool":
                view.tool_event(data)
            elif kind == "token":
                view.token(data)
            elif kind == "node":
                view.node_started(*data)
            elif kind == "planned":
                view.planned(data)
    finally:
        view.close()
    values = graph.get_state(config).values
    turn = last_turn(values.get("messages", []), values.get("notes"))
    view.finish(turn, usage, thread)
    return turn


def _stdin_questions() -> Iterator[str]:
    for line in sys.stdin:
        line = line.strip()
        if line and not line.startswith("#"):
            yield line


def _prompt_questions(console: Console) -> Iterator[str]:
    while True:
        try:
            line = console.input("[bold]you:[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if line in ("/exit", "/quit"):
            return
        if line:
            yield line


# ------------------------------------------------------------------ command
def chat(
    file: Annotated[Path | None, typer.Argument(help="Series to talk about (CSV, Parquet, NAB, SMAP/MSL .npy, UCR, TSB-AD).", show_default=False)] = None,
    thread: Annotated[str | None, typer.Option("--thread", "-t", help="Conversation to continue or start; default: a new one.")] = None,
    message: Annotated[list[str] | None, typer.Option("--message", "-m", help="Ask this and exit (repeat for several turns).")] = None,
    max_steps: Annotated[int, typer.Option("--max-steps", min=1, max=50, help="Tool calls allowed per question, failed ones included.")] = DEFAULT_MAX_STEPS,
    tools_per_turn: Annotated[int | None, typer.Option("--tools-per-turn", min=1, max=50, help="Successful tool calls before answering (default: 1 for models that cannot choose tools themselves, else no limit).")] = None,
    planner: Annotated[str, typer.Option("--planner", help="For models that cannot choose tools: kinds (name the question's kind, run the tools for it) or steps (the model picks each tool).")] = "kinds",
    out: Annotated[Path | None, typer.Option("--out", help="Folder for threads.sqlite and plots (default: $ANOMALYGRAPH_OUTPUT_DIR/chat).")] = None,
    history: Annotated[bool, typer.Option("--history", help="Print the thread's earlier turns first.")] = False,
    list_threads: Annotated[bool, typer.Option("--list", help="List the stored threads and exit.")] = False,
    llm_config: Annotated[Path | None, typer.Option("--llm-config", help="LLM settings file (YAML/TOML); env vars ANOMALYGRAPH_LLM_* also apply.")] = None,
) -> None:
    """Chat with the analyst agent about a time series; it calls tools to load, profile, detect and plot.

    Example: anomalygraph chat --thread t1 ../shared/data/SMAP_MSL/test/T-5.npy -m "Where is the strongest anomaly?"
    then, later: anomalygraph chat --thread t1 -m "Which channels deviate there?"
    """
    from anomalygraph.core.settings import get_settings
    from anomalygraph.llm.factory import model_ref

    settings = get_settings()
    out_dir = out or settings.output.dir / "chat"
    console = Console(highlight=False, soft_wrap=True)
    if list_threads:
        for tid in thread_ids(out_dir / THREADS_FILE):
            console.print(tid)
        return
    try:
        thread_id = check_thread_id(thread) if thread else new_thread_id()
    except ConfigError as exc:
        raise ConfigError(f"--{exc}") from None
    real_file: Path | None = None
    if file is not None:
        real_file = Path(file).expanduser().resolve()
        if not real_file.is_file():
            raise DataError(f"{file}: no such file")
    roots = data_roots_for(real_file, list(settings.data.roots))
    # the model starts at the first question, so /help and a resumed thread's history need none
    context = AnalystContext(model=None, data_roots=[str(r) for r in roots], output_dir=str(out_dir / "plots"),
                             max_steps=max_steps, tools_per_turn=tools_per_turn, planner=planner)  # type: ignore[arg-type]

    if message:
        questions: Iterable[str] = message
    elif not sys.stdin.isatty():
        questions = _stdin_questions()
    else:
        questions = _prompt_questions(console)

    with thread_store(out_dir / THREADS_FILE) as saver:
        graph = build_graph(saver)
        prior = graph.get_state({"configurable": {"thread_id": thread_id}}).values
        earlier = prior.get("messages", [])
        stored_file = prior.get("file")
        turns = sum(isinstance(m, HumanMessage) for m in earlier)
        if earlier:
            about = f", file {stored_file}" if stored_file else ""
            console.print(f"[bold]thread {escape(thread_id)}[/] resumed: {turns} earlier turn(s){escape(about)}")
        else:
            console.print(f"[bold]thread {escape(thread_id)}[/] (new) · resume with: anomalygraph chat --thread {escape(thread_id)}")
        if history and earlier:
            print_history(console, earlier)
        send_file = str(real_file) if real_file is not None and str(real_file) != stored_file else None
        if (real_file or stored_file) is not None:
            console.print(f"[dim]file: {escape(str(real_file or stored_file))} · plots: {escape(str(out_dir / 'plots'))}[/]")
        interactive = not message and sys.stdin.isatty()
        for question in questions:
            if question in ("/help", "/?"):
                console.print(HELP)
                continue
            if question == "/history":
                print_history(console, graph.get_state({"configurable": {"thread_id": thread_id}}).values.get("messages", []))
                continue
            if not interactive:
                console.print(f"[bold]you:[/] {escape(question)}")
            if context.model is None:
                with console.status("[dim]starting the model…[/]") if console.is_terminal else nullcontext():
                    context.model = model_ref(make_model(llm_config))
            try:
                stream_turn(graph, context, question, thread=thread_id, file=send_file, console=console)
            except (AnomalyGraphError, KeyboardInterrupt) as exc:
                if not interactive:
                    raise
                console.print(f"[red]error: {escape(str(exc) or type(exc).__name__)}[/]")
            send_file = None
