from __future__ import annotations

import json
from typing import Literal

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, model_validator

from anomalygraph.core.errors import ConfigError
from anomalygraph.core.llm_settings import CAPABILITY_PRESETS, ModelCapabilities, Provider
from anomalygraph.llm.errors import StructuredOutputError
from anomalygraph.llm.structured import choose_method, extract_json, structured
from tests.llm.fakes import ScriptedChatModel, bad_json_call, call


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    kind: Literal["spike", "level_shift", "drift"]

    @model_validator(mode="after")
    def _order(self) -> Window:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class Finding(BaseModel):
    """What the analyst found."""

    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=3)
    windows: list[Window] = Field(min_length=1, max_length=3)
    confidence: float = Field(ge=0, le=1)


GOOD = {"summary": "one spike", "windows": [{"start": 5, "end": 9, "kind": "spike"}], "confidence": 0.8}
BAD = {"summary": "one spike", "windows": [{"start": 9, "end": 5, "kind": "spike"}], "confidence": 1.7}
TOOLS = CAPABILITY_PRESETS[Provider.embedded]
GUIDED = CAPABILITY_PRESETS[Provider.vllm]
PLAIN = ModelCapabilities(vision=False, tool_calling=False, auto_tool_choice=False, json_schema=False, legacy_max_tokens=False)


def test_valid_first_answer_through_a_forced_tool_call() -> None:
    model = ScriptedChatModel(script=[call("Finding", GOOD)])
    result = structured(model, Finding, "What happened?", capabilities=TOOLS)
    assert result == Finding.model_validate(GOOD)
    assert len(model.requests) == 1
    sent = model.requests[0]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "Finding"}}
    assert [t["function"]["name"] for t in sent["tools"]] == ["Finding"]
    # llama.cpp lists tools inside the system message, so there must be one.
    assert isinstance(sent["messages"][0], SystemMessage) and "Finding" in sent["messages"][0].content


def test_existing_system_message_is_kept_and_extended() -> None:
    model = ScriptedChatModel(script=[call("Finding", GOOD)])
    structured(model, Finding, [SystemMessage(content="You are terse."), HumanMessage(content="Go")], capabilities=TOOLS)
    system = model.requests[0]["messages"][0]
    assert system.content.startswith("You are terse.") and "Finding" in system.content
    assert sum(isinstance(m, SystemMessage) for m in model.requests[0]["messages"]) == 1


def test_invalid_answer_is_repaired_with_the_validation_errors_shown() -> None:
    model = ScriptedChatModel(script=[call("Finding", BAD), call("Finding", GOOD)])
    result = structured(model, Finding, "What happened?", capabilities=TOOLS, retries=2)
    assert result.confidence == 0.8
    assert len(model.requests) == 2
    repair = model.requests[1]["messages"][-1]
    assert isinstance(repair, HumanMessage)
    text = repair.content
    assert "not a valid Finding" in text
    assert "confidence" in text and "less than or equal to 1" in text  # the field and the rule
    assert "end 5 is before start 9" in text  # the model validator's message
    assert '"confidence": 1.7' in text  # its own answer, echoed back


def test_retry_budget_then_clear_error_naming_schema_and_last_error() -> None:
    model = ScriptedChatModel(script=[bad_json_call("Finding", '{"summary": "x", "windows": [')])
    with pytest.raises(StructuredOutputError) as info:
        structured(model, Finding, "What happened?", capabilities=TOOLS, retries=2)
    err = info.value
    assert len(model.requests) == 3  # first try + 2 repairs, then no more
    assert err.schema == "Finding" and err.attempts == 3
    assert "no valid Finding in 3 attempts" in str(err)
    assert "not valid JSON" in err.last_error
    assert err.last_output is not None and err.last_output.startswith('{"summary"')


def test_keeps_invalid_json_text_answers_then_raises() -> None:
    model = ScriptedChatModel(script=[AIMessage(content="Sure! Here it is: {summary: one spike}")])
    with pytest.raises(StructuredOutputError, match="not valid JSON"):
        structured(model, Finding, "x", capabilities=PLAIN, retries=1)
    assert len(model.requests) == 2
    cut = ScriptedChatModel(script=[AIMessage(content='{"summary": "one spike", "windows": [')])
    with pytest.raises(StructuredOutputError, match="cut off"):
        structured(cut, Finding, "x", capabilities=PLAIN, retries=0)


