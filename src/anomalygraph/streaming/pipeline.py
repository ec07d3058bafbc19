"""CALM as an Apache Beam pipeline: points keyed by series, one stateful ``DoFn`` per key.

``CalmDoFn`` keeps a :class:`~.engine.KeyState` per key in Beam state and sets an event-time
timer at its earliest pending point: when the watermark passes it, the buffered points up to the
timer are released in order through :class:`~.engine.CalmLoop`. The end of each key's stream is
an explicit marker (a bounded replay's last word), which releases everything and judges the last
flags with the future context there is. Model swap: the loop reads the store's newest complete
version (a directory listing) at each release and after each fine-tune, in place of a
``WatchFilePattern`` side input, because the models are per key and fine-tuned inside the keyed
state, which a pipeline-wide side input cannot address; ``RunInference`` is not used for the same
reason (one forward pass per point, with the model of that key's version). Where Beam's own
primitives fit they are used: state, timers, tagged outputs, ``WriteToText``.
"""

from __future__ import annotations

import bisect
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
    BagStateSpec,
    ReadModifyWriteStateSpec,
    TimerSpec,
    on_timer,
)
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from anomalygraph.agents.judge import (
    FeedbackJudge,
    FeedbackSpan,
    JudgedPoint,
    KeepAllJudge,
    LLMJudge,
    RuleJudge,
)
from anomalygraph.core.errors import DataError
from anomalygraph.streaming.config import StreamConfig
from anomalygraph.streaming.engine import CalmLoop, KeyState, Output
from anomalygraph.streaming.records import JudgmentRecord, ModelEvent, Point, Rejected, ScoredPoint
from anomalygraph.streaming.store import ModelStore, key_dir_name

TAGS = {ScoredPoint: "scored", Rejected: "rejected", JudgmentRecord: "judgments", ModelEvent: "models"}
OUTPUTS = ("scored", "rejected", "judgments", "models")
RUNNERS = ("DirectRunner", "PortableRunner", "FlinkRunner", "SparkRunner", "DataflowRunner", "PrismRunner")


class End:
    """The end of one key's replay, at the timestamp of its last point."""

    def __init__(self, timestamp: float) -> None:
        self.timestamp = timestamp


def make_judge(kind: str, cache_path: Path | None = None, feedback: Sequence[FeedbackSpan] = ()) -> Any:
    """The judge a stream's config names; with ``feedback`` spans, users' marks answer first (never in evals)."""
    if kind == "rule":
        judge: Any = RuleJudge()
    elif kind == "keep_all":
        judge = KeepAllJudge()
    else:
        judge = LLMJudge(None, cache_path=cache_path)
    return with_feedback(judge, feedback)


def with_feedback(judge: Any, feedback: Sequence[FeedbackSpan]) -> Any:
    """``judge`` behind the users' marks, or ``judge`` itself when there are none."""
    return FeedbackJudge(judge, feedback) if feedback else judge


def still_valid(judged: dict[str, JudgmentRecord], judge: Any) -> dict[str, JudgmentRecord]:
    """Logged judgments a rerun may reuse: not those a mark now decides, nor earlier marks' answers.

    A mark made after a run must win over what the judge said then; and a mark's answer is not
    reused when the marks are off or changed (the points are judged again, by the marks or the judge).
    """
    marks = judge if isinstance(judge, FeedbackJudge) else None
    return {pid: r for pid, r in judged.items()
            if r.source != "feedback" and (marks is None or marks.span_at(r.key, r.timestamp) is None)}


