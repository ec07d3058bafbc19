"""Loaders by format, with automatic detection from the path and one entry point.

``load_series(path)`` picks the format from the file name and its neighbours (a NAB tree, the
telemanom layout, UCR and TSB-AD file names, SMD folders); ``format=`` overrides the guess.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from anomalygraph.core.errors import DataError
from anomalygraph.data.loaders.archives import (
    load_smd,
    load_telemanom,
    load_ucr,
    looks_like_smd,
    looks_like_telemanom,
    parse_ucr_name,
)
from anomalygraph.data.loaders.common import LoadOptions, check_file
from anomalygraph.data.loaders.nab import find_nab_labels, load_nab
from anomalygraph.data.loaders.tabular import load_csv, load_parquet, load_tsbad, looks_like_tsbad
from anomalygraph.data.resample import resample
from anomalygraph.data.series import TimeSeries

Loader = Callable[[Path, LoadOptions], TimeSeries]

FORMATS: dict[str, Loader] = {
    "csv": load_csv,
    "parquet": load_parquet,
    "nab": load_nab,
    "telemanom": load_telemanom,
    "smd": load_smd,
    "ucr": load_ucr,
    "tsbad": load_tsbad,
}


def detect_format(path: Path) -> str:
    """Guess the format from the path; the rules are ordered from most to least specific."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if looks_like_telemanom(path):
            return "telemanom"
        raise DataError(
            f"{path}: a .npy file outside the telemanom layout (train/ and test/ folders beside "
            "labeled_anomalies.csv); pass --format telemanom with that layout, or convert to CSV"
        )
    if suffix == ".txt":
        if parse_ucr_name(path.name) is not None:
            return "ucr"
        if looks_like_smd(path):
            return "smd"
        raise DataError(
            f"{path}: a .txt file that is neither a UCR archive file (…_UCR_Anomaly_<name>_<train>_<start>_<end>.txt) "
            "nor in the SMD layout (train/, test/, test_label/ folders)"
        )
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    if suffix in {".csv", ".tsv"}:
        if find_nab_labels(path) is not None:
            return "nab"
        if looks_like_tsbad(path):
            return "tsbad"
        return "csv"
    raise DataError(f"{path}: cannot tell the format from the extension '{suffix}'; pass --format ({', '.join(FORMATS)})")


def load_series(path: str | Path, options: LoadOptions | None = None, **kwargs: object) -> TimeSeries:
    """Load, validate and (optionally) resample one series. Keyword arguments fill ``LoadOptions``."""
    if options is None:
        options = LoadOptions.model_validate(kwargs)
    elif kwargs:
        options = options.model_copy(update=LoadOptions.model_validate({**options.model_dump(), **kwargs}).model_dump())
    path = check_file(Path(path))
    fmt = options.format if options.format != "auto" else detect_format(path)
    if fmt not in FORMATS:
        raise DataError(f"unknown format '{fmt}'; known: {', '.join(FORMATS)}")
    series = FORMATS[fmt](path, options)
    series.meta.setdefault("format", fmt)
    series.meta.setdefault("source", str(path))
    if options.resample:
        series = resample(series, options.resample, nan_policy=options.nan)
    return series


__all__ = ["FORMATS", "LoadOptions", "detect_format", "load_series"]
