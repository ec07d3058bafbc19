"""Shared fixtures: where the real benchmark data lies (never copied into the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_path() -> Path:
    """The settings' benchmark data folder (the first of ANOMALYGRAPH_DATA_ROOTS); a relative one
    is taken from the repository root, so the default finds ../shared/data from any working directory."""
    from anomalygraph.core.settings import get_settings

    root = get_settings().data.benchmark_root
    return (root if root.is_absolute() else REPO / root).resolve()


def reference_python() -> Path:
    return Path(os.environ.get("ANOMALYGRAPH_REFERENCE_PYTHON", REPO / ".venv-tsbad" / "bin" / "python"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_path()
    if not path.is_dir():
        pytest.fail(f"real data folder {path} is missing; set ANOMALYGRAPH_DATA_ROOTS='[\"/path/to/data\"]'")
    return path


@pytest.fixture(autouse=True)
def _fresh_model_caches():
    """Models built from settings are cached per process; a test that swaps the factory (monkeypatch)
    must not leave its fake in that cache for the next test, so every test starts and ends empty."""
    yield
    import sys

    if "anomalygraph.llm.factory" in sys.modules:
        sys.modules["anomalygraph.llm.factory"].forget_models()
    if "anomalygraph.graphs.rulebank_generation.nodes" in sys.modules:
        sys.modules["anomalygraph.graphs.rulebank_generation.nodes"]._MINERS.clear()
    if "anomalygraph.graphs.analyst.context" in sys.modules:
        sys.modules["anomalygraph.graphs.analyst.context"]._SESSIONS.clear()
