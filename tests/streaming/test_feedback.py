"""Users' marks in CALM: a flagged point inside a mark is judged by it (source "feedback"), in the loop, the
Beam replay (a later mark wins over the judgment log) and ``anomalygraph stream``; ``eval calm`` never reads them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalygraph.agents.judge import FeedbackJudge, JudgeContext, RuleJudge
from anomalygraph.data.feedback import FeedbackStore, make_mark
from anomalygraph.data.loaders import load_series
from anomalygraph.streaming.engine import CalmLoop, KeyState
from anomalygraph.streaming.pipeline import read_output, run_replay, still_valid
from anomalygraph.streaming.records import JudgmentRecord, Point
from anomalygraph.streaming.replay import event_seconds, feedback_spans, file_points
from anomalygraph.streaming.store import ModelStore
from tests.streaming.conftest import small_config


class Recording(RuleJudge):
    """The rule judge, remembering which points it was asked about (picklable, for Beam)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def judge(self, context: JudgeContext):
        self.asked.append(context.point_id)
        return super().judge(context)


@pytest.fixture
def machine_file(tmp_path: Path, real_points: list[Point]) -> Path:
    """The real NAB points as a file of their own (rows = points, in order)."""
    path = tmp_path / "machine.csv"
    stamps = pd.to_datetime([p.timestamp for p in real_points], unit="s")
    pd.DataFrame({"timestamp": stamps, "value": [p.value for p in real_points]}).to_csv(path, index=False)
    return path


def run_loop(points: list[Point], judge, store_dir: Path) -> list[JudgmentRecord]:
    loop = CalmLoop(small_config(batch_size=None), ModelStore(store_dir), judge)
    state, out = KeyState(), []
    for p in points:
        out += loop.add(state, p)
    out += loop.finish(state, points[0].key)
    return [o for o in out if isinstance(o, JudgmentRecord)]


def test_marks_on_a_file_become_event_time_spans_on_each_of_its_keys(tmp_path) -> None:
    timed = tmp_path / "server.csv"
    pd.DataFrame({"timestamp": pd.date_range("2024-03-01", periods=50, freq="5min"), "cpu": np.arange(50.0),
                  "mem": np.ones(50)}).to_csv(timed, index=False)
    plain = tmp_path / "plain.csv"
    pd.DataFrame({"value": np.arange(30.0)}).to_csv(plain, index=False)
    store = FeedbackStore(tmp_path / "feedback")
    series = load_series(timed)
    store.add(make_mark(timed, series, 10, 12, "false", "alice"))
    store.add(make_mark(plain, load_series(plain), 3, 4, "real", "bob"))
    unmarked = tmp_path / "unmarked.csv"
    pd.DataFrame({"value": np.arange(30.0)}).to_csv(unmarked, index=False)
    spans = feedback_spans([timed, plain, unmarked], store)
    seconds = event_seconds(series)
    assert [(s.key, s.start, s.end, s.label) for s in spans] == [
        ("server:cpu", seconds[10], seconds[12], "false"), ("server:mem", seconds[10], seconds[12], "false"),
        ("plain", 3.0, 4.0, "real"),  # without timestamps a row is a second, as the replay streams it
    ]
    assert spans[0].mark.startswith("false alarm (alice, ") and spans[0].mark.endswith("rows 10:12 of server.csv")
    keys = {p.key for p in file_points([timed])}
    assert keys == {"server:cpu", "server:mem"}  # the spans name the keys the points stream under


def test_in_the_loop_a_mark_decides_inside_it_and_the_judge_everywhere_else(machine_file, tmp_path) -> None:
    points = file_points([machine_file])
    before = run_loop(points, RuleJudge(), tmp_path / "a")
    row = {p.timestamp: i for i, p in enumerate(points)}
    keep = next(j for j in before if j.decision == "KEEP")
    remove = next(j for j in before if j.decision == "REMOVE" and row[j.timestamp] > row[keep.timestamp] + 3)
    series = load_series(machine_file)
    store = FeedbackStore(tmp_path / "feedback")
    false = make_mark(machine_file, series, row[keep.timestamp], row[keep.timestamp] + 2, "false", "alice")
    real = make_mark(machine_file, series, row[remove.timestamp], row[remove.timestamp], "real", "bob")
    store.add(false)
    store.add(real)
    inner = Recording()
    after = run_loop(points, FeedbackJudge(inner, feedback_spans([machine_file], store)), tmp_path / "b")
    assert [j.point_id for j in after] == [j.point_id for j in before]  # the same flags: only the answers differ

    def marked(j: JudgmentRecord) -> str | None:
        return next((m.label for m in (false, real) if m.start <= row[j.timestamp] <= m.end), None)

    was = {j.point_id: j for j in before}
    for j in after:
        label = marked(j)
        if label is None:
            assert j.source == "rule" and j.decision == was[j.point_id].decision and j.point_id in inner.asked
        else:
            assert j.source == "feedback" and j.decision == {"real": "KEEP", "false": "REMOVE"}[label]
            assert j.point_id not in inner.asked and j.reason.startswith("feedback: inside a ")
    flipped = {j.point_id: j.decision for j in after if j.point_id in (keep.point_id, remove.point_id)}
    assert flipped == {keep.point_id: "REMOVE", remove.point_id: "KEEP"}


