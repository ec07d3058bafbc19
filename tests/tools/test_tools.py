"""Tools on real files: small pydantic results, root confinement, errors the model can read."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.data import TimeSeries
from anomalygraph.detectors import register_detector
from anomalygraph.detectors.baselines import RobustZDetector
from anomalygraph.tools import TOOL_NAMES, ToolContext, build_tools
from anomalygraph.tools import analysis as A
from anomalygraph.tools.context import resolve_in_roots
from anomalygraph.tools.explain import explain_window

JUMPSUP = "NAB/data/artificialWithAnomaly/art_daily_jumpsup.csv"


@pytest.fixture
def ctx(shared_data, tmp_path):
    return ToolContext(data_roots=[shared_data, tmp_path], output_dir=tmp_path / "plots")


def test_paths_stay_inside_roots(shared_data, tmp_path):
    assert resolve_in_roots(JUMPSUP, [shared_data]) == (shared_data / JUMPSUP).resolve()
    with pytest.raises(DataError, match="outside the configured data roots"):
        resolve_in_roots("../../etc/passwd", [shared_data])
    with pytest.raises(DataError, match="outside the configured data roots"):
        resolve_in_roots("/etc/passwd", [shared_data])
    link = tmp_path / "escape.csv"
    link.symlink_to("/etc/hostname")
    with pytest.raises(DataError, match="outside the configured data roots"):
        resolve_in_roots(link, [tmp_path])
    with pytest.raises(DataError, match="file not found under the data roots"):
        resolve_in_roots("NAB/nothing.csv", [shared_data])


def test_registry_builds_every_tool_with_a_schema(ctx):
    tools = build_tools(ctx)
    assert [t.name for t in tools] == list(TOOL_NAMES)
    for tool in tools:
        assert "path" in tool.args and tool.description


def test_detect_through_langchain_returns_small_json(ctx):
    detect = {t.name: t for t in build_tools(ctx)}["detect"]
    out = detect.invoke({"path": JUMPSUP, "detector": "sub_pca", "threshold": "pot"})
    assert out["detector"] == "sub_pca" and out["threshold"]["method"] == "pot"
    assert out["n_intervals"] > 0 and len(out["top_intervals"]) <= A.MAX_INTERVALS
    assert out["top_intervals"][0]["start_time"].startswith("2014-")
    assert len(str(out)) < 5000  # never the raw score array


def test_tool_errors_come_back_as_text_for_the_model(ctx):
    detect = {t.name: t for t in build_tools(ctx)}["detect"]
    out = detect.invoke({"path": "/etc/passwd"})
    assert isinstance(out, str) and "outside the configured data roots" in out
    out = detect.invoke({"path": JUMPSUP, "detector": "nope"})
    assert "unknown detector 'nope'" in out


def test_compare_reports_agreement(ctx):
    result = A.compare(ctx, A.CompareArgs(path=JUMPSUP, detectors=["iforest", "sub_pca", "matrix_profile"]))
    assert set(result.flagged) == {"iforest", "sub_pca", "matrix_profile"}
    assert result.intervals and all(0 < iv.agreement <= 1 for iv in result.intervals)
    assert result.intervals[0].agreement == max(iv.agreement for iv in result.intervals)
    assert set(result.rank_correlation) == {"iforest~sub_pca", "iforest~matrix_profile", "sub_pca~matrix_profile"}
    # runs are cached per context: the second call reuses them
    assert len(ctx.runs) >= 3
    again = A.compare(ctx, A.CompareArgs(path=JUMPSUP, detectors=["iforest", "sub_pca"]))
    assert again.flagged["iforest"] == result.flagged["iforest"]


def test_plot_after_a_restart_runs_the_detector_again_with_the_same_result(ctx, tmp_path):
    before = A.detect(ctx, A.DetectArgs(path=JUMPSUP, detector="sub_pca"))
    fresh = ToolContext(data_roots=ctx.data_roots, output_dir=tmp_path / "plots")  # a new process: empty cache
    result = A.plot(fresh, A.PlotArgs(path=JUMPSUP, detectors=["sub_pca"]))
    assert result.ran_now == ["sub_pca"]
    key = next(iter(fresh.series))
    np.testing.assert_array_equal(fresh.runs[(key, "sub_pca")].scores, ctx.runs[(key, "sub_pca")].scores)
    assert fresh.runs[(key, "sub_pca")].n_flagged == before.n_flagged


def test_evaluate_needs_labels(ctx, tmp_path):
    ev = A.evaluate(ctx, A.EvaluateArgs(path=JUMPSUP, detector="sub_pca"))
    assert 0 <= ev.metrics["vus_pr"] <= 1 and "f1_point_adjusted" in ev.metrics
    pd.DataFrame({"timestamp": pd.date_range("2024", periods=300, freq="1h"), "v": np.sin(np.arange(300))}).to_csv(tmp_path / "u.csv", index=False)
    with pytest.raises(DataError, match="no labelled anomaly"):
        A.evaluate(ctx, A.EvaluateArgs(path="u.csv"))


def test_plot_writes_png_with_detector_tracks(ctx):
    A.detect(ctx, A.DetectArgs(path=JUMPSUP, detector="iforest"))
    result = A.plot(ctx, A.PlotArgs(path=JUMPSUP, start=2500, end=3500, detectors=["iforest"]))
    assert result.rows == (2500, 3500) and result.ran_now == []
    with open(result.path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_profile_finds_season_and_level_change(ctx):
    assert A.profile(ctx, A.SeriesArgs(path=JUMPSUP)).channels_profiled[0].periods[0] == 288  # 5-min data, daily
    value = A.profile(ctx, A.SeriesArgs(path="NAB/data/realKnownCause/nyc_taxi.csv")).channels_profiled[0]
    assert value.periods == [48, 336]  # half-hourly taxi counts: daily and weekly cycles
    assert any(9977 <= cp <= 10183 for cp in value.change_points)  # the January 2015 blizzard window


def shaped(kind: str) -> TimeSeries:
    rng = np.random.default_rng(0)
    x = np.sin(np.arange(1000) / 8) + 0.05 * rng.normal(size=1000)
    other = 0.05 * rng.normal(size=1000)
    if kind == "spike":
        x[500] += 5
    elif kind == "dip":
        x[500] -= 5
    elif kind == "level_shift":
        x[480:540] += 6
    elif kind == "flatline":
        x[480:540] = x[480]
    elif kind == "variance_burst":
        x[480:540] += rng.normal(scale=3, size=60)
    return TimeSeries(values=np.c_[other, x], channels=["quiet", "signal"], name=kind)


@pytest.mark.parametrize("kind", ["spike", "dip", "level_shift", "flatline", "variance_burst"])
def test_explain_window_names_the_shape_and_channel(kind):
    start, end = (498, 502) if kind in {"spike", "dip"} else (480, 539)
    out = explain_window(shaped(kind), start, end)
    assert out.deviating_channels and out.deviating_channels[0].channel == "signal"
    assert out.deviating_channels[0].morphology == kind
    assert all(d.channel != "quiet" for d in out.deviating_channels)


@pytest.mark.parametrize(("kind", "rows"), [("spike", (500, 500)), ("dip", (500, 500)), ("spike", (499, 500))])
def test_explain_window_of_one_or_two_rows_is_a_spike_or_dip_without_warnings(kind, rows):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = explain_window(shaped(kind), *rows)
    assert out.deviating_channels[0].channel == "signal" and out.deviating_channels[0].morphology == kind


def test_a_step_inside_a_wider_window_is_a_level_shift_and_a_ramp_is_a_drift():
    """The window starts before the change (labels rarely fit tightly): a late step is still a step."""
    late_step = shaped("none")
    late_step.values[500:540, 1] += 6  # the first third of the window is before the step
    assert explain_window(late_step, 480, 539).deviating_channels[0].morphology == "level_shift"
    ramp = shaped("none")
    ramp.values[480:540, 1] += np.linspace(0, 12, 60)
    assert explain_window(ramp, 480, 539).deviating_channels[0].morphology == "drift"


def test_a_reading_stuck_for_part_of_the_window_is_a_flatline():
    stuck = shaped("none")
    stuck.values[500:530, 1] = stuck.values[500, 1]  # half the window repeats one value
    assert explain_window(stuck, 480, 539).deviating_channels[0].morphology == "flatline"


def test_a_stuck_stretch_that_runs_on_past_the_window_is_still_a_flatline():
    """The labelled rows cover part of the frozen stretch: its rest, in the context, is the same fault."""
    stuck = shaped("none")
    stuck.values[500:560, 1] = stuck.values[500, 1]  # 40 rows of the window and 20 after it
    assert explain_window(stuck, 480, 539).deviating_channels[0].morphology == "flatline"


def test_explain_window_for_one_channel_reports_that_channel_only():
    series = shaped("spike")
    quiet = explain_window(series, 498, 502, channel="quiet")
    assert quiet.deviating_channels == [] and "channel quiet does not deviate" in quiet.summary
    signal = explain_window(series, 498, 502, channel="signal")
    assert [d.channel for d in signal.deviating_channels] == ["signal"] and "channel signal deviates" in signal.summary
    with pytest.raises(DataError, match="no channel 'nope'; its channels: quiet, signal"):
        explain_window(series, 498, 502, channel="nope")


def test_explain_window_quiet_and_bad_ranges():
    out = explain_window(shaped("none"), 480, 539)
    assert out.deviating_channels == [] and "no channel deviates" in out.summary
    with pytest.raises(DataError, match="outside series"):
        explain_window(shaped("none"), 990, 1200)


def test_explain_window_ranks_telemetry_above_sparse_command_channels(shared_data):
    """T-5's labelled test rows: the telemetry value jumps; on/off command channels are not 'flatlines'."""
    from anomalygraph.data import load_series

    series = load_series(shared_data / "SMAP_MSL" / "test" / "T-5.npy")
    start = series.train_end + 1200
    out = explain_window(series, start, start + 25)
    assert out.deviating_channels[0].channel == "value" and out.top_channel == "value"
    assert all(d.morphology != "flatline" for d in out.deviating_channels if d.channel.startswith("cmd"))


