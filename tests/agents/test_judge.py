"""The CALM judge: contexts, the rule fallback, the LLM judge with a scripted model, the cache, agreement."""

from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from anomalygraph.agents.judge import (
    PROMPTS,
    VARIANTS,
    FeedbackJudge,
    FeedbackSpan,
    JudgeCache,
    JudgeContext,
    Judgment,
    KeepAllJudge,
    LLMJudge,
    RuleJudge,
    agreement_rate,
    build_context,
    point_seconds,
    prompt_values,
    rule_judge,
)
from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.llm.errors import LLMUnavailableError
from anomalygraph.llm.messages import text_of
from anomalygraph.llm.scripted import ScriptedChatModel, tool_call
from anomalygraph.prompts import load_prompt

VALUES = np.array([1.0, 2.0, 3.0, 4.0, 50.0, 6.0, 8.0, 10.0])


def answer(decision: str, reason: str = "looks so") -> object:
    return tool_call("Judgment", {"reason": reason, "decision": decision})


def context(before: list[float], actual: float, after: list[float], point_id: str = "p1") -> JudgeContext:
    values = np.array([*before, actual, *after])
    return build_context(point_id, "cpu", None, values, len(before), predicted=float(np.mean(before)),
                         lower=min(before) - 1, upper=max(before) + 1)


SHIFT = context([10, 11, 10, 9, 10, 11, 10, 9, 10, 10], 30, [30, 31, 29, 30, 30, 31, 30, 29, 30, 30])
SPIKE = context([10, 11, 10, 9, 10, 11, 10, 9, 10, 10], 30, [10, 11, 10, 9, 10, 10, 11, 10, 9, 10])


def prompt_text(messages) -> str:
    """The judge's prompt: the first human message (structured() adds a system one, repairs come after)."""
    return text_of(messages[1])


# ------------------------------------------------------------------- contexts
def test_build_context_takes_the_neighbours_and_their_stats_exactly() -> None:
    stamps = pd.date_range("2024-01-01", periods=VALUES.size, freq="1min")
    ctx = build_context("p", "s", stamps, VALUES, 4, predicted=4.5, lower=3.0, upper=6.0, neighbours=3)
    assert ctx.before == [2.0, 3.0, 4.0] and ctx.after == [6.0, 8.0, 10.0]
    assert ctx.actual == 50.0 and ctx.timestamp == "2024-01-01 00:04:00"
    assert ctx.mean_before == 3.0 and ctx.std_before == pytest.approx(math.sqrt(2 / 3))
    assert ctx.mean_after == 8.0 and ctx.std_after == pytest.approx(math.sqrt(8 / 3))
    assert ctx.position == "above the upper bound"
    # near the ends, fewer neighbours are taken; without timestamps the point is named by its step
    edge = build_context("p", "s", None, VALUES, 6, predicted=7.0, lower=5.0, upper=9.0, neighbours=3)
    assert edge.before == [4.0, 50.0, 6.0] and edge.after == [10.0] and edge.timestamp == "step 6"
    assert edge.std_after == 0.0 and edge.position == "inside the bounds"


