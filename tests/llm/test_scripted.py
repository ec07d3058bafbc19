"""The scripted chat model read from a JSON file: the ``scripted`` provider of the settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel

from anomalygraph.core.errors import ConfigError
from anomalygraph.core.llm_settings import CAPABILITY_PRESETS, Provider
from anomalygraph.core.settings import get_settings
from anomalygraph.llm.factory import capabilities_of, get_chat_model
from anomalygraph.llm.scripted import ScriptedChatModel, load_script
from anomalygraph.llm.structured import structured

CAPS = CAPABILITY_PRESETS[Provider.scripted]


def write(tmp_path: Path, replies: object, name: str = "script.json") -> Path:
    path = tmp_path / name
    path.write_text(replies if isinstance(replies, str) else json.dumps(replies))
    return path


def test_replies_in_order_then_the_last_repeats(tmp_path: Path) -> None:
    path = write(tmp_path, [
        "first answer",
        {"tool_calls": [{"name": "load", "args": {"path": "x.csv"}}, {"name": "profile"}], "content": "calling"},
        {"content": "plain object answer"},
        {"tool_calls": [{"name": "detect", "args": {"detector": "iforest"}}]},
    ])
    model = ScriptedChatModel.from_file(path, CAPS)
    assert model.invoke("a").content == "first answer"
    two = model.invoke("b")
    assert two.content == "calling"
    assert [(c["name"], c["args"]) for c in two.tool_calls] == [("load", {"path": "x.csv"}), ("profile", {})]
    three = model.invoke("c")
    assert three.content == "plain object answer" and three.tool_calls == []
    last = [model.invoke("d") for _ in range(2)]
    assert all(m.tool_calls[0]["name"] == "detect" for m in last)
    ids = [m.tool_calls[0]["id"] for m in last] + [c["id"] for c in two.tool_calls]
    assert len(set(ids)) == len(ids)  # a repeated reply gets fresh tool-call ids
    assert len(model.calls) == 5 and model.calls[0] == [HumanMessage(content="a")]


def test_capabilities_travel_with_the_model(tmp_path: Path) -> None:
    model = ScriptedChatModel.from_file(write(tmp_path, ["x"]), CAPS)
    assert capabilities_of(model) == CAPS
    assert capabilities_of(model.bind_tools([{"type": "function", "function": {"name": "f", "parameters": {}}}])) == CAPS


class Finding(BaseModel):
    start: int
    end: int


def test_structured_output_through_a_forced_tool_call(tmp_path: Path) -> None:
    path = write(tmp_path, [{"tool_calls": [{"name": "Finding", "args": {"start": 3, "end": 9}}]}])
    model = ScriptedChatModel.from_file(path, CAPS)
    assert structured(model, Finding, "where?") == Finding(start=3, end=9)
    assert model.bound[-1]["tool_choice"] == "Finding"  # no auto tool choice: the tool is forced


def test_get_chat_model_builds_it_from_the_settings(tmp_path: Path) -> None:
    path = write(tmp_path, ["hi"])
    settings = get_settings(llm={"provider": "scripted", "script_file": str(path), "capabilities": {"vision": True}})
    model = get_chat_model(settings.llm)
    assert isinstance(model, ScriptedChatModel)
    assert capabilities_of(model) == CAPS.model_copy(update={"vision": True})
    assert model.invoke("hello").content == "hi"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("[1, 2", "is not valid JSON"),
        ('{"replies": []}', "must hold a non-empty JSON list of replies"),
        ("[]", "must hold a non-empty JSON list of replies"),
        ("[42]", "reply 0 must be a string or an object with tool_calls"),
        ('["ok", {"tool_calls": [{"args": {}}]}]', "reply 1: tool_calls.0.name: Field required"),
        ('[{"tool_calls": [{"name": "f", "args": [1]}]}]', "reply 0: tool_calls.0.args"),
        ('[{"tool_call": []}]', "reply 0: tool_call: Extra inputs are not permitted"),
    ],
)
def test_malformed_scripts_fail_with_one_clear_line(tmp_path: Path, content: str, needle: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        load_script(path)
    message = str(info.value)
    assert needle in message and str(path) in message and "ANOMALYGRAPH_LLM_SCRIPT_FILE" in message
    assert "\n" not in message


def test_missing_script_file_fails_when_the_model_is_made(tmp_path: Path) -> None:
    settings = get_settings(llm={"provider": "scripted", "script_file": str(tmp_path / "nope.json")})
    with pytest.raises(ConfigError, match=r"script file .*nope\.json \(ANOMALYGRAPH_LLM_SCRIPT_FILE\) does not exist"):
        get_chat_model(settings.llm)
