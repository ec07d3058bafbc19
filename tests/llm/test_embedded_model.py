"""Integration: the real embedded llama.cpp server and model. Checks shapes and validity, not wording.

Skipped, with the reason, when llama-cpp-python or the packaged model is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Literal

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel, ConfigDict, Field, model_validator

from anomalygraph.core.settings import get_settings
from anomalygraph.llm.errors import LLMContextLengthError
from anomalygraph.llm.factory import USAGE, get_chat_model
from anomalygraph.llm.structured import structured
from tests.llm.conftest import embedded_skip_reason

pytestmark = pytest.mark.llm


def model_at(url: str, **overrides: object):
    return get_chat_model(get_settings(llm={"base_url": url, **overrides}).llm)


def test_chat_answers_and_honours_max_tokens(embedded_endpoint: str) -> None:
    reply = model_at(embedded_endpoint, max_tokens=12).invoke("Explain what a time-series anomaly is.")
    assert isinstance(reply.content, str) and reply.content.strip()
    usage = reply.usage_metadata
    assert usage["input_tokens"] > 0
    # The server ignores max_completion_tokens; without the extra max_tokens it would run on.
    assert 0 < usage["output_tokens"] <= 12


def test_forced_tool_call_has_the_declared_shape(embedded_endpoint: str) -> None:
    @tool
    def compute_rolling_zscore(channel: str, window: int, threshold: float) -> str:
        """Flag points whose rolling z-score over `window` steps exceeds `threshold` on `channel`."""
        return "unused"

    model = model_at(embedded_endpoint, max_tokens=128).bind_tools(
        [compute_rolling_zscore], tool_choice="compute_rolling_zscore"
    )
    reply = model.invoke([HumanMessage(content="Check the cpu channel for spikes with a 60-step window.")])
    assert len(reply.tool_calls) == 1
    call = reply.tool_calls[0]
    assert call["name"] == "compute_rolling_zscore"
    args = compute_rolling_zscore.args_schema.model_validate(call["args"])
    assert isinstance(args.window, int) and isinstance(args.threshold, float)


# A schema the size and shape of a rule bank: nested models, a closed operator registry,
# bounded numbers, a cross-field rule no grammar can enforce, a bounded list.
Operator = Literal[
    "spike", "level_shift", "drift", "variance_burst", "frequency_change", "flatline",
    "dropout", "contextual", "segment_transplant", "amplitude_scaling", "time_warp", "correlation_break",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Uniform(_Model):
    """A bounded uniform distribution."""

    kind: Literal["uniform"] = "uniform"
    low: float = Field(ge=0, le=1000)
    high: float = Field(ge=0, le=1000)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self


class Placement(_Model):
    location: Literal["anywhere", "peak", "trough", "rising", "falling"]
    regime: Literal["any", "high_level", "low_level", "high_volatility", "low_volatility"]


class SketchRule(_Model):
    """One rule: an operator from the fixed registry with bounded parameters."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,40}$", description="lowercase id")
    operator: Operator
    magnitude: Uniform = Field(description="size in local robust scales")
    duration_steps: Uniform = Field(description="duration in steps")
    where: Placement
    weight: float = Field(gt=0, le=10)
    mechanism: str = Field(min_length=3, max_length=300, description="the cause, in words")


