"""The analyst eval's recipes: on the real files they give what the label files and the raw data
say (read here independently), and the shape rules on synthetic windows of each shape."""

from __future__ import annotations

import ast
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from anomalygraph.core.errors import ConfigError
from anomalygraph.data.loaders import load_series
from anomalygraph.evals.agents import analyst_eval as ev
from anomalygraph.evals.agents import analyst_recipes as recipes


def golds(shared_data, recipe: str) -> dict[str, tuple[ev.Question, ev.Gold]]:
    return {x.id: (x, ev.prepare(x, shared_data)[1]) for x in ev.load_questions() if x.recipe == recipe}


def test_smap_msl_counts_and_rows_match_labeled_anomalies_csv(shared_data):
    table = pd.read_csv(shared_data / "SMAP_MSL" / "labeled_anomalies.csv").drop_duplicates("chan_id")
    sequences = {row.chan_id: ast.literal_eval(row.anomaly_sequences) for row in table.itertuples()}
    checked = 0
    for x in ev.load_questions():
        if not x.path.startswith("SMAP_MSL/"):
            continue
        channel = x.path.rsplit("/", 1)[1].removesuffix(".npy")
        offset = np.load(shared_data / "SMAP_MSL" / "train" / f"{channel}.npy", mmap_mode="r").shape[0]
        _, gold, _ = ev.prepare(x, shared_data)
        if x.recipe == "label_events":
            assert gold.value == len(sequences[channel]), x.id
        if x.recipe == "labelled_rows":  # the tools number test rows after the training rows
            first = sorted(sequences[channel])[x.params.get("event", 0)]
            assert gold.value == [first[0] + offset, first[1] + offset], x.id
            checked += 1
        if x.recipe == "channel_count":
            assert gold.value == np.load(shared_data / x.path, mmap_mode="r").shape[1] == (55 if channel[0] in "CFMST" else 25)
    assert checked >= 2


def test_ucr_rows_come_from_the_file_name(shared_data):
    for x, gold in golds(shared_data, "labelled_rows").values():
        if x.path.startswith("UCR/"):
            start, end = (int(v) for v in x.path.removesuffix(".txt").split("_")[-2:])
            assert gold.value == [start - 1, end - 1], x.id  # the archive's positions are 1-based


def test_row_counts_are_the_files_lines(shared_data):
    for x, gold in golds(shared_data, "row_count").values():
        lines = [line for line in (shared_data / x.path).read_text().splitlines() if line.strip()]
        assert gold.value == len(lines) - (1 if x.path.endswith(".csv") else 0), x.id
    assert golds(shared_data, "row_count")["nab_ambient_rows"][1].value == 7267  # the NAB README's table


def test_nab_days_match_the_label_files(shared_data):
    labels = json.loads((shared_data / "NAB" / "labels" / "combined_labels.json").read_text())
    windows = json.loads((shared_data / "NAB" / "labels" / "combined_windows.json").read_text())
    for x, gold in golds(shared_data, "labelled_point_day").values():
        [label] = labels[x.path.removeprefix("NAB/data/")]
        assert gold.value == label[:10], x.id
    largest = {k: g.value for k, (_, g) in golds(shared_data, "largest_labelled_day").items()}
    assert largest["nab_machine_largest_day"] == "2013-12-16"  # the big drop before the failure
    for x, _ in golds(shared_data, "largest_labelled_day").values():  # the day lies inside a labelled window
        day = pd.Timestamp(largest[x.id])
        spans = [(pd.Timestamp(a).normalize(), pd.Timestamp(b)) for a, b in windows[x.path.removeprefix("NAB/data/")]]
        assert any(a <= day <= b for a, b in spans), x.id


def test_sampling_and_periods(shared_data):
    sampling = {k: g.value for k, (_, g) in golds(shared_data, "sampling_interval").items()}
    assert sampling == {"nab_taxi_sampling": 1800.0, "nab_exchange3_sampling": 3600.0, "nab_traveltime_sampling": 600.0,
                        "nab_ambient_sampling": 3600.0, "nab_ko_sampling": 300.0}
    periods = {k: g.value for k, (_, g) in golds(shared_data, "dominant_period").items()}
    assert periods["nab_jumpsup_period"] == 288  # one day of 5-minute rows


