"""The embedded llama.cpp server: started on 127.0.0.1, awaited, found again, and stopped.

Two ways to own one:

* ``anomalygraph llm serve`` starts a detached server (its own session) and records it in a
  state file in the user cache; ``status`` and ``stop`` read that file; every later command
  (``llm chat``, agents) reuses the recorded server when it serves the model they want.
* A command that needs a model when none is recorded starts one for itself
  (``embedded.auto_start``), stops it at exit, and the server stops itself if that process dies.

The port is a free one picked by the OS unless configured; readiness means ``/v1/models`` lists
the expected model; a server that exits or is not ready in ``startup_timeout_s`` raises with the
tail of its log.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict

from anomalygraph.core.llm_settings import EMBEDDED_HOST, EmbeddedSettings, LLMSettings
from anomalygraph.llm.assets import Progress, ResolvedModel, resolve_model
from anomalygraph.llm.errors import EmbeddedServerError
from anomalygraph.llm.health import check_server

LAUNCHER = "anomalygraph.llm._serve"
REPACK_ENV = "ANOMALYGRAPH_LLM_REPACK_WEIGHTS"  # read by the launcher, see llm/_serve.py
_PORT_RETRIES = 3


class ServerState(BaseModel):
    """What ``serve`` records about a running server, so other processes can find it."""

    model_config = ConfigDict(extra="forbid")

    pid: int
    host: str
    port: int
    alias: str
    model_path: str
    model_sha256: str | None
    n_ctx: int
    started_at: float
    load_s: float
    log_path: str
    owner: Literal["serve", "process"]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"


def state_path(cache_dir: Path) -> Path:
    return cache_dir / "run" / "embedded-server.json"


def llama_cpp_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def require_llama_cpp() -> None:
    if not llama_cpp_installed():
        raise EmbeddedServerError(
            "llama-cpp-python is not installed, so the embedded model cannot run; install it with "
            "`pip install 'llama-cpp-python[server]==0.3.36'` (or `pip install anomalygraph[llm]`; it "
            "compiles from source in about 10 minutes), or use a remote server with "
            "ANOMALYGRAPH_LLM_PROVIDER=vllm and ANOMALYGRAPH_LLM_BASE_URL"
        )


def free_port(host: str = EMBEDDED_HOST) -> int:
    """A port nothing listens on right now (the OS's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A pid can be reused: on Linux, make sure it is still our launcher.
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            return LAUNCHER.encode() in cmdline.read_bytes()
        except OSError:
            return True
    return True


def log_tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    keep = [line for line in text if line.strip()][-lines:]
    return "\n".join(keep) or "(empty log)"


def default_threads() -> int:
    """All cores but one: llama.cpp's threads spin-wait, and one thread short of the cores keeps
    generation fast when the agent or a detector runs beside it (measured on 2 cores under load:
    1 thread 14.8 tokens/s, 2 threads 1.6 tokens/s)."""
    return max(1, (os.cpu_count() or 2) - 1)


def server_command(model: ResolvedModel, settings: EmbeddedSettings, port: int, *, seed: int | None) -> list[str]:
    threads = settings.n_threads or default_threads()
    cmd = [
        sys.executable, "-m", LAUNCHER,
        "--model", str(model.path),
        "--model_alias", model.alias,
        "--host", EMBEDDED_HOST,
        "--port", str(port),
        "--chat_format", settings.chat_format,
        "--n_ctx", str(settings.n_ctx),
        "--n_threads", str(threads),
        "--n_threads_batch", str(threads),
        "--verbose", "false",
    ]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    return cmd


class EmbeddedServer:
    """One llama.cpp server process serving one model; a context manager that stops it on exit."""

    def __init__(self, model: ResolvedModel, settings: EmbeddedSettings, *, cache_dir: Path, seed: int | None = 0) -> None:
        self.model = model
        self.settings = settings
        self.cache_dir = cache_dir
        self.seed = seed
        self.process: subprocess.Popen[bytes] | None = None
        self.state: ServerState | None = None

    @property
    def base_url(self) -> str:
        if self.state is None:
            raise EmbeddedServerError("the embedded server has not been started")
        return self.state.base_url

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, detach: bool = False) -> ServerState:
        """Start and wait until the model is loaded; ``detach`` outlives this process."""
        require_llama_cpp()
        if self.alive():
            assert self.state is not None
            return self.state
        owner: Literal["serve", "process"] = "serve" if detach else "process"
        logs = self.cache_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        last_error: EmbeddedServerError | None = None
        for _ in range(_PORT_RETRIES if self.settings.port == 0 else 1):
            port = self.settings.port or free_port()
            log_path = logs / ("embedded-server.log" if detach else f"embedded-server-{os.getpid()}-{port}.log")
            env = dict(os.environ)
            env[REPACK_ENV] = "1" if self.settings.repack_weights else "0"
            if not detach:
                env["ANOMALYGRAPH_LLM_PARENT_PID"] = str(os.getpid())
            started = time.monotonic()
            with log_path.open("wb") as log:
                self.process = subprocess.Popen(
                    server_command(self.model, self.settings, port, seed=self.seed),
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                    start_new_session=detach, close_fds=True,
                )
            self.state = ServerState(
                pid=self.process.pid, host=EMBEDDED_HOST, port=port, alias=self.model.alias,
                model_path=str(self.model.path), model_sha256=self.model.sha256, n_ctx=self.settings.n_ctx,
                started_at=time.time(), load_s=0.0, log_path=str(log_path), owner=owner,
            )
            try:
                self._wait_ready(log_path)
            except EmbeddedServerError as exc:
                last_error = exc
                if "address already in use" in log_tail(log_path, 40).lower() and self.settings.port == 0:
                    continue  # lost the race for the free port: try another one
                raise
            self.state.load_s = round(time.monotonic() - started, 2)
            return self.state
        assert last_error is not None
        raise last_error

    def _wait_ready(self, log_path: Path) -> None:
        assert self.process is not None and self.state is not None
        deadline = time.monotonic() + self.settings.startup_timeout_s
        while True:
            code = self.process.poll()
            if code is not None:
                raise EmbeddedServerError(
                    f"the embedded server exited with code {code} while loading {self.model.path.name}; "
                    f"log {log_path}:\n{log_tail(log_path)}"
                )
            health = check_server(self.state.base_url, model=self.model.alias, timeout_s=2.0)
            if health.ok:
                return
            if health.status == "wrong_model":
                self.stop()
                raise EmbeddedServerError(f"port {self.state.port} answers for another server: {health.message}")
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedServerError(
                    f"the embedded server did not load {self.model.path.name} within "
                    f"{self.settings.startup_timeout_s:g} s (ANOMALYGRAPH_LLM_EMBEDDED__STARTUP_TIMEOUT_S); "
                    f"log {log_path}:\n{log_tail(log_path)}"
                )
            time.sleep(0.25)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; removes this process's log on a clean stop."""
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self.state is not None and self.state.owner == "process" and proc.returncode in (0, -signal.SIGTERM):
            Path(self.state.log_path).unlink(missing_ok=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------ the recorded (served) server
def read_state(cache_dir: Path) -> ServerState | None:
    """The server ``serve`` recorded, if its process still runs; a stale record is removed."""
    path = state_path(cache_dir)
    try:
        state = ServerState.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None
    if not pid_alive(state.pid):
        path.unlink(missing_ok=True)
        return None
    return state


def _write_state(cache_dir: Path, state: ServerState) -> None:
    path = state_path(cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(state.model_dump(), indent=2))
    os.replace(tmp, path)


class ServeResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: ServerState
    already_running: bool


def serve(settings: LLMSettings, progress: Progress | None = None) -> ServeResult:
    """Start the detached server (or report the one already running for the same model)."""
    require_llama_cpp()
    cache_dir = settings.cache_dir()
    model = resolve_model(settings.embedded, cache_dir, progress)
    current = read_state(cache_dir)
    if current is not None:
        if current.model_path == str(model.path) and check_server(current.base_url, model=current.alias).ok:
            return ServeResult(state=current, already_running=True)
        raise EmbeddedServerError(
            f"an embedded server already runs (pid {current.pid}, {current.alias} at {current.base_url}); "
            "stop it first with `anomalygraph llm stop`"
        )
    server = EmbeddedServer(model, settings.embedded, cache_dir=cache_dir, seed=settings.seed)
    state = server.start(detach=True)
    _write_state(cache_dir, state)
    return ServeResult(state=state, already_running=False)


def stop(settings: LLMSettings, timeout_s: float = 10.0) -> ServerState | None:
    """Stop the recorded server; ``None`` when none runs."""
    cache_dir = settings.cache_dir()
    state = read_state(cache_dir)
    if state is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        if _own_group(state.pid):
            os.killpg(state.pid, signal.SIGTERM)
        else:
            os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_alive(state.pid) and time.monotonic() < deadline:
        _reap(state.pid)
        time.sleep(0.1)
    if pid_alive(state.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.pid, signal.SIGKILL)
    _reap(state.pid)
    state_path(cache_dir).unlink(missing_ok=True)
    return state


def _own_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except (ProcessLookupError, AttributeError):
        return False


def _reap(pid: int) -> None:
    """Collect the exit status when the server happens to be our child (tests, one process)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


# ------------------------------------------------------------------ servers owned by this process
_OWNED: dict[tuple[str, int], EmbeddedServer] = {}
_LOCK = threading.Lock()


def _stop_owned() -> None:
    with _LOCK:
        servers = list(_OWNED.values())
        _OWNED.clear()
    for server in servers:
        server.stop()


atexit.register(_stop_owned)


class Endpoint(BaseModel):
    """Where the embedded model answers, and how to explain it when it does not."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    alias: str
    log_path: str
    started_here: bool


def ensure_server(settings: LLMSettings, progress: Progress | None = None) -> Endpoint:
    """A ready embedded server for ``settings``: the recorded one, one this process owns, or a new one."""
    cache_dir = settings.cache_dir()
    model = resolve_model(settings.embedded, cache_dir, progress)
    recorded = read_state(cache_dir)
    if (
        recorded is not None
        and recorded.model_path == str(model.path)
        and recorded.n_ctx >= settings.embedded.n_ctx
        and check_server(recorded.base_url, model=recorded.alias).ok
    ):
        return Endpoint(base_url=recorded.base_url, alias=recorded.alias, log_path=recorded.log_path, started_here=False)
    key = (str(model.path), settings.embedded.n_ctx)
    with _LOCK:
        server = _OWNED.get(key)
        if server is not None and server.alive():
            assert server.state is not None
            return Endpoint(base_url=server.base_url, alias=model.alias, log_path=server.state.log_path, started_here=True)
        if not settings.embedded.auto_start:
            raise EmbeddedServerError(
                "no embedded LLM server is running and auto start is off "
                "(ANOMALYGRAPH_LLM_EMBEDDED__AUTO_START=false); start one with `anomalygraph llm serve`"
            )
        server = EmbeddedServer(model, settings.embedded, cache_dir=cache_dir, seed=settings.seed)
        state = server.start()
        _OWNED[key] = server
    return Endpoint(base_url=state.base_url, alias=state.alias, log_path=state.log_path, started_here=True)


def owned_server_exit(base_url: str) -> str | None:
    """Why the server this process started at ``base_url`` stopped answering, if it did stop."""
    with _LOCK:
        servers = list(_OWNED.values())
    for server in servers:
        if server.state is not None and server.state.base_url == base_url and server.process is not None:
            code = server.process.poll()
            if code is not None:
                return f"the embedded server (pid {server.state.pid}) exited with code {code}; log {server.state.log_path}"
    return None
