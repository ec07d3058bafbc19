"""``structured(model, Schema, messages)``: a validated pydantic object from a chat model, or a
clear error; never a default, never a partial object.

How the model is asked depends on its declared capabilities:

* ``json_schema`` (vLLM): ``response_format`` json_schema, so decoding itself follows the schema;
* ``tool_calling`` (the embedded llama.cpp server, most others): the schema becomes the one tool
  and the call is forced (llama.cpp then constrains decoding with a grammar built from it);
* neither: the schema goes into the system prompt and the reply is parsed as JSON.

Whatever comes back is validated with pydantic. On failure the model sees its own answer and the
validation errors and tries again, ``retries`` times at most; then :class:`StructuredOutputError`
names the schema and the last error. Transport failures are not repaired here: they arrive as
:class:`LLMError` from the client, which already retried what can be retried.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ValidationError

from anomalygraph.core.errors import ConfigError
from anomalygraph.core.llm_settings import ModelCapabilities
from anomalygraph.llm.errors import StructuredOutputError
from anomalygraph.llm.factory import capabilities_of
from anomalygraph.llm.messages import text_of
from anomalygraph.prompts import load_prompt

logger = logging.getLogger("anomalygraph.llm.structured")

M = TypeVar("M", bound=BaseModel)
Method = Literal["json_schema", "function_calling", "json_prompt"]

PROMPTS = (
    "llm/structured_json", "llm/structured_tool", "llm/structured_repair",
    "llm/structured_again_json", "llm/structured_again_tool", "llm/structured_again_schema",
)
"""Every prompt :func:`structured` may send, for the provenance lists of its callers."""
DEFAULT_RETRIES = 2
GRAMMAR_BOUND_LIMIT = 100
_MAX_PROBLEMS = 8
_MAX_ECHO = 2000
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class _Invalid(Exception):
    """One attempt failed; ``answer`` is what the model said, ``problems`` why it does not fit."""

    def __init__(self, problems: str, answer: str) -> None:
        super().__init__(problems)
        self.problems = problems
        self.answer = answer


def choose_method(capabilities: ModelCapabilities | None) -> Method:
    """Schema-guided decoding where the server has it, else a forced tool call, else plain JSON."""
    if capabilities is None:
        return "function_calling"
    if capabilities.json_schema:
        return "json_schema"
    if capabilities.tool_calling:
        return "function_calling"
    return "json_prompt"


def describe_errors(exc: ValidationError, limit: int = _MAX_PROBLEMS) -> str:
    """Validation errors as short lines a small model can act on: field path, problem, value."""
    lines = []
    errors = exc.errors(include_url=False)
    for err in errors[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(the object)"
        value = err.get("input")
        shown = json.dumps(value, default=str) if not isinstance(value, dict) else "{...}"
        if len(shown) > 80:
            shown = shown[:77] + "..."
        lines.append(f"- {loc}: {err['msg']} (got {shown})")
    if len(errors) > limit:
        lines.append(f"- and {len(errors) - limit} more")
    return "\n".join(lines)


def extract_json(text: str) -> Any:
    """The JSON object in a reply: without reasoning blocks, code fences or surrounding prose."""
    text = _THINK.sub("", text).strip()
    if fenced := _FENCE.search(text):
        text = fenced.group(1).strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0:
        raise _Invalid("the reply contains no JSON object", text[:_MAX_ECHO] or "(empty reply)")
    if end < start:
        raise _Invalid("the JSON object in the reply is cut off (no closing brace)", text[:_MAX_ECHO])
    try:
        return json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise _Invalid(f"the reply is not valid JSON: {exc.msg} at character {exc.pos}", text[:_MAX_ECHO]) from exc


def _validate(schema: type[M], data: Any, answer: str) -> M:
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise _Invalid(describe_errors(exc), answer) from exc


def _from_tool_call(schema: type[M], name: str, reply: BaseMessage) -> M:
    calls = getattr(reply, "tool_calls", None) or []
    for call in calls:
        if call.get("name") == name:
            args = call.get("args") or {}
            return _validate(schema, args, json.dumps(args, default=str)[:_MAX_ECHO])
    invalid = getattr(reply, "invalid_tool_calls", None) or []
    for call in invalid:
        if call.get("name") in (name, None):
            raw = str(call.get("args") or "")
            raise _Invalid(f"the arguments of {name} are not valid JSON ({call.get('error') or 'parse error'})", raw[:_MAX_ECHO])
    if calls:
        raise _Invalid(f"called {calls[0].get('name')!r} instead of {name}", json.dumps(calls[0].get("args"), default=str)[:_MAX_ECHO])
    text = text_of(reply)
    if "{" in text:  # some servers put the call in the text; it is validated all the same
        return _validate(schema, extract_json(text), text[:_MAX_ECHO])
    raise _Invalid(f"no call to {name}; the model answered in prose", text[:_MAX_ECHO] or "(empty reply)")


def _from_content(schema: type[M], reply: BaseMessage) -> M:
    text = text_of(reply)
    return _validate(schema, extract_json(text), text[:_MAX_ECHO])


def _with_instruction(messages: list[BaseMessage], instruction: str) -> list[BaseMessage]:
    """Put ``instruction`` in the system message (llama.cpp lists the tools there too)."""
    if messages and isinstance(messages[0], SystemMessage):
        first = messages[0]
        return [SystemMessage(content=f"{text_of(first)}\n\n{instruction}"), *messages[1:]]
    return [SystemMessage(content=instruction), *messages]


_LENGTH_KEYS = {"maxLength": "characters", "maxItems": "items", "minLength": "characters", "minItems": "items"}


def grammar_safe(node: Any, limit: int = GRAMMAR_BOUND_LIMIT) -> Any:
    """The schema without length bounds above ``limit``, which llama.cpp unrolls into huge grammars.

    llama-cpp-python's JSON-schema-to-grammar converter expands ``maxLength: 2000`` into 2000 nested
    optional rules; the server then fails to parse the grammar and crashes (measured: SIGSEGV
    with the rule bank's AnomalyPrior). The bound moves into the description, and pydantic still
    enforces it on the answer, so nothing invalid gets through.
    """
    if isinstance(node, list):
        return [grammar_safe(item, limit) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: grammar_safe(value, limit) for key, value in node.items()}
    notes = []
    for key, unit in _LENGTH_KEYS.items():
        bound = out.get(key)
        if isinstance(bound, int) and bound > limit:
            del out[key]
            notes.append(f"{'at most' if key.startswith('max') else 'at least'} {bound} {unit}")
    if notes:
        described = out.get("description")
        out["description"] = f"{described} ({', '.join(notes)})" if described else ", ".join(notes)
    return out


def _bind(model: BaseChatModel | Runnable, schema: type[BaseModel], name: str, method: Method) -> Runnable:
    if method == "function_calling":
        if not hasattr(model, "bind_tools"):
            raise ConfigError(f"{type(model).__name__} cannot bind tools; declare tool_calling=false for it")
        tool = convert_to_openai_tool(schema)
        tool["function"]["parameters"] = grammar_safe(tool["function"]["parameters"])
        return model.bind_tools([tool], tool_choice=name)
    if method == "json_schema":
        response_format = {"type": "json_schema", "json_schema": {"name": name, "schema": schema.model_json_schema()}}
        return model.bind(response_format=response_format)
    return model


def structured(
    model: BaseChatModel | Runnable,
    schema: type[M],
    messages: str | Sequence[BaseMessage],
    *,
    retries: int | None = None,
    method: Method | None = None,
    capabilities: ModelCapabilities | None = None,
) -> M:
    """A valid ``schema`` instance from ``model``, or :class:`StructuredOutputError` after ``retries`` repairs.

    ``retries`` defaults to the model's ``repair_retries`` setting (2); ``method`` and
    ``capabilities`` default to what the model was declared with.
    """
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise ConfigError(f"structured() needs a pydantic model class, got {schema!r}")
    caps = capabilities or capabilities_of(model)
    method = method or choose_method(caps)
    if retries is None:
        retries = int(getattr(model, "repair_retries", DEFAULT_RETRIES))
    if retries < 0:
        raise ConfigError(f"retries must be 0 or more, got {retries}")
    name = schema.__name__
    convo: list[BaseMessage] = [HumanMessage(content=messages)] if isinstance(messages, str) else list(messages)
    if method == "json_prompt":
        instruction = load_prompt("llm/structured_json").render(
            schema=name, json_schema=json.dumps(schema.model_json_schema(), separators=(",", ":"))
        )
        again = load_prompt("llm/structured_again_json").render(schema=name)
    else:
        instruction = load_prompt("llm/structured_tool").render(schema=name)
        again = load_prompt(
            "llm/structured_again_tool" if method == "function_calling" else "llm/structured_again_schema"
        ).render(schema=name)
    convo = _with_instruction(convo, instruction)
    bound = _bind(model, schema, name, method)
    repair = load_prompt("llm/structured_repair")

    attempts = retries + 1
    last: _Invalid | None = None
    for attempt in range(1, attempts + 1):
        reply = bound.invoke(convo)
        if not isinstance(reply, BaseMessage):
            raise ConfigError(f"structured() needs a chat model; {type(model).__name__} returned {type(reply).__name__}")
        try:
            result = _from_tool_call(schema, name, reply) if method == "function_calling" else _from_content(schema, reply)
        except _Invalid as exc:
            last = exc
            logger.warning(
                "structured %s attempt %d/%d invalid: %s", name, attempt, attempts, exc.problems.replace("\n", " "),
                extra={"schema": name, "attempt": attempt, "method": method},
            )
            convo = [
                *convo,
                HumanMessage(
                    content=repair.render(
                        # a parser's message can quote the whole raw answer: cap it for small context windows
                        schema=name, answer=exc.answer, problems=exc.problems[:_MAX_ECHO], instruction=again
                    )
                ),
            ]
            continue
        logger.info(
            "structured %s valid on attempt %d/%d (%s)", name, attempt, attempts, method,
            extra={"schema": name, "attempt": attempt, "method": method},
        )
        return result
    assert last is not None
    raise StructuredOutputError(name, attempts, last.problems.replace("\n", " "), last.answer)

