"""What the model sees of a conversation: compact tool results and a history that fits its window.

The thread keeps everything (full tool results ride on each ``ToolMessage.artifact``); the
model gets a view: results as short YAML (floats to 4 significant digits, constant channels
and long lists cut), the current turn whole, earlier turns newest first while they fit, and,
in the text transcript, tool exchanges written out as ordinary messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import yaml
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    trim_messages,
)

from anomalygraph.agents.analyst.turns import split_turns, turn_start
from anomalygraph.llm.messages import text_of
from anomalygraph.prompts import load_prompt

Transcript = Literal["native", "text"]
PROMPTS = (
    "analyst/exchange_result", "analyst/exchange_error",
    "analyst/recap_header", "analyst/recap_question", "analyst/recap_tools", "analyst/recap_failed", "analyst/recap_answer",
)
"""The prompts the text transcript is written with."""
MAX_ITEMS = 8
OLD_RESULT_CHARS = 300


def _shrink(obj: Any) -> Any:
    if isinstance(obj, float):
        return float(f"{obj:.4g}")
    if isinstance(obj, dict):
        return {
            k: _shrink(v) for k, v in obj.items()
            if v is not None and v != [] and v != {} and v != "" and not (k == "constant" and v is False)
        }
    if isinstance(obj, list | tuple):
        items = [_shrink(v) for v in obj]
        # per-channel statistics of a constant channel say nothing the count does not
        kept = [v for v in items if not (isinstance(v, dict) and v.get("constant") is True)]
        dropped = len(items) - len(kept)
        if len(kept) > MAX_ITEMS:
            kept = [*kept[:MAX_ITEMS], f"... {len(kept) - MAX_ITEMS} more"]
        if dropped:
            kept.append(f"({dropped} constant channel(s) omitted)")
        return kept
    return obj


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 14)].rstrip() + " …(truncated)"


def compact_result(result: Any, limit: int) -> str:
    """A tool result as short YAML a small model can read, at most ``limit`` characters."""
    if isinstance(result, str):
        return cut(result, limit)
    text = yaml.safe_dump(_shrink(result), sort_keys=False, default_flow_style=None, width=160, allow_unicode=True)
    return cut(text.strip(), limit)


def summarize(result: Any) -> str:
    """One line about a tool result, for progress displays (the model sees :func:`compact_result`)."""
    if not isinstance(result, dict):
        return cut(" ".join(str(result).split()), 160)
    if "top_intervals" in result:
        top = result["top_intervals"][:1]
        head = f", strongest rows {top[0]['start']}..{top[0]['end']} (peak score {top[0].get('peak_score') or 0:.3g})" if top else ""
        return f"{result.get('detector')}: {result.get('n_intervals', 0)} interval(s), {result.get('n_flagged', 0)} rows flagged{head}"
    if "intervals" in result and "rank_correlation" in result:
        top = result["intervals"][:1]
        head = f", most agreed rows {top[0]['start']}..{top[0]['end']} ({top[0]['agreement']:.0%})" if top else ""
        return f"{len(result['intervals'])} interval(s) across {', '.join(result.get('detectors', []))}{head}"
    if "metrics" in result:
        return f"{result.get('detector')}: VUS-PR {result['metrics'].get('vus_pr', float('nan')):.3f}"
    if "deviating_channels" in result:
        return cut(str(result.get("summary", "")), 160)
    if "channels_shown" in result:
        return f"saved {result.get('path')}"
    summary = result.get("summary")
    if isinstance(summary, dict) and "length" in summary:
        text = f"{summary['length']} rows x {summary.get('n_channels', '?')} channel(s)"
        if summary.get("train_length"):
            text += f", training rows 0..{summary['train_length'] - 1}"
        if summary.get("n_label_events") is not None:
            text += f", {summary['n_label_events']} labelled event(s)"
        if "channels_profiled" in result:
            text += f"; profiled {len(result['channels_profiled'])} channel(s)"
        return text
    return cut(" ".join(compact_result(result, 400).split()), 160)


def render_call(name: str, args: dict[str, Any] | str) -> str:
    """``detect(path=x.csv, detector=iforest)``: a call as one line, without quotes.

    Quotes are avoided because llama-cpp-python's chat template HTML-escapes message text, and a
    small model then copies ``&#34;`` into its answers.
    """
    if isinstance(args, str):
        return f"{name}({cut(args, 200)})"
    parts = []
    for key, value in args.items():
        shown = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        if isinstance(shown, str) and shown.endswith("\n..."):
            shown = shown[: -len("\n...")]
        parts.append(f"{key}={shown}")
    return f"{name}({cut(', '.join(parts), 300)})"


def _as_text(message: BaseMessage, calls: dict[str, tuple[str, Any]]) -> BaseMessage | None:
    """One message of the text transcript: a tool exchange becomes one user-role message.

    The call is written into its result rather than as an assistant turn, so the assistant role
    holds only answers (a small model imitates whatever its own turns look like).
    """
    if isinstance(message, ToolMessage):
        meta = message.artifact if isinstance(message.artifact, dict) else {}
        name, args = calls.get(message.tool_call_id, (message.name or "tool", meta.get("args", {})))
        call = render_call(name, args)
        exchange = load_prompt("analyst/exchange_result" if message.status == "success" else "analyst/exchange_error")
        return HumanMessage(content=exchange.render(call=call, result=text_of(message)))
    if isinstance(message, AIMessage) and (message.tool_calls or message.invalid_tool_calls):
        said = text_of(message).strip()
        return AIMessage(content=said) if said else None
    if isinstance(message, SystemMessage):
        return None
    return message


def _shorten_results(turn: list[BaseMessage], budget: int) -> list[BaseMessage]:
    """Cut older tool results of the current turn until it fits; the newest result stays whole."""
    size = sum(len(text_of(m)) for m in turn)
    out = list(turn)
    tool_idx = [i for i, m in enumerate(out) if isinstance(m, ToolMessage)][:-1]
    for i in tool_idx:
        if size <= budget:
            break
        m = out[i]
        text = text_of(m)
        if len(text) > OLD_RESULT_CHARS:
            short = cut(text, OLD_RESULT_CHARS)
            out[i] = m.model_copy(update={"content": short})
            size -= len(text) - len(short)
    return out


def model_view(messages: Sequence[BaseMessage], *, transcript: Transcript, history_chars: int) -> list[BaseMessage]:
    """The messages a model call gets (without the system prompt), within ``history_chars``.

    Whole earlier turns are kept newest first while they fit, so a tool call is never separated
    from its result.
    """
    messages = [m for m in messages if not isinstance(m, SystemMessage)]
    start = turn_start(messages)
    current = _shorten_results(messages[start:], history_chars)
    used = sum(len(text_of(m)) for m in current)
    if transcript == "text":
        return _text_view(split_turns(messages[:start]), current, history_chars - used)
    # the longest run of messages that fits, cut back to a question: whole turns, newest first
    earlier = trim_messages(messages[:start], max_tokens=max(history_chars - used, 0), token_counter=_chars,
                            strategy="last", start_on="human", allow_partial=False)
    return earlier + current


def _chars(messages: Sequence[BaseMessage]) -> int:
    return sum(len(text_of(m)) for m in messages)


def _calls_by_id(messages: Sequence[BaseMessage]) -> dict[str, tuple[str, Any]]:
    return {
        c["id"]: (c["name"], c.get("args") or {})
        for m in messages if isinstance(m, AIMessage)
        for c in [*m.tool_calls, *m.invalid_tool_calls] if c.get("id")
    }


def _recap(turn: list[BaseMessage]) -> str:
    """An earlier turn in a few lines: the question, the calls made, the answer given."""
    calls = _calls_by_id(turn)
    lines = [load_prompt("analyst/recap_question").render(question=cut(text_of(turn[0]), 300))]
    failed = " " + load_prompt("analyst/recap_failed").render()
    made = [render_call(*calls.get(m.tool_call_id, (m.name or "tool", {}))) + ("" if m.status == "success" else failed)
            for m in turn if isinstance(m, ToolMessage)]
    if made:
        lines.append("  " + load_prompt("analyst/recap_tools").render(calls=cut("; ".join(made), 400)))
    answer = next((text_of(m) for m in reversed(turn) if isinstance(m, AIMessage) and not m.tool_calls and text_of(m)), "")
    if answer:
        lines.append("  " + load_prompt("analyst/recap_answer").render(answer=cut(answer, 400)))
    return "\n".join(lines)


def _text_view(turns: list[list[BaseMessage]], current: list[BaseMessage], budget: int) -> list[BaseMessage]:
    """The text transcript: earlier turns recapped in one user-role message, the current turn whole.

    Earlier assistant turns are not replayed: a small model copies its own previous answers
    instead of answering the new question (measured with the embedded 0.5B model).
    """
    recaps: list[str] = []
    for t in reversed(turns):
        recap = _recap(t)
        if sum(map(len, recaps)) + len(recap) > max(budget, 0):
            break
        recaps.insert(0, recap)
    calls = _calls_by_id(current)
    out: list[BaseMessage] = []
    if recaps:
        out.append(HumanMessage(content=load_prompt("analyst/recap_header").render(recaps="\n".join(recaps))))
    out += [t for m in current if (t := _as_text(m, calls)) is not None]
    return out