class SketchBank(_Model):
    """A scenario rule bank."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,40}$")
    description: str = Field(min_length=3, max_length=500)
    rules: list[SketchRule] = Field(min_length=2, max_length=4)


SCENARIOS = [
    "Data-centre servers: CPU temperature spikes when a fan fails; power draw drifts up as dust builds up; "
    "metrics flatline when the monitoring agent crashes.",
    "A water pump: vibration bursts when a bearing wears; pressure drops in a level shift when a valve sticks.",
    "Web traffic: request rate dips during outages; latency variance bursts under load; the daily cycle "
    "shifts in time around holidays.",
    "A wind turbine: power output flatlines when the turbine is curtailed; rotor speed and power stop "
    "moving together when a sensor fails.",
    "A chemical reactor: temperature drifts slowly when the cooling jacket fouls; the stirrer frequency "
    "changes when its motor degrades.",
]


@pytest.mark.slow
def test_structured_rulebank_sized_output_is_valid_5_of_5(embedded_endpoint: str) -> None:
    model = model_at(embedded_endpoint, max_tokens=900)
    valid = 0
    calls_before = len(USAGE.records)
    for scenario in SCENARIOS:
        bank = structured(model, SketchBank, f"{scenario}\nWrite a rule bank for this scenario.")
        assert isinstance(bank, SketchBank)
        valid += 1
    assert valid == 5
    calls = len(USAGE.records) - calls_before
    print(f"\n5/5 valid SketchBank objects in {calls} model calls")  # shown with -s, for the note


@pytest.mark.slow
def test_structured_with_the_rule_banks_own_prior_schema(embedded_endpoint: str) -> None:
    """The prior-mining agent's schema: string bounds of 2000 once crashed llama.cpp's grammar parser."""
    schema_module = pytest.importorskip("anomalygraph.rulebank.schema")

    class MinedPriors(BaseModel):
        """Anomaly priors mined for one scenario."""

        priors: list[schema_module.AnomalyPrior] = Field(min_length=1, max_length=3)

    model = model_at(embedded_endpoint, max_tokens=900)
    mined = structured(model, MinedPriors, f"{SCENARIOS[1]}\nList the anomaly priors.")
    assert 1 <= len(mined.priors) <= 3
    assert all(isinstance(p, schema_module.AnomalyPrior) for p in mined.priors)


def test_server_ignores_stray_env_and_reports_context_overflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """llama.cpp's server reads HOST/PORT/API_KEY from the environment; ours must not."""
    reason = embedded_skip_reason()
    if reason:
        pytest.skip(reason)
    from anomalygraph.llm.assets import resolve_model
    from anomalygraph.llm.embedded import EmbeddedServer

    monkeypatch.setenv("API_KEY", "would-lock-us-out")
    monkeypatch.setenv("PORT", "1")
    monkeypatch.setenv("HOST", "0.0.0.0")
    settings = get_settings(llm={"embedded": {"n_ctx": 512}}).llm
    model_file = resolve_model(settings.embedded, settings.cache_dir())
    with EmbeddedServer(model_file, settings.embedded, cache_dir=settings.cache_dir()) as server:
        assert server.state.port != 1
        model = model_at(server.base_url, max_tokens=64, max_retries=0)
        assert model.invoke("Say hi.").content  # no 401: API_KEY did not reach the server
        with pytest.raises(LLMContextLengthError, match="context window"):
            model.invoke("numbers: " + " ".join(str(i) for i in range(600)))


def _gone(pid: int) -> bool:
    """Exited (a zombie waiting for init to reap it counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/status") as fh:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in fh)
    except OSError:
        return True


def test_server_stops_when_its_process_dies_without_cleanup(tmp_path) -> None:
    reason = embedded_skip_reason()
    if reason:
        pytest.skip(reason)
    from anomalygraph.llm.assets import resolve_model

    settings = get_settings().llm
    gguf = resolve_model(settings.embedded, settings.cache_dir()).path
    # A cache of its own, so a server someone started with `llm serve` is not picked up instead.
    env = {**os.environ, "ANOMALYGRAPH_CACHE_DIR": str(tmp_path), "ANOMALYGRAPH_LLM_EMBEDDED__MODEL_PATH": str(gguf)}
    code = (
        "import json, os\n"
        "from anomalygraph.llm.embedded import ensure_server, _OWNED\n"
        "from anomalygraph.core.settings import get_settings\n"
        "ensure_server(get_settings().llm)\n"
        "(server,) = _OWNED.values()\n"
        "print(json.dumps({'pid': server.state.pid}), flush=True)\n"
        "os._exit(0)  # no atexit handlers run\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env)
    assert out.returncode == 0, out.stderr
    pid = json.loads(out.stdout.strip().splitlines()[-1])["pid"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _gone(pid):
            break
        time.sleep(0.2)
    else:
        os.kill(pid, 9)
        pytest.fail(f"the orphaned embedded server (pid {pid}) was still running 15 s after its parent died")


def test_automatic_tool_choice_calls_a_tool_and_answers_in_text_in_another_turn(embedded_endpoint: str) -> None:
    """With prompted tool calls the model chooses: a question that needs the file gets a call; a
    greeting gets plain text (through the server's own handler it could only ever call)."""
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_core.tools import tool

    @tool
    def count_rows(path: str) -> int:
        """Count the rows of a time-series file."""
        return 0

    model = model_at(embedded_endpoint, max_tokens=96, tool_call_format="prompted").bind_tools([count_rows])
    system = SystemMessage(content="You answer questions about time-series files. Use a tool when the answer needs a file.")
    first = model.invoke([system, HumanMessage(content="How many rows does the file data/cpu.csv have?")])
    assert [c["name"] for c in first.tool_calls] == ["count_rows"], first
    assert first.tool_calls[0]["args"]["path"].endswith("cpu.csv")
    second = model.invoke([system, HumanMessage(content="Thank you! Reply with one short friendly sentence.")])
    assert not second.tool_calls and not second.invalid_tool_calls, second
    assert len(second.content.split()) >= 3 and "<tool_call>" not in second.content
