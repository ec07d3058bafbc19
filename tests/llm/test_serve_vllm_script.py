"""scripts/serve_vllm.sh builds the documented command; its health modes use our status check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.llm.fake_openai import FakeOpenAI


def run(repo_root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AG_")}
    return subprocess.run(
        ["bash", str(repo_root / "scripts" / "serve_vllm.sh"), *args],
        capture_output=True, text=True, env={**clean, "PYTHON": sys.executable, **env}, timeout=60,
    )


def test_print_shows_tool_calling_guided_decoding_and_parallelism(repo_root: Path) -> None:
    result = run(repo_root, "print", AG_TP="4", AG_MAX_MODEL_LEN="16384", AG_GPU_MEMORY="0.85", AG_API_KEY="k")
    assert result.returncode == 0, result.stderr
    args = result.stdout.splitlines()
    assert args[:3] == ["vllm", "serve", "Qwen/Qwen3-VL-8B-Instruct"]

    def value(flag: str) -> str:
        return args[args.index(flag) + 1]

    assert value("--served-model-name") == "qwen3-vl"
    assert value("--tensor-parallel-size") == "4" and value("--mm-encoder-tp-mode") == "data"
    assert value("--max-model-len") == "16384" and value("--gpu-memory-utilization") == "0.85"
    assert "--enable-auto-tool-choice" in args and value("--tool-call-parser") == "hermes"
    assert value("--structured-outputs-config") == '{"backend": "xgrammar"}'
    assert value("--limit-mm-per-prompt") == '{"image": 4, "video": 0}'
    assert value("--api-key") == "k"


def test_single_gpu_has_no_encoder_sharding_flag(repo_root: Path) -> None:
    args = run(repo_root, "print", AG_TP="1").stdout.splitlines()
    assert args[args.index("--tensor-parallel-size") + 1] == "1"
    assert "--mm-encoder-tp-mode" not in args


def test_check_and_wait_against_a_fake_server(repo_root: Path) -> None:
    with FakeOpenAI(["qwen3-vl"]) as server:
        ok = run(repo_root, "check", AG_PORT=str(server.port))
        assert ok.returncode == 0 and "up" in ok.stdout
        assert run(repo_root, "wait", AG_PORT=str(server.port)).returncode == 0
        other = run(repo_root, "check", AG_PORT=str(server.port), AG_SERVED_NAME="qwen3-vl-32b")
        assert other.returncode == 1 and "wrong_model" in other.stdout


def test_serve_without_vllm_says_so(repo_root: Path, tmp_path: Path) -> None:
    result = run(repo_root, "serve", PATH=str(tmp_path) + ":/usr/bin:/bin")
    assert result.returncode == 2 and "vllm is not installed" in result.stderr
