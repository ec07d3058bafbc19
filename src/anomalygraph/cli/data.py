"""``anomalygraph data generate``: write TimeAnomalyBench scenarios to disk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="Synthetic benchmark data.", no_args_is_help=True, add_completion=False)
out = Console()


@app.command("generate")
def generate_cmd(
    scenario: Annotated[str, typer.Option("--scenario", "-s", help="Scenario name (one of TimeAnomalyBench's 12, e.g. web_server, pump, solar_pv; a wrong name lists them) or 'all'.")],
    output: Annotated[Path, typer.Option("--out", "-o", help="Folder; each scenario gets a sub-folder.")] = Path("out/timeanomalybench"),
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    length: Annotated[int | None, typer.Option(help="Override the scenario's number of steps.")] = None,
) -> None:
    """Generate a TimeAnomalyBench scenario: series.csv with labels, per-step morphology, events, domain text, hidden bank.

    Example: anomalygraph data generate --scenario pump --out out/bench
    """
    from anomalygraph.rulebank.timeanomalybench import (
        generate,
        get_scenario,
        scenario_names,
        write_bench,
    )

    names = scenario_names() if scenario == "all" else [get_scenario(scenario).name]
    for name in names:
        bench = generate(name, seed=seed, length=length)
        folder = write_bench(bench, output)
        s = bench.series
        assert s.labels is not None
        kinds = sorted({e.morphology for e in bench.events})
        out.print(
            f"{name}: {s.length} steps x {s.n_channels} channels, train {s.train_end}, "
            f"{len(bench.events)} anomalies ({int(s.labels.sum())} steps; {', '.join(kinds)}) -> {folder}",
            highlight=False,
        )
