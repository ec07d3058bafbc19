"""The CALM judge: is a flagged point a lasting shift to learn from (KEEP) or noise to drop (REMOVE)?

CALM (paper §3.5) shows every point the forecaster flags to a language model together with the
points just before and after it and their statistics; only KEEP points go into the fine-tuning
buffer. The judge therefore curates training data, and a bad or missing answer must not stop the
stream: the model call runs under a timeout, and on a timeout or an unusable answer the
deterministic :func:`rule_judge` answers instead, with the record saying so
(``source="fallback"``). Answers are cached by what the model saw, so a replayed stream or a
repeated evaluation asks the model once per distinct prompt.

:class:`FeedbackJudge` puts users' marks first: a flagged point inside a "real anomaly" mark is
KEEP, inside a "false alarm" REMOVE (``source="feedback"``), without asking the judge it wraps.

:func:`agreement_rate` is the paper's consistency check: the same contexts under paraphrased
prompts (same facts, other wording and order) should get the same decisions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.llm.errors import LLMError, StructuredOutputError
from anomalygraph.llm.factory import DEFAULT_MODEL, chat_model, model_name
from anomalygraph.llm.messages import text_of
from anomalygraph.prompts import PromptTemplate, load_prompt

logger = logging.getLogger("anomalygraph.agents.judge")

Decision = Literal["KEEP", "REMOVE"]
Source = Literal["llm", "rule", "cache", "fallback", "feedback"]

PROMPT_FOLDER = "judge"
VARIANTS: tuple[str, ...] = ("judge_v1", "judge_paraphrase_a", "judge_paraphrase_b")
"""The prompt variants under ``prompts/judge/``: the paper's layout first, then two paraphrases."""
PROMPTS: tuple[str, ...] = tuple(f"{PROMPT_FOLDER}/{v}" for v in VARIANTS)
DEFAULT_VARIANT = VARIANTS[0]
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_NEIGHBOURS = 10
MAX_NEIGHBOURS = 200
REASON_CHARS = 300
FALLBACK_REASON_CHARS = 300
CACHE_ENTRIES = 10_000
STD_FLOOR_SHARE = 1e-3
"""With a flat history (std ≈ 0) the band is at least this share of the outlier's own excursion."""
STD_FLOOR_ABS = 1e-9


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


# ------------------------------------------------------------------------ context
class JudgeContext(_Model):
    """What the judge sees of one flagged point: the point, its forecast band and its neighbours.

    ``before`` and ``after`` are in time order (oldest first); the statistics are the mean and
    the population standard deviation (ddof 0) of those lists. Every number must be finite and
    both lists non-empty: a point with no future yet cannot be judged (wait for it).
    """

    point_id: str = Field(min_length=1)
    series_id: str
    timestamp: str
    actual: float
    predicted: float
    lower: float
    upper: float
    before: list[float] = Field(min_length=1, max_length=MAX_NEIGHBOURS)
    after: list[float] = Field(min_length=1, max_length=MAX_NEIGHBOURS)
    mean_before: float
    std_before: float = Field(ge=0)
    mean_after: float
    std_after: float = Field(ge=0)

    @model_validator(mode="after")
    def _check(self) -> JudgeContext:
        for name in ("actual", "predicted", "lower", "upper", "mean_before", "std_before", "mean_after", "std_after"):
            _finite(name, getattr(self, name))
        for name in ("before", "after"):
            bad = [i for i, v in enumerate(getattr(self, name)) if not math.isfinite(v)]
            if bad:
                raise ValueError(f"{name} holds non-finite values at positions {bad[:5]}")
        if self.lower > self.upper:
            raise ValueError(f"lower bound {self.lower:g} is above upper bound {self.upper:g}")
        return self

    @property
    def position(self) -> str:
        """Where the actual value lies with respect to the band, in words."""
        if self.actual > self.upper:
            return "above the upper bound"
        if self.actual < self.lower:
            return "below the lower bound"
        return "inside the bounds"