def test_build_context_refuses_missing_future_nan_and_bad_input() -> None:
    with pytest.raises(DataError, match="no values after it yet"):
        build_context("p", "s", None, VALUES, VALUES.size - 1, 1.0, 0.0, 2.0)
    with pytest.raises(DataError, match="nothing before it"):
        build_context("p", "s", None, VALUES, 0, 1.0, 0.0, 2.0)
    bad = VALUES.copy()
    bad[5] = np.nan
    with pytest.raises(DataError, match=r"not all finite \(NaN or inf at index 5\)"):
        build_context("p", "s", None, bad, 4, 1.0, 0.0, 2.0)
    bad[5] = np.inf
    with pytest.raises(DataError, match="not all finite"):
        build_context("p", "s", None, bad, 4, 1.0, 0.0, 2.0)
    # a NaN outside the window does not matter
    far = VALUES.copy()
    far[0] = np.nan
    assert build_context("p", "s", None, far, 4, 1.0, 0.0, 2.0, neighbours=2).before == [3.0, 4.0]
    with pytest.raises(DataError, match="predicted must be a finite number"):
        build_context("p", "s", None, VALUES, 4, float("nan"), 0.0, 2.0)
    with pytest.raises(DataError, match="lower bound 3 is above upper bound 2"):
        build_context("p", "s", None, VALUES, 4, 1.0, 3.0, 2.0)
    with pytest.raises(DataError, match="outside the 8 values"):
        build_context("p", "s", None, VALUES, 8, 1.0, 0.0, 2.0)
    with pytest.raises(DataError, match="1-D"):
        build_context("p", "s", None, VALUES.reshape(2, 4), 1, 1.0, 0.0, 2.0)
    with pytest.raises(DataError, match="timestamps for 8 values"):
        build_context("p", "s", ["a"], VALUES, 4, 1.0, 0.0, 2.0)
    with pytest.raises(ValidationError, match="after"):
        JudgeContext(point_id="p", series_id="s", timestamp="t", actual=1, predicted=1, lower=0, upper=2, before=[1.0],
                     after=[], mean_before=1, std_before=0, mean_after=1, std_after=0)
    with pytest.raises(ValidationError, match="mean_after must be a finite number"):
        JudgeContext(point_id="p", series_id="s", timestamp="t", actual=1, predicted=1, lower=0, upper=2, before=[1.0],
                     after=[1.0], mean_before=1, std_before=0, mean_after=float("nan"), std_after=0)


# ----------------------------------------------------------------- rule judge
def test_rule_judge_keeps_a_persisting_shift_and_removes_a_spike() -> None:
    assert rule_judge(SHIFT).decision == "KEEP"
    assert "10 of 10 points after" in rule_judge(SHIFT).reason
    assert rule_judge(SPIKE).decision == "REMOVE"
    # a downward step counts too; a shift that lasts only 3 points does not, unless persist allows it
    down = context([10, 11, 10, 9, 10], -20, [-20, -21, -19, -20, -20, -21])
    assert rule_judge(down).decision == "KEEP"
    brief = context([10, 11, 10, 9, 10], 30, [30, 29, 31, 10, 10, 11, 9, 10])
    assert rule_judge(brief).decision == "REMOVE"
    assert rule_judge(brief, persist=3).decision == "KEEP"
    # fewer points after than persist: all must be shifted
    assert rule_judge(context([10, 11, 10, 9], 30, [30, 31])).decision == "KEEP"
    assert rule_judge(context([10, 11, 10, 9], 30, [30, 10])).decision == "REMOVE"
    # a shift on the other side of the outlier is not a persisting shift of this outlier
    assert rule_judge(context([10, 11, 10, 9, 10], 30, [-10] * 6)).decision == "REMOVE"


def test_rule_judge_handles_a_flat_history() -> None:
    flat = context([5.0] * 10, 9.0, [9.0] * 10)
    assert flat.std_before == 0.0
    assert rule_judge(flat).decision == "KEEP"
    assert rule_judge(context([5.0] * 10, 9.0, [5.0] * 10)).decision == "REMOVE"
    # rounding-size wobble after a flat history is not a shift
    assert rule_judge(context([5.0] * 10, 9.0, [5.0 + 1e-9] * 10)).decision == "REMOVE"
    assert rule_judge(context([5.0] * 10, 5.0, [9.0] * 10)).decision == "REMOVE"  # no excursion at all
    with pytest.raises(ConfigError, match="persist"):
        rule_judge(flat, persist=0)


def test_rule_and_keep_all_judges_make_records() -> None:
    records = RuleJudge().judge_many([SHIFT, SPIKE])
    assert [(r.decision, r.source) for r in records] == [("KEEP", "rule"), ("REMOVE", "rule")]
    keep = KeepAllJudge().judge(SPIKE)
    assert (keep.decision, keep.source, keep.reason, keep.fallback_reason) == ("KEEP", "rule", "keep-all control", None)


