"""Files the page can use: the series files under the data roots, and checked uploads into one of them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

from anomalygraph.core.errors import AnomalyGraphError, DataError
from anomalygraph.data.loaders import load_series
from anomalygraph.data.series import TimeSeries
from anomalygraph.ui.paths import SERIES_SUFFIXES, safe_name

SKIP_DIRS = {"node_modules", "__pycache__", "site-packages"}
MAX_LISTED = 2000
MAX_DEPTH = 6


class FileEntry(BaseModel):
    path: str
    root: str
    relative: str
    size: int


class SeriesSummary(BaseModel):
    """What the page shows of a loaded file; every string is rendered as text."""

    path: str
    name: str
    length: int
    channels: list[str]
    labelled: bool
    train_end: int | None
    first: str | None
    last: str | None


def list_files(roots: Iterable[Path], *, limit: int = MAX_LISTED) -> list[FileEntry]:
    """Series files under the roots (hidden folders, virtual environments and caches skipped), sorted."""
    found: dict[str, FileEntry] = {}
    for root in roots:
        real_root = Path(root).resolve()
        if not real_root.is_dir():
            continue
        for folder, dirs, names in os.walk(real_root, followlinks=False):
            depth = len(Path(folder).relative_to(real_root).parts)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS and depth < MAX_DEPTH)
            for name in sorted(names):
                path = Path(folder) / name
                if path.suffix.lower() not in SERIES_SUFFIXES or path.is_symlink():
                    continue
                key = str(path)
                if key not in found:
                    found[key] = FileEntry(path=key, root=str(real_root), relative=str(path.relative_to(real_root)),
                                           size=path.stat().st_size)
                if len(found) >= limit:
                    return sorted(found.values(), key=lambda f: f.path)
    return sorted(found.values(), key=lambda f: f.path)


def summarize(path: Path, series: TimeSeries) -> SeriesSummary:
    ts = series.timestamps
    return SeriesSummary(
        path=str(path), name=series.name, length=series.length, channels=[str(c) for c in series.channels],
        labelled=series.labels is not None, train_end=series.train_end,
        first=None if ts is None else str(ts[0]), last=None if ts is None else str(ts[-1]),
    )


def save_upload(name: str, data: bytes, folder: Path, *, max_bytes: int) -> tuple[Path, SeriesSummary]:
    """Check and store an upload: its size, its type, and that the loader reads it (its own error if not).

    The bytes go to a temporary file in ``folder`` first and only get their final name once the
    loader has read them, so a bad upload leaves nothing behind and a good one never overwrites another.
    """
    clean = safe_name(name)
    suffix = Path(clean).suffix.lower()
    if suffix not in SERIES_SUFFIXES:
        raise DataError(f"{safe_name(name)}: the workspace accepts {', '.join(SERIES_SUFFIXES)} files")
    if len(data) > max_bytes:
        raise DataError(f"{clean}: {len(data) / 1e6:.1f} MB is over the upload limit of {max_bytes / 1e6:.1f} MB")
    if not data:
        raise DataError(f"{clean}: the file is empty")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".upload-", suffix=suffix, dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            load_series(tmp)  # the loader decides; its own message is what the page shows
        except AnomalyGraphError as exc:
            raise DataError(f"{clean}: {exc}".replace(str(tmp), clean)) from exc
        except (ValueError, OSError, UnicodeDecodeError) as exc:  # a loader's library refusing the bytes
            raise DataError(f"{clean}: not a readable {suffix[1:]} series ({exc})".replace(str(tmp), clean)) from exc
        final = _free_name(folder, clean)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final, summarize(final, load_series(final))


def _free_name(folder: Path, name: str) -> Path:
    path = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    k = 1
    while path.exists():
        path = folder / f"{stem}-{k}{suffix}"
        k += 1
    return path