def build_context(
    point_id: str,
    series_id: str,
    timestamps: Sequence[Any] | np.ndarray | None,
    values: Sequence[float] | np.ndarray,
    index: int,
    predicted: float,
    lower: float,
    upper: float,
    neighbours: int = DEFAULT_NEIGHBOURS,
) -> JudgeContext:
    """The context of ``values[index]``: up to ``neighbours`` values before and after it, and their stats.

    ``timestamps`` (same length as ``values``) gives the point's timestamp as ``str()``; ``None``
    names it ``step <index>``. :class:`DataError` when the point has no value before it or none
    after it yet (the caller must wait for future context), or when a value it would use is NaN
    or infinite.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise DataError(f"build_context needs a 1-D array of values, got shape {arr.shape}")
    if isinstance(index, bool) or not isinstance(index, int | np.integer):
        raise DataError(f"index must be an integer, got {index!r}")
    index = int(index)
    if not 0 <= index < arr.size:
        raise DataError(f"index {index} is outside the {arr.size} values")
    if isinstance(neighbours, bool) or not isinstance(neighbours, int) or not 1 <= neighbours <= MAX_NEIGHBOURS:
        raise DataError(f"neighbours must be an integer from 1 to {MAX_NEIGHBOURS}, got {neighbours!r}")
    if timestamps is not None and len(timestamps) != arr.size:
        raise DataError(f"{len(timestamps)} timestamps for {arr.size} values")
    if index == 0:
        raise DataError(f"point {point_id!r} is the first value of the series: there is nothing before it to compare with")
    if index == arr.size - 1:
        raise DataError(
            f"point {point_id!r} has no values after it yet: the judge needs at least one future value; "
            "wait for more data before judging it"
        )
    start, stop = max(0, index - neighbours), min(arr.size, index + 1 + neighbours)
    window = arr[start:stop]
    bad = np.flatnonzero(~np.isfinite(window))
    if bad.size:
        positions = ", ".join(str(start + int(i)) for i in bad[:5])
        raise DataError(f"point {point_id!r}: the values around it are not all finite (NaN or inf at index {positions})")
    for name, bound in (("predicted", predicted), ("lower", lower), ("upper", upper)):
        if not math.isfinite(float(bound)):
            raise DataError(f"point {point_id!r}: {name} must be a finite number, got {bound!r}")
    before, after = arr[start:index], arr[index + 1 : stop]
    stamp = f"step {index}" if timestamps is None else str(timestamps[index])
    try:
        return JudgeContext(
            point_id=point_id, series_id=series_id, timestamp=stamp, actual=float(arr[index]),
            predicted=float(predicted), lower=float(lower), upper=float(upper),
            before=before.tolist(), after=after.tolist(),
            mean_before=float(before.mean()), std_before=float(before.std()),
            mean_after=float(after.mean()), std_after=float(after.std()),
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise DataError(f"point {point_id!r}: {exc}") from exc


# ------------------------------------------------------------------------ answers
def _clip_reason(value: Any) -> Any:
    """A long reason is cut, not failed: small models write paragraphs, and a repair costs a call."""
    if isinstance(value, str):
        value = " ".join(value.split())
        if len(value) > REASON_CHARS:
            return value[: REASON_CHARS - 1].rstrip() + "…"
    return value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


class Judgment(_Model):
    """The schema the model answers in. The reason comes first so a model writes it before deciding."""

    reason: Annotated[str, BeforeValidator(_clip_reason)] = Field(
        max_length=REASON_CHARS, description="one short sentence: why"
    )
    decision: Annotated[Decision, BeforeValidator(_upper)] = Field(
        description="KEEP: a sustained shift or pattern change; REMOVE: transient noise"
    )


class JudgedPoint(_Model):
    """The verdict record for one point, with where the answer came from."""

    point_id: str
    decision: Decision
    reason: str
    source: Source = Field(
        description="llm: the model answered; cache: an earlier identical prompt's answer; rule: a rule judge; "
        "fallback: the model failed or timed out and the rule judge answered; feedback: a user's mark on the point decided"
    )
    fallback_reason: str | None = None
    prompt_version: str = Field(description="the prompt's name@version, or the rule's name")
    model: str = Field("", description="the model's name, empty for rule judges")
    seconds: float = Field(ge=0)


class Judge(Protocol):
    """What the streaming pipeline and the evaluation call: one point, or many in order."""

    def judge(self, context: JudgeContext) -> JudgedPoint: ...

    def judge_many(self, contexts: Sequence[JudgeContext], max_workers: int = 4) -> list[JudgedPoint]: ...


def _check_context(context: object) -> JudgeContext:
    if not isinstance(context, JudgeContext):
        raise DataError(f"the judge needs a JudgeContext, got {type(context).__name__}")
    return context


# --------------------------------------------------------------------- rule judges
RULE_VERSION = "rule_judge@v1"


def rule_judge(context: JudgeContext, *, persist: int = 5, k: float = 3.0) -> Judgment:
    """The deterministic fallback: KEEP when the level has moved to the outlier's side and stays there.

    The rule, exactly:

    1. ``side`` = sign(actual − mean_before); a point exactly at mean_before is REMOVE.
    2. ``scale`` = max(std_before, 1e-3·|actual − mean_before|, 1e-9): the band's width, with a
       floor so a flat history (std ≈ 0) does not make every rounding difference a shift.
    3. A point after the outlier is *shifted* when (value − mean_before)·side > k·scale.
    4. KEEP when at least ``min(persist, len(after))`` of the ``after`` points are shifted (with
       fewer than ``persist`` points after, all of them must be); otherwise REMOVE.

    So a spike after which the series returns to its level is REMOVE, and a step that the
    following points stay on is KEEP.
    """
    if persist < 1:
        raise ConfigError(f"persist must be 1 or more, got {persist}")
    if not k > 0:
        raise ConfigError(f"k must be above 0, got {k}")
    context = _check_context(context)
    excursion = context.actual - context.mean_before
    if excursion == 0:
        return Judgment(decision="REMOVE", reason="rule: the point equals the mean before it")
    side = 1.0 if excursion > 0 else -1.0
    scale = max(context.std_before, STD_FLOOR_SHARE * abs(excursion), STD_FLOOR_ABS)
    shifted = sum((v - context.mean_before) * side > k * scale for v in context.after)
    need = min(persist, len(context.after))
    where = "above" if side > 0 else "below"
    counts = f"{shifted} of {len(context.after)} points after lie {where} mean_before by more than {k:g}·{scale:.3g}"
    if shifted >= need:
        return Judgment(decision="KEEP", reason=f"rule: level shift persists ({counts}; needed {need})")
    return Judgment(decision="REMOVE", reason=f"rule: transient ({counts}; needed {need})")


def _record(context: JudgeContext, answer: Judgment, source: Source, version: str, started: float, *,
            model: str = "", fallback_reason: str | None = None) -> JudgedPoint:
    return JudgedPoint(
        point_id=context.point_id, decision=answer.decision, reason=answer.reason, source=source,
        fallback_reason=fallback_reason, prompt_version=version, model=model,
        seconds=max(0.0, time.perf_counter() - started),
    )


class _SerialJudge:
    def judge(self, context: JudgeContext) -> JudgedPoint:  # pragma: no cover - overridden
        raise NotImplementedError

    def judge_many(self, contexts: Sequence[JudgeContext], max_workers: int = 4) -> list[JudgedPoint]:
        """The verdicts in input order (a rule is cheap: no threads)."""
        return [self.judge(c) for c in contexts]


class RuleJudge(_SerialJudge):
    """:func:`rule_judge` as a judge (``source="rule"``): the no-LLM arm of the evaluation."""

    def __init__(self, *, persist: int = 5, k: float = 3.0) -> None:
        self.persist, self.k = persist, k

    def judge(self, context: JudgeContext) -> JudgedPoint:
        started = time.perf_counter()
        answer = rule_judge(_check_context(context), persist=self.persist, k=self.k)
        return _record(context, answer, "rule", RULE_VERSION, started)


class KeepAllJudge(_SerialJudge):
    """Every flagged point is KEEP: the control arm (fine-tune on everything the detector flags)."""

    def judge(self, context: JudgeContext) -> JudgedPoint:
        started = time.perf_counter()
        answer = Judgment(decision="KEEP", reason="keep-all control")
        return _record(_check_context(context), answer, "rule", "keep_all@v1", started)


# ----------------------------------------------------------------------- feedback
FEEDBACK_VERSION = "feedback@v1"
FEEDBACK_DECISION: dict[str, Decision] = {"real": "KEEP", "false": "REMOVE"}
TIME_TOLERANCE_S = 1e-6
"""Event times are written with six decimals in point ids; a point this close to a mark's edge is inside it."""


