"""Is the server up, still loading, or serving a different model? One answer, said plainly.

Works for any OpenAI-compatible server: vLLM (``/health`` then ``/v1/models``), llama.cpp's
servers (503 while loading), and others (``/v1/models`` alone). Uses only the standard library,
so it runs before anything else is installed (``scripts/serve_vllm.sh wait``).
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from typing import Literal

from pydantic import BaseModel, ConfigDict

Status = Literal["up", "down", "loading", "wrong_model", "unhealthy"]


class ServerHealth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status
    url: str
    expected_model: str | None
    served_models: list[str]
    message: str
    latency_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "up"


def api_root(base_url: str) -> tuple[str, str]:
    """(server root, API base) from a base URL with or without the trailing ``/v1``."""
    base = base_url.rstrip("/")
    root = base[: -len("/v1")] if base.endswith("/v1") else base
    return root, root + "/v1"


def _get(url: str, *, api_key: str | None, timeout_s: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read() if exc.fp else b""


def _why_unreachable(exc: BaseException) -> tuple[Status, str]:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ConnectionRefusedError):
        return "down", "connection refused: nothing listens there"
    if isinstance(reason, TimeoutError | socket.timeout):
        return "loading", (
            "the port accepts connections but nothing answered in time; a vLLM server that is still "
            "loading weights behaves like this (or the server is stuck)"
        )
    if isinstance(reason, socket.gaierror):
        return "down", f"host name does not resolve ({reason})"
    if isinstance(reason, ConnectionResetError | ConnectionAbortedError):
        return "unhealthy", f"the connection was dropped ({reason}); the server may be crashing"
    return "down", f"cannot connect ({reason})"


def check_server(
    base_url: str, *, model: str | None = None, api_key: str | None = None, timeout_s: float = 5.0
) -> ServerHealth:
    """Probe ``base_url`` and say whether it serves ``model`` (any model when ``None``)."""
    if not base_url.startswith(("http://", "https://")):
        return ServerHealth(
            status="unhealthy", url=base_url, expected_model=model, served_models=[],
            message=f"not an http(s) URL: {base_url!r}",
        )
    root, api = api_root(base_url)
    started = time.perf_counter()

    def result(status: Status, message: str, served: list[str] | None = None) -> ServerHealth:
        return ServerHealth(
            status=status, url=api, expected_model=model, served_models=served or [], message=message,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    try:
        code, _ = _get(root + "/health", api_key=api_key, timeout_s=timeout_s)
        if code == 503:
            return result("loading", "the server is up but reports it is not ready yet (HTTP 503 on /health)")
        code, body = _get(api + "/models", api_key=api_key, timeout_s=timeout_s)
    except (urllib.error.URLError, OSError) as exc:
        status, why = _why_unreachable(exc)
        return result(status, why)
    if code == 503:
        return result("loading", "the server is up but still loading the model (HTTP 503)")
    if code in (401, 403):
        return result("unhealthy", f"the server rejected the API key (HTTP {code}); set ANOMALYGRAPH_LLM_API_KEY")
    if code != 200:
        return result("unhealthy", f"GET {api}/models answered HTTP {code}: {body[:200].decode(errors='replace')}")
    try:
        served = [str(m["id"]) for m in json.loads(body)["data"]]
    except (ValueError, KeyError, TypeError):
        return result("unhealthy", f"GET {api}/models did not return an OpenAI model list")
    if model is not None and model not in served:
        return result(
            "wrong_model",
            f"the server serves {', '.join(served) or 'no model'}, not {model!r}; "
            "fix ANOMALYGRAPH_LLM_MODEL or the server's --served-model-name",
            served,
        )
    return result("up", f"serving {', '.join(served)}", served)
