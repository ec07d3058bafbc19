"""Prompted tool calls: tools described in the system prompt, the model's own call text parsed."""

from __future__ import annotations

import json

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from anomalygraph.llm.prompted_tools import (
    parse_reply,
    prompted_messages,
    tools_text,
    wants_prompted,
)

TOOLS = [{"type": "function", "function": {"name": "detect", "description": "Run a detector.",
                                            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}]


def test_only_automatic_choice_is_prompted():
    assert wants_prompted({"tools": TOOLS}) and wants_prompted({"tools": TOOLS, "tool_choice": "auto"})
    assert not wants_prompted({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "detect"}}})
    assert not wants_prompted({})


def test_the_tools_join_the_system_message_and_exchanges_become_text():
    history = [
        SystemMessage(content="You are the analyst."),
        HumanMessage(content="Where?"),
        AIMessage(content="", tool_calls=[{"name": "detect", "args": {"path": "x.csv"}, "id": "c1", "type": "tool_call"}]),
        ToolMessage(content="rows 5..9", tool_call_id="c1", name="detect"),
    ]
    out = prompted_messages(history, TOOLS)
    assert out[0].content.startswith("You are the analyst.\n\n# Tools") and '"name": "detect"' in out[0].content
    assert out[2].content == '<tool_call>\n{"name": "detect", "arguments": {"path": "x.csv"}}\n</tool_call>'
    assert isinstance(out[3], HumanMessage) and out[3].content == "<tool_response>\nrows 5..9\n</tool_response>"
    assert '{"name": <function-name>, "arguments": <args-json-object>}' in tools_text(TOOLS)  # braces rendered once


def test_calls_in_tags_or_fenced_json_are_parsed_and_plain_text_is_left_alone():
    tagged = parse_reply(AIMessage(content='Sure.\n<tool_call>\n{"name": "detect", "arguments": {"path": "a.csv"}}\n</tool_call>'), ["detect"])
    assert [(c["name"], c["args"]) for c in tagged.tool_calls] == [("detect", {"path": "a.csv"})] and tagged.content == "Sure."
    fenced = parse_reply(AIMessage(content='```json\n{"name": "detect", "arguments": {"path": "b.csv"}}\n```'), ["detect"])
    assert fenced.tool_calls[0]["args"] == {"path": "b.csv"} and fenced.content == ""
    prose = AIMessage(content='The result is ```json\n{"rows": 5}\n``` as reported.')
    assert parse_reply(prose, ["detect"]) is prose  # JSON that names no tool is an answer
    assert parse_reply(AIMessage(content="Hello there."), ["detect"]).tool_calls == []


def test_a_reply_that_is_one_bare_json_call_is_a_call_but_json_in_prose_is_not():
    bare = parse_reply(AIMessage(content='{\n  "name": "detect",\n  "arguments": {"path": "c.csv"}\n}'), ["detect"])
    assert [(c["name"], c["args"]) for c in bare.tool_calls] == [("detect", {"path": "c.csv"})] and bare.content == ""
    quoted = parse_reply(AIMessage(content='{"name": "detect", "arguments": "{\\"path\\": \\"d.csv\\"}"}'), ["detect"])
    assert quoted.tool_calls[0]["args"] == {"path": "d.csv"}
    broken = parse_reply(AIMessage(content='{"name": "detect", "arguments": "not json"}'), ["detect"])
    assert broken.tool_calls == [] and "arguments must be an object" in broken.invalid_tool_calls[0]["error"]
    answer = AIMessage(content='It called {"name": "detect", "arguments": {}} before.')
    assert parse_reply(answer, ["detect"]) is answer
    other = AIMessage(content='{"name": "plot", "arguments": {}}')
    assert parse_reply(other, ["detect"]) is other  # names no tool of this turn: text


def test_unknown_and_unreadable_calls_become_invalid_calls_with_the_reason():
    bad = parse_reply(AIMessage(content='<tool_call>{"name": "plot", "arguments": {}}</tool_call><tool_call>{oops</tool_call>'), ["detect"])
    assert bad.tool_calls == []
    unknown, unreadable = bad.invalid_tool_calls
    assert unknown["name"] == "plot" and "no tool named 'plot'" in unknown["error"]
    assert unreadable["name"] is None and "not a readable tool call" in unreadable["error"]
    assert json.loads(unknown["args"]) == {}
