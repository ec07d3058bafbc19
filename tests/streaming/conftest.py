"""A real NAB series as a stream, a small fast forecaster configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from anomalygraph.data.loaders import load_series
from anomalygraph.streaming.config import StreamConfig
from anomalygraph.streaming.records import Point
from anomalygraph.streaming.replay import series_points

NAB_FILE = "NAB/data/realKnownCause/machine_temperature_system_failure.csv"


@pytest.fixture(scope="session")
def real_points(shared_data: Path) -> list[Point]:
    """The first 1,200 points of a real NAB series (5-minute steps), in file order."""
    return series_points(load_series(shared_data / NAB_FILE))[:1200]


def small_config(**overrides: object) -> StreamConfig:
    forecaster = {"context_length": 32, "horizon": 4, "hidden": 16, "epochs": 5, "threads": 1}
    return StreamConfig(**{"warmup": 300, "neighbours": 5, "batch_size": 5, "finetune_history": 400,
                           "forecaster_config": forecaster, **overrides})