class _HeavyZ(RobustZDetector):
    name = "heavy_for_test"
    heavy = True


register_detector(_HeavyZ)


def test_heavy_detectors_run_from_tools_only_with_a_gpu(shared_data, tmp_path):
    cpu = ToolContext(data_roots=[shared_data], output_dir=tmp_path, gpu=False)
    with pytest.raises(ConfigError, match="'heavy_for_test' is a deep model that agents run only with a GPU"):
        A.detect(cpu, A.DetectArgs(path=JUMPSUP, detector="heavy_for_test"))
    with pytest.raises(ConfigError, match="deep model"):
        A.compare(cpu, A.CompareArgs(path=JUMPSUP, detectors=["iforest", "heavy_for_test"]))
    gpu = ToolContext(data_roots=[shared_data], output_dir=tmp_path, gpu=True)
    assert A.detect(gpu, A.DetectArgs(path=JUMPSUP, detector="heavy_for_test")).detector == "heavy_for_test"


# ------------------------------------------------------------ answer-ready results
def spiky_csv(tmp_path):
    t = np.arange(2000)
    x = np.sin(2 * np.pi * t / 50) + np.random.default_rng(1).normal(scale=0.05, size=t.size)
    x[1500:1505] += 8.0
    path = tmp_path / "spiky.csv"
    pd.DataFrame({"timestamp": pd.date_range("2024-03-01", periods=t.size, freq="10min"), "v": x}).to_csv(path, index=False)
    return path