class FeedbackSpan(_Model):
    """A user's mark on one series key, in event time (seconds since the epoch, inclusive bounds).

    The streaming layer turns the marks on a file (rows) into spans per key (its channels); the
    judge only compares times, so it knows nothing of files or streams.
    """

    key: str = Field(min_length=1)
    start: float
    end: float
    label: Literal["real", "false"]
    mark: str = Field(description="the mark in words, e.g. 'false alarm (alice, 2026-12-02 10:14 UTC), rows 10:20'")
    at: datetime = Field(description="when it was marked: of overlapping marks the latest decides")

    @model_validator(mode="after")
    def _check(self) -> FeedbackSpan:
        _finite("start", self.start)
        _finite("end", self.end)
        if self.end < self.start:
            raise ValueError(f"span end {self.end} is before its start {self.start}")
        return self


def point_seconds(context: JudgeContext) -> float | None:
    """The judged point's event time: from its id (``key@<seconds>``, as the stream names points), else its timestamp."""
    head, sep, tail = context.point_id.rpartition("@")
    if sep and head == context.series_id:
        try:
            return float(tail)
        except ValueError:
            pass
    text = context.timestamp.strip()
    if text.startswith("step "):
        text = text.removeprefix("step ")
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)).timestamp()


class FeedbackJudge:
    """Users' marks first, ``inner`` elsewhere: inside a real-anomaly mark KEEP, inside a false alarm REMOVE.

    The marks are the users' answers for those points, so the inner judge (model or rule) is not
    asked there; of overlapping marks on one key the latest decides. Evaluations never wrap their
    judges in this: a mark is a label.
    """

    def __init__(self, inner: Any, spans: Sequence[FeedbackSpan]) -> None:
        self.inner = inner
        self.spans: dict[str, list[FeedbackSpan]] = {}
        for span in sorted(spans, key=lambda s: s.at):
            self.spans.setdefault(span.key, []).append(span)

    def span_at(self, key: str, seconds: float | None) -> FeedbackSpan | None:
        """The latest mark on ``key`` whose interval holds ``seconds``, or None."""
        if seconds is None:
            return None
        inside = [s for s in self.spans.get(key, ()) if s.start - TIME_TOLERANCE_S <= seconds <= s.end + TIME_TOLERANCE_S]
        return inside[-1] if inside else None

    def _marked(self, context: JudgeContext) -> FeedbackSpan | None:
        return self.span_at(context.series_id, point_seconds(context))

    def _answer(self, context: JudgeContext, span: FeedbackSpan, started: float) -> JudgedPoint:
        answer = Judgment(decision=FEEDBACK_DECISION[span.label], reason=f"feedback: inside a {span.mark}")
        return _record(context, answer, "feedback", FEEDBACK_VERSION, started)

    def judge(self, context: JudgeContext) -> JudgedPoint:
        started = time.perf_counter()
        context = _check_context(context)
        span = self._marked(context)
        return self.inner.judge(context) if span is None else self._answer(context, span, started)

    def judge_many(self, contexts: Sequence[JudgeContext], max_workers: int = 4) -> list[JudgedPoint]:
        """The verdicts in input order: the marked ones from the marks, the rest from the inner judge in one call."""
        started = time.perf_counter()
        checked = [_check_context(c) for c in contexts]
        spans = [self._marked(c) for c in checked]
        rest = [c for c, s in zip(checked, spans, strict=True) if s is None]
        many = getattr(self.inner, "judge_many", None)
        answered = iter(many(rest, max_workers=max_workers) if many is not None else [self.inner.judge(c) for c in rest])
        return [next(answered) if s is None else self._answer(c, s, started) for c, s in zip(checked, spans, strict=True)]


