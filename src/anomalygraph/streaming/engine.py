"""CALM's loop for one series key, in event-time order, as plain Python a Beam ``DoFn`` wraps.

For each released point (see :mod:`.ordering`): the first ``warmup`` points fit the forecaster
(version 1, published to the store); later points are scored with the live model's quantile
forecast from the preceding context (one step ahead), flagged outside ``[Q1 - k IQR, Q3 + k IQR]``,
and each flag is judged once ``neighbours`` later points exist (the judge sees the future
context, as the paper's prompt does). KEEP points collect in a batch; ``batch_size`` of them
trigger a fine-tune of a *copy* of the live model on the recent history, published as the next
version. The live model is always what the store's newest complete version holds: after a
publish the engine loads it back from the store, so a crash between fine-tune and publish leaves
the previous complete model scoring (and the KEEP batch kept for the next attempt).

Gaps: up to ``max_gap`` missing steps are filled by linear interpolation (context only, never
flagged or judged); a longer gap restarts the context, and points are unscored until it refills.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from anomalygraph.agents.judge import JudgeContext, build_context
from anomalygraph.core.errors import AnomalyGraphError
from anomalygraph.detectors.calm import QuantileForecaster, create_forecaster, iqr
from anomalygraph.streaming.config import StreamConfig
from anomalygraph.streaming.ordering import OrderedBuffer
from anomalygraph.streaming.records import JudgmentRecord, ModelEvent, Point, Rejected, ScoredPoint
from anomalygraph.streaming.store import ModelStore

logger = logging.getLogger("anomalygraph.streaming")

Output = ScoredPoint | Rejected | JudgmentRecord | ModelEvent
FORECAST_BATCH = 256  # released points forecast in one batch


class Verdict(Protocol):
    decision: str
    reason: str
    source: str


class Judge(Protocol):
    def judge(self, context: JudgeContext) -> Verdict: ...


@dataclass
class KeyState:
    """Everything the loop keeps per key between bundles (picklable: it lives in Beam state)."""

    buffer: OrderedBuffer = field(default_factory=OrderedBuffer)
    warm_ts: list[float] = field(default_factory=list)
    warm_values: list[float] = field(default_factory=list)
    history_ts: deque[float] = field(default_factory=deque)
    history_values: deque[float] = field(default_factory=deque)
    step: float | None = None
    end: float | None = None  # the timestamp of the replay's last point, once its end marker arrived
    version: int | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)  # flags awaiting future context
    keep: list[str] = field(default_factory=list)  # KEEP point ids since the last fine-tune
    counts: dict[str, int] = field(default_factory=lambda: {"points": 0, "scored": 0, "flagged": 0, "KEEP": 0,
                                                            "REMOVE": 0, "filled": 0, "rejected": 0,
                                                            "finetunes": 0, "finetune_failures": 0, "unjudged": 0,
                                                            "restarts": 0, "seq": 0})


class CalmLoop:
    """The loop's logic; live forecasters are cached per key and always come from ``store``."""

    def __init__(self, config: StreamConfig, store: ModelStore, judge: Judge, *,
                 judged: Mapping[str, JudgmentRecord] | None = None,
                 on_judgment: Callable[[JudgmentRecord], None] | None = None,
                 on_commit: Callable[[], None] | None = None) -> None:
        self.config = config
        self.store = store
        self.judge = judge
        self.judged = dict(judged or {})  # point id -> judgment already written (a restart replays them)
        self.on_judgment = on_judgment
        self.on_commit = on_commit  # make the judgments written so far durable (before a fine-tune, after a release)
        self.models: dict[str, QuantileForecaster] = {}
        self.forecasts: dict[tuple[str, int | None, float], np.ndarray] = {}  # batched ahead, see _forecast
        self.polled: dict[str, float] = {}  # key -> when the store was last listed (monotonic seconds)

    # ------------------------------------------------------------ entry points
    def add(self, state: KeyState, point: Point) -> Iterator[Output]:
        rejected = state.buffer.add(point)
        if rejected is not None:
            state.counts["rejected"] += 1
            yield rejected

    def release(self, state: KeyState, key: str, upto: float | None = None) -> Iterator[Output]:
        """Score the buffered points up to ``upto`` (the watermark; None: all) in timestamp order."""
        points = state.buffer.release(upto)
        now = time.monotonic()
        if points and now - self.polled.get(key, -1e18) >= self.config.swap_poll:
            self.polled[key] = now
            self._swap_if_newer(state, key)
        for i, point in enumerate(points):
            yield from self._one(state, key, point, points[i + 1 : i + FORECAST_BATCH])
        if points and self.on_commit is not None:
            self.on_commit()

    def finish(self, state: KeyState, key: str) -> Iterator[Output]:
        """End of the stream: release everything, then judge flags with whatever future context exists."""
        yield from self.release(state, key, None)
        yield from self._judge_ready(state, key, now=state.history_ts[-1] if state.history_ts else 0.0, final=True)

    # ---------------------------------------------------------------- the loop
    def live(self, state: KeyState, key: str) -> QuantileForecaster:
        model = self.models.get(key)
        if model is None or model.version != state.version:
            assert state.version is not None
            model = self.store.load(key, state.version)
            self.models[key] = model
        return model

    def _swap_if_newer(self, state: KeyState, key: str) -> None:
        latest = self.store.latest(key)
        if latest is not None and state.version is not None and latest > state.version:
            state.version = latest  # the side input's job: a newer complete artifact is live from now on

    def _one(self, state: KeyState, key: str, point: Point, ahead: Sequence[Point] = ()) -> Iterator[Output]:
        state.counts["points"] += 1
        if state.version is None:
            yield from self._warm(state, key, point)
            return
        yield from self._fill_gap(state, key, point)
        model = self.live(state, key)
        context = self._context(state, model.context_length)
        out = ScoredPoint(key=key, timestamp=point.timestamp, value=point.value, label=point.label,
                          model_version=state.version, seq=_next_seq(state))
        if context is not None:
            q = self._forecast(state, key, model, context, point, ahead)  # [Q], one step ahead
            lower, upper = iqr.iqr_bounds(q, model.quantiles, k=self.config.k)
            out.quantiles, out.lower, out.upper = [float(v) for v in q], float(lower), float(upper)
            out.score = float(iqr.outlier_score(np.float64(point.value), lower, upper, k=self.config.k))
            out.flagged = bool(iqr.flag(np.float64(point.value), lower, upper))
            state.counts["scored"] += 1
        self._append(state, point.timestamp, point.value)
        if out.flagged:
            state.counts["flagged"] += 1
            state.pending.append({"point_id": point.point_id, "timestamp": point.timestamp, "value": point.value,
                                  "predicted": float(np.median(out.quantiles or [point.value])),
                                  "lower": out.lower, "upper": out.upper, "after": 0})
        yield out
        for flag in state.pending:
            if flag["timestamp"] < point.timestamp:
                flag["after"] += 1
        yield from self._judge_ready(state, key, now=point.timestamp, final=False)

    def _forecast(self, state: KeyState, key: str, model: QuantileForecaster, context: np.ndarray, point: Point,
                  ahead: Sequence[Point]) -> np.ndarray:
        """One-step quantiles for ``point``, computed in one batch with the released points after it.

        The points after it that follow without a gap would see exactly this context shifted by the
        points between (each is appended after it is scored), so their forecasts are made now and
        kept under (key, model version, timestamp); a fine-tune (a new version) makes them unused.
        """
        cached = self.forecasts.pop((key, state.version, point.timestamp), None)
        if cached is not None:
            return cached
        stamps, values = [point.timestamp], [point.value]
        for nxt in ahead:
            if state.step is not None and round((nxt.timestamp - stamps[-1]) / state.step) > 1:
                break  # a gap: filled points will change that context
            stamps.append(nxt.timestamp)
            values.append(nxt.value)
        sequence = np.concatenate([context, np.asarray(values[:-1], dtype=np.float64)])
        windows = np.lib.stride_tricks.sliding_window_view(sequence, len(context))
        predicted = model.predict(windows)[:, 0]  # [n, Q]
        self.forecasts = {(key, state.version, t): q for t, q in zip(stamps[1:], predicted[1:], strict=True)}
        return predicted[0]

    def _warm(self, state: KeyState, key: str, point: Point) -> Iterator[Output]:
        state.warm_ts.append(point.timestamp)
        state.warm_values.append(point.value)
        yield ScoredPoint(key=key, timestamp=point.timestamp, value=point.value, label=point.label, warmup=True,
                          seq=_next_seq(state))
        if len(state.warm_values) < self.config.warmup:
            return
        started = time.perf_counter()
        values = np.asarray(state.warm_values, dtype=np.float64)
        model = create_forecaster(self.config.forecaster, **self.config.forecaster_config)
        model.fit(values)
        steps = np.diff(np.asarray(state.warm_ts))
        state.step = self.config.step or (float(np.median(steps[steps > 0])) if (steps > 0).any() else 1.0)
        version = self.store.publish(key, model, {"trigger": "warmup", "points": len(values)})
        state.version = version
        for ts, v in zip(state.warm_ts, state.warm_values, strict=True):
            self._append(state, ts, v)
        state.warm_ts, state.warm_values = [], []
        yield ModelEvent(key=key, version=version, at_timestamp=point.timestamp, trigger="warmup",
                         train_windows=len(values), seconds=time.perf_counter() - started)

    def _fill_gap(self, state: KeyState, key: str, point: Point) -> Iterator[Output]:
        if not state.history_ts or state.step is None:
            return
        last_ts, last_v = state.history_ts[-1], state.history_values[-1]
        missing = round((point.timestamp - last_ts) / state.step) - 1
        if missing <= 0:
            return
        if missing > self.config.max_gap:
            # the context restarts: flags waiting for future context are judged with what they have
            yield from self._judge_ready(state, key, now=last_ts, final=True)
            state.counts["unjudged"] += len(state.pending)
            state.counts["restarts"] += 1
            state.pending = []
            state.history_ts.clear()
            state.history_values.clear()
            return
        for i in range(1, missing + 1):
            frac = i / (missing + 1)
            ts = last_ts + (point.timestamp - last_ts) * frac
            value = last_v + (point.value - last_v) * frac
            self._append(state, ts, value)
            state.counts["filled"] += 1
            yield ScoredPoint(key=key, timestamp=ts, value=value, filled=True, model_version=state.version,
                              seq=_next_seq(state))

    def _append(self, state: KeyState, ts: float, value: float) -> None:
        state.history_ts.append(ts)
        state.history_values.append(value)
        limit = max(self.config.finetune_history, self.config.warmup) + 2 * self.config.neighbours + 1
        while len(state.history_ts) > limit:
            state.history_ts.popleft()
            state.history_values.popleft()

    @staticmethod
    def _context(state: KeyState, length: int) -> np.ndarray | None:
        if len(state.history_values) < length:
            return None
        return np.fromiter((state.history_values[i] for i in range(len(state.history_values) - length,
                                                                   len(state.history_values))),
                           dtype=np.float64, count=length)

    # ------------------------------------------------------- judge and adapt
    def _judge_ready(self, state: KeyState, key: str, *, now: float, final: bool) -> Iterator[Output]:
        need = self.config.neighbours
        ready = [f for f in state.pending if f["after"] >= need or (final and f["after"] >= 1)]
        if not ready:
            return
        state.pending = [f for f in state.pending if f not in ready]
        ts = np.asarray(state.history_ts)
        values = np.asarray(state.history_values)
        for flag in ready:
            record = self.judged.get(flag["point_id"])
            if record is None:
                index = int(np.searchsorted(ts, flag["timestamp"]))
                if index == 0 or index >= len(ts) - 1 or ts[index] != flag["timestamp"]:
                    state.counts["unjudged"] += 1  # a guard: its context left the history
                    continue
                lo, hi = max(0, index - need), min(len(ts), index + need + 1)
                context = build_context(flag["point_id"], key, [_iso(t) for t in ts[lo:hi]], values[lo:hi], index - lo,
                                        flag["predicted"], flag["lower"], flag["upper"], neighbours=need)
                verdict = self.judge.judge(context)
                record = JudgmentRecord(point_id=flag["point_id"], key=key, timestamp=flag["timestamp"],
                                        decision=verdict.decision, reason=verdict.reason, source=verdict.source,
                                        model_version=state.version or 0)
                self.judged[record.point_id] = record
                if self.on_judgment is not None:
                    self.on_judgment(record)  # written (and, before any fine-tune uses it, synced) first
            state.counts[record.decision] += 1
            yield record
            if record.decision == "KEEP":
                state.keep.append(record.point_id)
        if self.config.batch_size is not None and len(state.keep) >= self.config.batch_size:
            yield from self._finetune(state, key, now)

    def _finetune(self, state: KeyState, key: str, at: float) -> Iterator[Output]:
        started = time.perf_counter()
        if self.on_commit is not None:
            self.on_commit()  # the KEEP batch this fine-tune consumes is on disk first
        live = self.live(state, key)
        candidate = copy.deepcopy(live)
        values = np.asarray(state.history_values, dtype=np.float64)[-self.config.finetune_history:]
        try:
            report = candidate.fine_tune(values, epochs=self.config.epochs, noise_level=self.config.noise_level,
                                         validation_fraction=0.2, seed=self.config.seed + state.counts["finetunes"])
            version = self.store.publish(key, candidate, {"trigger": "finetune", "keep_points": len(state.keep),
                                                          "report": report.model_dump(mode="json")})
        except (OSError, AnomalyGraphError) as exc:
            # the previous complete model stays live; the KEEP batch is kept for the next attempt
            state.counts["finetune_failures"] += 1
            logger.warning("%s: fine-tune or publish failed (%s); staying on version %s", key, exc, state.version)
            return
        state.counts["finetunes"] += 1
        self._swap_if_newer(state, key)
        yield ModelEvent(key=key, version=version, at_timestamp=at, trigger="finetune", keep_points=len(state.keep),
                         train_windows=report.train_windows, val_loss_before=report.val_loss_before,
                         val_loss_after=report.val_loss_after, seconds=time.perf_counter() - started)
        state.keep = []


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _next_seq(state: KeyState) -> int:
    state.counts["seq"] += 1
    return state.counts["seq"]
