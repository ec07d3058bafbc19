from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anomalygraph.cli.llm import app
from tests.llm.fake_openai import FakeOpenAI, Reply, tool_call

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env)


@pytest.mark.parametrize("command", ["prepare", "serve", "status", "stop", "chat", "bench"])
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output


def test_status_of_a_remote_server(fake_openai: FakeOpenAI) -> None:
    up = invoke("status", "--url", fake_openai.base_url, "--model", "fake-model")
    assert up.exit_code == 0 and up.output.startswith("up ")
    wrong = invoke("status", "--url", fake_openai.base_url, "--model", "qwen3-vl", "--json")
    assert wrong.exit_code == 1
    assert json.loads(wrong.output)["status"] == "wrong_model"


def test_status_when_nothing_runs() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = invoke("status", "--url", f"http://127.0.0.1:{port}/v1")
    assert down.exit_code == 1 and down.output.startswith("down ")
    none = invoke("status")
    assert none.exit_code == 1 and "no embedded server is running" in none.output
    assert "no embedded server was running" in invoke("stop").output


def test_chat_against_a_configured_server(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue(Reply(content="A spike is one point; a level shift persists."))
    env = {"ANOMALYGRAPH_LLM_PROVIDER": "openai", "ANOMALYGRAPH_LLM_BASE_URL": fake_openai.base_url,
           "ANOMALYGRAPH_LLM_MODEL": "fake-model"}
    result = invoke("chat", "Spike or level shift?", "--max-tokens", "50", env=env)
    assert result.exit_code == 0, result.output
    assert "A spike is one point; a level shift persists." in result.stdout
    sent = fake_openai.requests[-1]
    assert sent["messages"][-1] == {"role": "user", "content": "Spike or level shift?"}
    assert sent["messages"][0]["role"] == "system" and sent["max_completion_tokens"] == 50


def test_serve_status_chat_stop_with_the_embedded_lifecycle(fake_llama: list[str], gguf: Path) -> None:
    served = invoke("serve", "--model-path", str(gguf))
    assert served.exit_code == 0, served.output
    assert "serving tiny-model at http://127.0.0.1:" in served.output and "loaded in" in served.output
    try:
        assert "already serving tiny-model" in invoke("serve", "--model-path", str(gguf)).output
        status = invoke("status", "--json")
        assert status.exit_code == 0 and json.loads(status.output)["served_models"] == ["tiny-model"]
        chat = invoke("chat", "hi", env={"ANOMALYGRAPH_LLM_EMBEDDED__MODEL_PATH": str(gguf)})
        assert chat.exit_code == 0 and chat.stdout.strip() == "ok"
        assert "started one for this command" not in chat.output  # it used the served one
    finally:
        stopped = invoke("stop")
    assert "stopped tiny-model" in stopped.output
    assert invoke("status").exit_code == 1


def test_prepare_a_local_model(gguf: Path) -> None:
    result = invoke("prepare", "--model-path", str(gguf))
    assert result.exit_code == 0 and f"tiny-model: {gguf}" in result.output and "(not pinned)" in result.output


def test_bench_reports_speed_and_a_structured_round_trip(fake_openai: FakeOpenAI) -> None:
    finding = {"anomalous": True, "kind": "level_shift", "start": 4, "end": 6, "confidence": 0.9,
               "explanation": "three readings near 97 between readings near 41"}
    fake_openai.queue(Reply(content="OK"), Reply(content="x " * 7), Reply(content="y " * 7),
                      Reply(content=None, tool_calls=[tool_call("_BenchFinding", finding)]))
    env = {"ANOMALYGRAPH_LLM_PROVIDER": "openai", "ANOMALYGRAPH_LLM_BASE_URL": fake_openai.base_url,
           "ANOMALYGRAPH_LLM_MODEL": "fake-model"}
    result = invoke("bench", "--runs", "2", "--json", env=env)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["tokens_per_s_median"] > 0 and figures["structured_calls"] == 1
    assert figures["structured_result"]["kind"] == "level_shift"
    assert len(fake_openai.requests) == 4


def test_bad_settings_raise_a_config_error() -> None:
    from anomalygraph.core.errors import ConfigError

    result = invoke("chat", "hi", env={"ANOMALYGRAPH_LLM_PROVIDER": "vllm"})
    assert isinstance(result.exception, ConfigError)
    assert "ANOMALYGRAPH_LLM_BASE_URL" in str(result.exception)