# -------------------------------------------------------------------------- cache
class JudgeCache:
    """A bounded in-memory LRU of model answers keyed by prompt hash, optionally backed by a file.

    With ``path``, every new entry is appended as one JSON line (``key``, ``decision``,
    ``reason``) and the file is read back on construction (the newest ``max_entries`` lines
    win); a malformed line is skipped with a warning, never fatal. Only model answers are
    stored: a fallback is not, so the model is asked again next time. Thread-safe.
    """

    def __init__(self, max_entries: int = CACHE_ENTRIES, path: str | Path | None = None) -> None:
        if max_entries < 1:
            raise ConfigError(f"the judge cache needs room for at least 1 entry, got {max_entries}")
        self.max_entries = max_entries
        self.path = None if path is None else Path(path).expanduser()
        self._entries: OrderedDict[str, Judgment] = OrderedDict()
        self._lock = threading.Lock()
        if self.path is not None and self.path.is_file():
            self._load(self.path)

    def _load(self, path: Path) -> None:
        skipped = 0
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    key = row["key"]
                    if not isinstance(key, str) or not key:
                        raise ValueError("bad key")
                    answer = Judgment(decision=row["decision"], reason=row["reason"])
                except (ValueError, KeyError, TypeError):
                    skipped += 1
                    continue
                self._remember(key, answer)
        if skipped:
            logger.warning("judge cache %s: skipped %d malformed line(s)", path, skipped)

    def _remember(self, key: str, answer: Judgment) -> None:
        self._entries[key] = answer
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def get(self, key: str) -> Judgment | None:
        with self._lock:
            answer = self._entries.get(key)
            if answer is not None:
                self._entries.move_to_end(key)
            return answer

    def put(self, key: str, answer: Judgment) -> None:
        with self._lock:
            new = key not in self._entries
            self._remember(key, answer)
            if new and self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                line = json.dumps({"key": key, "decision": answer.decision, "reason": answer.reason}, ensure_ascii=False)
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries


