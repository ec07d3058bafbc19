"""The LLM layer's tests drive the package's scripted model, with the request view ChatOpenAI sends."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage
from pydantic import Field

from anomalygraph.llm.scripted import ScriptedChatModel as _Scripted
from anomalygraph.llm.scripted import tool_call as call

__all__ = ["ScriptedChatModel", "bad_json_call", "call"]


class ScriptedChatModel(_Scripted):
    """The last reply repeats; ``requests`` shows each call as messages plus keyword arguments."""

    repeat_last: bool = Field(True)

    @property
    def requests(self) -> list[dict[str, Any]]:
        out = []
        for messages, kwargs in zip(self.calls, self.bound, strict=True):
            request = {"messages": messages, **{k: v for k, v in kwargs.items() if v is not None}}
            choice = request.get("tool_choice")
            if isinstance(choice, str) and choice not in {"auto", "none", "required", "any"}:
                request["tool_choice"] = {"type": "function", "function": {"name": choice}}
            out.append(request)
        return out


def bad_json_call(name: str, raw: str) -> AIMessage:
    """An answer whose tool-call arguments are not valid JSON."""
    return AIMessage(
        content="",
        invalid_tool_calls=[{"name": name, "args": raw, "id": "call_x", "error": "Expecting value", "type": "invalid_tool_call"}],
    )
