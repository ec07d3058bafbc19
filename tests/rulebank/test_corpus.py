"""The pretraining corpus: real series' training rows only, labels exactly where anomalies were planted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalygraph.core.errors import ConfigError
from anomalygraph.data.windows import sliding_windows
from anomalygraph.rulebank.corpus import (
    CorpusConfig,
    as_config,
    build_corpus,
    plant_pseudo_anomalies,
)
from anomalygraph.rulebank.timeanomalybench import generate, scenarios_in

SENTINEL = 1.0e6  # every test row of the fake telemetry: it must never reach the corpus
TRAIN = 700
SMALL = {"window": 128, "horizon": 16, "n_synthetic": 0, "include_bench": False}


def telemetry(rng: np.random.Generator, rows: int, flat_until: int = 0) -> np.ndarray:
    """A value channel, a constant command and a 0/1 command, like a SMAP/MSL array."""
    t = np.arange(rows)
    value = np.sin(2 * np.pi * t / 40) + 0.1 * rng.normal(size=rows)
    value[:flat_until] = 0.25
    return np.column_stack([value, np.zeros(rows), rng.integers(0, 2, rows)]).astype(np.float64)


@pytest.fixture()
def data_root(tmp_path: Path) -> Path:
    """A tiny copy of the shared data's layout: one NAB file (no train split: its first 15 % is read), two SMAP/MSL channels."""
    rng = np.random.default_rng(0)
    nab = tmp_path / "NAB"
    (nab / "data" / "realFake").mkdir(parents=True)
    (nab / "labels").mkdir()
    stamps = pd.date_range("2024-01-01", periods=2000, freq="5min").strftime("%Y-%m-%d %H:%M:%S")
    nab_values = rng.normal(size=2000)
    nab_values[300:] = SENTINEL  # after NAB's probationary 15 %: never read
    pd.DataFrame({"timestamp": stamps, "value": nab_values}).to_csv(nab / "data" / "realFake" / "f.csv", index=False)
    (nab / "labels" / "combined_windows.json").write_text(json.dumps({"realFake/f.csv": []}))
    smap = tmp_path / "SMAP_MSL"
    (smap / "train").mkdir(parents=True)
    (smap / "test").mkdir()
    rows = []
    for chan, flat in (("T-1", 0), ("T-2", 300)):
        np.save(smap / "train" / f"{chan}.npy", telemetry(rng, TRAIN, flat))
        test = telemetry(rng, 400)
        test[:, 0] = SENTINEL
        np.save(smap / "test" / f"{chan}.npy", test)
        rows.append({"chan_id": chan, "spacecraft": "MSL", "anomaly_sequences": "[[0, 399]]", "class": "[point]", "num_values": 400})
    pd.DataFrame(rows).to_csv(smap / "labeled_anomalies.csv", index=False)
    return tmp_path


def raw_windows(root: Path, chan: str, total: int = 144, stride: int = 64) -> np.ndarray:
    w, _ = sliding_windows(np.load(root / "SMAP_MSL" / "train" / f"{chan}.npy")[:, 0].astype(np.float32), total, stride)
    w = w[:, :, 0]
    return w[np.ptp(w, axis=1) > 0]


def test_real_series_give_the_value_channel_of_their_training_rows_only(data_root):
    corpus = build_corpus({**SMALL, "anomaly_fraction": 0.0, "data_root": data_root})
    assert corpus.values.shape[1] == 144 and corpus.values.dtype == np.float32
    assert np.abs(corpus.values).max() < 10  # the sentinel of the test rows never appears
    assert not corpus.labels.any()  # the test rows' labels are never read
    for chan in ("T-1", "T-2"):
        mine = corpus.values[corpus.source == f"smap_msl/{chan}"]
        assert np.array_equal(mine, raw_windows(data_root, chan))  # the value channel, nothing else
    assert set(corpus.channel) == {"value"}
    m = corpus.manifest()
    # NAB has no split: its probationary first 15 % (300 rows) gives windows, nothing after it
    nab = corpus.values[corpus.source == "nab/f"]
    assert len(nab) == 4 and np.abs(nab).max() < 10  # starts 0, 64, 128 and the last full window, 156
    assert m["dropped_constant_windows"]["smap_msl/T-2"] > 0  # windows inside its flat start
    assert m["windows_per_dataset"] == {"nab": 4, "smap_msl": len(corpus) - 4}


def test_the_sentinel_stays_out_with_anomalies_planted_too(data_root):
    corpus = build_corpus({**SMALL, "anomaly_fraction": 1.0, "data_root": data_root})
    assert np.abs(corpus.values).max() < 1e3  # planted values derive from the windows, donors too


