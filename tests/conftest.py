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
