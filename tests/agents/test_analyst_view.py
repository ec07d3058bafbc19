"""The native view keeps whole earlier turns, newest first, while they fit (LangChain's trim_messages)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from anomalygraph.agents.analyst.view import model_view


def conversation(sizes: list[tuple[int, int, int]]) -> list:
    messages = []
    for k, (q, r, a) in enumerate(sizes):
        messages += [
            HumanMessage(content=f"q{k}" + "x" * q),
            AIMessage(content="", tool_calls=[{"name": "t", "args": {}, "id": f"c{k}", "type": "tool_call"}]),
            ToolMessage(content="r" * r, tool_call_id=f"c{k}", name="t"),
            AIMessage(content=f"a{k}" + "y" * a),
        ]
    return [*messages, HumanMessage(content="now")]


def whole_turns_that_fit(messages: list, budget: int) -> list:
    """The rule written out: earlier turns, newest first, each whole, while the total fits."""
    turns = [messages[i : i + 4] for i in range(0, len(messages) - 1, 4)]
    used, kept = len("now"), []
    for t in reversed(turns):
        size = sum(len(m.content) for m in t)
        if used + size > budget:
            break
        kept = t + kept
        used += size
    return [*kept, messages[-1]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300), st.integers(0, 300)), max_size=8),
       st.integers(1000, 3000))
def test_native_view_keeps_the_newest_whole_turns_that_fit(sizes, budget):
    messages = conversation(sizes)
    assert model_view(messages, transcript="native", history_chars=budget) == whole_turns_that_fit(messages, budget)


def test_a_turn_too_large_drops_it_and_everything_older():
    messages = conversation([(10, 10, 10), (10, 5000, 10), (10, 10, 10)])
    view = model_view(messages, transcript="native", history_chars=1000)
    assert [m.content for m in view if isinstance(m, HumanMessage)] == ["q2" + "x" * 10, "now"]