class JudgmentLog:
    """Judgments appended per key; :meth:`sync` fsyncs them, which the loop calls before a fine-tune consumes
    a KEEP batch and at the end of every release, so no judgment a model was trained on can be lost. A rerun
    answers from this log instead of asking again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.open: dict[str, Any] = {}

    def read(self) -> dict[str, JudgmentRecord]:
        out: dict[str, JudgmentRecord] = {}
        for path in sorted(self.directory.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    record = JudgmentRecord.model_validate_json(line)
                    out[record.point_id] = record
        return out

    def write(self, record: JudgmentRecord) -> None:
        name = key_dir_name(record.key)
        sink = self.open.get(name)
        if sink is None:
            sink = self.open[name] = (self.directory / f"{name}.jsonl").open("a", encoding="utf-8")
        sink.write(record.model_dump_json() + "\n")
        sink.flush()

    def sync(self) -> None:
        for sink in self.open.values():
            os.fsync(sink.fileno())

    def close(self) -> None:
        self.sync()
        for sink in self.open.values():
            sink.close()
        self.open.clear()


class CalmDoFn(beam.DoFn):
    """Arrivals go to a bag (cheap per element); the key's loop state is read and written once per timer firing."""

    STATE = ReadModifyWriteStateSpec("calm", PickleCoder())
    ARRIVED = BagStateSpec("arrived", PickleCoder())
    ARMED = ReadModifyWriteStateSpec("armed", PickleCoder())  # (timer time, end marker's time or None)
    RELEASE = TimerSpec("release", TimeDomain.WATERMARK)

    def __init__(self, config: StreamConfig, out_dir: str, judge: Any = None,
                 feedback: Sequence[FeedbackSpan] = ()) -> None:
        self.config_json = config.model_dump_json()
        self.out_dir = out_dir
        self.judge = judge  # a picklable judge object (tests); None: made from the config in setup
        self.feedback = list(feedback)  # users' marks as event-time spans per key: the judge's answer inside them
        self.loop: CalmLoop | None = None

    def setup(self) -> None:
        config = StreamConfig.model_validate_json(self.config_json)
        out = Path(self.out_dir)
        log = JudgmentLog(out / "judgment_log")
        if self.judge is not None:
            judge = with_feedback(self.judge, self.feedback)
        else:
            judge = make_judge(config.judge, out / "judge_cache.jsonl", self.feedback)
        self.log = log
        self.loop = CalmLoop(config, ModelStore(out / "models"), judge, judged=still_valid(log.read(), judge),
                             on_judgment=log.write, on_commit=log.sync)

    def teardown(self) -> None:
        if getattr(self, "log", None) is not None:
            self.log.close()

    def process(self, element: tuple[str, Point | End],
                arrived: Any = beam.DoFn.StateParam(ARRIVED),  # noqa: B008
                armed: Any = beam.DoFn.StateParam(ARMED),  # noqa: B008
                timer: Any = beam.DoFn.TimerParam(RELEASE)) -> None:  # noqa: B008
        _, item = element
        at, end = armed.read() or (None, None)
        if isinstance(item, End):
            end = item.timestamp
            at = end  # the end marker releases everything
        else:
            arrived.add(item)
            if end is None and (at is None or item.timestamp < at):
                at = item.timestamp
        timer.set(Timestamp(at))
        armed.write((at, end))

    @on_timer(RELEASE)
    def release(self, key: Any = beam.DoFn.KeyParam, fired: Any = beam.DoFn.TimestampParam,
                state: Any = beam.DoFn.StateParam(STATE),  # noqa: B008
                arrived: Any = beam.DoFn.StateParam(ARRIVED),  # noqa: B008
                armed: Any = beam.DoFn.StateParam(ARMED),  # noqa: B008
                timer: Any = beam.DoFn.TimerParam(RELEASE)) -> Iterator[Any]:  # noqa: B008
        assert self.loop is not None
        st: KeyState = state.read() or KeyState()
        for point in arrived.read():  # the ordering policy applies as points enter the loop
            yield from _tagged(self.loop.add(st, point))
        arrived.clear()
        _, end = armed.read() or (None, None)
        st.end = end
        upto = float(fired)
        if end is not None and upto >= end:
            yield from _tagged(self.loop.finish(st, key))
            armed.write((None, end))
        else:
            yield from _tagged(self.loop.release(st, key, upto))
            at = end if end is not None else st.buffer.earliest()
            if at is not None:
                timer.set(Timestamp(at))
            armed.write((at, end))
        state.write(st)


def _tagged(outputs: Iterator[Output]) -> Iterator[Any]:
    for record in outputs:
        yield beam.pvalue.TaggedOutput(TAGS[type(record)], record.model_dump_json())


def keyed_elements(arrivals: Sequence[Point]) -> list[TimestampedValue]:
    """Points in arrival order, then one end marker per key at its last timestamp."""
    last: dict[str, float] = {}
    for p in arrivals:
        last[p.key] = max(last.get(p.key, p.timestamp), p.timestamp)
    items = [TimestampedValue((p.key, p), p.timestamp) for p in arrivals]
    return items + [TimestampedValue((k, End(t)), t) for k, t in last.items()]


def calm_outputs(elements: beam.PCollection, config: StreamConfig, out_dir: Path, judge: Any = None,
                 feedback: Sequence[FeedbackSpan] = ()) -> Any:
    """The CALM transform on ``(key, Point | End)`` elements; tagged JSON outputs, one per record kind."""
    calm = beam.ParDo(CalmDoFn(config, str(out_dir), judge, feedback)).with_input_types(tuple[str, Any])
    return elements | "CALM" >> calm.with_outputs(*OUTPUTS)


class AppendJsonl(beam.DoFn):
    """Each record appended (one line, flushed) to ``<out>/<tag>.jsonl`` as it comes: the streaming sink,
    where ``WriteToText`` would need windows to know when a file is finished."""

    def __init__(self, path: str) -> None:
        self.path = path

    def process(self, line: str) -> Iterator[None]:
        with open(self.path, "a", encoding="utf-8") as sink:
            sink.write(line + "\n")
        return iter(())