# ---------------------------------------------------------------------- LLM judge
def _num(value: float) -> str:
    return f"{value:.6g}"


def _nums(values: Sequence[float]) -> str:
    return ", ".join(_num(v) for v in values)


def prompt_values(context: JudgeContext) -> dict[str, object]:
    """The values every judge prompt is rendered with: numbers as compact text (``:.6g``)."""
    return {
        "series_id": context.series_id, "timestamp": context.timestamp,
        "actual": _num(context.actual), "predicted": _num(context.predicted),
        "lower": _num(context.lower), "upper": _num(context.upper), "position": context.position,
        "before": _nums(context.before), "after": _nums(context.after),
        "n_before": len(context.before), "n_after": len(context.after),
        "mean_before": _num(context.mean_before), "std_before": _num(context.std_before),
        "mean_after": _num(context.mean_after), "std_after": _num(context.std_after),
    }


def _variant_name(variant: str) -> str:
    return variant if "/" in variant else f"{PROMPT_FOLDER}/{variant}"


def _call_with_timeout(fn: Any, timeout_s: float) -> Any:
    """``fn()`` in a daemon thread, waited for at most ``timeout_s``; :class:`TimeoutError` after.

    A daemon thread, not an executor's worker: a model call that never returns must neither
    block the next judgment nor the interpreter's exit. Its late answer is dropped.
    """
    future: Future[Any] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to the waiting caller
            future.set_exception(exc)

    threading.Thread(target=run, name="judge-call", daemon=True).start()
    try:
        return future.result(timeout=timeout_s)
    except FutureTimeout as exc:
        raise TimeoutError(f"no answer within {timeout_s:g} s") from exc


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= FALLBACK_REASON_CHARS else text[: FALLBACK_REASON_CHARS - 1] + "…"