@pytest.mark.filterwarnings("ignore:.*channels are constant")
def test_channel_gold_is_unambiguous(shared_data):
    """An independent ranking (explain_window's, phase-aware with its own floors) puts the same channel first."""
    from anomalygraph.tools.explain import explain_window

    for x, gold in golds(shared_data, "top_deviating_channel").values():
        series = load_series(shared_data / x.path)
        explained = explain_window(series, gold.fields["start"], gold.fields["end"])
        assert explained.deviating_channels[0].channel == gold.value, x.id


def test_shapes_match_what_the_plots_show(shared_data):
    """Checked by eye on plots of each window: the flat middle, the ec2/rds steps up, the SMAP
    single-row excursions, the traffic speed dip, the network spike."""
    shapes = {k: g.value for k, (_, g) in golds(shared_data, "anomaly_shape").items()}
    assert shapes == {
        "nab_flatmiddle_shape": "flatline", "smap_a2_shape": "flatline",
        "nab_ac20cd_shape": "level_shift", "nab_rds_shape": "level_shift",
        "smap_g3_shape": "dip", "nab_speed_shape": "dip",
        "smap_d8_shape": "spike", "nab_network_shape": "spike",
    }


@pytest.mark.filterwarnings("ignore:.*irregular sampling")
def test_detector_gold_is_what_compare_detectors_reports(shared_data):
    """The recipe runs the detectors itself; the tool the agent calls reports the same who-flags-what."""
    from anomalygraph.tools.analysis import CompareArgs, compare
    from anomalygraph.tools.context import ToolContext

    chosen = golds(shared_data, "detectors_flagging")
    assert {len(g.value) for _, g in chosen.values()} == {0, 1, 2, 3}  # no fixed answer fits all
    ctx = ToolContext(data_roots=[shared_data])
    for qid in ("nab_taxi_detectors", "nab_elb_detectors"):
        x, gold = chosen[qid]
        start, end = gold.fields["start"], gold.fields["end"]
        result = compare(ctx, CompareArgs(path=x.path, detectors=x.params["detectors"]))
        overlapping = {d for iv in result.intervals if iv.start <= end and iv.end >= start for d in iv.detectors}
        assert overlapping == set(gold.value), qid


# ------------------------------------------------------------ shapes, synthetic
def shaped(kind: str, n: int = 1200, start: int = 900, length: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, n)
    labels = np.zeros(n, dtype=np.uint8)
    labels[start : start + length] = 1
    if kind == "spike":
        x[start + 20] += 15
    elif kind == "dip":
        x[start + 20 : start + 22] -= 15
    elif kind == "level_shift":
        x[start + 30 :] += 8
    elif kind == "flatline":
        x[start + 10 : start + 50] = x[start + 10]
    elif kind == "noise":
        x[start : start + length] *= 1.5
    return x, labels


@pytest.mark.parametrize("kind", ["spike", "dip", "level_shift", "flatline"])
def test_shape_rules_on_synthetic_windows(tmp_path, kind):
    x, labels = shaped(kind)
    path = tmp_path / "s.csv"
    pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=len(x), freq="5min"), "value": x,
                  "label": labels}).to_csv(path, index=False)
    gold = recipes.anomaly_shape(path, load_series(path), SimpleNamespace(id="s", path="s.csv", params={}))
    assert gold.value == kind and gold.fields == {"start": 900, "end": 959, "channel": "value"}


def test_a_window_with_no_clear_shape_is_refused(tmp_path):
    x, labels = shaped("noise")
    path = tmp_path / "s.csv"
    pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=len(x), freq="5min"), "value": x,
                  "label": labels}).to_csv(path, index=False)
    with pytest.raises(ConfigError, match="no clear answer"):
        recipes.anomaly_shape(path, load_series(path), SimpleNamespace(id="s", path="s.csv", params={}))


def test_ambiguous_gold_is_refused(tmp_path):
    """Two labelled windows almost equally large: no question about "the largest" is asked."""
    x = np.zeros(600)
    labels = np.zeros(600, dtype=np.uint8)
    labels[100:110] = labels[400:410] = 1
    x[105], x[405] = 10.0, 9.5
    x += np.random.default_rng(1).normal(0, 0.1, 600)
    path = tmp_path / "s.csv"
    pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=600, freq="h"), "value": x, "label": labels}).to_csv(
        path, index=False)
    series = load_series(path)
    with pytest.raises(ConfigError, match=r"within 1\.2x"):
        recipes.largest_labelled_day(path, series, SimpleNamespace(id="s", path="s.csv", params={}))
    gold = recipes.largest_labelled_day(path, series, SimpleNamespace(id="s", path="s.csv", params={"min_margin": 1.0}))
    assert gold.value == "2024-01-05"
