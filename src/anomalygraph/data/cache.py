"""Series loaded once per process: graph nodes run in separate steps (and after a resume), and each
step that needs the series would otherwise parse the file again."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from anomalygraph.data.loaders import load_series
from anomalygraph.data.series import TimeSeries


@lru_cache(maxsize=8)
def _load(real_path: str, mtime_ns: int, size: int) -> TimeSeries:
    del mtime_ns, size  # part of the key: an edited file is loaded again
    return load_series(real_path)


def cached_series(path: str | Path) -> TimeSeries:
    """``load_series(path)`` with default options, reused while the file is unchanged.

    Callers resolve ``path`` inside their data roots first; this only reads.
    """
    real = Path(path).resolve()
    stat = real.stat()
    return _load(str(real), stat.st_mtime_ns, stat.st_size)
