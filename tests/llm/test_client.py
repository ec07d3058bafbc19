"""The real ``ChatOpenAI`` path against a fake OpenAI-compatible server: payloads, usage, failures."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from pydantic import BaseModel

from anomalygraph.core.settings import get_settings
from anomalygraph.llm.errors import (
    LLMContextLengthError,
    LLMRateLimitError,
    LLMRequestError,
    LLMServerError,
    LLMTimeoutError,
    LLMUnavailableError,
    StructuredOutputError,
)
from anomalygraph.llm.factory import USAGE, capabilities_of, get_chat_model
from anomalygraph.llm.structured import structured
from tests.llm.fake_openai import FakeOpenAI, Reply, tool_call


def model_for(server: FakeOpenAI, **overrides: object):
    settings = get_settings(
        llm={"provider": "openai", "base_url": server.base_url, "model": "fake-model", "max_retries": 0, **overrides}
    ).llm
    return get_chat_model(settings)


def test_embedded_style_server_gets_max_tokens_too(fake_openai: FakeOpenAI) -> None:
    model = model_for(fake_openai, max_tokens=64, capabilities={"legacy_max_tokens": True})
    assert model.invoke("hi").content == "ok"
    body = fake_openai.requests[-1]
    assert body["max_tokens"] == 64 and body["max_completion_tokens"] == 64
    assert body["model"] == "fake-model" and body["temperature"] == 0.0


def test_other_servers_get_only_max_completion_tokens(fake_openai: FakeOpenAI) -> None:
    model_for(fake_openai, max_tokens=64).invoke("hi")
    body = fake_openai.requests[-1]
    assert body["max_completion_tokens"] == 64 and "max_tokens" not in body


def test_api_key_is_sent(fake_openai: FakeOpenAI) -> None:
    model_for(fake_openai, api_key="s3cret").invoke("hi")
    assert fake_openai.headers[-1]["authorization"] == "Bearer s3cret"


def test_usage_and_latency_are_logged(fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    fake_openai.queue(Reply(content="slow", delay_s=0.2))
    before = len(USAGE.records)
    with caplog.at_level(logging.INFO, logger="anomalygraph.llm.usage"):
        model_for(fake_openai).invoke("hi")
    record = [r for r in caplog.records if hasattr(r, "llm_call")][-1]
    data = record.llm_call
    assert data["model"] == "fake-model" and data["ok"] is True
    assert (data["input_tokens"], data["output_tokens"], data["total_tokens"]) == (11, 7, 18)
    assert data["latency_s"] >= 0.2
    assert "input_tokens=11" in record.getMessage()
    assert len(USAGE.records) == before + 1


def test_capabilities_travel_with_the_model_and_its_bindings(fake_openai: FakeOpenAI) -> None:
    model = model_for(fake_openai, capabilities={"vision": True})
    assert capabilities_of(model).vision is True
    assert capabilities_of(model.bind_tools([], tool_choice=None)).vision is True


def test_forced_tool_call_and_structured_output_over_http(fake_openai: FakeOpenAI) -> None:
    class Verdict(BaseModel):
        anomalous: bool
        reason: str

    fake_openai.queue(
        Reply(content=None, tool_calls=[tool_call("Verdict", {"anomalous": "maybe"})]),
        Reply(content=None, tool_calls=[tool_call("Verdict", {"anomalous": True, "reason": "spike"})]),
    )
    model = model_for(fake_openai, capabilities={"legacy_max_tokens": True, "json_schema": False})
    verdict = structured(model, Verdict, "Is it anomalous?")
    assert verdict == Verdict(anomalous=True, reason="spike")
    first, second = fake_openai.requests[-2:]
    assert first["tool_choice"] == {"type": "function", "function": {"name": "Verdict"}}
    assert first["tools"][0]["function"]["parameters"]["required"] == ["anomalous", "reason"]
    assert first["messages"][0]["role"] == "system"
    assert "reason" in second["messages"][-1]["content"]  # the repair names the missing field


def test_guided_decoding_sends_response_format(fake_openai: FakeOpenAI) -> None:
    class Verdict(BaseModel):
        anomalous: bool

    fake_openai.queue(Reply(content='{"anomalous": false}'))
    model = model_for(fake_openai, capabilities={"json_schema": True})
    assert structured(model, Verdict, "?").anomalous is False
    fmt = fake_openai.requests[-1]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["properties"]["anomalous"]["type"] == "boolean"


def test_structured_error_over_http_after_budget(fake_openai: FakeOpenAI) -> None:
    class Verdict(BaseModel):
        anomalous: bool

    fake_openai.default = Reply(content=None, tool_calls=[tool_call("Verdict", '{"anomalous": tru')])
    model = model_for(fake_openai, repair_retries=1)
    with pytest.raises(StructuredOutputError, match="no valid Verdict in 2 attempts"):
        structured(model, Verdict, "?")
    assert len(fake_openai.requests) == 2


def test_context_length_is_not_retried(fake_openai: FakeOpenAI) -> None:
    fake_openai.default = Reply(
        status=400,
        error="This model's maximum context length is 4096 tokens. However, you requested 5000 tokens "
        "(4000 in the messages, 1000 in the completion).",
    )
    with pytest.raises(LLMContextLengthError, match="maximum context length is 4096") as info:
        model_for(fake_openai, max_retries=3).invoke("long")
    assert "N_CTX" in str(info.value) and "--max-model-len" in str(info.value)
    assert len(fake_openai.requests) == 1


def test_rate_limit_is_retried_then_succeeds(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue(Reply(status=429, error="slow down", headers={"retry-after": "0"}), Reply(content="after"))
    assert model_for(fake_openai, max_retries=2).invoke("hi").content == "after"
    assert len(fake_openai.requests) == 2


def test_rate_limit_that_persists_gives_one_clear_error(fake_openai: FakeOpenAI) -> None:
    fake_openai.default = Reply(status=429, error="slow down", headers={"retry-after": "0"})
    with pytest.raises(LLMRateLimitError, match="HTTP 429"):
        model_for(fake_openai, max_retries=1).invoke("hi")
    assert len(fake_openai.requests) == 2


def test_server_errors_are_retried_then_reported(fake_openai: FakeOpenAI) -> None:
    fake_openai.default = Reply(status=500, error="llama_decode returned -1", headers={"retry-after": "0"})
    with pytest.raises(LLMServerError, match=r"HTTP 500.*llama_decode returned -1"):
        model_for(fake_openai, max_retries=1).invoke("hi")
    assert len(fake_openai.requests) == 2


def test_timeout_names_the_setting(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue(Reply(content="late", delay_s=2.0))
    started = time.perf_counter()
    with pytest.raises(LLMTimeoutError, match=r"within 0\.5 s.*ANOMALYGRAPH_LLM_TIMEOUT_S"):
        model_for(fake_openai, timeout_s=0.5).invoke("hi")
    assert time.perf_counter() - started < 2.0


def test_connection_refused_says_how_to_start_a_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = get_settings(llm={"provider": "vllm", "base_url": f"http://127.0.0.1:{port}/v1", "model": "qwen3-vl", "max_retries": 0}).llm
    with pytest.raises(LLMUnavailableError, match=rf"cannot reach the LLM server at http://127.0.0.1:{port}/v1.*llm serve"):
        get_chat_model(settings).invoke("hi")


def test_bad_key_and_unknown_model_are_request_errors(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue(Reply(status=401, error="bad key"), Reply(status=404, error="The model `x` does not exist"))
    model = model_for(fake_openai, max_retries=2)
    with pytest.raises(LLMRequestError, match="API key"):
        model.invoke("hi")
    with pytest.raises(LLMRequestError, match="ANOMALYGRAPH_LLM_MODEL"):
        model.invoke("hi")
    assert len(fake_openai.requests) == 2  # neither is retried
