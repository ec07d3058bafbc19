"""Loaders against the real files in ../shared/data, with counts as their READMEs state them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anomalygraph.core.intervals import mask_to_intervals
from anomalygraph.data import load_series
from anomalygraph.data.loaders import detect_format

NAB_FILES = {  # file: (rows, points inside label windows, windows) from NAB/README.md
    "realKnownCause/nyc_taxi.csv": (10320, 1035, 5),
    "realKnownCause/machine_temperature_system_failure.csv": (22695, 2268, 4),
    "realAWSCloudwatch/ec2_network_in_257a54.csv": (4032, 403, 1),
    "realTweets/Twitter_volume_GOOG.csv": (15842, 1432, 3),
    "artificialNoAnomaly/art_daily_small_noise.csv": (4032, 0, 0),
}
SMAP_MSL = {  # channel: (train shape, test shape, anomalous test points, sequences) from SMAP_MSL/README.md
    "P-1": ((2872, 25), (8505, 25), 751, [[2149, 2349], [3539, 3779], [4536, 4844]]),
    "E-1": ((2880, 25), (8516, 25), 508, [[5000, 5030], [5610, 6086]]),
    "A-4": ((2690, 25), (8080, 25), 111, [[4550, 4660]]),
    "M-1": ((2209, 55), (2277, 55), 1141, [[1110, 2250]]),
    "C-1": ((2158, 55), (2264, 55), 312, [[550, 750], [2100, 2210]]),
    "T-5": ((2272, 55), (2218, 55), 26, [[1200, 1225]]),
}
UCR = {  # file: (length, train end, 1-based inclusive anomaly)
    "135_UCR_Anomaly_InternalBleeding16_1200_4187_4199.txt": (7501, 1200, 4187, 4199),
    "136_UCR_Anomaly_InternalBleeding17_1600_3198_3309.txt": (7500, 1600, 3198, 3309),
    "137_UCR_Anomaly_InternalBleeding18_2300_4485_4587.txt": (7500, 2300, 4485, 4587),
}


@pytest.mark.parametrize(("name", "expected"), NAB_FILES.items())
def test_nab(shared_data, name, expected):
    rows, positives, windows = expected
    if "machine_temperature" in name:  # this NAB file steps back one hour at line 10151
        with pytest.warns(UserWarning, match="not sorted.*line 10151.*rows kept in file order"):
            series = load_series(shared_data / "NAB" / "data" / name)
    else:
        series = load_series(shared_data / "NAB" / "data" / name)
    assert series.meta["format"] == "nab"
    assert series.values.shape == (rows, 1)
    assert series.values.dtype == np.float32
    assert int(series.labels.sum()) == positives
    assert len(mask_to_intervals(series.labels)) == windows
    assert series.timestamps is not None
    assert series.timestamps.is_monotonic_increasing != ("machine_temperature" in name)
    assert series.train_end is None


@pytest.mark.parametrize(("chan", "expected"), SMAP_MSL.items())
def test_telemanom(shared_data, chan, expected):
    train_shape, test_shape, positives, sequences = expected
    series = load_series(shared_data / "SMAP_MSL" / "test" / f"{chan}.npy")
    assert series.meta["format"] == "telemanom"
    assert series.train_end == train_shape[0]
    assert series.values.shape == (train_shape[0] + test_shape[0], test_shape[1])
    test = series.test()
    assert test.values.shape == test_shape
    assert int(test.labels.sum()) == positives
    assert not series.train().labels.any()
    assert [list(iv) for iv in mask_to_intervals(test.labels)] == sorted(sequences)
    raw = np.load(shared_data / "SMAP_MSL" / "test" / f"{chan}.npy")
    np.testing.assert_array_equal(test.values, raw.astype(np.float32))


def test_telemanom_from_train_path_is_same_series(shared_data):
    a = load_series(shared_data / "SMAP_MSL" / "train" / "C-1.npy")
    b = load_series(shared_data / "SMAP_MSL" / "test" / "C-1.npy")
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.labels, b.labels)


@pytest.mark.parametrize(("name", "expected"), UCR.items())
def test_ucr(shared_data, name, expected):
    length, train_end, start, end = expected
    series = load_series(shared_data / "UCR" / name)
    assert series.meta["format"] == "ucr"
    assert series.length == length and series.train_end == train_end
    assert mask_to_intervals(series.labels) == [(start - 1, end - 1)]
    np.testing.assert_allclose(series.values[:, 0], np.loadtxt(shared_data / "UCR" / name), rtol=1e-6)


def test_tsbad(shared_data):
    series = load_series(shared_data / "TSB-AD" / "TSB-AD-U" / "001_NAB_id_1_Facility_tr_1007_1st_2014.csv")
    assert series.meta["format"] == "tsbad"
    assert series.values.shape == (4031, 1)
    assert series.train_end == 1007
    assert int(series.labels.sum()) == 343
    assert mask_to_intervals(series.labels) == [(2014, 2147), (3328, 3461), (3956, 4030)]
    assert series.meta["first_anomaly"] == 2014


def write_smd(root, machine="machine-1-1", n_train=50, n_test=40, d=4, bad_label=False):
    rng = np.random.default_rng(0)
    for part in ("train", "test", "test_label", "interpretation_label"):
        (root / part).mkdir(parents=True, exist_ok=True)
    train, test = rng.random((n_train, d)), rng.random((n_test, d))
    labels = np.zeros(n_test, dtype=int)
    labels[10:15] = 1
    np.savetxt(root / "train" / f"{machine}.txt", train, delimiter=",", fmt="%.6f")
    np.savetxt(root / "test" / f"{machine}.txt", test, delimiter=",", fmt="%.6f")
    if bad_label:
        labels[3] = 2
    np.savetxt(root / "test_label" / f"{machine}.txt", labels, fmt="%d")
    (root / "interpretation_label" / f"{machine}.txt").write_text("10-14:1,3\n")
    return train, test, labels


def test_smd_layout(tmp_path):
    _train, test, labels = write_smd(tmp_path)
    path = tmp_path / "test" / "machine-1-1.txt"
    assert detect_format(path) == "smd"
    series = load_series(path)
    assert series.values.shape == (90, 4) and series.train_end == 50
    np.testing.assert_allclose(series.test().values, test, atol=1e-6)
    np.testing.assert_array_equal(series.test().labels, labels)
    assert series.meta["interpretation"] == [{"start": 10, "end": 14, "channels": [0, 2]}]


def test_generic_csv_and_parquet_agree(tmp_path):
    t = pd.date_range("2024-01-01", periods=200, freq="5min")
    frame = pd.DataFrame({"time": t, "cpu": np.sin(np.arange(200) / 5), "mem": np.arange(200.0), "label": 0})
    frame.loc[100:104, "label"] = 1
    frame.to_csv(tmp_path / "m.csv", index=False)
    frame.to_parquet(tmp_path / "m.parquet")
    a, b = load_series(tmp_path / "m.csv"), load_series(tmp_path / "m.parquet")
    for s in (a, b):
        assert s.channels == ["cpu", "mem"]
        assert s.meta["timestamp_column"] == "time" and s.meta["label_column"] == "label"
        assert int(s.labels.sum()) == 5
        assert s.timestamps[0] == pd.Timestamp("2024-01-01")
    np.testing.assert_array_equal(a.values, b.values)
    only = load_series(tmp_path / "m.csv", value_cols=["mem"])
    assert only.channels == ["mem"]


def test_resample_regularises_irregular_series(tmp_path):
    t = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:01", "2024-01-01 00:02", "2024-01-01 00:05"])
    pd.DataFrame({"timestamp": t, "v": [1.0, 2.0, 3.0, 6.0]}).to_csv(tmp_path / "i.csv", index=False)
    with pytest.warns(UserWarning, match="irregular sampling"):
        series = load_series(tmp_path / "i.csv", resample="1min")
    assert series.length == 6
    np.testing.assert_allclose(series.values[:, 0], [1, 2, 3, 4, 5, 6])
    assert any("resampled" in r for r in series.meta["repairs"])
