"""``anomalygraph stream``: CALM over files replayed as streams, on a Beam runner, with a live display.

Writes into ``--out``: ``scored.jsonl`` (every point: forecast interval, score, flag, model version),
``judgments.jsonl`` (KEEP/REMOVE with reasons), ``models.jsonl`` (each version made live),
``rejected.jsonl`` (duplicates and late points, with the reason), ``models/`` (the versioned
artifacts), ``judgment_log/`` (judgments as written, so a rerun does not ask again), ``config.json``,
``feedback.json`` (the users' marks the judge took as answers; ``--no-feedback``: none).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.table import Table

from anomalygraph.cli.common import parse_sets
from anomalygraph.core.errors import ConfigError, validation_problems

if TYPE_CHECKING:
    from anomalygraph.agents.judge import FeedbackSpan

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

OFFLINE_HINT = ("{runner} needs a job server that Beam downloads (a jar or a binary), and this machine could not "
                "fetch it. Start the job server yourself and pass --runner PortableRunner "
                "--runner-arg=--job_endpoint=HOST:PORT (docs/streaming.md), or use DirectRunner / PortableRunner "
                "with --runner-arg=--job_endpoint=embed, which run here.")


class Tail:
    """Counts of the output files as they grow (the streaming sink appends; batch writes at the end)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.offsets: dict[str, int] = {}
        self.counts = {"points": 0, "flagged": 0, "KEEP": 0, "REMOVE": 0, "feedback": 0, "rejected": 0}
        self.versions: dict[str, int] = {}

    def poll(self) -> None:
        import json

        for tag in ("scored", "judgments", "models", "rejected"):
            path = self.directory / f"{tag}.jsonl"
            if not path.is_file():
                continue
            with path.open("rb") as source:
                source.seek(self.offsets.get(tag, 0))
                chunk = source.read()
            end = chunk.rfind(b"\n") + 1
            self.offsets[tag] = self.offsets.get(tag, 0) + end
            for line in chunk[:end].splitlines():
                record = json.loads(line)
                if tag == "scored":
                    self.counts["points"] += 1
                    self.counts["flagged"] += bool(record["flagged"])
                elif tag == "judgments":
                    self.counts[record["decision"]] += 1
                    self.counts["feedback"] += record.get("source") == "feedback"
                elif tag == "models":
                    self.versions[record["key"]] = max(self.versions.get(record["key"], 0), record["version"])
                else:
                    self.counts["rejected"] += 1

    def table(self, runner: str, started: float, running: bool) -> Table:
        seconds = max(time.perf_counter() - started, 1e-9)
        table = Table(title=f"CALM on {runner}" + (" (running)" if running else ""), show_header=True)
        for name in ("points", "points/s", "flagged", "KEEP", "REMOVE", "by feedback", "rejected", "keys", "model version (max)"):
            table.add_column(name, justify="right")
        table.add_row(str(self.counts["points"]), f"{self.counts['points'] / seconds:,.0f}", str(self.counts["flagged"]),
                      str(self.counts["KEEP"]), str(self.counts["REMOVE"]), str(self.counts["feedback"]), str(self.counts["rejected"]),
                      str(len(self.versions)), str(max(self.versions.values(), default=0)))
        return table


