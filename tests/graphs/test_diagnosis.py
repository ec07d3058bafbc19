"""Every path of the diagnosis graph with a scripted model: LLM, fallbacks, errors, crash and resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalygraph.core.errors import DataError
from anomalygraph.detectors import register_detector
from anomalygraph.detectors.baselines import RobustZDetector
from anomalygraph.detectors.candidates import parse_candidate
from anomalygraph.detectors.selection import BEST_ON_TUNE
from anomalygraph.graphs.diagnosis import DiagnosisContext, nodes, run_diagnosis
from anomalygraph.llm.errors import LLMUnavailableError
from anomalygraph.llm.scripted import ScriptedChatModel, tool_call

FAST = ["iforest", "sub_pca", "robust_z"]
DEFAULT_DETECTOR = parse_candidate(BEST_ON_TUNE)[0]  # the default selection's detector always runs


def write_series(path: Path, *, subtle: bool = False) -> Path:
    """Two channels with a strong incident at rows 1500..1519; ``subtle`` adds a small latency-only shift at 800..829."""
    rng = np.random.default_rng(0)
    t = np.arange(2000)
    cpu = 50 + 10 * np.sin(2 * np.pi * t / 100) + rng.normal(size=t.size)
    latency = 20 + rng.normal(size=t.size)
    cpu[1500:1520] += 60
    latency[1500:1520] += 30
    if subtle:
        latency[800:830] += 4
    frame = pd.DataFrame({"timestamp": pd.date_range("2024-03-01", periods=t.size, freq="1min"), "cpu": cpu, "latency": latency})
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def series_file(tmp_path):
    return write_series(tmp_path / "server.csv")


def context(tmp_path, model=None, **kw):
    return DiagnosisContext(model=model, data_roots=[tmp_path], **kw)


def test_without_model_rules_choose_and_statistics_explain(series_file, tmp_path):
    out = tmp_path / "out"
    verdict, resumed = run_diagnosis(str(series_file), out, context(tmp_path))
    assert not resumed
    assert verdict.plan.source == "rules" and "no language model" in verdict.plan.note
    assert {"iforest", "sub_pca"} <= set(verdict.plan.detectors)
    assert all(r.status == "ok" for r in verdict.detectors)
    top = verdict.selection.intervals[0]
    assert top.start <= 1519 and top.end >= 1500  # the injected incident is the strongest interval
    assert top.rank == 1 and top.passes and top.agreement == 1.0
    assert verdict.selection.strategy == "best_on_tune" and verdict.selection.chosen == [BEST_ON_TUNE]
    assert [iv.rank for iv in verdict.selection.intervals] == sorted(iv.rank for iv in verdict.selection.intervals)
    assert set(top.channels) <= {"cpu", "latency"} and top.channels
    assert verdict.explanations[0].source == "statistics"
    assert "cpu" in verdict.explanations[0].statistics and "latency" in verdict.explanations[0].statistics
    report = (out / "report.md").read_text()
    assert "**Summary.**" in report and "![overview](overview.png)" in report
    assert json.loads((out / "verdict.json").read_text())["plan"]["source"] == "rules"
    for plot in verdict.plots:
        assert Path(plot).read_bytes()[:4] == b"\x89PNG"


def test_model_plans_and_explains(series_file, tmp_path):
    model = ScriptedChatModel(script=[
        tool_call("DetectorPlan", {"detectors": ["robust_z"], "reason": "two channels, a daily cycle"}),
        *["CPU and latency jump together for twenty minutes, far above their usual range."] * 3,
    ])
    verdict, _ = run_diagnosis(str(series_file), tmp_path / "out", context(tmp_path, model))
    assert verdict.plan.source == "llm" and verdict.plan.detectors == list(dict.fromkeys(["robust_z", DEFAULT_DETECTOR]))
    if DEFAULT_DETECTOR != "robust_z":
        assert f"added {DEFAULT_DETECTOR} for selection 'best_on_tune'" in verdict.plan.note
    assert verdict.explanations[0].source == "llm" and "CPU and latency" in verdict.explanations[0].text
    # a text-only model gets the plot as a text rendering, not an image
    from anomalygraph.llm.messages import TEXT_RENDERING_INTRO

    data, question = model.calls[1][-2:]
    assert isinstance(data.content, str) and TEXT_RENDERING_INTRO in data.content
    iv = verdict.explanations[0].interval
    assert f"(rows {iv.start}..{iv.end})" in question.content and "three short sentences" in question.content


def test_garbage_plan_falls_back_to_rules_after_repairs(series_file, tmp_path):
    model = ScriptedChatModel(script=["not json at all", "still {not json", "{\"detectors\": []}", *["ok explanation text here"] * 3])
    verdict, _ = run_diagnosis(str(series_file), tmp_path / "out", context(tmp_path, model))
    assert verdict.plan.source == "rules"
    assert "unusable" in verdict.plan.note and "DetectorPlan" in verdict.plan.note
    assert any("fell back to rules" in n for n in verdict.notes)


def test_unknown_detectors_from_model_are_ignored_or_fall_back(series_file, tmp_path):
    model = ScriptedChatModel(script=[
        tool_call("DetectorPlan", {"detectors": ["lstm_magic"], "reason": "deep is better"}), *["fine explanation"] * 3,
    ])
    verdict, _ = run_diagnosis(str(series_file), tmp_path / "a", context(tmp_path, model))
    assert verdict.plan.source == "rules" and "lstm_magic" in verdict.plan.note
    model = ScriptedChatModel(script=[
        tool_call("DetectorPlan", {"detectors": ["robust_z", "lstm_magic"], "reason": "mixed"}), *["fine explanation"] * 3,
    ])
    verdict, _ = run_diagnosis(str(series_file), tmp_path / "b", context(tmp_path, model))
    assert verdict.plan.source == "llm" and verdict.plan.detectors == list(dict.fromkeys(["robust_z", DEFAULT_DETECTOR]))
    assert "lstm_magic" in verdict.plan.note


def test_deep_detectors_are_not_chosen_without_a_gpu(series_file, tmp_path):
    model = ScriptedChatModel(script=[
        tool_call("DetectorPlan", {"detectors": ["anomaly_transformer", "sub_pca"], "reason": "deep"}), *["fine explanation"] * 3,
    ])
    verdict, _ = run_diagnosis(str(series_file), tmp_path / "out", context(tmp_path, model, gpu=False))
    assert verdict.plan.detectors == list(dict.fromkeys(["sub_pca", DEFAULT_DETECTOR])) and "too slow without a GPU" in verdict.plan.note
    menu = model.calls[0][-1].content
    assert "anomaly_transformer" not in menu and "sub_pca" in menu


def test_explanation_errors_fall_back_and_are_noted(series_file, tmp_path):
    model = ScriptedChatModel(script=[LLMUnavailableError("server at http://127.0.0.1:1 refused the connection")] * 3)
    verdict, _ = run_diagnosis(str(series_file), tmp_path / "out", context(tmp_path, model), detectors=FAST)
    assert verdict.plan.source == "user"
    assert all(e.source == "statistics" for e in verdict.explanations)
    assert any("refused the connection" in n for n in verdict.notes)


def test_an_explanation_that_lists_every_shape_is_not_shown(series_file, tmp_path):
    echo = "The shape is spike, dip, level shift, drift, variance burst, flatline."
    good = "cpu and latency rose together far above their usual range (a level shift)."
    model = ScriptedChatModel(script=[echo, good, good])
    verdict, _ = run_diagnosis(str(series_file), tmp_path / "out", context(tmp_path, model), detectors=FAST)
    first, *rest = verdict.explanations
    assert first.source == "statistics" and first.text.startswith(first.statistics.splitlines()[0][:20])
    assert any("listed 6 shapes instead of describing the measured one" in n for n in verdict.notes)
    assert all(e.source == "llm" and e.text == good for e in rest)
    assert nodes.explanation_problem(good) is None and nodes.explanation_problem("") == "the model's answer was empty"


def test_an_explanation_with_numbers_that_are_not_in_the_statistics_is_not_shown():
    prompt = "rows 10033..10136; value: level_shift, level -4.0 sigma, peak 9.6 sigma, spread x1.4; from 2015-01-26 00:30:00"
    grounded = "value dropped 4 sigma below its context in rows 10033..10136, peaking at 9.6 sigma from 2015-01-26 00:30."
    assert nodes.explanation_problem(grounded, prompt) is None
    invented = "The channel moved from 1 to 2, the shape was [0.4e+04, 7643], and it is unusual in sigma."
    assert nodes.explanation_problem(invented, prompt) == (
        "the model's answer has numbers that are not in the statistics (0.4e+04, 7643)"
    )


class BrokenDetector(RobustZDetector):
    name = "broken_for_test"

    def _fit(self, values, labels):
        raise DataError("broken_for_test cannot fit this series")


register_detector(BrokenDetector)


class CaveatedDetector(RobustZDetector):
    name = "caveated_for_test"
    caveat = "ranks last on a benchmark"


register_detector(CaveatedDetector)


def test_intervals_only_a_caveated_detector_flags_go_last_with_a_note():
    from anomalygraph.core.thresholds import Threshold
    from anomalygraph.graphs.diagnosis.state import RankedFinding, SelectionRecord

    def iv(start, who, rank, passes=True):
        return RankedFinding(start=start, end=start + 5, peak=start, peak_score=10.0 - rank, detectors=who,
                             agreement=len(who) / 2, rank=rank, robust_z=10.0 - rank, passes=passes)

    result = SelectionRecord(
        strategy="fusion", chosen=["caveated_for_test", "sub_pca"], weights={}, reason="test", roles="2 value",
        threshold=Threshold(value=1.0, method="percentile"), candidates=[], detectors=["caveated_for_test", "sub_pca"],
        intervals=[iv(10, ["caveated_for_test"], 1), iv(50, ["sub_pca"], 2), iv(90, ["caveated_for_test", "sub_pca"], 3),
                   iv(130, ["sub_pca"], 4, passes=False)],
    )
    demoted, notes = nodes.demote_uncorroborated(result)
    assert [i.start for i in demoted.intervals] == [50, 90, 10, 130]  # flagged first, the caveated-only last of those
    assert notes == ["rows 10..15 are flagged only by caveated_for_test, which ranks last on a benchmark; listed after the corroborated intervals"]
    plain = result.model_copy(update={"detectors": ["sub_pca"]})
    assert nodes.demote_uncorroborated(plain) == (plain, [])


def test_report_and_model_menu_carry_the_caveat(series_file, tmp_path):
    run_diagnosis(str(series_file), tmp_path / "out", context(tmp_path), detectors=["caveated_for_test", "sub_pca"])
    assert "Caution: caveated_for_test ranks last on a benchmark" in (tmp_path / "out" / "report.md").read_text()
    assert "(caution: ranks last on a benchmark)" in nodes._detector_menu(["caveated_for_test", "sub_pca"])


def test_a_failing_detector_does_not_stop_the_others(series_file, tmp_path):
    other = "robust_z" if DEFAULT_DETECTOR != "robust_z" else "iforest"
    verdict, _ = run_diagnosis(str(series_file), tmp_path / "out", context(tmp_path), detectors=["broken_for_test", other])
    status = {r.detector: r.status for r in verdict.detectors}
    assert status == {"broken_for_test": "error", other: "ok"}
    assert verdict.selection is not None and verdict.selection.detectors == [other]
    # the default's candidate did not run, so the verdict fuses what did, and says so
    assert verdict.selection.strategy == "fusion" and verdict.selection.chosen == [other]
    assert any("did not run; fused the detectors that ran" in n for n in verdict.notes)
    assert "cannot fit" in (tmp_path / "out" / "report.md").read_text()


def test_unknown_requested_detector_is_an_error(series_file, tmp_path):
    with pytest.raises(Exception, match="unknown detector"):
        run_diagnosis(str(series_file), tmp_path / "out", context(tmp_path), detectors=["nope"])


def test_file_outside_roots_is_refused(series_file, tmp_path):
    with pytest.raises(Exception, match="outside the configured data roots"):
        run_diagnosis(str(series_file), tmp_path / "out", DiagnosisContext(model=None, data_roots=[tmp_path / "elsewhere"]))


def test_crash_then_resume_from_last_completed_node(series_file, tmp_path, monkeypatch):
    calls = {"profile": 0, "choose": 0, "fuse": 0}
    real_profile, real_choose, real_fuse = nodes.profile, nodes.choose_detectors, nodes.select

    def counting(name, real):
        def wrapper(state, runtime):
            calls[name] += 1
            return real(state, runtime)
        return wrapper

    def crashing_fuse(state, runtime):
        calls["fuse"] += 1
        raise RuntimeError("power cut")

    monkeypatch.setattr(nodes, "profile", counting("profile", real_profile))
    monkeypatch.setattr(nodes, "choose_detectors", counting("choose", real_choose))
    monkeypatch.setattr(nodes, "select", crashing_fuse)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="power cut"):
        run_diagnosis(str(series_file), out, context(tmp_path), detectors=FAST)
    assert calls == {"profile": 1, "choose": 1, "fuse": 1}
    assert not (out / "report.md").exists()

    monkeypatch.setattr(nodes, "select", counting("fuse", real_fuse))
    verdict, resumed = run_diagnosis(str(series_file), out, context(tmp_path), detectors=FAST)
    assert resumed
    assert calls == {"profile": 1, "choose": 1, "fuse": 2}  # only the failed node and those after it ran
    assert len(verdict.detectors) == 3 and (out / "report.md").exists()

    again, resumed_again = run_diagnosis(str(series_file), out, context(tmp_path), detectors=FAST)
    assert resumed_again and again == verdict and calls["fuse"] == 2  # a finished run is not repeated
    _fresh, resumed_fresh = run_diagnosis(str(series_file), out, context(tmp_path), detectors=FAST, resume=False)
    assert not resumed_fresh and calls["profile"] == 2


@pytest.mark.parametrize(("selection", "gpu", "expected"), [
    ("best_on_tune", False, ["iforest", "sub_pca", "matrix_profile"]),
    ("fixed:robust_z@channels", False, ["iforest", "sub_pca", "matrix_profile", "robust_z"]),  # what the choice rests on runs
    ("best_on_tune", True, ["iforest", "sub_pca", "matrix_profile", "anomaly_transformer"]),
])
def test_rule_based_plan_runs_what_the_selection_needs(selection, gpu, expected):
    from anomalygraph.data import TimeSeries
    from anomalygraph.tools.profile import profile_series

    rng = np.random.default_rng(0)
    series = TimeSeries(values=rng.normal(size=(3000, 3)), name="noise")
    plan = nodes.rule_based_plan(profile_series(series), gpu=gpu, limit=8, selection=selection)
    assert plan.detectors == expected


def test_surrogate_selection_runs_the_whole_cpu_pool():
    pool = nodes.needed_detectors("surrogate", gpu=False)
    assert {"iforest", "sub_pca", "matrix_profile", "robust_z"} <= set(pool) and "anomaly_transformer" not in pool


def test_llm_selection_sees_the_surrogates_and_its_pick_is_applied(series_file, tmp_path):
    model = ScriptedChatModel(script=[
        tool_call("DetectorPlan", {"detectors": ["robust_z"], "reason": "spiky"}),
        tool_call("TrackChoice", {"choice": "robust_z@channels", "reason": "best on planted spikes"}),
        *["CPU and latency jump together for twenty minutes, far above their usual range."] * 3,
    ])
    verdict, _ = run_diagnosis(str(series_file), tmp_path / "out", context(tmp_path, model, selection="llm"))
    assert verdict.selection.strategy == "fixed:robust_z@channels" and verdict.selection.chosen == ["robust_z@channels"]
    assert any("the model chose 'fixed:robust_z@channels'" in n for n in verdict.notes)
    prompt = str(model.calls[1][-1].content)
    assert "robust_z@channels |" in prompt and "planted all" in prompt
    # the whole CPU pool ran, so the model could pick any candidate
    assert {"iforest", "sub_pca", "matrix_profile", "robust_z"} <= set(verdict.plan.detectors)


def test_selection_and_threshold_method_reach_the_report(series_file, tmp_path):
    verdict, _ = run_diagnosis(str(series_file), tmp_path / "out",
                               context(tmp_path, selection="fusion@channels", threshold_method="top_k", top_k=2))
    assert verdict.selection.strategy == "fusion@channels" and sum(iv.passes for iv in verdict.selection.intervals) == 2
    assert verdict.selection.threshold.method == "top_k"
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Ranked intervals" in report and "Strategy `fusion@channels`" in report
    saved = json.loads((tmp_path / "out" / "verdict.json").read_text())
    assert [iv["passes"] for iv in saved["selection"]["intervals"]][:3] == [True, True, False]
