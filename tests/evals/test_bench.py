"""The benchmark runner on real data: every cell written, cached cells skipped, honest summary."""

from __future__ import annotations

import json

import pandas as pd

from anomalygraph.cli.main import main
from anomalygraph.data.datasets import dataset_files
from anomalygraph.evals import bench

# The runs below name the few files they use (--series), so their cost and their counts stay
# the same however many files the shared data folder holds.
UCR_SERIES = ("135_UCR_Anomaly_InternalBleeding16_1200_4187_4199", "136_UCR_Anomaly_InternalBleeding17_1600_3198_3309")
TSB_AD_SERIES = "001_NAB_id_1_Facility_tr_1007_1st_2014"
LABELLED_NAB = ("art_daily_jumpsup", "ec2_cpu_utilization_24ae8d")  # small, each with one labelled window or more


def test_bench_writes_results_summary_plots_and_resumes(shared_data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "results"
    args = [
        "bench", "--detectors", "sub_pca,robust_z", "--datasets", "ucr,tsb_ad_u", "--data", str(shared_data),
        "--out", str(out), "--series", ",".join((*UCR_SERIES, TSB_AD_SERIES)),
    ]
    assert main(args) == 0
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == 3 * 2 and (frame["status"] == "ok").all()
    assert set(frame["series"]) == {*UCR_SERIES, TSB_AD_SERIES}
    assert {"vus_pr", "auc_pr", "f1_point_adjusted", "fit_seconds", "score_seconds", "device", "version_numpy"} <= set(frame.columns)
    assert frame["vus_pr"].between(0, 1).all()
    ucr = frame[frame["dataset"] == "ucr"]
    assert (ucr["train_rows"] < ucr["n_timestamps"]).all() and (ucr["test_rows"] == ucr["n_timestamps"] - ucr["train_rows"]).all()
    summary = (out / "summary.md").read_text()
    assert "VUS-PR mean" in summary and "optimistic" in summary and "## ucr (2 series)" in summary
    assert "## tsb_ad_u (1 series)" in summary
    assert len(list((out / "plots").glob("*.png"))) == 3
    printed = capsys.readouterr().out
    assert "6 of 6 cells scored" in printed

    def boom(*args, **kwargs):
        raise AssertionError("a cached cell was recomputed")

    monkeypatch.setattr(bench, "run_cell", boom)
    assert main([*args, "--no-plots"]) == 0
    again = pd.read_csv(out / "results.csv")
    pd.testing.assert_frame_equal(frame, again)


def test_series_without_labelled_anomaly_is_skipped_not_scored(shared_data, tmp_path):
    # Which NAB series on disk have no labelled window comes from NAB's own labels file; every one
    # of them (NAB has a handful; skipping runs no detector) and two labelled ones are run.
    windows = json.loads((shared_data / "NAB" / "labels" / "combined_windows.json").read_text())
    files = dataset_files("nab", shared_data)
    quiet = sorted(p.stem for p in files if not windows[p.relative_to(shared_data / "NAB" / "data").as_posix()])
    assert quiet and not set(quiet) & set(LABELLED_NAB)
    frame = bench.run_benchmark(
        ["robust_z"], ["nab"], data_root=shared_data, out=tmp_path, plots=False, series=[*quiet, *LABELLED_NAB],
    )
    status = dict(zip(frame["series"], frame["status"], strict=True))
    assert sorted(status) == sorted([*quiet, *LABELLED_NAB])
    assert sorted(s for s, st in status.items() if st.startswith("skipped: no labelled anomaly")) == quiet
    assert all(status[s] == "ok" for s in LABELLED_NAB)


def test_unknown_dataset_is_a_clear_error(tmp_path, capsys):
    assert main(["bench", "--datasets", "kdd99", "--out", str(tmp_path)]) == 2
    assert "unknown dataset(s) ['kdd99']" in capsys.readouterr().err


def test_scoped_setting_reaches_only_its_detector(shared_data, tmp_path):
    frame = bench.run_benchmark(
        ["sub_pca", "robust_z"], ["ucr"], data_root=shared_data, out=tmp_path, plots=False,
        config={"sub_pca.window": 37}, series=[UCR_SERIES[0]],
    )
    configs = {row.detector: row.config for row in frame.itertuples()}
    assert "37" in str(configs["sub_pca"]) and "window" not in str(configs["robust_z"])


def test_scope_naming_a_detector_not_in_the_run_fails_before_any_work(shared_data, tmp_path, capsys):
    args = ["bench", "--detectors", "robust_z", "--datasets", "ucr", "--data", str(shared_data), "--out", str(tmp_path), "--set", "iforst.n_estimators=10"]
    assert main(args) == 2
    assert "names detector 'iforst', which is not among robust_z" in capsys.readouterr().err
    assert not (tmp_path / "cells").exists()


def test_series_filter_keeps_only_the_named_files(shared_data, tmp_path, capsys):
    first = dataset_files("ucr", shared_data)[0].stem
    frame = bench.run_benchmark(["robust_z"], ["ucr"], data_root=shared_data, out=tmp_path, plots=False, series=[first])
    assert len(frame) == 1 and frame["status"].iloc[0] == "ok"
    args = ["bench", "--detectors", "robust_z", "--datasets", "ucr", "--data", str(shared_data), "--out", str(tmp_path), "--series", "nope"]
    assert main(args) == 2
    assert "series ['nope'] not in dataset(s) ucr" in capsys.readouterr().err