def stream_cmd(
    source: Annotated[Path, typer.Option("--source", help="A file, or a folder of files, replayed as streams (one key per series channel).", show_default=False)],
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (default: out/stream/<source name>).")] = None,
    runner: Annotated[str, typer.Option("--runner", help="Beam runner: DirectRunner, PortableRunner, FlinkRunner, SparkRunner, DataflowRunner, PrismRunner.")] = "DirectRunner",
    speed: Annotated[float | None, typer.Option("--speed", help="Replay at this multiple of real time as a streaming pipeline (e.g. 3600: an hour of data per second); omitted: as fast as possible, bounded.")] = None,
    judge: Annotated[str, typer.Option("--judge", help="Who labels flagged points: rule (level shift persisting), llm (the judge agent, model from settings), keep_all (the control).")] = "rule",
    forecaster: Annotated[str, typer.Option("--forecaster", help="quantile_mlp (trained on each key's warm-up), ttm (the shipped TTM), timesfm (needs local weights).")] = "quantile_mlp",
    workers: Annotated[int, typer.Option("--workers", min=1, help="DirectRunner worker processes (more than 1: multi-processing mode).")] = 1,
    settings: Annotated[list[str], typer.Option("--set", help="Stream setting key=value: warmup, k, batch_size, epochs, noise_level, neighbours, max_gap ...")] = [],  # noqa: B006
    forecaster_settings: Annotated[list[str], typer.Option("--forecaster-set", help="Forecaster setting key=value, e.g. context_length=64.")] = [],  # noqa: B006
    runner_args: Annotated[list[str], typer.Option("--runner-arg", help="A Beam pipeline option passed through, e.g. --runner-arg=--job_endpoint=embed (repeatable).")] = [],  # noqa: B006
    disorder: Annotated[int, typer.Option("--disorder", min=0, help="Deliver points up to this many places late (exercises the ordering policy).")] = 0,
    duplicates: Annotated[float, typer.Option("--duplicates", min=0.0, max=1.0, help="Share of points delivered twice.")] = 0.0,
    feedback: Annotated[bool, typer.Option("--feedback/--no-feedback", help="Take users' marks on each source file (`anomalygraph feedback`) as the judge's answer for flagged points inside them: a real anomaly is KEEP, a false alarm REMOVE.")] = True,
) -> None:
    """Run CALM over SOURCE: quantile forecasts, IQR flags, the judge, fine-tunes on KEEP batches, model swap.

    Flagged points inside a feedback mark on their file are judged by the mark (source "feedback"), not by the judge; --no-feedback turns that off.

    Example: anomalygraph stream --source ../shared/data/NAB/data/realKnownCause/machine_temperature_system_failure.csv --out out/stream/machine
    """
    from anomalygraph.core.settings import get_settings
    from anomalygraph.streaming import pipeline as pl
    from anomalygraph.streaming.config import StreamConfig
    from anomalygraph.streaming.replay import disorder as shuffle
    from anomalygraph.streaming.replay import file_points, source_files

    if runner not in pl.RUNNERS:
        raise ConfigError(f"--runner must be one of {', '.join(pl.RUNNERS)}, got {runner!r}")
    if speed is not None and speed <= 0:
        raise ConfigError(f"--speed must be above 0, got {speed}")
    try:
        config = StreamConfig(**{**parse_sets(settings), "judge": judge, "forecaster": forecaster,
                                 "forecaster_config": parse_sets(forecaster_settings)})
    except ValidationError as exc:
        problems = validation_problems(exc)
        raise ConfigError(f"invalid stream settings: {problems}") from exc
    from anomalygraph.detectors.calm import create_forecaster

    create_forecaster(config.forecaster, **config.forecaster_config)  # a bad forecaster or setting fails here, not in a worker
    files = source_files(source)
    points = file_points(files)
    spans: list[FeedbackSpan] = []
    if feedback:
        from anomalygraph.data.feedback import default_store
        from anomalygraph.streaming.replay import feedback_spans

        spans = feedback_spans(files, default_store())
    if disorder or duplicates:
        points = shuffle(points, max_delay=disorder, duplicates=duplicates)
    out_dir = output or get_settings().output.dir / "stream" / source.stem
    extra = list(runner_args)
    if workers > 1:
        if runner != "DirectRunner":
            raise ConfigError("--workers applies to DirectRunner; other runners size themselves")
        extra += ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    err.print(f"{len(points):,} points from {len(files)} file(s) on {runner}; writing {out_dir}", highlight=False)
    if spans:
        marked = len({s.mark for s in spans})
        err.print(f"{marked} feedback mark(s) answer for the flagged points inside them (--no-feedback to ignore)",
                  highlight=False)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            pl.run_replay(points, config, out_dir, runner=runner, extra_args=extra, speed=speed, feedback=spans)
        except BaseException as exc:  # re-raised in the main thread
            failure.append(exc)

    tail, started = Tail(out_dir), time.perf_counter()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    with Live(tail.table(runner, started, True), console=err, refresh_per_second=4) as live:
        while worker.is_alive():
            worker.join(0.5)
            tail.poll()
            live.update(tail.table(runner, started, worker.is_alive()))
    if failure:
        exc = failure[0]
        if isinstance(exc, RuntimeError) and ("Unable to fetch remote" in str(exc) or "prism" in str(exc).lower()):
            raise ConfigError(OFFLINE_HINT.format(runner=runner)) from exc
        raise exc
    tail.poll()
    out.print(tail.table(runner, started, False))
    out.print(f"wrote {out_dir}/scored.jsonl, judgments.jsonl, models.jsonl, rejected.jsonl and models/", highlight=False)
