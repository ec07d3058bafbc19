"""Helpers the command modules share (kept apart from ``main`` so sub-commands need not import it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from anomalygraph.core.errors import ConfigError
from anomalygraph.data.loaders import LoadOptions, load_series
from anomalygraph.data.series import TimeSeries
from anomalygraph.data.validation import NanPolicy


def load_file(path: Path, fmt: str, nan: NanPolicy, timestamp_col: str | None, columns: str | None,
          label_col: str | None, resample: str | None) -> TimeSeries:
    options = LoadOptions(
        format=fmt,
        nan=nan,
        timestamp_col=timestamp_col,
        value_cols=[c.strip() for c in columns.split(",") if c.strip()] if columns else None,
        label_col=label_col,
        resample=resample,
    )
    return load_series(path, options)


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as JSON when they parse (numbers, true, null), else text."""
    config: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            config[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            config[key.strip()] = raw
    return config
