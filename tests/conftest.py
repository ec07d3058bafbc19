"""Shared fixtures: where the real benchmark data lies (never copied into the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_path() -> Path:
    return Path(os.environ.get("ANOMALYGRAPH_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def reference_python() -> Path:
    return Path(os.environ.get("ANOMALYGRAPH_REFERENCE_PYTHON", REPO / ".venv-tsbad" / "bin" / "python"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_path()
    if not path.is_dir():
        pytest.fail(f"real data folder {path} is missing; set ANOMALYGRAPH_SHARED_DATA")
    return path
