"""The LLM layer's prompts, rendered: the structured-output repair instructions, the note before a
plot's text rendering and the benchmark's questions, as templates and as the code sends them."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from anomalygraph.core.llm_settings import ModelCapabilities
from anomalygraph.data.series import TimeSeries
from anomalygraph.llm.messages import PROMPT_TEXT_RENDERING, TEXT_RENDERING_INTRO, plot_message
from anomalygraph.llm.rendering import render_series
from anomalygraph.llm.scripted import ScriptedChatModel, tool_call
from anomalygraph.llm.structured import PROMPTS as STRUCTURED_PROMPTS
from anomalygraph.llm.structured import structured
from anomalygraph.prompts import load_prompt
from tests.prompts.test_files import shipped_names

TOOLS = ModelCapabilities(vision=False, tool_calling=True, auto_tool_choice=False, json_schema=False, legacy_max_tokens=True)
PLAIN = ModelCapabilities(vision=False, tool_calling=False, auto_tool_choice=False, json_schema=False, legacy_max_tokens=True)
GUIDED = ModelCapabilities(vision=False, tool_calling=False, auto_tool_choice=False, json_schema=True, legacy_max_tokens=False)

RENDERED = [
    ("llm/structured_again_json", 1, {"schema": "Finding"}, "Reply again with only the corrected JSON object for Finding."),
    ("llm/structured_again_tool", 1, {"schema": "Finding"}, "Call Finding again with corrected arguments."),
    ("llm/structured_again_schema", 1, {"schema": "Finding"}, "Answer again with the corrected Finding JSON object."),
    ("llm/plot_as_text", 1, {}, "The plot is not shown to you; this is a textual rendering of the same data."),
    ("llm/bench_warmup", 1, {}, "Say OK."),
    ("llm/bench_generate", 1, {}, "In about 150 words, explain how a level shift differs from a spike in a time series."),
    ("llm/bench_case", 1, {},
     "A CPU metric sampled every minute reads 41, 40, 42, 41, 97, 98, 96, 41, 40 from minute 0 to 8. "
     "Give your verdict on minutes 0 to 8."),
]


@pytest.mark.parametrize(("name", "version", "values", "expected"), RENDERED, ids=[r[0] for r in RENDERED])
def test_llm_prompt_renders_exactly(name, version, values, expected) -> None:
    template = load_prompt(name)
    assert template.version == version
    assert template.render(**values) == expected


def test_structured_lists_every_structured_prompt() -> None:
    assert set(STRUCTURED_PROMPTS) == {n for n in shipped_names() if n.startswith("llm/structured_")}


class Finding(BaseModel):
    kind: str
    start: int = Field(ge=0)


GOOD = '{"kind": "spike", "start": 3}'


@pytest.mark.parametrize(("caps", "bad", "good", "answer", "problems", "again"), [
    (TOOLS, tool_call("Finding", {"kind": "spike", "start": -1}), tool_call("Finding", {"kind": "spike", "start": 3}),
     '{"kind": "spike", "start": -1}', "- start: Input should be greater than or equal to 0 (got -1)",
     "Call Finding again with corrected arguments."),
    (PLAIN, "not json", GOOD, "not json", "the reply contains no JSON object",
     "Reply again with only the corrected JSON object for Finding."),
    (GUIDED, '{"kind": 1}', GOOD, '{"kind": 1}',
     "- kind: Input should be a valid string (got 1)\n- start: Field required (got {...})",
     "Answer again with the corrected Finding JSON object."),
], ids=["function_calling", "json_prompt", "json_schema"])
def test_repair_message_is_sent_exactly(caps, bad, good, answer, problems, again) -> None:
    model = ScriptedChatModel.with_capabilities([bad, good], caps)
    result = structured(model, Finding, [SystemMessage(content="You are terse."), HumanMessage(content="Go")])
    assert result == Finding(kind="spike", start=3)
    repair = model.calls[1][-1]
    assert isinstance(repair, HumanMessage)
    assert repair.content == (
        f"Your previous answer is not a valid Finding.\n\nYour answer:\n{answer}\n\nProblems:\n{problems}\n\n{again}"
    )


def test_text_only_plot_message_is_sent_exactly() -> None:
    assert TEXT_RENDERING_INTRO == "The plot is not shown to you; this is a textual rendering of the same data."
    assert load_prompt(PROMPT_TEXT_RENDERING).render() == TEXT_RENDERING_INTRO
    series = TimeSeries(np.sin(np.arange(60) / 3.0), name="wave")
    msg = plot_message("Is there an anomaly?", capabilities=PLAIN, series=series, intervals=[(10, 12)])
    rendering = render_series(series, intervals=[(10, 12)])
    assert msg.content == (
        "Is there an anomaly?\n\nThe plot is not shown to you; this is a textual rendering of the same data.\n" + rendering
    )


def test_bench_sends_the_benchmark_prompts() -> None:
    from anomalygraph.cli.llm import BENCH_PROMPTS

    assert [load_prompt(n).render() for n in BENCH_PROMPTS] == [r[3] for r in RENDERED if r[0].startswith("llm/bench_")]