# ------------------------------------------------------------------ prompts
def test_every_variant_renders_the_same_facts_compactly() -> None:
    ctx = build_context("p", "cpu-7", None, np.array([1.0, 2.0, 1 / 3, 123456789.0, 2.5]), 3,
                        predicted=1.1, lower=0.5, upper=2.0, neighbours=3)
    values = prompt_values(ctx)
    assert values["before"] == "1, 2, 0.333333" and values["actual"] == "1.23457e+08"
    assert values["after"] == "2.5" and values["std_after"] == "0"
    texts = [load_prompt(p).render(**values) for p in PROMPTS]
    assert len(set(texts)) == len(PROMPTS) == 3
    for text in texts:
        for fact in ("cpu-7", "step 3", "1.23457e+08", "1.1", "0.5", "1, 2, 0.333333", "2.5", "above the upper bound"):
            assert fact in text
        assert "KEEP" in text and "REMOVE" in text


# ----------------------------------------------------------------- LLM judge
def test_a_valid_answer_is_the_decision_and_the_same_context_comes_from_the_cache() -> None:
    model = ScriptedChatModel(script=[answer("keep", "a new baseline follows the spike")])
    judge = LLMJudge(model, timeout_s=5)
    first = judge.judge(SHIFT)
    assert (first.decision, first.source, first.fallback_reason) == ("KEEP", "llm", None)
    assert first.reason == "a new baseline follows the spike" and first.prompt_version == "judge/judge_v1@v1"
    assert model.bound[0]["tool_choice"] == "Judgment"  # the forced tool call the embedded model gets
    text = prompt_text(model.calls[0])
    assert "actual value: 30" in text and "Data points after the outlier (10, oldest first): 30, 31, 29" in text
    again = judge.judge(SHIFT.model_copy(update={"point_id": "p2"}))
    assert (again.point_id, again.decision, again.source) == ("p2", "KEEP", "cache")
    assert len(model.calls) == 1
    # another prompt variant is another key
    assert LLMJudge(model, variant="judge_paraphrase_a").cache_key(SHIFT) != judge.cache_key(SHIFT)


def test_a_garbage_answer_falls_back_to_the_rule_with_a_reason() -> None:
    model = ScriptedChatModel(script=["no idea", "still prose", answer("MAYBE")])
    judged = LLMJudge(model, timeout_s=5).judge(SPIKE)
    assert len(model.calls) == 3  # the first try and structured()'s two repairs
    assert (judged.decision, judged.source) == ("REMOVE", "fallback")
    assert judged.fallback_reason.startswith("invalid answer: the model gave no valid Judgment in 3 attempts")
    assert judged.reason.startswith("rule: transient")


def test_a_transport_error_falls_back_and_is_not_cached() -> None:
    model = ScriptedChatModel(script=[LLMUnavailableError("cannot reach the server"), answer("REMOVE")])
    judge = LLMJudge(model, timeout_s=5)
    judged = judge.judge(SHIFT)
    assert (judged.decision, judged.source) == ("KEEP", "fallback")
    assert judged.fallback_reason == "model error (LLMUnavailableError): cannot reach the server"
    assert len(judge.cache) == 0
    assert judge.judge(SHIFT).source == "llm"  # asked again next time


def test_a_model_slower_than_the_timeout_falls_back_quickly() -> None:
    release = threading.Event()

    def slow(messages):
        release.wait(5)
        return answer("KEEP")

    model = ScriptedChatModel(script=[slow], repeat_last=True)
    started = time.perf_counter()
    judged = LLMJudge(model, timeout_s=0.2).judge(SPIKE)
    elapsed = time.perf_counter() - started
    release.set()
    assert elapsed < 2
    assert (judged.decision, judged.source) == ("REMOVE", "fallback")
    assert judged.fallback_reason == "timeout: no answer within 0.2 s"
    assert 0.2 <= judged.seconds < 2


def test_judge_many_keeps_the_order_and_judges_duplicates_once() -> None:
    def by_after(messages):
        text = prompt_text(messages)
        return answer("KEEP" if "30, 31, 29" in text else "REMOVE")

    model = ScriptedChatModel(script=[by_after], repeat_last=True)
    dup = SHIFT.model_copy(update={"point_id": "shift-again"})
    contexts = [SPIKE.model_copy(update={"point_id": "a"}), SHIFT.model_copy(update={"point_id": "b"}), dup,
                SPIKE.model_copy(update={"point_id": "d"})]
    records = LLMJudge(model, timeout_s=5).judge_many(contexts, max_workers=3)
    assert [r.point_id for r in records] == ["a", "b", "shift-again", "d"]
    assert [r.decision for r in records] == ["REMOVE", "KEEP", "KEEP", "REMOVE"]
    assert [r.source for r in records] == ["llm", "llm", "cache", "cache"]
    assert len(model.calls) == 2


