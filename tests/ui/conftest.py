"""A workspace server in a subprocess, as a user starts it, on a free loopback port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Workspace:
    url: str
    data: Path
    out: Path
    log: Path


@pytest.fixture
def start_workspace(tmp_path: Path, shared_data: Path) -> Iterator[Any]:
    """``start(script, *args)``: ``anomalygraph ui`` with the scripted model answering ``script``."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(script: list[Any] | None, *args: str, env: dict[str, str] | None = None) -> Workspace:
        data, out = tmp_path / "data", tmp_path / "out"
        data.mkdir(exist_ok=True)
        port = free_port()
        environ = {**os.environ, "ANOMALYGRAPH_DATA_ROOTS": json.dumps([str(data), str(shared_data)]),
                   "ANOMALYGRAPH_OUTPUT_DIR": str(out), "ANOMALYGRAPH_UI_USER": "tester", **(env or {})}
        if script is not None:
            (tmp_path / "script.json").write_text(json.dumps(script))
            environ |= {"ANOMALYGRAPH_LLM_PROVIDER": "scripted", "ANOMALYGRAPH_LLM_SCRIPT_FILE": str(tmp_path / "script.json")}
        log = tmp_path / f"ui-{port}.log"
        proc = subprocess.Popen([sys.executable, "-m", "anomalygraph.cli", "ui", "--port", str(port), *args], cwd=REPO, env=environ,
                                stdout=log.open("wb"), stderr=subprocess.STDOUT)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"anomalygraph ui exited with {proc.returncode}: {log.read_text()}")
            try:
                with urllib.request.urlopen(url + "/api/threads", timeout=2):
                    return Workspace(url=url, data=data, out=out, log=log)
            except OSError:
                time.sleep(0.3)
        pytest.fail(f"anomalygraph ui did not answer within 90 s: {log.read_text()}")

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
