"""Run-time settings of the analyst graph (LangGraph ``context_schema``), kept out of the checkpoint.

The context is plain settings (see :class:`RunContext`); the live pieces it leads to (the chat
model, the model copies with their own answer caps, the tools and what they computed) are kept
in caches outside it, keyed by what they depend on.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool

from anomalygraph.core.errors import ConfigError
from anomalygraph.core.llm_settings import ModelCapabilities
from anomalygraph.graphs.context import RunContext
from anomalygraph.llm.factory import capped
from anomalygraph.tools import ToolContext, build_tools

Strategy = Literal["auto", "native", "guided"]
Planner = Literal["kinds", "steps"]
DEFAULT_MAX_STEPS = 6
MAX_SESSIONS = 8

_SESSIONS: OrderedDict[tuple[object, ...], tuple[ToolContext, list[BaseTool]]] = OrderedDict()
"""Tools and what they computed, per conversation (thread) and sandbox: later turns of a thread
reuse its loaded series and detector runs; another thread starts afresh."""


def _thread_id() -> str:
    """The thread of the LangGraph run this is called from; ``""`` outside a run."""
    from langgraph.config import get_config

    try:
        return str(get_config().get("configurable", {}).get("thread_id", ""))
    except RuntimeError:
        return ""


@dataclass(kw_only=True)
class AnalystContext(RunContext):
    """The model, the tools' sandbox and the limits of one conversation.

    ``strategy`` decides how tools are chosen: ``native`` lets the model pick tools itself (vLLM
    with auto tool choice); ``guided`` asks for a structured next action first and then forces a
    call of that tool, and shows tool exchanges to the model as text (llama.cpp's
    chatml-function-calling format can neither choose tools reliably nor render tool messages);
    ``auto`` picks from the model's declared capabilities, guided when nothing is declared.
    """

    output_dir: str | None = None
    """Where tools write plots; ``None``: ``<settings output folder>/tools``."""
    max_steps: int = DEFAULT_MAX_STEPS
    """Tool calls allowed per user turn, failed ones included; then the agent must answer."""
    strategy: Strategy = "auto"
    planner: Planner = "kinds"
    """Guided mode: ``kinds`` names the kind of question first and runs the tools that produce that
    kind of fact (``agents.analyst.plans``); ``steps`` asks the model for each next tool."""
    tools_per_turn: int | None = None
    """Successful tool calls after which the agent answers; ``None``: 1 in guided mode, ``max_steps``
    in native mode. Measured with the embedded 0.5B model: offered more tools after a result that
    answers the question, it keeps calling tools until the budget runs out, and its answer gets worse."""
    history_chars: int = 6000
    """Characters of conversation the model sees (system prompt aside); older turns are dropped first."""
    result_chars: int = 1200
    """Longest rendering of one tool result the model sees (the full result stays in the thread)."""
    step_max_tokens: int = 256
    """Answer cap of a plan or act step (a tool name, or a call's arguments)."""
    answer_max_tokens: int = 512
    """Answer cap of the final answer in guided mode (the prompt asks for five sentences at most)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.output_dir is not None:
            self.output_dir = str(self.output_dir)
        if self.max_steps < 1:
            raise ConfigError(f"max_steps must be at least 1, got {self.max_steps}")
        if self.strategy not in ("auto", "native", "guided"):
            raise ConfigError(f"strategy must be auto, native or guided, got {self.strategy!r}")
        if self.planner not in ("kinds", "steps"):
            raise ConfigError(f"planner must be kinds or steps, got {self.planner!r}")
        if self.history_chars < 1000 or self.result_chars < 200:
            raise ConfigError("history_chars must be at least 1000 and result_chars at least 200")
        if self.tools_per_turn is not None and self.tools_per_turn < 1:
            raise ConfigError(f"tools_per_turn must be at least 1, got {self.tools_per_turn}")
        if self.step_max_tokens < 16 or self.answer_max_tokens < 16:
            raise ConfigError("step_max_tokens and answer_max_tokens must be at least 16")

    def chat_model(self) -> BaseChatModel:
        model = super().chat_model()
        if model is None:
            raise ConfigError("the analyst needs a chat model; the context names none")
        return model

    def structured_model(self) -> BaseChatModel:
        """The model for plan and act steps: short answers, never streamed.

        Those steps are forced tool calls; streamed through llama.cpp's server each chunk repeats
        the function name, which LangChain then concatenates (``NextActionNextAction``). Under
        LangGraph's ``messages`` stream mode every call would stream, so these are kept whole.
        """
        return capped(self.chat_model(), self.step_max_tokens, stream=False)

    def answer_model(self) -> BaseChatModel:
        return capped(self.chat_model(), self.answer_max_tokens, stream=True)

    def _session(self) -> tuple[ToolContext, list[BaseTool]]:
        if self.output_dir is None:
            from anomalygraph.core.settings import get_settings

            output = get_settings().output.dir / "tools"
        else:
            output = Path(self.output_dir)
        roots = self.roots()
        key = (_thread_id(), tuple(str(r) for r in roots), str(output), self.gpu)
        session = _SESSIONS.get(key)
        if session is None:
            tools = ToolContext(data_roots=roots, output_dir=output, gpu=self.gpu)
            session = (tools, build_tools(tools))
            _SESSIONS[key] = session
            while len(_SESSIONS) > MAX_SESSIONS:
                _SESSIONS.popitem(last=False)
        _SESSIONS.move_to_end(key)
        return session

    def tool_context(self) -> ToolContext:
        return self._session()[0]

    def toolset(self) -> list[BaseTool]:
        return self._session()[1]

    def tool(self, name: str) -> BaseTool | None:
        return next((t for t in self.toolset() if t.name == name), None)

    def capabilities(self) -> ModelCapabilities | None:
        from anomalygraph.llm.factory import capabilities_of

        return capabilities_of(self.chat_model())

    def answer_after(self) -> int:
        """How many successful tool calls end the exploration of one question."""
        if self.tools_per_turn is not None:
            return self.tools_per_turn
        return 1 if self.resolved_strategy() == "guided" else self.max_steps

    def resolved_strategy(self) -> Literal["native", "guided"]:
        if self.strategy != "auto":
            return self.strategy
        caps = self.capabilities()
        if caps is not None and caps.tool_calling and caps.auto_tool_choice:
            return "native"
        return "guided"
