"""Markdown tables for reports and eval summaries: one writer, so every table escapes its cells.

A cell may hold a model's answer or a file's column name; a ``|`` or a line break in it would
otherwise split the row, so both are escaped here rather than trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def md_cell(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def md_row(cells: Iterable[object]) -> str:
    return "| " + " | ".join(md_cell(c) for c in cells) + " |"


def table_lines(header: Sequence[object], rows: Iterable[Sequence[object]] = ()) -> list[str]:
    """The lines of a table: header, separator, one line per row (rows may be added later with :func:`md_row`)."""
    return [md_row(header), "|" + "---|" * len(header), *(md_row(r) for r in rows)]
