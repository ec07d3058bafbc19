"""Every path that comes from the browser is resolved here, inside the data roots or the output folder.

Paths are made absolute against a root (never the server's working directory), then resolved
(``..`` and symlinks followed) and refused unless the real path lies inside an allowed folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from anomalygraph.core.errors import DataError
from anomalygraph.tools.context import resolve_in_roots

SERIES_SUFFIXES = (".csv", ".parquet", ".npy", ".txt")
"""What the page lists and accepts: the formats the loaders read from one file."""
ARTIFACT_SUFFIXES = {".png": "image/png", ".json": "application/json", ".md": "text/markdown; charset=utf-8",
                     ".yaml": "text/yaml; charset=utf-8"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def data_path(raw: str, roots: list[Path]) -> Path:
    """The real file ``raw`` names inside the data roots (relative paths are read from the first root)."""
    if not raw or "\x00" in raw:
        raise DataError("no file was named")
    real_roots = [Path(r).resolve() for r in roots]
    path = Path(raw).expanduser()
    absolute = path if path.is_absolute() else real_roots[0] / path
    real = resolve_in_roots(absolute, real_roots)
    if not real.is_file():
        raise DataError(f"{raw}: not a file")
    return real


def artifact_path(raw: str, out_dir: Path) -> Path:
    """A file the workspace wrote (plot, report, verdict, bank) inside the output folder, by type."""
    if not raw or "\x00" in raw:
        raise DataError("no file was named")
    real = Path(raw).expanduser().resolve()
    root = out_dir.resolve()
    if not real.is_relative_to(root):
        raise DataError(f"{raw}: outside the output folder {root}")
    if real.suffix.lower() not in ARTIFACT_SUFFIXES:
        raise DataError(f"{raw}: the workspace only serves {', '.join(sorted(ARTIFACT_SUFFIXES))} files")
    if not real.is_file():
        raise DataError(f"{raw}: no such file")
    return real


def safe_name(name: str, *, default: str = "file") -> str:
    """A file or folder name made of letters, digits, '.', '_' and '-' (no folders, no leading dot)."""
    base = _UNSAFE.sub("_", Path(name.replace("\\", "/")).name).lstrip(".")
    return base[:120] or default
