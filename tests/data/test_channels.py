"""Channel roles read from the values, on synthetic columns and on real SMAP/MSL channels."""

from __future__ import annotations

import numpy as np
import pytest

from anomalygraph.data import TimeSeries
from anomalygraph.data.channels import channel_role, channel_roles, describe_roles, scored_channels
from anomalygraph.data.loaders import load_series


def test_roles_of_synthetic_columns():
    rng = np.random.default_rng(0)
    values = np.column_stack([rng.normal(size=200), rng.integers(0, 2, 200), np.full(200, 3.0),
                              np.where(rng.random(200) > 0.5, 1.0, -1.0)])
    roles = [c.role for c in channel_roles(TimeSeries(values=values))]
    assert roles == ["value", "indicator", "constant", "two_level"]
    assert scored_channels(TimeSeries(values=values)) == [0, 3]
    assert channel_role(np.array([0.0, 1.0, 0.5]))[0] == "value"  # three levels are a measurement


def test_only_flags_fall_back_to_the_varying_flags():
    values = np.column_stack([np.tile([0.0, 1.0], 50), np.zeros(100)])
    assert scored_channels(TimeSeries(values=values)) == [0]


@pytest.mark.parametrize(("channel", "value_role"), [("C-1", "value"), ("A-1", "value"), ("B-1", "two_level"), ("T-8", "value")])
def test_real_smap_msl_telemetry_is_scored_and_commands_are_not(shared_data, channel, value_role):
    with pytest.warns(Warning):  # the loader names the constant command channels
        series = load_series(shared_data / "SMAP_MSL" / "test" / f"{channel}.npy")
    infos = channel_roles(series)
    # column 0 is the telemetry value (README); every other column is a one-hot command, varying or not
    assert infos[0].role == value_role
    assert {c.role for c in infos[1:]} <= {"indicator", "constant"}
    assert scored_channels(series) == [0]
    raw = np.concatenate([np.load(shared_data / "SMAP_MSL" / d / f"{channel}.npy") for d in ("train", "test")])
    constant = int(sum(len(np.unique(raw[:, j])) == 1 for j in range(raw.shape[1])))
    assert sum(c.role == "constant" for c in infos) == constant
    assert describe_roles(infos).startswith(f"1 {value_role.replace('_', '-')} (value)")


def test_a_value_constant_in_training_rows_is_still_a_value(shared_data):
    """A-1's telemetry never moves in its training rows; only the whole series shows it is a measurement."""
    with pytest.warns(Warning):
        series = load_series(shared_data / "SMAP_MSL" / "test" / "A-1.npy")
    assert np.ptp(series.train().values[:, 0]) == 0
    assert channel_roles(series)[0].role == "value"
