"""State of the analyst graph (the answer schemas and turn views are the role's: ``agents.analyst.turns``).

The checkpointed state is the conversation itself (``messages``) plus the file it is about;
the tool-call budget is counted from the messages of the current turn, so a resumed thread, a
LangGraph server run and a CLI run all count it the same way.
"""

from __future__ import annotations

from typing import Annotated, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph import add_messages


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
    kind: str | None
    """Guided mode with the planner: what the question asks for (``agents.analyst.plans.KINDS``)."""
    planned: list[str] | None
    """Guided mode with the planner: the planned tools not yet run, the next one first."""
    notes: Annotated[list[str], reset_or_add]
    """Fallbacks taken in the current turn (budget reached, unusable plan), for the user and the evals."""


class AnalystOutput(TypedDict, total=False):
    messages: list[AnyMessage]
    notes: list[str]