def test_bad_contexts_raise() -> None:
    judge = LLMJudge(ScriptedChatModel(script=[]), timeout_s=5)
    with pytest.raises(DataError, match="needs a JudgeContext"):
        judge.judge({"point_id": "p"})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="timeout"):
        LLMJudge(ScriptedChatModel(script=[]), timeout_s=0)
    with pytest.raises(ConfigError, match="no prompt template named 'judge/nope'"):
        LLMJudge(ScriptedChatModel(script=[]), variant="nope")


# --------------------------------------------------------------------- cache
def test_the_cache_is_bounded_and_persists_as_json_lines(tmp_path) -> None:
    small = JudgeCache(max_entries=2)
    for key in "abc":
        small.put(key, Judgment(decision="KEEP", reason=key))
    assert len(small) == 2 and "a" not in small and small.get("c").reason == "c"

    path = tmp_path / "cache" / "judge.jsonl"
    model = ScriptedChatModel(script=[answer("KEEP", "a new level")])
    LLMJudge(model, timeout_s=5, cache_path=path).judge(SHIFT)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 1 and rows[0]["decision"] == "KEEP" and len(rows[0]["key"]) == 64
    with path.open("a", encoding="utf-8") as fh:
        fh.write("not json\n")
        fh.write(json.dumps({"key": "x", "decision": "PERHAPS", "reason": ""}) + "\n")
    reloaded = LLMJudge(ScriptedChatModel(script=[]), timeout_s=5, cache_path=path)
    assert len(reloaded.cache) == 1  # the malformed lines are skipped
    judged = reloaded.judge(SHIFT)
    assert (judged.source, judged.reason) == ("cache", "a new level")
    assert reloaded.model.calls == []


def test_a_long_reason_is_clipped_and_the_decision_normalised() -> None:
    j = Judgment.model_validate({"reason": "word " * 200, "decision": " remove "})
    assert j.decision == "REMOVE" and len(j.reason) == 300 and j.reason.endswith("…")


# ----------------------------------------------------------------- agreement
MARKERS = {"judge_v1": "You are an expert in time-series analysis", "judge_paraphrase_a": "the readings around a flagged",
           "judge_paraphrase_b": "Task: label an anomaly"}


def variant_of(messages) -> str:
    text = prompt_text(messages)
    found = [v for v in VARIANTS if MARKERS[v] in text]
    assert len(found) == 1, text[:80]
    return found[0]


def test_agreement_is_zero_when_paraphrases_disagree_and_one_when_they_agree() -> None:
    split = ScriptedChatModel(
        script=[lambda m: answer("REMOVE" if variant_of(m) == "judge_paraphrase_b" else "KEEP")], repeat_last=True)
    report = agreement_rate(split, [SHIFT, SPIKE], timeout_s=5)
    assert (report.n, report.answered, report.agreement) == (2, 2, 0.0)
    assert report.per_variant_keep == {"judge_v1": 2, "judge_paraphrase_a": 2, "judge_paraphrase_b": 0}
    assert report.decisions[0].decisions["judge_paraphrase_b"] == "REMOVE" and report.decisions[0].unanimous is False
    assert len(split.calls) == 6

    same = ScriptedChatModel(script=[answer("KEEP")], repeat_last=True)
    report = agreement_rate(same, [SHIFT, SPIKE], timeout_s=5)
    assert (report.answered, report.agreement) == (2, 1.0)
    assert report.fallbacks == dict.fromkeys(VARIANTS, 0)


def test_fallbacks_are_reported_and_left_out_of_agreement() -> None:
    def answers(messages):
        if variant_of(messages) == "judge_paraphrase_a" and "30, 31, 29" in prompt_text(messages):
            return "not an answer"
        return answer("KEEP")

    model = ScriptedChatModel(script=[answers], repeat_last=True)
    report = agreement_rate(model, [SHIFT, SPIKE], timeout_s=5)
    assert report.fallbacks == {"judge_v1": 0, "judge_paraphrase_a": 1, "judge_paraphrase_b": 0}
    assert (report.answered, report.agreement) == (1, 1.0)
    assert report.decisions[0].unanimous is None and report.decisions[0].sources["judge_paraphrase_a"] == "fallback"
    assert report.per_variant_keep["judge_paraphrase_a"] == 1
    with pytest.raises(ConfigError, match="at least two"):
        agreement_rate(model, [SHIFT], variants=["judge_v1"])


