"""Run-time settings from the environment (``ANOMALYGRAPH_*``), so nothing is hard-wired to a path."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANOMALYGRAPH_", extra="ignore")

    data_root: Path = Field(
        Path("../shared/data"),
        description="folder holding the benchmark datasets (NAB/, SMAP_MSL/, UCR/, TSB-AD/)",
    )
    results_dir: Path = Field(Path("results"), description="where `anomalygraph bench` writes by default")
    data_roots: list[Path] = Field(
        default_factory=lambda: [Path("../shared/data"), Path(".")],
        description="folders agents' file tools may read (JSON list in ANOMALYGRAPH_DATA_ROOTS)",
    )
    output_dir: Path = Field(Path("out"), description="where agents and graphs write plots and reports")


def get_settings() -> Settings:
    return Settings()
