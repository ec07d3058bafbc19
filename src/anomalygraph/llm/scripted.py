"""A deterministic chat model that answers from a script: the LLM boundary's test double.

Like httpx's ``MockTransport``, it ships with the package so tests of agents and graphs (ours
and users') can drive every path, tool calls and garbage answers included, with no server.
Each reply is an ``AIMessage``, a string, or a function of the messages it receives; every call
is recorded, and running out of script is an error rather than a silent default.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from anomalygraph.llm.factory import CAPABILITIES_KEY
from anomalygraph.llm.settings import ModelCapabilities

Reply = AIMessage | str | Callable[[list[BaseMessage]], AIMessage | str] | BaseException
_ids = itertools.count()


def tool_call(name: str, args: dict[str, Any], content: str = "") -> AIMessage:
    """An assistant message that calls ``name`` with ``args``."""
    return AIMessage(content=content, tool_calls=[{"name": name, "args": args, "id": f"call_{next(_ids)}", "type": "tool_call"}])


class ScriptedChatModel(BaseChatModel):
    """Replies in order from ``script``; ``calls`` holds the messages of every call."""

    script: list[Any] = Field(default_factory=list)
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    bound: list[dict[str, Any]] = Field(default_factory=list, description="kwargs of every call (tools, tool_choice)")
    repeat_last: bool = Field(False, description="answer with the last reply once the script is used up")

    @classmethod
    def with_capabilities(cls, script: Sequence[Reply], capabilities: ModelCapabilities) -> ScriptedChatModel:
        return cls(script=list(script), metadata={CAPABILITIES_KEY: capabilities.model_dump()})

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append(list(messages))
        self.bound.append(kwargs)
        if not self.script:
            raise AssertionError(f"ScriptedChatModel ran out of replies at call {len(self.calls)}")
        reply = self.script[0] if self.repeat_last and len(self.script) == 1 else self.script.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        if callable(reply):
            reply = reply(list(messages))
        message = AIMessage(content=reply) if isinstance(reply, str) else reply.model_copy()
        message.usage_metadata = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
        return ChatResult(generations=[ChatGeneration(message=message)])

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any) -> Runnable:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], tool_choice=tool_choice, **kwargs)
