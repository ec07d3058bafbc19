"""The analyst's answer schemas and typed views of a turn, read back from its messages.

Pure functions over LangChain messages, shared by the analyst graph, the chat CLI and the eval.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from pydantic import BaseModel, ConfigDict, Field, create_model

from anomalygraph.llm.messages import text_of

ANSWER = "answer"

Outcome = Literal["ok", "invalid_arguments", "unknown_tool", "tool_error", "duplicate", "not_run"]
"""What became of one tool call: ``ok`` ran and returned a result; the others are errors the model sees."""



@cache
def next_action_schema(names: tuple[str, ...], allow_answer: bool = True) -> type[BaseModel]:
    """``NextAction``: one field whose choices are the available tools (plus ``answer`` when allowed).

    Built per tool set, so the model can only name a tool that exists (llama.cpp turns the enum
    into a grammar; vLLM into guided decoding).
    """
    choices = Literal[(*names, ANSWER) if allow_answer else names]  # type: ignore[valid-type]
    return create_model(
        "NextAction",
        __config__=ConfigDict(extra="forbid"),
        __doc__="The next step: a tool to call, or answer to reply to the user.",
        action=(choices, Field(description="name of the tool to call next, or 'answer' when the results suffice")),
    )


# ------------------------------------------------------------ turn views
class CallRecord(BaseModel):
    """One tool call of a turn, as the tools node recorded it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    args: dict[str, Any] | str
    outcome: Outcome
    seconds: float = 0.0
    error: str | None = None
    plot: str | None = None


class TurnRecord(BaseModel):
    """The last question of a thread, the calls made for it, and the answer."""

    model_config = ConfigDict(extra="forbid")

    question: str
    answer: str | None
    calls: list[CallRecord]
    notes: list[str] = Field(default_factory=list)

    @property
    def valid_calls(self) -> int:
        return sum(c.outcome == "ok" for c in self.calls)

    @property
    def made_calls(self) -> int:
        """Calls the model made and that were attempted (``not_run`` ones were refused by the budget)."""
        return sum(c.outcome != "not_run" for c in self.calls)


def turn_start(messages: list[BaseMessage]) -> int:
    """Index of the last human message (the current turn's question); 0 when there is none."""
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return i
    return 0


def steps_used(messages: list[BaseMessage]) -> int:
    """Tool calls answered so far in the current turn, errors included: each one costs a step."""
    return sum(isinstance(m, ToolMessage) for m in messages[turn_start(messages) :])


def split_turns(messages: Sequence[BaseMessage]) -> list[list[BaseMessage]]:
    """A thread's messages cut into turns, each starting at a question (what came before one is a turn of its own)."""
    turns: list[list[BaseMessage]] = []
    for m in messages:
        if isinstance(m, HumanMessage) or not turns:
            turns.append([])
        turns[-1].append(m)
    return turns


def last_turn(messages: list[BaseMessage], notes: list[str] | None = None) -> TurnRecord:
    start = turn_start(messages)
    turn = messages[start:]
    question = text_of(turn[0]) if turn and isinstance(turn[0], HumanMessage) else ""
    calls: list[CallRecord] = []
    for m in turn:
        if isinstance(m, ToolMessage):
            meta = m.artifact if isinstance(m.artifact, dict) else {}
            calls.append(CallRecord(
                name=m.name or "?", args=meta.get("args", {}), outcome=meta.get("outcome", "ok" if m.status == "success" else "tool_error"),
                seconds=float(meta.get("seconds", 0.0)), error=None if m.status == "success" else text_of(m),
                plot=meta.get("plot"),
            ))
    answer = None
    if turn and isinstance(turn[-1], AIMessage) and not (turn[-1].tool_calls or turn[-1].invalid_tool_calls):
        answer = text_of(turn[-1])
    return TurnRecord(question=question, answer=answer, calls=calls, notes=list(notes or []))
