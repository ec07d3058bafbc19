"""A deterministic chat model that answers from a script: the LLM boundary's test double.

Like httpx's ``MockTransport``, it ships with the package so tests of agents and graphs (ours
and users') can drive every path, tool calls and garbage answers included, with no server.
Each reply is an ``AIMessage``, a string, or a function of the messages it receives; every call
is recorded, and running out of script is an error rather than a silent default.

``ANOMALYGRAPH_LLM_PROVIDER=scripted`` with ``ANOMALYGRAPH_LLM_SCRIPT_FILE=script.json`` makes
:func:`~anomalygraph.llm.factory.get_chat_model` return one read from a file (:meth:`ScriptedChatModel.from_file`),
so graphs run deterministically where no Python can hand them a model, e.g. under a LangGraph
server. The file is a JSON list of replies: a string is a text answer, an object
``{"tool_calls": [{"name": ..., "args": {...}}], "content": ""}`` calls tools; the last reply
repeats once the script runs out.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anomalygraph.core.errors import ConfigError, validation_problems
from anomalygraph.core.llm_settings import CAPABILITIES_KEY, ModelCapabilities

Reply = AIMessage | str | Callable[[list[BaseMessage]], AIMessage | str] | BaseException
_ids = itertools.count()


def tool_call(name: str, args: dict[str, Any], content: str = "") -> AIMessage:
    """An assistant message that calls ``name`` with ``args``."""
    return AIMessage(content=content, tool_calls=[{"name": name, "args": args, "id": f"call_{next(_ids)}", "type": "tool_call"}])


class _ToolCallSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)


class _ReplySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = ""
    tool_calls: list[_ToolCallSpec] = Field(default_factory=list)


class _FileReply:
    """One reply of a script file: a fresh message (new tool-call ids) each time it is used."""

    def __init__(self, spec: _ReplySpec) -> None:
        self.spec = spec

    def __call__(self, messages: list[BaseMessage]) -> AIMessage:
        calls = [{"name": c.name, "args": dict(c.args), "id": f"call_{next(_ids)}", "type": "tool_call"}
                 for c in self.spec.tool_calls]
        return AIMessage(content=self.spec.content, tool_calls=calls)

    def __repr__(self) -> str:
        return f"_FileReply({self.spec.model_dump()})"


def load_script(path: str | Path) -> list[Reply]:
    """The replies of a script file (see the module docstring); :class:`ConfigError` naming the
    file and the reply when it is missing or malformed."""
    path = Path(path).expanduser()
    where = f"script file {path} (ANOMALYGRAPH_LLM_SCRIPT_FILE)"
    if not path.is_file():
        raise ConfigError(f"{where} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{where} must hold a non-empty JSON list of replies, got {json.dumps(data)[:60]}")
    replies: list[Reply] = []
    for i, item in enumerate(data):
        if isinstance(item, str):
            replies.append(item)
            continue
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: reply {i} must be a string or an object with tool_calls, got {json.dumps(item)[:60]}")
        try:
            replies.append(_FileReply(_ReplySpec.model_validate(item)))
        except ValidationError as exc:
            problems = validation_problems(exc, "reply")
            raise ConfigError(f"{where}: reply {i}: {problems}") from exc
    return replies


class ScriptedChatModel(BaseChatModel):
    """Replies in order from ``script``; ``calls`` holds the messages of every call."""

    script: list[Any] = Field(default_factory=list)
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    bound: list[dict[str, Any]] = Field(default_factory=list, description="kwargs of every call (tools, tool_choice)")
    repeat_last: bool = Field(False, description="answer with the last reply once the script is used up")

    @classmethod
    def with_capabilities(cls, script: Sequence[Reply], capabilities: ModelCapabilities) -> ScriptedChatModel:
        return cls(script=list(script), metadata={CAPABILITIES_KEY: capabilities.model_dump()})

    @classmethod
    def from_file(cls, path: str | Path, capabilities: ModelCapabilities, **kwargs: Any) -> ScriptedChatModel:
        """The replies of a script file (:func:`load_script`), the last one repeating once they run out."""
        metadata = {CAPABILITIES_KEY: capabilities.model_dump(), "anomalygraph_provider": "scripted"}
        return cls(script=load_script(path), repeat_last=True, metadata=metadata, **kwargs)

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