def test_a_replay_applies_marks_and_a_later_mark_wins_over_the_judgment_log(machine_file, tmp_path) -> None:
    points = file_points([machine_file])
    probe = run_loop(points, RuleJudge(), tmp_path / "probe")
    row = {p.timestamp: i for i, p in enumerate(points)}
    target = next(j for j in probe if j.decision == "KEEP")
    series = load_series(machine_file)
    store = FeedbackStore(tmp_path / "feedback")
    out = tmp_path / "run"

    def judgments() -> dict[str, dict]:
        return {r["point_id"]: r for r in read_output(out, "judgments")}

    store.add(make_mark(machine_file, series, row[target.timestamp], row[target.timestamp], "false", "alice"))
    run_replay(points, small_config(batch_size=None), out, judge=RuleJudge(), feedback=feedback_spans([machine_file], store))
    first = judgments()[target.point_id]
    assert (first["decision"], first["source"]) == ("REMOVE", "feedback")
    saved = json.loads((out / "feedback.json").read_text())
    assert [(s["label"], s["key"]) for s in saved] == [("false", "machine")]
    assert {r["source"] for pid, r in judgments().items() if pid != target.point_id} == {"rule"}

    # alice changes her mind; the rerun answers from the log except where a mark now decides
    store.add(make_mark(machine_file, series, row[target.timestamp], row[target.timestamp], "real", "alice"))
    run_replay(points, small_config(batch_size=None), out, judge=RuleJudge(), feedback=feedback_spans([machine_file], store))
    again = judgments()[target.point_id]
    assert (again["decision"], again["source"]) == ("KEEP", "feedback")
    # and without feedback the point is the judge's again, not the mark's logged answer
    run_replay(points, small_config(batch_size=None), out, judge=RuleJudge())
    assert judgments()[target.point_id]["source"] == "rule" and json.loads((out / "feedback.json").read_text()) == []


def test_still_valid_drops_what_a_mark_decides_now_and_old_mark_answers(tmp_path) -> None:
    def record(ts: float, source: str) -> JudgmentRecord:
        return JudgmentRecord(point_id=f"k@{ts:.6f}", key="k", timestamp=ts, decision="KEEP", reason="r", source=source,
                              model_version=1)

    logged = {r.point_id: r for r in (record(1.0, "rule"), record(5.0, "llm"), record(9.0, "feedback"))}
    from anomalygraph.agents.judge import FeedbackSpan

    judge = FeedbackJudge(RuleJudge(), [FeedbackSpan(key="k", start=4.0, end=6.0, label="false", mark="m",
                                                     at="2026-12-02T10:00:00Z")])
    assert sorted(still_valid(logged, judge)) == ["k@1.000000"]
    assert sorted(still_valid(logged, RuleJudge())) == ["k@1.000000", "k@5.000000"]


def test_the_stream_command_applies_marks_by_default_and_not_with_no_feedback(machine_file, tmp_path, monkeypatch,
                                                                                capsys) -> None:
    from anomalygraph.cli.main import main
    from anomalygraph.streaming import pipeline

    monkeypatch.setenv("ANOMALYGRAPH_OUTPUT_DIR", str(tmp_path / "out"))
    from anomalygraph.data.feedback import default_store

    default_store().add(make_mark(machine_file, load_series(machine_file), 400, 410, "false", "alice"))
    seen: list[list] = []
    monkeypatch.setattr(pipeline, "run_replay", lambda *args, feedback=(), **kw: seen.append(list(feedback)))
    assert main(["stream", "--source", str(machine_file), "--out", str(tmp_path / "a")]) == 0
    assert "1 feedback mark(s) answer for the flagged points inside them" in capsys.readouterr().err
    assert main(["stream", "--source", str(machine_file), "--out", str(tmp_path / "b"), "--no-feedback"]) == 0
    [with_marks, without] = seen
    seconds = event_seconds(load_series(machine_file))
    assert [(s.key, s.start, s.end, s.label) for s in with_marks] == [("machine", seconds[400], seconds[410], "false")]
    assert without == []


def test_eval_calm_never_reads_feedback(shared_data, tmp_path, monkeypatch) -> None:
    from anomalygraph.evals import calm as ev
    from anomalygraph.streaming.config import StreamConfig

    def refuse(self, path):
        raise AssertionError(f"the evaluation read feedback marks on {path}")

    monkeypatch.setattr(FeedbackStore, "marks", refuse)
    monkeypatch.setattr(FeedbackStore, "effective", refuse)
    series = load_series(shared_data / "NAB/data/realAdExchange/exchange-3_cpm_results.csv")
    base = StreamConfig(forecaster_config={"context_length": 32, "horizon": 4, "hidden": 16, "epochs": 5, "threads": 1})
    [row] = ev.run_calm_eval([("nab", "exchange-3", series)], tmp_path, variants=("rule",), base=base)
    assert row.flagged > 0 and row.keep + row.remove == row.flagged
