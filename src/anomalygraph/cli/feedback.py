"""``anomalygraph feedback``: mark a reported interval as a real anomaly or a false alarm, or list the marks.

Marks go to the feedback store (``<output.dir>/feedback``, ``ANOMALYGRAPH_OUTPUT_DIR``), one
append-only file per series file. The next ``anomalygraph diagnose`` of the file reads them (its
selection switches to a track only when it gets more marks right, and a false alarm is never flagged), and
``anomalygraph stream`` uses them as the judge's answer for points inside them. Evaluations never do.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.core.tables import md_row, table_lines
from anomalygraph.data.feedback import LABEL_TEXT, LABELS, FeedbackMark, default_store

out = Console(soft_wrap=True)


def login_name() -> str:
    """Who is marking, when --user is not given: the login name."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError) as exc:  # no login name in some containers
        raise ConfigError("cannot tell who you are (no login name); give --user NAME") from exc
    if not name:
        raise ConfigError("cannot tell who you are (no login name); give --user NAME")
    return name


def verdict_file(verdict: Path) -> Path:
    """The verdict.json that --verdict names (the file itself, or the diagnosis folder holding it)."""
    file = (verdict / "verdict.json" if verdict.is_dir() else verdict).resolve()
    if not file.is_file():
        raise DataError(f"--verdict {verdict}: no such verdict file (give a verdict.json or the diagnosis folder)")
    return file


def verdict_rank(file: Path, start: int, end: int) -> int | None:
    """The rank of rows ``start..end`` among a verdict's ranked intervals (None when it reported no such interval)."""
    from anomalygraph.graphs.diagnosis.state import DiagnosisVerdict

    try:
        parsed = DiagnosisVerdict.model_validate_json(file.read_text(encoding="utf-8"))
    except (ValidationError, UnicodeDecodeError) as exc:
        raise DataError(f"--verdict {file}: not a diagnosis verdict ({' '.join(str(exc).split())[:200]})") from exc
    if parsed.selection is None:
        return None
    return next((iv.rank for iv in parsed.selection.intervals if (iv.start, iv.end) == (start, end)), None)


def marks_table(marks: list[FeedbackMark]) -> list[str]:
    """Every mark as a Markdown table row (never truncated to the terminal's width), and whether it is in effect."""
    effective = {id(m) for m in _latest(marks)}
    lines = table_lines(["#", "rows", "start", "end", "label", "by", "at (UTC)", "verdict", "rank", "note", "in effect"])
    for k, m in enumerate(marks, start=1):
        lines.append(md_row([k, m.rows, m.start_time or "-", m.end_time or "-", LABEL_TEXT[m.label], m.user,
                             f"{m.at:%Y-%m-%d %H:%M:%S}", m.verdict or "-", "-" if m.interval_rank is None else m.interval_rank,
                             m.note or "-", "yes" if id(m) in effective else "no (a later mark on these rows)"]))
    return lines


def _latest(marks: list[FeedbackMark]) -> list[FeedbackMark]:
    latest: dict[tuple[int, int], FeedbackMark] = {}
    for m in marks:
        latest[(m.start, m.end)] = m
    return list(latest.values())


def feedback_cmd(
    file: Annotated[Path, typer.Argument(help="The series file the interval belongs to (as given to `diagnose`).", show_default=False)],
    interval: Annotated[str | None, typer.Option("--interval", help="Rows START:END (inclusive, from 0), or timestamps T1..T2 (the first and last row inside).", show_default=False)] = None,
    label: Annotated[str | None, typer.Option("--label", help="real (a real anomaly) or false (a false alarm).", show_default=False)] = None,
    user: Annotated[str | None, typer.Option("--user", help="Who marks it (default: your login name).", show_default=False)] = None,
    verdict: Annotated[Path | None, typer.Option("--verdict", help="The verdict.json (or diagnosis folder) the interval was reported in; its rank is recorded.", show_default=False)] = None,
    note: Annotated[str | None, typer.Option("--note", help="A short note (up to 500 characters).", show_default=False)] = None,
    list_marks: Annotated[bool, typer.Option("--list", help="List the marks on FILE instead of adding one.")] = False,
) -> None:
    """Mark an interval of FILE as a real anomaly or a false alarm, or --list its marks.

    A later mark on the same rows replaces the earlier one (both are kept in the store).

    The next diagnosis of FILE uses the marks: selection switches to a track only when it gets more of the marks right at its own threshold, and an interval marked a false alarm is not flagged. `anomalygraph stream` takes them as the judge's answer inside them.

    Example: anomalygraph feedback ../shared/data/NAB/data/realKnownCause/nyc_taxi.csv --interval 5940:5960 --label false --verdict out/diagnosis
    """
    from anomalygraph.data.feedback import make_mark, parse_interval
    from anomalygraph.data.loaders import load_series

    store = default_store()
    if list_marks:
        if interval is not None or label is not None or note is not None or verdict is not None:
            raise ConfigError("--list shows the marks; leave out --interval, --label, --verdict and --note")
        if not file.is_file():
            raise DataError(f"{file}: no such file")
        marks = store.marks(file)
        if not marks:
            out.print(f"no feedback on {file} yet", highlight=False)
            return
        out.print(f"{len(marks)} mark(s) on {file} (stored in {store.file_for(file)}):", highlight=False)
        for line in marks_table(marks):
            out.print(line, highlight=False, markup=False)
        return
    if interval is None or label is None:
        raise ConfigError("give --interval START:END (or T1..T2) and --label real|false, or --list")
    if label not in LABELS:
        raise ConfigError(f"--label must be real or false, got {label!r}")
    series = load_series(file)  # DataError for a missing or unreadable file
    start, end = parse_interval(interval, series)
    found = None if verdict is None else verdict_file(verdict)
    rank = None if found is None else verdict_rank(found, start, end)
    verdict_ref = None if found is None else str(found)
    mark = make_mark(file, series, start, end, label, user or login_name(), verdict=verdict_ref, rank=rank, note=note)
    where = store.add(mark)
    times = f" ({mark.start_time} .. {mark.end_time})" if mark.start_time else ""
    out.print(f"stored: {LABEL_TEXT[mark.label]} on {series.name} rows {mark.start}..{mark.end}{times} "
              f"by {mark.user} at {mark.at:%Y-%m-%d %H:%M:%S} UTC"
              + (f", interval #{rank} of {verdict_ref}" if rank is not None else f", on {verdict_ref}" if verdict_ref else ""),
              highlight=False)
    out.print(f"in {where}", highlight=False)
