from __future__ import annotations

import socket

import pytest

from anomalygraph.llm.health import api_root, check_server
from tests.llm.fake_openai import FakeOpenAI


def test_up_when_the_expected_model_is_served(fake_openai: FakeOpenAI) -> None:
    health = check_server(fake_openai.base_url, model="fake-model")
    assert health.ok and health.status == "up"
    assert health.served_models == ["fake-model"] and health.latency_ms is not None


def test_base_url_without_v1_works_too(fake_openai: FakeOpenAI) -> None:
    assert check_server(f"http://127.0.0.1:{fake_openai.port}", model="fake-model").ok


def test_wrong_model_names_both() -> None:
    with FakeOpenAI(["Qwen/Qwen2.5-7B-Instruct"]) as server:
        health = check_server(server.base_url, model="qwen3-vl")
    assert health.status == "wrong_model"
    assert "Qwen/Qwen2.5-7B-Instruct" in health.message and "'qwen3-vl'" in health.message


@pytest.mark.parametrize("where", ["health", "models"])
def test_loading_on_503(where: str) -> None:
    kwargs = {"health_status": 503} if where == "health" else {"models_status": 503}
    with FakeOpenAI(**kwargs) as server:
        health = check_server(server.base_url, model="fake-model")
    assert health.status == "loading" and "503" in health.message


def test_down_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    health = check_server(f"http://127.0.0.1:{port}/v1", model="m")
    assert health.status == "down" and "connection refused" in health.message


def test_open_port_that_never_answers_reads_as_loading() -> None:
    """vLLM binds its port before the weights are loaded: connections hang until then."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)  # accepts into the backlog, never answers
    try:
        health = check_server(f"http://127.0.0.1:{sock.getsockname()[1]}/v1", timeout_s=0.3)
    finally:
        sock.close()
    assert health.status == "loading" and "loading weights" in health.message


def test_rejected_key_and_non_openai_answers() -> None:
    with FakeOpenAI(models_status=401) as server:
        assert check_server(server.base_url).status == "unhealthy"
    assert check_server("gpu-box:8000").status == "unhealthy"


def test_api_root() -> None:
    assert api_root("http://h:8000/v1/") == ("http://h:8000", "http://h:8000/v1")
    assert api_root("http://h:8000") == ("http://h:8000", "http://h:8000/v1")
