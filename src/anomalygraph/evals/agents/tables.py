"""Where an agent eval's results go: a Markdown table for people beside the JSON it was made from."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel


def write_eval(report: BaseModel, markdown: str, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """``<stem>.md`` and ``<stem>.json`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    md.write_text(markdown, encoding="utf-8")
    js.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    return md, js