# ------------------------------------------------------------------- feedback
class Recording:
    """An inner judge that remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def judge(self, context: JudgeContext):
        self.asked.append(context.point_id)
        return RuleJudge().judge(context)


def stream_context(key: str, seconds: float, base: JudgeContext = SHIFT) -> JudgeContext:
    """A context named as the stream names points: ``key@<seconds>``, an ISO timestamp."""
    stamp = pd.Timestamp(seconds, unit="s", tz="UTC").isoformat().replace("+00:00", "Z")
    return base.model_copy(update={"point_id": f"{key}@{seconds:.6f}", "series_id": key, "timestamp": stamp})


def span(key: str, start: float, end: float, label: str, minute: int = 0) -> FeedbackSpan:
    return FeedbackSpan(key=key, start=start, end=end, label=label, mark=f"{label} mark {minute}",
                        at=pd.Timestamp("2026-12-02 10:00", tz="UTC") + pd.Timedelta(minutes=minute))


def test_a_mark_answers_for_the_points_inside_it_without_asking_the_judge() -> None:
    inner = Recording()
    judge = FeedbackJudge(inner, [span("cpu", 100.0, 200.0, "false"), span("cpu", 300.0, 300.0, "real")])
    # SHIFT is KEEP by the rule; a false-alarm mark makes it REMOVE, and the rule is not asked
    inside = judge.judge(stream_context("cpu", 150.0))
    assert (inside.decision, inside.source, inside.prompt_version) == ("REMOVE", "feedback", "feedback@v1")
    assert inside.reason == "feedback: inside a false mark 0" and inner.asked == []
    edge = judge.judge(stream_context("cpu", 200.0))  # bounds are inclusive
    assert edge.source == "feedback" and edge.decision == "REMOVE"
    spike = judge.judge(stream_context("cpu", 300.0, SPIKE))  # REMOVE by the rule, KEEP by the real mark
    assert (spike.decision, spike.source) == ("KEEP", "feedback")
    outside = judge.judge(stream_context("cpu", 250.0))
    other_key = judge.judge(stream_context("mem", 150.0))
    assert outside.source == other_key.source == "rule" and inner.asked == ["cpu@250.000000", "mem@150.000000"]


def test_of_overlapping_marks_the_latest_decides_and_judge_many_keeps_the_order() -> None:
    inner = Recording()
    judge = FeedbackJudge(inner, [span("cpu", 0.0, 100.0, "real", minute=5), span("cpu", 50.0, 60.0, "false", minute=1)])
    assert judge.judge(stream_context("cpu", 55.0)).decision == "KEEP"  # the real mark is newer
    contexts = [stream_context("cpu", t) for t in (10.0, 500.0, 55.0, 600.0)]
    out = judge.judge_many(contexts)
    assert [p.point_id for p in out] == [c.point_id for c in contexts]
    assert [p.source for p in out] == ["feedback", "rule", "feedback", "rule"]
    assert inner.asked == ["cpu@500.000000", "cpu@600.000000"]  # only the unmarked points, in order


def test_point_times_come_from_the_id_or_the_timestamp() -> None:
    assert point_seconds(stream_context("a:b", 1_700_000_000.5)) == 1_700_000_000.5
    iso = SHIFT.model_copy(update={"point_id": "p", "timestamp": "2024-01-01T00:00:10Z"})
    assert point_seconds(iso) == pd.Timestamp("2024-01-01T00:00:10Z").timestamp()
    assert point_seconds(SHIFT.model_copy(update={"timestamp": "step 7"})) == 7.0
    assert point_seconds(SHIFT.model_copy(update={"timestamp": "whenever"})) is None
    with pytest.raises(ValidationError):
        span("cpu", 10.0, 5.0, "real")
    with pytest.raises(ValidationError):
        span("cpu", 0.0, 5.0, "maybe")