class LLMJudge:
    """The judge role: one chat model, one prompt variant, a timeout, a cache, and the rule as fallback.

    ``model`` is a chat model (tests pass a :class:`~anomalygraph.llm.scripted.ScriptedChatModel`),
    a name known to :func:`anomalygraph.llm.factory.chat_model`, or ``None`` for the model the
    settings describe (the embedded one by default). :meth:`judge` never raises for a model's
    failure (timeout, invalid answer, transport error): the rule judge answers and the record
    says why. It raises :class:`DataError` for a context that is not a :class:`JudgeContext`.
    """

    def __init__(
        self,
        model: BaseChatModel | str | None = None,
        *,
        variant: str = DEFAULT_VARIANT,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        cache: JudgeCache | None = None,
        cache_path: str | Path | None = None,
        retries: int | None = None,
        persist: int = 5,
        k: float = 3.0,
    ) -> None:
        if not timeout_s > 0:
            raise ConfigError(f"the judge's timeout must be above 0 s, got {timeout_s}")
        if cache is not None and cache_path is not None:
            raise ConfigError("give the judge a cache or a cache_path, not both")
        resolved = chat_model(DEFAULT_MODEL if model is None else model) if not isinstance(model, BaseChatModel) else model
        if resolved is None:
            raise ConfigError("the LLM judge needs a chat model; use RuleJudge to judge without one")
        self.model: BaseChatModel = resolved
        self.template: PromptTemplate = load_prompt(_variant_name(variant))
        self.variant = variant
        self.timeout_s = float(timeout_s)
        self.cache = cache if cache is not None else JudgeCache(path=cache_path)
        self.retries = retries
        self.persist, self.k = persist, k

    @property
    def model_name(self) -> str:
        return model_name(self.model)

    @property
    def prompt_version(self) -> str:
        return self.template.ref

    def messages(self, context: JudgeContext) -> list[BaseMessage]:
        """What the model is sent (``structured`` adds its answer instruction as the system message)."""
        return [HumanMessage(content=self.template.render(**prompt_values(_check_context(context))))]

    def cache_key(self, context: JudgeContext) -> str:
        """SHA-256 of the model's name, the prompt's name@version and the rendered prompt."""
        text = "\n".join(text_of(m) for m in self.messages(context))
        payload = json.dumps([self.model_name, self.prompt_version, text], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def _ask(self, messages: list[BaseMessage]) -> Judgment:
        from anomalygraph.llm.structured import structured

        return structured(self.model, Judgment, messages, retries=self.retries)

    def judge(self, context: JudgeContext) -> JudgedPoint:
        started = time.perf_counter()
        context = _check_context(context)
        messages = self.messages(context)
        key = self.cache_key(context)
        cached = self.cache.get(key)
        if cached is not None:
            return _record(context, cached, "cache", self.prompt_version, started, model=self.model_name)
        try:
            answer = _call_with_timeout(lambda: self._ask(messages), self.timeout_s)
        except TimeoutError as exc:
            why = f"timeout: {exc}"
        except StructuredOutputError as exc:
            why = f"invalid answer: {exc}"
        except LLMError as exc:
            why = f"model error ({type(exc).__name__}): {exc}"
        else:
            self.cache.put(key, answer)
            return _record(context, answer, "llm", self.prompt_version, started, model=self.model_name)
        logger.warning("judge fell back to the rule for point %s: %s", context.point_id, why)
        rule = rule_judge(context, persist=self.persist, k=self.k)
        return _record(context, rule, "fallback", self.prompt_version, started, model=self.model_name,
                       fallback_reason=_short(why))

    def judge_many(self, contexts: Sequence[JudgeContext], max_workers: int = 4) -> list[JudgedPoint]:
        """The verdicts in input order; contexts with the same cache key are judged once.

        Distinct prompts run in a pool of ``max_workers`` threads. A repeat of a prompt gets the
        first one's verdict under its own ``point_id``, as ``source="cache"`` when the model
        answered it (a fallback stays a fallback), with ``seconds`` 0.
        """
        if max_workers < 1:
            raise ConfigError(f"max_workers must be 1 or more, got {max_workers}")
        checked = [_check_context(c) for c in contexts]
        keys = [self.cache_key(c) for c in checked]
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        unique = list(first.values())
        with ThreadPoolExecutor(max_workers=min(max_workers, max(1, len(unique))), thread_name_prefix="judge") as pool:
            done = dict(zip(unique, pool.map(lambda i: self.judge(checked[i]), unique), strict=True))
        out: list[JudgedPoint] = []
        for i, key in enumerate(keys):
            j = first[key]
            if i == j:
                out.append(done[i])
                continue
            source: Source = "cache" if done[j].source in ("llm", "cache") else done[j].source
            out.append(done[j].model_copy(update={"point_id": checked[i].point_id, "source": source, "seconds": 0.0}))
        return out


# -------------------------------------------------------------------- consistency
class ContextDecisions(_Model):
    """One context's decisions under every variant, and whether the model's answers agree."""

    point_id: str
    decisions: dict[str, Decision]
    sources: dict[str, Source]
    unanimous: bool | None = Field(description="every variant gave the same decision; None when a variant fell back")


class AgreementReport(_Model):
    """How consistently the model judges the same facts worded differently (paper §5's check).

    ``agreement`` is the share of *answered* contexts (every variant answered by the model, fresh
    or from the cache) on which all variants gave the same decision; contexts where any variant
    fell back to the rule are left out of it and counted in ``fallbacks`` (per variant), since a
    rule's answer says nothing about the model's consistency. ``None`` when nothing was answered.
    ``per_variant_keep`` counts KEEP among each variant's model answers.
    """

    n: int
    variants: list[str]
    answered: int
    agreement: float | None
    per_variant_keep: dict[str, int]
    fallbacks: dict[str, int]
    decisions: list[ContextDecisions]


def agreement_rate(
    model: BaseChatModel | str | None,
    contexts: Sequence[JudgeContext],
    variants: Sequence[str] = VARIANTS,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_workers: int = 4,
    cache: JudgeCache | None = None,
) -> AgreementReport:
    """Judge ``contexts`` under each prompt variant with :class:`LLMJudge` and measure agreement.

    Agreement is computed over the contexts every variant answered from the model; fallbacks are
    excluded from it and reported separately (see :class:`AgreementReport`). The variants share
    ``cache`` (keys include the prompt, so they never collide); by default a fresh in-memory one.
    """
    if len(variants) < 2:
        raise ConfigError(f"agreement needs at least two prompt variants, got {list(variants)}")
    if len(set(variants)) != len(variants):
        raise ConfigError(f"prompt variants must be distinct, got {list(variants)}")
    shared = cache if cache is not None else JudgeCache()
    resolved = model if isinstance(model, BaseChatModel) else chat_model(DEFAULT_MODEL if model is None else model)
    per_variant: dict[str, list[JudgedPoint]] = {}
    for variant in variants:
        judge = LLMJudge(resolved, variant=variant, timeout_s=timeout_s, cache=shared)
        per_variant[variant] = judge.judge_many(contexts, max_workers=max_workers)
    rows: list[ContextDecisions] = []
    for i, context in enumerate(contexts):
        verdicts = {v: per_variant[v][i] for v in variants}
        answered = all(p.source in ("llm", "cache") for p in verdicts.values())
        rows.append(ContextDecisions(
            point_id=context.point_id,
            decisions={v: p.decision for v, p in verdicts.items()},
            sources={v: p.source for v, p in verdicts.items()},
            unanimous=len({p.decision for p in verdicts.values()}) == 1 if answered else None,
        ))
    scored = [r for r in rows if r.unanimous is not None]
    return AgreementReport(
        n=len(rows),
        variants=list(variants),
        answered=len(scored),
        agreement=(sum(r.unanimous is True for r in scored) / len(scored)) if scored else None,
        per_variant_keep={v: sum(p.decision == "KEEP" and p.source in ("llm", "cache") for p in per_variant[v])
                          for v in variants},
        fallbacks={v: sum(p.source == "fallback" for p in per_variant[v]) for v in variants},
        decisions=rows,
    )


__all__ = [
    "DEFAULT_VARIANT",
    "FEEDBACK_VERSION",
    "PROMPTS",
    "RULE_VERSION",
    "VARIANTS",
    "AgreementReport",
    "ContextDecisions",
    "Decision",
    "FeedbackJudge",
    "FeedbackSpan",
    "Judge",
    "JudgeCache",
    "JudgeContext",
    "JudgedPoint",
    "Judgment",
    "KeepAllJudge",
    "LLMJudge",
    "RuleJudge",
    "Source",
    "agreement_rate",
    "build_context",
    "point_seconds",
    "prompt_values",
    "rule_judge",
]
