"""CALM's loop for one key: ordering policy, gap fill, judging with future context, fine-tune and swap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from anomalygraph.agents.judge import KeepAllJudge, RuleJudge
from anomalygraph.streaming.engine import CalmLoop, KeyState
from anomalygraph.streaming.records import JudgmentRecord, ModelEvent, Point, Rejected, ScoredPoint
from anomalygraph.streaming.store import ModelStore
from tests.streaming.conftest import small_config


def _run(loop: CalmLoop, arrivals: list[Point], release_every: int = 0) -> tuple[KeyState, list]:
    state, out = KeyState(), []
    key = arrivals[0].key
    for i, p in enumerate(arrivals, 1):
        out += loop.add(state, p)
        if release_every and i % release_every == 0:
            # a watermark that lags the newest arrival by 20 steps of 5 minutes
            out += loop.release(state, key, max(q.timestamp for q in arrivals[:i]) - 20 * 300)
    out += loop.finish(state, key)
    return state, out


def test_a_late_point_is_recorded_not_scored_and_a_duplicate_is_refused(tmp_path: Path, real_points) -> None:
    loop = CalmLoop(small_config(), ModelStore(tmp_path), RuleJudge())
    state, key = KeyState(), real_points[0].key
    for p in real_points[:10]:
        list(loop.add(state, p))
    list(loop.release(state, key, real_points[9].timestamp))
    late = list(loop.add(state, Point(key=key, timestamp=real_points[5].timestamp + 1, value=1.0)))
    dup = list(loop.add(state, real_points[3]))
    changed = list(loop.add(state, real_points[4].model_copy(update={"value": real_points[4].value + 1})))
    assert [r.reason for r in late + dup + changed] == ["late", "duplicate", "conflicting duplicate"]
    assert state.counts["points"] == 10 and state.counts["rejected"] == 3


def test_gaps_are_filled_for_context_and_never_flagged(tmp_path: Path, real_points) -> None:
    points = real_points[:400] + real_points[403:500]  # three missing steps after the warm-up
    loop = CalmLoop(small_config(), ModelStore(tmp_path), RuleJudge())
    _, out = _run(loop, points)
    filled = [o for o in out if isinstance(o, ScoredPoint) and o.filled]
    assert [f.timestamp for f in filled] == [real_points[i].timestamp for i in (400, 401, 402)]
    assert not any(f.flagged or f.score is not None for f in filled)


def test_the_model_swaps_after_n_keep_points_and_later_points_use_it(tmp_path: Path, real_points) -> None:
    loop = CalmLoop(small_config(batch_size=5), ModelStore(tmp_path), KeepAllJudge())
    _, out = _run(loop, real_points)
    events = [o for o in out if isinstance(o, ModelEvent)]
    judgments = [o for o in out if isinstance(o, JudgmentRecord)]
    assert [e.version for e in events[:2]] == [1, 2] and events[1].trigger == "finetune"
    assert events[1].keep_points == 5
    # the fifth KEEP triggers the fine-tune; points scored after it carry version 2, those before version 1
    fifth = judgments[4]
    scored = [o for o in out if isinstance(o, ScoredPoint) and not o.warmup]
    at = events[1].at_timestamp
    assert fifth.timestamp < at
    assert {o.model_version for o in scored if o.timestamp <= at} == {1}
    assert {o.model_version for o in scored if at < o.timestamp < (events[2].at_timestamp if len(events) > 2 else 1e18)} == {2}


def test_a_crash_between_fine_tune_and_swap_keeps_the_previous_complete_model(tmp_path: Path, real_points,
                                                                              monkeypatch) -> None:
    store = ModelStore(tmp_path)
    loop = CalmLoop(small_config(batch_size=5), store, KeepAllJudge())
    real_rename = os.rename
    calls = {"n": 0}

    def crash_after_first(src, dst):  # the warm-up model publishes; every fine-tuned one dies before its rename
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError("disk went away before the rename")
        return real_rename(src, dst)

    monkeypatch.setattr("anomalygraph.streaming.store.os.rename", crash_after_first)
    state, out = _run(loop, real_points)
    assert store.versions(real_points[0].key) == [1]  # the half-written version is not visible
    assert any(p.name.startswith(".tmp-") for p in store.key_dir(real_points[0].key).iterdir())
    scored = [o for o in out if isinstance(o, ScoredPoint) and not o.warmup and not o.filled]
    assert scored and {o.model_version for o in scored} == {1}
    assert state.counts["finetune_failures"] >= 1 and state.counts["finetunes"] == 0
    assert len(state.keep) >= 5  # the KEEP batch waits for the next attempt
    assert not any(isinstance(o, ModelEvent) and o.version > 1 for o in out)


def test_out_of_order_with_duplicates_scores_every_point_once_in_event_time_order(tmp_path: Path, real_points) -> None:
    from anomalygraph.streaming.replay import disorder

    arrivals = disorder(real_points, max_delay=10, duplicates=0.05, seed=1)
    assert arrivals != real_points and len(arrivals) > len(real_points)
    loop = CalmLoop(small_config(), ModelStore(tmp_path), RuleJudge())
    _, out = _run(loop, arrivals, release_every=50)
    scored = sorted((o for o in out if isinstance(o, ScoredPoint)), key=lambda o: o.seq)
    assert [o.timestamp for o in scored] == [p.timestamp for p in real_points]
    rejected = [o for o in out if isinstance(o, Rejected)]
    assert len(rejected) == len(arrivals) - len(real_points) and {r.reason for r in rejected} == {"duplicate"}


def test_judgments_already_written_are_not_asked_again(tmp_path: Path, real_points) -> None:
    first = CalmLoop(small_config(batch_size=1000), ModelStore(tmp_path / "a"), RuleJudge())
    _, out = _run(first, real_points)
    written = {o.point_id: o for o in out if isinstance(o, JudgmentRecord)}
    assert written

    class Refuses:
        def judge(self, context):
            raise AssertionError(f"asked again about {context.point_id}")

    again = CalmLoop(small_config(batch_size=1000), ModelStore(tmp_path / "b"), Refuses(), judged=written)
    _, replayed = _run(again, real_points)
    assert {o.point_id: o.decision for o in replayed if isinstance(o, JudgmentRecord)} == \
        {k: v.decision for k, v in written.items()}


@pytest.mark.parametrize("bad", [{"warmup": 4}, {"k": -1}, {"judge": "oracle"}])
def test_bad_stream_config_is_refused(bad) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        small_config(**bad)


def test_a_version_published_by_another_process_becomes_live_for_later_points(tmp_path: Path, real_points) -> None:
    store = ModelStore(tmp_path)
    loop = CalmLoop(small_config(swap_poll=0, batch_size=None), store, RuleJudge())
    state, key = KeyState(), real_points[0].key
    for p in real_points[:400]:
        list(loop.add(state, p))
    list(loop.release(state, key, real_points[399].timestamp))
    assert state.version == 1
    outside = store.load(key, 1)
    outside.fine_tune([p.value for p in real_points[:400]], epochs=1)
    assert store.publish(key, outside, {"trigger": "another process"}) == 2
    for p in real_points[400:410]:
        list(loop.add(state, p))
    later = [o for o in loop.release(state, key, real_points[409].timestamp) if isinstance(o, ScoredPoint)]
    assert {o.model_version for o in later} == {2} and loop.live(state, key).version == 2


def test_batched_forecasts_equal_one_point_at_a_time(tmp_path: Path, real_points) -> None:
    points = real_points[:400] + real_points[402:700]  # a gap inside the batch
    runs = []
    for name, every in (("batched", 0), ("single", 1)):
        loop = CalmLoop(small_config(batch_size=None), ModelStore(tmp_path / name), RuleJudge())
        _, out = _run(loop, points, release_every=every)
        runs.append([(o.timestamp, o.score, o.flagged) for o in out if isinstance(o, ScoredPoint) and o.score is not None])
    batched, single = runs
    assert [b[0] for b in batched] == [s[0] for s in single] and [b[2] for b in batched] == [s[2] for s in single]
    assert max(abs(b[1] - s[1]) for b, s in zip(batched, single, strict=True)) < 1e-6


def test_a_long_gap_restarts_the_context_and_judges_waiting_flags_first(shared_data, tmp_path: Path) -> None:
    from anomalygraph.data.loaders import load_series
    from anomalygraph.streaming.replay import series_points

    # a real series whose long gaps (hours, at a 5-minute step) restart the context with flags waiting
    points = series_points(load_series(shared_data / "NAB/data/realKnownCause/rogue_agent_key_hold.csv"))
    loop = CalmLoop(small_config(max_gap=10), ModelStore(tmp_path), KeepAllJudge())
    state, out = _run(loop, points)
    judged = [o for o in out if isinstance(o, JudgmentRecord)]
    assert state.counts["restarts"] >= 1
    assert state.counts["flagged"] == len(judged) + state.counts["unjudged"]
    assert len({j.point_id for j in judged}) == len(judged)
    scored = [o for o in out if isinstance(o, ScoredPoint)]
    assert len(scored) == len(points) + state.counts["filled"]
