"""Automatic tool choice in the model's own format, for servers whose tool calling cannot do it.

llama-cpp-python 0.3.36's ``chatml-function-calling`` handler constrains a reply to its follow-up
grammar even when the model chooses to answer in text, so with automatic tool choice it returns
``functions.NAME:`` or nothing. Qwen2.5 models were trained to write ``<tool_call>{...}</tool_call>``
themselves (their chat template describes the tools in the system message). So, for automatic
choice, the tools go into the system prompt as text, the request carries no ``tools`` (no
grammar), and the reply is parsed: calls become ``tool_calls``, the rest stays the answer.
Forced calls still use the server's grammar, which works.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.tool import invalid_tool_call

from anomalygraph.llm.messages import new_call_id, text_of
from anomalygraph.prompts import load_prompt

PROMPT = "llm/prompted_tools"
_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
# Coder models often write the call as a fenced JSON block instead; it counts only when it names a tool.
_FENCED = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)


def wants_prompted(kwargs: dict[str, Any]) -> bool:
    """Tools are bound and the model may choose (no forced function)."""
    choice = kwargs.get("tool_choice")
    return bool(kwargs.get("tools")) and choice in (None, "auto")


def tools_text(tools: Sequence[dict[str, Any]]) -> str:
    """The system-prompt block describing ``tools`` (OpenAI function schemas), one JSON per line."""
    lines = [json.dumps(t.get("function", t), ensure_ascii=False, separators=(", ", ": ")) for t in tools]
    return load_prompt(PROMPT).render(tools="\n".join(lines))


def prompted_messages(messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]]) -> list[BaseMessage]:
    """``messages`` with the tools in the system message and tool exchanges written as text."""
    block = tools_text(tools)
    out: list[BaseMessage] = []
    if messages and isinstance(messages[0], SystemMessage):
        out.append(SystemMessage(content=f"{text_of(messages[0])}\n\n{block}"))
        rest = messages[1:]
    else:
        out.append(SystemMessage(content=block))
        rest = messages
    for m in rest:
        if isinstance(m, AIMessage) and m.tool_calls:
            calls = "\n".join(
                f"<tool_call>\n{json.dumps({'name': c['name'], 'arguments': c.get('args') or {}}, ensure_ascii=False)}\n</tool_call>"
                for c in m.tool_calls
            )
            out.append(AIMessage(content=f"{text_of(m)}\n{calls}".strip()))
        elif isinstance(m, ToolMessage):
            out.append(HumanMessage(content=f"<tool_response>\n{text_of(m)}\n</tool_response>"))
        else:
            out.append(m)
    return out


def parse_reply(reply: AIMessage, tool_names: Sequence[str]) -> AIMessage:
    """``reply`` with its ``<tool_call>`` blocks turned into tool calls (unknown or unreadable
    ones into invalid tool calls, with the reason), and the text around them as content."""
    text = text_of(reply)
    if not _CALL.search(text):
        fenced = [raw for raw in _FENCED.findall(text) if _names_a_tool(raw, tool_names)]
        if not fenced:
            # the whole reply one bare JSON call: Qwen2.5-0.5B leaves out the tags about as often as not
            if _names_a_tool(text.strip(), tool_names):
                return _with_calls(reply, "", [_read_call(text.strip(), tool_names)])
            return reply
        pattern = _FENCED
        raws = fenced
    else:
        pattern = _CALL
        raws = _CALL.findall(text)
    content = pattern.sub(lambda m: "" if pattern is _CALL or _names_a_tool(m.group(1), tool_names) else m.group(0), text).strip()
    return _with_calls(reply, content, [_read_call(raw, tool_names) for raw in raws])


def _read_call(raw: str, tool_names: Sequence[str]) -> dict[str, Any]:
    """One written call as a tool call, or as an invalid tool call with the reason."""
    call_id = new_call_id()
    try:
        data = json.loads(raw)
        name, args = data["name"], data.get("arguments", data.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                raise TypeError("arguments must be an object") from None
        if not isinstance(args, dict) or not isinstance(name, str):
            raise TypeError("name must be a string and arguments an object")
    except (ValueError, KeyError, TypeError) as exc:
        return invalid_tool_call(name=None, args=raw, id=call_id, error=f"not a readable tool call: {exc}")
    if name not in tool_names:
        return invalid_tool_call(name=name, args=json.dumps(args), id=call_id,
                                 error=f"no tool named {name!r}; the tools are {', '.join(tool_names)}")
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def _with_calls(reply: AIMessage, content: str, read: list[dict[str, Any]]) -> AIMessage:
    calls = [c for c in read if c["type"] == "tool_call"]
    invalid = [c for c in read if c["type"] == "invalid_tool_call"]
    return reply.model_copy(update={"content": content, "tool_calls": calls, "invalid_tool_calls": invalid})


def _names_a_tool(raw: str, tool_names: Sequence[str]) -> bool:
    try:
        data = json.loads(raw)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("name") in tool_names and ("arguments" in data or "parameters" in data)
