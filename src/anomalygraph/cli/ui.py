"""``anomalygraph ui``: the web workspace on 127.0.0.1 (chat, files, diagnosis, rule banks, feedback)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from anomalygraph.core.errors import ConfigError

err = Console(stderr=True, soft_wrap=True, highlight=False)


def ui_cmd(
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535, help="Port (default: $ANOMALYGRAPH_UI_PORT, else 8501).")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Address to bind (default 127.0.0.1); any other needs --allow-remote.")] = None,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="Allow a non-loopback --host: whoever reaches it can read the data roots and run the models.")] = False,
    planner: Annotated[str, typer.Option("--planner", help="Analyst planner for models that cannot choose tools: kinds or steps (as `anomalygraph chat`).")] = "kinds",
    tools_per_turn: Annotated[int | None, typer.Option("--tools-per-turn", min=1, max=50, help="Successful tool calls before the analyst answers (as `anomalygraph chat`).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: $ANOMALYGRAPH_OUTPUT_DIR): chat/ threads and feedback/ are shared with the terminal commands, ui/ holds the page's runs.")] = None,
    llm_config: Annotated[Path | None, typer.Option("--llm-config", help="LLM settings file (YAML/TOML); env vars ANOMALYGRAPH_LLM_* also apply.")] = None,
) -> None:
    """Open the web workspace: chat with the analyst, upload or pick files, run a diagnosis, generate rule banks, mark intervals.

    Uses the same settings, graphs and SQLite threads as the terminal: a thread started with
    `anomalygraph chat` opens in the page (Chat, left column) and the other way round.

    Example: ANOMALYGRAPH_DATA_ROOTS='["../shared/data"]' anomalygraph ui --port 8501, then open http://127.0.0.1:8501
    """
    import uvicorn

    from anomalygraph.core.settings import get_settings
    from anomalygraph.ui.app import UIConfig, check_bind, create_app

    if planner not in ("kinds", "steps"):
        raise ConfigError(f"--planner must be kinds or steps, got {planner!r}")
    settings = get_settings(llm_config)
    overrides: dict[str, object] = {"planner": planner, "tools_per_turn": tools_per_turn}
    if out is not None:
        overrides["out_dir"] = out.resolve()
    config = UIConfig.from_settings(settings, **overrides)
    config.host = check_bind(host or config.host, allow_remote)
    config.port = port or config.port
    app = create_app(config)
    err.print(f"AnomalyGraph workspace on http://{config.host}:{config.port}  (data roots: "
              f"{', '.join(map(str, config.data_roots))}; output: {config.out_dir}; Ctrl-C stops it)")
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