def write_outputs(outputs: Any, out_dir: Path, *, streaming: bool = False) -> None:
    for tag in OUTPUTS:
        if streaming:
            outputs[tag] | f"append {tag}" >> beam.ParDo(AppendJsonl(str(out_dir / f"{tag}.jsonl")))
        else:
            outputs[tag] | f"write {tag}" >> beam.io.WriteToText(str(out_dir / tag), file_name_suffix=".jsonl",
                                                                 num_shards=1, shard_name_template="")


def pipeline_options(runner: str, extra: Sequence[str] = (), *, streaming: bool = False) -> PipelineOptions:
    options = PipelineOptions([f"--runner={runner}", *extra])
    options.view_as(StandardOptions).streaming = streaming
    return options


class Paced(beam.DoFn):
    """At each tick of a ``PeriodicImpulse``, the elements whose wall-clock offset has come."""

    def __init__(self, elements: list[TimestampedValue], offsets: list[float], start: float, interval: float,
                 stop: float) -> None:
        self.elements, self.offsets = elements, offsets
        self.start, self.interval, self.stop = start, interval, stop

    def process(self, tick: float) -> Iterator[TimestampedValue]:
        k = round((float(tick) - self.start) / self.interval)  # the tick's index: boundaries shared exactly by neighbours
        lo = bisect.bisect_right(self.offsets, (k - 1) * self.interval) if k > 0 else 0
        last = self.start + (k + 1) * self.interval >= self.stop
        hi = len(self.offsets) if last else bisect.bisect_right(self.offsets, k * self.interval)
        yield from self.elements[lo:hi]


def paced_source(p: beam.Pipeline, arrivals: Sequence[Point], speed: float, interval: float = 0.2) -> Any:
    """``arrivals`` replayed in event-time order at ``speed`` x real time (an unbounded, streaming source)."""
    from apache_beam.transforms.periodicsequence import PeriodicImpulse

    ordered = sorted(arrivals, key=lambda q: q.timestamp)
    elements = keyed_elements(ordered)
    t0 = ordered[0].timestamp
    offsets = [(e.timestamp.micros / 1e6 - t0) / speed for e in elements]
    offsets[len(ordered):] = [offsets[len(ordered) - 1]] * (len(elements) - len(ordered))  # end markers last
    start = time.time() + 1.0
    stop = start + offsets[-1] + 2 * interval
    return (p | "ticks" >> PeriodicImpulse(start_timestamp=start, stop_timestamp=stop, fire_interval=interval)
              | "pace" >> beam.ParDo(Paced(elements, offsets, start, interval, stop)).with_output_types(tuple[str, Any]))


def run_replay(arrivals: Sequence[Point], config: StreamConfig, out_dir: Path, *, runner: str = "DirectRunner",
               extra_args: Sequence[str] = (), judge: Any = None, speed: float | None = None,
               feedback: Sequence[FeedbackSpan] = ()) -> None:
    """A replay of ``arrivals`` through CALM on ``runner``; outputs in ``out_dir``.

    Without ``speed`` it is bounded (batch): every point at once, in arrival order. With ``speed``
    the points arrive in event-time order at that multiple of real time through a streaming source,
    and records are appended to the output files as they are made. ``feedback`` (users' marks as
    spans, :func:`~.replay.feedback_spans`) answers for the flagged points inside them; they are
    written to ``feedback.json`` beside ``config.json``.
    """
    if not arrivals:
        raise DataError("nothing to replay: the source has no points")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config.model_dump(mode="json"), indent=2))
    (out_dir / "feedback.json").write_text(json.dumps([s.model_dump(mode="json") for s in feedback], indent=2))
    streaming = speed is not None
    with beam.Pipeline(options=pipeline_options(runner, extra_args, streaming=streaming)) as p:
        if streaming:
            assert speed is not None
            elements = paced_source(p, arrivals, speed)
        else:
            elements = p | "replay" >> beam.Create(keyed_elements(arrivals), reshuffle=False).with_output_types(
                tuple[str, Any])
        write_outputs(calm_outputs(elements, config, out_dir, judge, feedback), out_dir, streaming=streaming)


def read_output(out_dir: Path, tag: str) -> list[dict[str, Any]]:
    path = out_dir / f"{tag}.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


__all__ = [
    "OUTPUTS",
    "RUNNERS",
    "AppendJsonl",
    "CalmDoFn",
    "End",
    "JudgedPoint",
    "JudgmentLog",
    "calm_outputs",
    "keyed_elements",
    "make_judge",
    "pipeline_options",
    "read_output",
    "run_replay",
    "still_valid",
    "with_feedback",
    "write_outputs",
]
