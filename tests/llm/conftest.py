"""LLM-layer fixtures: isolated settings and cache for unit tests, a real embedded server for ``llm`` tests.

Integration tests are marked ``llm``; they start the real llama.cpp server and skip, with the
reason, when llama-cpp-python or the packaged model is not installed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.llm.fake_openai import FakeOpenAI


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "llm: starts the real embedded LLM server (needs llama-cpp-python and the packaged model)"
    )


@pytest.fixture(autouse=True)
def _isolated_llm_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No ANOMALYGRAPH_LLM_* from the developer's shell; unit tests get their own cache dir.

    ``llm`` tests keep the real user cache, where the assembled model already lies.
    """
    for key in list(os.environ):
        if key.startswith("ANOMALYGRAPH_LLM_"):
            monkeypatch.delenv(key)
    if request.node.get_closest_marker("llm") is None:
        monkeypatch.setenv("ANOMALYGRAPH_CACHE_DIR", str(tmp_path_factory.mktemp("llm-cache")))


FAKE_SERVER = Path(__file__).with_name("fake_openai.py")


@pytest.fixture
def fake_llama(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Swap llama.cpp's server for the fake one; tests append extra flags to the returned list."""
    from anomalygraph.llm import embedded

    extra: list[str] = []

    def command(model, settings, port, *, seed):  # same signature as server_command
        return [sys.executable, str(FAKE_SERVER), "--port", str(port), "--model_alias", model.alias, *extra]

    monkeypatch.setattr(embedded, "server_command", command)
    monkeypatch.setattr(embedded, "require_llama_cpp", lambda: None)
    monkeypatch.setattr(embedded, "LAUNCHER", FAKE_SERVER.name)
    yield extra
    embedded._stop_owned()


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    """A file the asset checks accept as a GGUF model (the fake server never reads it)."""
    path = tmp_path / "tiny-model.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 64)
    return path


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def embedded_skip_reason() -> str | None:
    """Why the real embedded model cannot run here, or ``None`` when it can."""
    from anomalygraph.llm.assets import ASSETS, missing_packages
    from anomalygraph.llm.embedded import llama_cpp_installed

    if not llama_cpp_installed():
        return "llama-cpp-python is not installed (pip install 'llama-cpp-python[server]==0.3.36')"
    missing = missing_packages(ASSETS["qwen2.5-coder-0.5b"])
    if missing:
        return f"the embedded model is not installed (missing {', '.join(missing)})"
    return None


@pytest.fixture(scope="session")
def embedded_endpoint() -> Iterator[str]:
    """Base URL of a real embedded server started once for the session (stopped at the end)."""
    reason = embedded_skip_reason()
    if reason:
        pytest.skip(reason)
    from anomalygraph.core.settings import get_settings
    from anomalygraph.llm.assets import resolve_model
    from anomalygraph.llm.embedded import EmbeddedServer

    settings = get_settings().llm
    model = resolve_model(settings.embedded, settings.cache_dir())
    with EmbeddedServer(model, settings.embedded, cache_dir=settings.cache_dir()) as server:
        yield server.base_url


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
