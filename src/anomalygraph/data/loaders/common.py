"""Options shared by every loader and the checks every file goes through first."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.core.errors import DataError
from anomalygraph.data.validation import NanPolicy


class LoadOptions(BaseModel):
    """What the user may say about a file; anything left unset is detected and reported."""

    model_config = ConfigDict(extra="forbid")

    format: str = Field("auto", description="auto, csv, parquet, nab, telemanom, smd, ucr or tsbad")
    timestamp_col: str | None = Field(None, description="timestamp column; detected by name when unset")
    value_cols: list[str] | None = Field(None, description="value columns; all remaining columns when unset")
    label_col: str | None = Field(None, description="0/1 label column; detected by name when unset")
    nan: NanPolicy = Field(NanPolicy.interpolate, description="how NaN/inf values are handled")
    resample: str | None = Field(None, description="pandas frequency such as '5min' to regularise sampling")


def check_file(path: Path) -> Path:
    """The path exists, is a file and is not empty."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    return path