def test_labels_mark_exactly_the_planted_rows(data_root):
    config = {**SMALL, "n_synthetic": 40, "synthetic_length": 400, "data_root": data_root}
    clean = build_corpus({**config, "anomaly_fraction": 0.0})
    dirty = build_corpus({**config, "anomaly_fraction": 1.0})
    assert np.array_equal(clean.source, dirty.source) and not clean.labels.any()
    changed = clean.values != dirty.values
    labelled = dirty.labels.astype(bool)
    assert not (changed & ~labelled).any()  # nothing changes outside the labels
    planted = np.char.startswith(dirty.anomaly, "planted:")
    assert planted.mean() > 0.8  # nearly every window; the few draws that stay ineffective are left out
    assert changed[planted].any(axis=1).all() and not labelled[~planted].any()
    starts = dirty.anomaly_start[planted]
    assert (labelled[planted].argmax(axis=1) == starts).all()
    in_horizon = (starts >= 128).mean()
    assert 0.3 < in_horizon < 0.7  # about half start in the horizon the model forecasts
    m = dirty.manifest()
    assert m["planted_start"]["horizon"] + m["planted_start"]["context"] == planted.sum()
    assert len(m["planted_by_rule"]) >= 8  # the generic bank's univariate operators


def test_exclude_removes_a_series_and_a_typo_is_refused(data_root):
    corpus = build_corpus({**SMALL, "data_root": data_root}, exclude=["smap_msl/T-1", "nab/f"])
    assert set(corpus.source) == {"smap_msl/T-2"}
    assert corpus.manifest()["excluded"] == ["nab/f", "smap_msl/T-1"]
    with pytest.raises(ConfigError, match="T-9"):
        build_corpus({**SMALL, "data_root": data_root}, exclude=["smap_msl/T-9"])
    with pytest.raises(ConfigError, match="dataset"):
        build_corpus({**SMALL, "data_root": data_root}, exclude=["T-1"])


def test_the_default_data_root_comes_from_the_settings(data_root, monkeypatch):
    monkeypatch.setenv("ANOMALYGRAPH_DATA_ROOTS", json.dumps([str(data_root)]))
    assert build_corpus(SMALL).manifest()["data_root"] == str(data_root.resolve())


def test_manifest_is_json_and_its_hashes_follow_the_seed(data_root):
    config = {**SMALL, "n_synthetic": 6, "synthetic_length": 300, "data_root": data_root}
    a, b, c = (build_corpus({**config, "seed": s}).manifest() for s in (0, 0, 1))
    json.dumps(a)
    assert a["sha256"] == b["sha256"]
    assert a["sha256"]["values"] != c["sha256"]["values"] and a["sha256"]["labels"] != c["sha256"]["labels"]
    assert a["windows_per_dataset"]["kernelsynth"] == 6 * 4  # starts 0, 64, 128 and the end-aligned 156
    assert a["series_per_dataset"] == {"kernelsynth": 6, "nab": 1, "smap_msl": 2}
    assert a["kernelsynth"]["n_series"] == 6


def test_bench_uses_the_tune_scenarios_with_their_own_anomalies():
    corpus = build_corpus({**SMALL, "include_real": False, "include_bench": True, "anomaly_fraction": 0.0})
    assert set(corpus.source) == {f"bench/{name}" for name in scenarios_in("tune")}
    bench = np.char.startswith(corpus.anomaly, "bench:")
    assert bench.any() and corpus.labels[bench].any(axis=1).all() and not corpus.labels[~bench].any()
    # the labels of one channel are the injected events that touched it, and only those
    scenario = generate("building_energy", 0)
    c = scenario.series.channels.index("hvac_kw")
    expected = np.zeros(scenario.series.length, np.int8)
    for e in scenario.events:
        if "hvac_kw" in e.channels:
            expected[e.start : e.end + 1] = 1
    assert expected.any() and (expected != scenario.series.labels).any()  # other channels' events differ
    values, starts = sliding_windows(scenario.series.values[:, c], 144, 64)
    rows = (corpus.source == "bench/building_energy") & (corpus.channel == "hvac_kw")
    assert np.array_equal(corpus.values[rows], values[:, :, 0])
    assert np.array_equal(corpus.labels[rows], expected[starts[:, None] + np.arange(144)])
    assert corpus.manifest()["bench"]["scenarios"] == scenarios_in("tune")


def test_plant_puts_one_anomaly_where_asked():
    rng = np.random.default_rng(0)
    x = (np.sin(np.arange(96) / 5)[None, :] + 0.2 * rng.normal(size=(300, 96))).astype(np.float32)
    group = np.repeat(np.arange(3), 100)
    for share, inside in ((1.0, lambda s: s >= 80), (0.0, lambda s: s < 80)):
        out = plant_pseudo_anomalies(x, group, context=80, fraction=0.5, horizon_share=share, rng=np.random.default_rng(1))
        planted = out.rule != ""
        assert 0.4 < planted.mean() <= 0.5
        assert inside(out.start[planted]).all()
        assert not ((out.values != x) & (out.labels == 0)).any()
        assert np.array_equal(out.values[~planted], x[~planted])


def test_bad_configuration_is_a_config_error():
    with pytest.raises(ConfigError, match="window"):
        as_config({"window": 4})
    with pytest.raises(ConfigError, match="surprise"):
        as_config({"surprise": 1})
    with pytest.raises(ConfigError, match="synthetic_length"):
        as_config(CorpusConfig(window=1024, n_synthetic=1, synthetic_length=1024))
    with pytest.raises(ConfigError, match="no source"):
        as_config({"n_synthetic": 0, "include_real": False, "include_bench": False})
    assert as_config(None).step == 256
