"""Plans a small model can follow: what a question asks for decides which tools produce the facts.

The model does one thing it is good at, naming the kind of question from a closed list; the
tools that produce that kind of fact are fixed here, by what each tool returns (not by which
questions an eval happens to ask), and their arguments come from the question or from the
previous tool's result. The model then phrases the answer from those results.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any, Literal

from langchain_core.messages import BaseMessage, ToolMessage
from pydantic import BaseModel, ConfigDict, Field, create_model

QuestionKind = Literal["facts", "when", "where", "channel", "shape", "comparison", "other"]

KINDS: dict[str, str] = {
    "facts": "how many rows, channels or labelled anomaly windows; how often it is sampled; its seasonal period or trend",
    "when": "when (which day or time) an anomaly happens",
    "where": "which rows hold an anomaly",
    "channel": "which channel or sensor deviates, in given rows or at the anomaly",
    "shape": "what the anomaly looks like (spike, level shift, drift, flatline...)",
    "comparison": "which detectors flag an anomaly, and whether they agree",
    "other": "anything else (plots, accuracy against labels, general questions)",
}

PLANS: dict[str, tuple[str, ...]] = {
    # profile_series reports length, channels, sampling, dominant period and the label windows
    "facts": ("profile_series",),
    # detect reports the strongest intervals with rows, times, day and severity
    "when": ("detect",),
    "where": ("detect",),
    # explain_window ranks channels by deviation and names the shape, for rows found first
    "channel": ("detect", "explain_window"),
    "shape": ("detect", "explain_window"),
    # compare_detectors reports the union of intervals with who flags each
    "comparison": ("compare_detectors",),
    "other": (),
}
"""The tools whose results hold each kind of fact, in the order they run."""

# "rows 4187..4199", "rows 4187 to 4199", "4187-4199", "between rows 4187 and 4199"
_ROWS = re.compile(r"(?<![\d.])(\d+)\s*(?:\.\.|-|–|—|\bto\b|\bthrough\b|\band\b)\s*(\d+)(?![\d.])", re.IGNORECASE)


@cache
def kind_schema() -> type[BaseModel]:
    """``QuestionKind``: one field whose choices are the kinds (a grammar / guided decoding enum)."""
    return create_model(
        "QuestionKind",
        __config__=ConfigDict(extra="forbid"),
        __doc__="What the question asks for.",
        kind=(QuestionKind, Field(description="; ".join(f"{k}: {v}" for k, v in KINDS.items()))),
    )


def kinds_menu() -> str:
    return "\n".join(f"- {kind}: {text}" for kind, text in KINDS.items())


def plan_for(kind: str, available: Sequence[str], question: str = "") -> list[str]:
    """The planned tools for ``kind`` that exist here; explain_window needs rows, so a question
    that states them needs no detect first."""
    plan = [t for t in PLANS.get(kind, ()) if t in available]
    if "explain_window" in plan and rows_in(question) is not None:
        plan = [t for t in plan if t != "detect"]
    return plan


def rows_in(question: str) -> tuple[int, int] | None:
    """The row range a question names, if it names exactly one (``"Rows 1200..1225 of x.npy"``)."""
    found = {(int(a), int(b)) for a, b in _ROWS.findall(question) if int(a) <= int(b)}
    return found.pop() if len(found) == 1 else None


def latest_interval(messages: Sequence[BaseMessage]) -> tuple[int, int] | None:
    """The strongest interval of the latest successful detect / compare_detectors result."""
    for m in reversed(messages):
        if not (isinstance(m, ToolMessage) and m.status == "success" and isinstance(m.artifact, dict)):
            continue
        result = m.artifact.get("result")
        if not isinstance(result, dict):
            continue
        intervals = result.get("top_intervals") or result.get("intervals")
        if intervals:
            first = intervals[0]
            return int(first["start"]), int(first["end"])
    return None


def planned_args(tool: str, question: str, turn: Sequence[BaseMessage]) -> dict[str, Any] | None:
    """Arguments for a planned tool besides the file, or ``None`` when they cannot be known here.

    Tools whose other arguments have sensible defaults (detect, compare_detectors, profile_series)
    take none; explain_window takes the rows the question names, else the interval just found.
    """
    if tool != "explain_window":
        return {}
    rows = rows_in(question) or latest_interval(turn)
    if rows is None:
        return None
    return {"start": rows[0], "end": rows[1]}



def key_facts(turn: Sequence[BaseMessage]) -> list[str]:
    """The one-sentence answers the tools wrote (``summary``, ``facts``, ``top_channel``), as
    ``tool: sentence`` lines, in the order the tools ran."""
    lines = []
    for m in turn:
        if not (isinstance(m, ToolMessage) and m.status == "success" and isinstance(m.artifact, dict)):
            continue
        result = m.artifact.get("result")
        if not isinstance(result, dict):
            continue
        said = [result[k] for k in ("facts", "summary") if isinstance(result.get(k), str)]
        if result.get("top_channel"):
            said.append(f"the channel that deviates most is {result['top_channel']}")
        if said:
            lines.append(f"{m.name}: " + "; ".join(said))
    return lines
