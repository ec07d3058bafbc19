"""Feedback marks in the diagnosis graph: a false alarm is unflagged, marks steer selection, a new mark reruns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anomalygraph.core.errors import DataError
from anomalygraph.core.thresholds import Threshold
from anomalygraph.data.feedback import FeedbackStore, feedback_masks, make_mark
from anomalygraph.data.loaders import load_series
from anomalygraph.detectors.selection import BEST_ON_TUNE, Selection, feedback_utility
from anomalygraph.graphs.diagnosis import DiagnosisContext, DiagnosisVerdict, nodes, run_diagnosis
from tests.graphs.test_diagnosis import write_series

FAST = ["iforest", "sub_pca", "robust_z"]


def context(tmp_path: Path, **kw) -> DiagnosisContext:
    return DiagnosisContext(model=None, data_roots=[str(tmp_path)], feedback_dir=tmp_path / "feedback", **kw)


def overlapping(verdict: DiagnosisVerdict, start: int, end: int):
    return [iv for iv in verdict.selection.intervals if iv.start <= end and iv.end >= start]


def test_a_false_alarm_mark_unflags_the_interval_and_a_rerun_recomputes(tmp_path, monkeypatch) -> None:
    path = write_series(tmp_path / "server.csv")
    calls = {"select": 0}
    real_select = nodes.select

    def counting(state, runtime):
        calls["select"] += 1
        return real_select(state, runtime)

    monkeypatch.setattr(nodes, "select", counting)
    out, ctx = tmp_path / "out", context(tmp_path)
    seen: list[str] = []
    first, resumed = run_diagnosis(str(path), out, ctx, detectors=FAST, on_update=lambda node, update: seen.append(node))
    assert not resumed and calls["select"] == 1 and first.feedback == []
    assert seen == ["profile", "choose_detectors", *["run_detector"] * len(FAST), "select", "explain", "report"]
    top = first.selection.intervals[0]
    assert top.passes and top.marks == [] and top.end >= 1500 and top.start <= 1519

    mark = make_mark(path, load_series(path), top.start, top.end, "false", "alice", verdict=str(out / "verdict.json"), rank=1)
    FeedbackStore(tmp_path / "feedback").add(mark)
    second, resumed = run_diagnosis(str(path), out, ctx, detectors=FAST)
    assert not resumed and calls["select"] == 2  # a new mark is a new thread: the stored verdict is not returned
    assert second.feedback == [mark]
    hit = overlapping(second, mark.start, mark.end)
    assert hit and all(not iv.passes and iv.marks == [mark.describe()] for iv in hit)
    assert any(f"rows {iv.start}..{iv.end} (rank {iv.rank}) are not flagged: marked as a {mark.describe()}" in n
               for iv in hit for n in second.notes)
    assert all(not iv.marks for iv in second.selection.intervals if iv not in hit)

    report = (out / "report.md").read_text()
    assert "## Feedback" in report and f"| {mark.rows} | {mark.start_time} | {mark.end_time} | false alarm | alice |" in report
    assert str(out / "verdict.json") in report  # the verdict the mark was made on
    table = report.split("## Ranked intervals")[1].split("###")[0]
    marked_rows = [line for line in table.splitlines() if line.endswith(f"| {mark.describe()} |")]
    assert "| marks |" in table and len(marked_rows) == len(hit) and all("| no |" in line for line in marked_rows)
    assert "marked as false alarms" in report.split("\n\n")[1]  # the summary says why nothing is flagged
    saved = json.loads((out / "verdict.json").read_text())
    assert saved["feedback"][0]["label"] == "false" and saved["feedback"][0]["user"] == "alice"

    again, resumed = run_diagnosis(str(path), out, ctx, detectors=FAST)
    assert resumed and calls["select"] == 2 and again == second  # unchanged marks: the finished run is returned
    # with feedback off (as evaluations run), the marks are not read: the first run's thread and verdict
    off, resumed = run_diagnosis(str(path), out, context(tmp_path, use_feedback=False), detectors=FAST)
    assert resumed and off == first and off.selection.intervals[0].passes


def test_marks_switch_selection_to_the_candidate_that_ranks_them_strictly_better(tmp_path) -> None:
    path = write_series(tmp_path / "server.csv", subtle=True)
    series = load_series(path)
    store = FeedbackStore(tmp_path / "feedback")
    real = make_mark(path, series, 800, 829, "real", "alice")
    false = make_mark(path, series, 1500, 1519, "false", "bob")
    store.add(real)
    store.add(false)
    out = tmp_path / "out"
    verdict, _ = run_diagnosis(str(path), out, context(tmp_path), detectors=FAST)
    sel = verdict.selection
    assert sel.strategy == "feedback>best_on_tune" and sel.chosen != [BEST_ON_TUNE]
    # the utilities, recomputed from the candidate tracks the run saved
    tracks = {}
    for record in verdict.detectors:
        data = np.load(record.tracks_path)
        tracks |= {key.partition("::")[2]: data[key] for key in data.files if key.startswith("s::")}
    real_mask, false_mask = feedback_masks(verdict.feedback, series.length)
    utility = feedback_utility(tracks, real_mask, false_mask)
    assert utility[sel.chosen[0]] == max(utility.values()) > utility[BEST_ON_TUNE]
    assert f"utility {utility[BEST_ON_TUNE]:.2f}" in sel.reason and "1 real-anomaly and 1 false-alarm mark(s)" in sel.reason
    assert any(n.startswith(f"selection switched from {BEST_ON_TUNE} to {sel.chosen[0]} because of feedback") for n in verdict.notes)
    for iv in overlapping(verdict, false.start, false.end):
        assert not iv.passes and false.describe() in iv.marks
    for iv in overlapping(verdict, real.start, real.end):
        assert real.describe() in iv.marks  # a real mark keeps the threshold's decision: nothing forced
    report = (out / "report.md").read_text()
    assert "Selection switched because of feedback" in report and "Strategy `feedback>best_on_tune`" in report
    assert report.count("| real anomaly | alice |") == 1 and report.count("| false alarm | bob |") == 1


def _choice_inputs(tmp_path: Path, label: str):
    path = write_series(tmp_path / "s.csv")
    series = load_series(path)
    rows = np.arange(series.length, dtype=float)
    up = np.where((rows >= 100) & (rows <= 110), 10.0, 0.0) + rows * 1e-6  # high on rows 100..110
    chosen = Selection(strategy="best_on_tune", chosen=["flat"], weights={"flat": 1.0}, reason="the default",
                       threshold=Threshold(value=1.0, method="percentile"))
    mark = make_mark(path, series, 100, 110, label, "alice")
    return series, up, chosen, [mark]


def test_feedback_choice_switches_only_on_a_strictly_higher_utility(tmp_path) -> None:
    series, up, chosen, marks = _choice_inputs(tmp_path, "real")
    flat = np.zeros(series.length)
    final, picked, notes = nodes.feedback_choice({"flat": flat, "up": up}, flat, chosen, marks, series,
                                                 fit_rows=slice(0, series.length), contamination=0.01)
    assert picked.chosen == ["up"] and picked.strategy == "feedback>best_on_tune" and final is not flat
    assert np.array_equal(final, up) and "the default" in picked.reason and "switched from flat to up" in notes[-1]
    # the same track under another name is a tie: the strategy's choice stands
    final, kept, notes = nodes.feedback_choice({"twin": up.copy()}, up, chosen, marks, series,
                                               fit_rows=slice(0, series.length), contamination=0.01)
    assert kept is chosen and final is up and "kept flat" in notes[-1]


def test_a_higher_utility_alone_does_not_switch_when_the_candidate_would_still_flag_the_false_alarm(tmp_path) -> None:
    """One false-alarm mark on the chosen track's peak: a candidate that ranks it a little lower but
    still above its own threshold fixes nothing; one that leaves it unflagged is chosen."""
    series, up, chosen, marks = _choice_inputs(tmp_path, "false")
    rows = np.arange(series.length, dtype=float)
    lower = np.where((rows >= 100) & (rows <= 110), 9.0, 0.0) + np.where(rows == 500, 10.0, 0.0) + rows * 1e-6
    fit = slice(0, series.length)
    final, kept, notes = nodes.feedback_choice({"lower": lower}, up, chosen, marks, series, fit_rows=fit, contamination=0.01)
    assert kept is chosen and final is up and "gets 0 of 1 mark(s) right" in notes[-1] and "no candidate gets more" in notes[-1]
    quiet = np.where(rows == 500, 10.0, 0.0) + rows * 1e-6  # its threshold is above everything in rows 100..110
    final, picked, notes = nodes.feedback_choice({"lower": lower, "quiet": quiet}, up, chosen, marks, series,
                                                 fit_rows=fit, contamination=0.01)
    assert picked.chosen == ["quiet"] and "right 0 -> 1 of 1" in notes[-1]


def test_feedback_choice_leaves_selection_alone_when_marks_miss_the_series(tmp_path) -> None:
    series, up, chosen, marks = _choice_inputs(tmp_path, "false")
    gone = [marks[0].model_copy(update={"start": 5000, "end": 5001, "start_time": "2030-01-01T00:00:00",
                                         "end_time": "2030-01-01T00:01:00"})]
    final, kept, notes = nodes.feedback_choice({"up": up}, up, chosen, gone, series, fit_rows=slice(0, 10), contamination=0.01)
    assert kept is chosen and final is up and "none inside the series' rows" in notes[-1]


def test_a_verdict_written_before_feedback_existed_still_validates(tmp_path) -> None:
    path = write_series(tmp_path / "server.csv")
    verdict, _ = run_diagnosis(str(path), tmp_path / "out", context(tmp_path), detectors=["robust_z"])
    old = json.loads(verdict.model_dump_json())
    old.pop("feedback")
    for iv in old["selection"]["intervals"]:
        iv.pop("marks")
    for e in old["explanations"]:
        e["interval"].pop("marks")
    loaded = DiagnosisVerdict.model_validate(old)
    assert loaded.feedback == [] and all(iv.marks == [] for iv in loaded.selection.intervals)


def test_a_corrupt_feedback_file_stops_the_run_with_its_line(tmp_path) -> None:
    path = write_series(tmp_path / "server.csv")
    store = FeedbackStore(tmp_path / "feedback")
    store.root.mkdir()
    store.file_for(path).write_text("{broken\n")
    with pytest.raises(DataError, match="line 1"):
        run_diagnosis(str(path), tmp_path / "out", context(tmp_path), detectors=["robust_z"])
