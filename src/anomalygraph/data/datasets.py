"""Named benchmark datasets as folders of files the loaders understand."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from anomalygraph.core.errors import ConfigError, DataError


class DatasetSpec(BaseModel):
    name: str
    folder: str
    pattern: str
    description: str


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(name="nab", folder="NAB", pattern="data/*/*.csv", description="Numenta Anomaly Benchmark, univariate, label windows"),
        DatasetSpec(name="smap_msl", folder="SMAP_MSL", pattern="test/*.npy", description="NASA SMAP/MSL telemetry, 25/55 channels, train split"),
        DatasetSpec(name="ucr", folder="UCR", pattern="*.txt", description="UCR anomaly archive, one anomaly per file, train split"),
        DatasetSpec(name="tsb_ad_u", folder="TSB-AD/TSB-AD-U", pattern="*.csv", description="TSB-AD univariate files, train split"),
    )
}


def dataset_files(name: str, root: Path) -> list[Path]:
    """The files of dataset ``name`` under ``root``, sorted, or an error saying what is missing."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset '{name}'; known: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    folder = root / spec.folder
    if not folder.is_dir():
        raise DataError(f"dataset '{name}': folder {folder} not found (pass --data or set ANOMALYGRAPH_DATA_ROOTS, whose first folder holds the datasets)")
    files = sorted(folder.glob(spec.pattern))
    if not files:
        raise DataError(f"dataset '{name}': no files match {folder / spec.pattern}")
    return files
