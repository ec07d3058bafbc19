"""State of the analyst graph, and typed views of a turn read back from its messages.

The checkpointed state is the conversation itself (``messages``) plus the file it is about;
the tool-call budget is counted from the messages of the current turn, so a resumed thread, a
LangGraph server run and a CLI run all count it the same way.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.graph import add_messages
from pydantic import BaseModel, ConfigDict, Field, create_model

from anomalygraph.llm.messages import text_of

ANSWER = "answer"

Outcome = Literal["ok", "invalid_arguments", "unknown_tool", "tool_error", "duplicate", "not_run"]
"""What became of one tool call: ``ok`` ran and returned a result; the others are errors the model sees."""


def reset_or_add(left: list[str] | None, right: list[str] | None) -> list[str]:
    """Accumulate within a turn; ``None`` (sent by the ``begin`` node) starts the list afresh."""
    if right is None:
        return []
    return [*(left or []), *right]


class AnalystInput(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    file: str | None


class AnalystState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    file: str | None
    """The series this conversation is about (the CLI's FILE); the model sees it in the system prompt."""
    next_action: str | None
    """Guided mode: the tool the plan step chose, or ``answer``."""
    notes: Annotated[list[str], reset_or_add]
    """Fallbacks taken in the current turn (budget reached, unusable plan), for the user and the evals."""


class AnalystOutput(TypedDict, total=False):
    messages: list[AnyMessage]
    notes: list[str]


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