def test_zero_retries_means_one_attempt() -> None:
    model = ScriptedChatModel(script=[call("Finding", BAD)])
    with pytest.raises(StructuredOutputError, match="in 1 attempt;"):
        structured(model, Finding, "x", capabilities=TOOLS, retries=0)
    assert len(model.requests) == 1


def test_prose_instead_of_a_call_is_an_error_not_a_default() -> None:
    model = ScriptedChatModel(script=[AIMessage(content="I think there was a spike."), call("Finding", GOOD)])
    result = structured(model, Finding, "x", capabilities=TOOLS)
    assert result.summary == "one spike"
    assert "no call to Finding" in model.requests[1]["messages"][-1].content


def test_wrong_tool_name_is_rejected() -> None:
    model = ScriptedChatModel(script=[call("Other", GOOD)])
    with pytest.raises(StructuredOutputError, match="called 'Other' instead of Finding"):
        structured(model, Finding, "x", capabilities=TOOLS, retries=0)


def test_schema_guided_decoding_sends_response_format() -> None:
    model = ScriptedChatModel(script=[AIMessage(content=json.dumps(GOOD))])
    result = structured(model, Finding, "x", capabilities=GUIDED)
    assert result.windows[0].kind == "spike"
    fmt = model.requests[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Finding"
    assert fmt["json_schema"]["schema"] == Finding.model_json_schema()
    assert "tools" not in model.requests[0]


def test_plain_json_mode_puts_the_schema_in_the_prompt_and_strips_wrapping() -> None:
    reply = "<think>hmm</think>Here you go:\n```json\n" + json.dumps(GOOD) + "\n```"
    model = ScriptedChatModel(script=[AIMessage(content=reply)])
    result = structured(model, Finding, "x", capabilities=PLAIN)
    assert result.confidence == 0.8
    system = model.requests[0]["messages"][0].content
    assert '"confidence"' in system and "JSON schema" in system


def test_capabilities_are_read_from_model_metadata() -> None:
    model = ScriptedChatModel(
        script=[AIMessage(content=json.dumps(GOOD))], metadata={"anomalygraph_capabilities": GUIDED.model_dump()}
    )
    structured(model, Finding, "x")
    assert "response_format" in model.requests[0]


def test_choose_method() -> None:
    assert choose_method(GUIDED) == "json_schema"
    assert choose_method(TOOLS) == "function_calling"
    assert choose_method(PLAIN) == "json_prompt"
    assert choose_method(None) == "function_calling"


def test_extract_json_edge_cases() -> None:
    assert extract_json('noise {"a": {"b": 1}} trailing') == {"a": {"b": 1}}
    with pytest.raises(Exception, match="no JSON object"):
        extract_json("nothing here")


def test_rejects_non_schema_and_negative_retries() -> None:
    model = ScriptedChatModel(script=[call("Finding", GOOD)])
    with pytest.raises(ConfigError):
        structured(model, dict, "x")  # type: ignore[type-var]
    with pytest.raises(ConfigError):
        structured(model, Finding, "x", retries=-1)


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(max_length=20)
    body: str = Field(max_length=2000, description="the text")
    tags: list[str] = Field(max_length=500)


def test_large_length_bounds_leave_the_grammar_but_are_still_enforced() -> None:
    """llama.cpp unrolls maxLength 2000 into a grammar it cannot parse (the server crashed)."""
    model = ScriptedChatModel(script=[call("Report", {"title": "t", "body": "x" * 2001, "tags": []}),
                                      call("Report", {"title": "t", "body": "short", "tags": ["a"]})])
    result = structured(model, Report, "x", capabilities=TOOLS)
    assert result.body == "short"
    params = model.requests[0]["tools"][0]["function"]["parameters"]
    props = params["properties"]
    assert props["title"]["maxLength"] == 20  # small bounds stay in the grammar
    assert "maxLength" not in props["body"] and "at most 2000 characters" in props["body"]["description"]
    assert "maxItems" not in props["tags"] and "at most 500 items" in props["tags"]["description"]
    assert "at most 2000 characters" in model.requests[1]["messages"][-1].content  # pydantic's own message