def test_detect_says_where_and_when_the_strongest_interval_is(ctx, tmp_path):
    out = A.detect(ctx, A.DetectArgs(path=str(spiky_csv(tmp_path)), detector="robust_z"))
    top = out.top_intervals[0]
    assert top.start <= 1500 <= 1504 <= top.end + 5 and 1500 <= top.peak <= 1504
    assert top.rows == f"{top.start}..{top.end}" and top.length == top.end - top.start + 1
    # row 1502 at 10-minute steps from 2024-03-01 00:00 is 2024-03-11 10:20
    assert top.day == "2024-03-11" and top.peak_time.startswith("2024-03-11")
    assert top.severity > 5  # far above the typical score, in robust sigmas
    assert out.summary.startswith(f"robust_z flags {out.n_intervals} interval(s)")
    assert f"rows {top.rows}" in out.summary and "on 2024-03-11" in out.summary


def test_compare_names_the_most_agreed_and_its_day(ctx, tmp_path):
    out = A.compare(ctx, A.CompareArgs(path=str(spiky_csv(tmp_path)), detectors=["robust_z", "iforest"]))
    best = out.intervals[0]
    assert set(best.detectors) == {"robust_z", "iforest"} and best.day == "2024-03-11"
    assert 1500 <= best.peak <= 1504 and best.severity > 5
    assert f"rows {best.rows}" in out.summary and "(2 of 2)" in out.summary


def test_compare_over_rows_of_interest_says_who_flags_them(ctx, tmp_path):
    path = str(spiky_csv(tmp_path))
    out = A.compare(ctx, A.CompareArgs(path=path, detectors=["robust_z", "iforest"], start=1498, end=1506))
    assert out.over_rows == {"robust_z": True, "iforest": True}
    assert out.summary.startswith("over rows 1498..1506: flagged by robust_z, iforest; overall: ")
    quiet = A.compare(ctx, A.CompareArgs(path=path, detectors=["robust_z", "iforest"], start=100, end=110))
    assert quiet.over_rows == {"robust_z": False, "iforest": False} and quiet.summary.startswith("over rows 100..110: flagged by none")
    with pytest.raises(ValueError, match="give both start and end"):
        A.CompareArgs(path=path, start=5)
    with pytest.raises(DataError, match="outside series"):
        A.compare(ctx, A.CompareArgs(path=path, detectors=["robust_z", "iforest"], start=5, end=10**6))


def test_profile_states_rows_sampling_period_and_label_windows(ctx):
    out = A.profile(ctx, A.SeriesArgs(path="NAB/data/realKnownCause/nyc_taxi.csv"))
    assert (out.length, out.n_channels, out.sampling) == (10320, 1, "0 days 00:30:00")
    assert out.dominant_period == 48  # one day of half-hour steps
    # the five windows of NAB's combined_windows.json: marathon, Thanksgiving, Christmas, New Year, blizzard
    assert out.n_label_windows == 5
    assert [w.start_time for w in out.label_windows] == [
        "2014-10-30 15:30:00", "2014-11-25 12:00:00", "2014-12-23 11:30:00", "2014-12-29 21:30:00", "2015-01-24 20:30:00"]
    assert out.facts.startswith("10320 rows; 1 channel(s); sampled every 30 min (1800 s); dominant period 48 rows; 5 labelled")


def test_profile_of_a_file_without_labels_says_so(ctx, tmp_path):
    out = A.profile(ctx, A.SeriesArgs(path=str(spiky_csv(tmp_path))))
    assert out.n_label_windows is None and out.label_windows == [] and "labelled" not in out.facts
