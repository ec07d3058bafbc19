"""Run-time dependencies of the analyst graph (LangGraph ``context_schema``), kept out of the checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool

from anomalygraph.core.errors import ConfigError
from anomalygraph.llm.settings import ModelCapabilities
from anomalygraph.tools import ToolContext, build_tools

Strategy = Literal["auto", "native", "guided"]
DEFAULT_MAX_STEPS = 6


@dataclass
class AnalystContext:
    """The model, the tools' sandbox and the limits of one conversation.

    ``strategy`` decides how tools are chosen: ``native`` lets the model pick tools itself (vLLM
    with auto tool choice); ``guided`` asks for a structured next action first and then forces a
    call of that tool, and shows tool exchanges to the model as text (llama.cpp's
    chatml-function-calling format can neither choose tools reliably nor render tool messages);
    ``auto`` picks from the model's declared capabilities, guided when nothing is declared.
    """

    model: BaseChatModel | None = None
    """``None``: the model the LLM settings describe (``get_chat_model()``), made on first use."""
    tools: ToolContext | None = None
    """``None``: roots and output folder from ``anomalygraph.core.settings``."""
    max_steps: int = DEFAULT_MAX_STEPS
    """Tool calls allowed per user turn, failed ones included; then the agent must answer."""
    strategy: Strategy = "auto"
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
    _toolset: list[BaseTool] | None = field(default=None, init=False, repr=False)
    _variants: dict[tuple[int, bool], tuple[BaseChatModel, BaseChatModel]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ConfigError(f"max_steps must be at least 1, got {self.max_steps}")
        if self.strategy not in ("auto", "native", "guided"):
            raise ConfigError(f"strategy must be auto, native or guided, got {self.strategy!r}")
        if self.history_chars < 1000 or self.result_chars < 200:
            raise ConfigError("history_chars must be at least 1000 and result_chars at least 200")
        if self.tools_per_turn is not None and self.tools_per_turn < 1:
            raise ConfigError(f"tools_per_turn must be at least 1, got {self.tools_per_turn}")
        if self.step_max_tokens < 16 or self.answer_max_tokens < 16:
            raise ConfigError("step_max_tokens and answer_max_tokens must be at least 16")

    def chat_model(self) -> BaseChatModel:
        if self.model is None:
            from anomalygraph.llm.factory import get_chat_model

            self.model = get_chat_model()
        return self.model

    def structured_model(self) -> BaseChatModel:
        """The model for plan and act steps: short answers, never streamed.

        Those steps are forced tool calls; streamed through llama.cpp's server each chunk repeats
        the function name, which LangChain then concatenates (``NextActionNextAction``). Under
        LangGraph's ``messages`` stream mode every call would stream, so these are kept whole.
        """
        return self._variant(self.step_max_tokens, stream=False)

    def answer_model(self) -> BaseChatModel:
        return self._variant(self.answer_max_tokens, stream=True)

    def _variant(self, max_tokens: int, *, stream: bool) -> BaseChatModel:
        """A copy of the chat model with its own answer cap (where it has one) and streaming."""
        model = self.chat_model()
        cached = self._variants.get((max_tokens, stream))
        if cached is None or cached[0] is not model:
            update: dict[str, object] = {} if stream else {"disable_streaming": True}
            if "max_tokens" in type(model).model_fields:
                current = getattr(model, "max_tokens", None)
                update["max_tokens"] = min(max_tokens, current) if current else max_tokens
            cached = (model, model.model_copy(update=update) if update else model)
            self._variants[(max_tokens, stream)] = cached
        return cached[1]

    def tool_context(self) -> ToolContext:
        if self.tools is None:
            self.tools = ToolContext.from_settings()
        return self.tools

    def toolset(self) -> list[BaseTool]:
        if self._toolset is None:
            self._toolset = build_tools(self.tool_context())
        return self._toolset

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
