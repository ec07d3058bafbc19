"""Analyst agent eval: fixed questions about the real data, scored for tool-call validity and answer
correctness.

Answers are never stored: each question names a *recipe* that computes its answer from the
file's labels and statistics when the eval runs (how many labelled windows, the sampling step,
the autocorrelation period, the day of the labelled window that deviates most, the channel
that deviates most in a labelled interval), and a *grader* that reads the agent's free text
(numbers, durations, ISO days, row ranges, channel names), refusing hedged answers that list
many candidates. Tool-call validity is the share of the calls the model made that ran: valid
arguments, a known tool, accepted by the tool.

``anomalygraph eval analyst`` runs it with the embedded model (``--subset ci`` is the small
set CI runs) or with any served model (``--provider vllm --base-url ... --model ...``), and
writes ``results.json``, ``table.md`` and ``table.csv``.
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anomalygraph.core.errors import AnomalyGraphError, ConfigError, DataError
from anomalygraph.core.intervals import mask_to_intervals
from anomalygraph.core.stats import median_sigma
from anomalygraph.core.tables import md_row, table_lines
from anomalygraph.data.loaders import load_series
from anomalygraph.data.series import TimeSeries
from anomalygraph.llm.factory import model_name

QUESTIONS_FILE = Path(__file__).with_name("analyst_questions.yaml")
GradeKind = Literal["number", "duration", "day", "rows", "channel"]
MAX_NUMBERS = 5  # more distinct candidate numbers than this is a hedge, not an answer
MAX_DAYS = 2
MAX_CHANNELS = 3
MAX_ROW_NUMBERS = 8


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    path: str = Field(description="file path relative to the data root")
    question: str = Field(description="template; {path} and the recipe's fields are filled in")
    recipe: str
    grade: GradeKind
    params: dict[str, Any] = Field(default_factory=dict)
    tolerance: float = Field(0.0, ge=0, description="number/duration: relative; rows: rows either side")
    tools: list[str] = Field(min_length=1, description="tools a good solution calls")
    ci: bool = False


class QuestionSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    questions: list[Question]


class Gold(BaseModel):
    """The answer a recipe computed, and the values the question template needs."""

    model_config = ConfigDict(extra="forbid")

    value: int | float | str | list[int]
    display: str
    fields: dict[str, Any] = Field(default_factory=dict)


class Grade(BaseModel):
    model_config = ConfigDict(extra="forbid")

    correct: bool
    reason: str
    found: list[str] = Field(default_factory=list)


class QuestionResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    question: str
    gold: str
    answer: str | None
    correct: bool
    grade_reason: str
    tool_calls: int
    valid_calls: int
    validity: float | None
    expected_tool_used: bool
    calls: list[str]
    budget_hit: bool
    seconds: float
    model_calls: int
    input_tokens: int
    output_tokens: int
    error: str | None = None


class EvalReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    provider: str
    strategy: str
    subset: str
    max_steps: int
    tools_per_turn: int
    n_questions: int
    accuracy: float
    tool_call_validity: float | None
    expected_tool_rate: float
    mean_seconds: float
    total_seconds: float
    prompt_versions: list[str]
    created: str
    results: list[QuestionResult]


# ------------------------------------------------------------------ recipes
def _events(series: TimeSeries) -> list[tuple[int, int]]:
    return [] if series.labels is None else list(mask_to_intervals(series.labels.astype(bool)))


def _event(series: TimeSeries, q: Question) -> tuple[int, int]:
    events = _events(series)
    k = int(q.params.get("event", 0))
    if not 0 <= k < len(events):
        raise ConfigError(f"question {q.id}: {q.path} has {len(events)} labelled event(s); event {k} does not exist")
    return events[k]


def label_events(path: Path, series: TimeSeries, q: Question) -> Gold:
    n = len(_events(series))
    return Gold(value=n, display=str(n))


def row_count(path: Path, series: TimeSeries, q: Question) -> Gold:
    if path.suffix.lower() != ".csv":
        raise ConfigError(f"question {q.id}: row_count reads CSV files, not {path.suffix}")
    n = len(pd.read_csv(path))
    return Gold(value=n, display=str(n))


def sampling_interval(path: Path, series: TimeSeries, q: Question) -> Gold:
    frame = pd.read_csv(path)
    column = next((c for c in frame.columns if "time" in c.lower()), None)
    if column is None:
        raise ConfigError(f"question {q.id}: {path} has no timestamp column")
    step = pd.to_datetime(frame[column]).diff().median()
    seconds = float(step.total_seconds())
    return Gold(value=seconds, display=f"{seconds:g} s ({step})")


def autocorrelation(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64) - float(np.mean(x))
    n = len(x)
    spectrum = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    return acf / acf[0] if acf[0] > 0 else acf


def dominant_period(path: Path, series: TimeSeries, q: Question) -> Gold:
    """The lag of the highest local maximum of the autocorrelation, between 4 rows and a third of the series."""
    acf = autocorrelation(series.values[:, 0])
    lo, hi = 4, len(acf) // 3
    seg = acf[lo:hi]
    peaks = [i for i in range(1, len(seg) - 1) if seg[i] >= seg[i - 1] and seg[i] >= seg[i + 1]]
    if not peaks:
        raise ConfigError(f"question {q.id}: {q.path} has no autocorrelation peak")
    best = max(peaks, key=lambda i: seg[i]) + lo
    return Gold(value=int(best), display=f"{best} rows (autocorrelation {acf[best]:.2f})")


def largest_labelled_day(path: Path, series: TimeSeries, q: Question) -> Gold:
    """The day of the peak of the labelled window whose values stray furthest from the unlabelled rows
    (robust z: distance to their median over 1.4826 MAD)."""
    if series.timestamps is None:
        raise ConfigError(f"question {q.id}: {q.path} has no timestamps, so no day")
    events = _events(series)
    if not events:
        raise ConfigError(f"question {q.id}: {q.path} has no labelled anomaly")
    x = series.values[:, 0].astype(np.float64)
    normal = ~series.labels.astype(bool)
    median, sigma = median_sigma(x[normal])
    sigma = sigma or float(x[normal].std()) or 1.0
    best = max(((float(np.max(np.abs(x[a : b + 1] - median))) / sigma, a + int(np.argmax(np.abs(x[a : b + 1] - median))))
                for a, b in events))
    day = str(pd.Timestamp(series.timestamps[best[1]]).date())
    return Gold(value=day, display=f"{day} ({best[0]:.1f} robust sigmas)")


def labelled_rows(path: Path, series: TimeSeries, q: Question) -> Gold:
    start, end = _event(series, q)
    return Gold(value=[start, end], display=f"rows {start}..{end}", fields={"start": start, "end": end})


def top_deviating_channel(path: Path, series: TimeSeries, q: Question) -> Gold:
    """The channel whose values in the labelled interval stray furthest from the rows around it
    (5x the interval, at least 100 rows, each side), in robust sigmas of those rows."""
    start, end = _event(series, q)
    reach = max(5 * (end - start + 1), 100)
    lo, hi = max(0, start - reach), min(series.length, end + 1 + reach)
    around = np.r_[lo:start, end + 1 : hi]
    scores = {}
    for j, name in enumerate(series.channels):
        x = series.values[:, j].astype(np.float64)
        if x.std() == 0:
            continue
        median, sigma = median_sigma(x[around])
        sigma = max(sigma, 0.1 * float(x.std()))
        scores[name] = float(np.max(np.abs(x[start : end + 1] - median))) / sigma
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    (top, z), runner = ranked[0], ranked[1] if len(ranked) > 1 else ("-", 0.0)
    return Gold(value=top, display=f"{top} ({z:.0f} sigma; next {runner[0]} {runner[1]:.0f})",
                fields={"start": start, "end": end})


RECIPES: dict[str, Callable[[Path, TimeSeries, Question], Gold]] = {
    f.__name__: f
    for f in (label_events, row_count, sampling_interval, dominant_period, largest_labelled_day, labelled_rows,
              top_deviating_channel)
}


# ------------------------------------------------------------------ graders
_DATE = re.compile(r"\b(\d{4})[-/](\d{2})[-/](\d{2})\b")
_CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})(?::(\d{2}))?\b")
_PATHLIKE = re.compile(r"\S*[/_\\]\S*|\S+\.(?:csv|tsv|npy|txt|parquet|pq|png)\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?![\w])")
_WORDS = {w: i for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
)}
_UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60, "minute": 60,
          "minutes": 60, "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400,
          "days": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*-?\s*(" + "|".join(sorted(_UNITS, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def _plain(text: str) -> str:
    """The answer without file paths, dates and clock times, whose digits are not answers."""
    return _CLOCK.sub(" ", _DATE.sub(" ", _PATHLIKE.sub(" ", text)))


def numbers_in(text: str) -> list[float]:
    found = [float(m.replace(",", "")) for m in _NUMBER.findall(_plain(text))]
    words = [float(_WORDS[w]) for w in re.findall(r"[a-z]+", text.lower()) if w in _WORDS]
    if not found and not words and re.search(r"\b(no|none)\b", text.lower()):
        return [0.0]
    return list(dict.fromkeys(found + words))


def durations_in(text: str) -> list[float]:
    out = [float(v) * _UNITS[u.lower()] for v, u in _DURATION.findall(_PATHLIKE.sub(" ", text))]
    for h, m, s in _CLOCK.findall(text):
        out.append(int(h) * 3600 + int(m) * 60 + int(s or 0))
    lower = text.lower()
    if re.search(r"half[- ]an[- ]hour|half[- ]hour", lower):
        out.append(1800.0)
    if re.search(r"\bhourly\b|\bevery hour\b", lower):
        out.append(3600.0)
    if re.search(r"\bevery minute\b", lower):
        out.append(60.0)
    return list(dict.fromkeys(out))


def channels_in(text: str, channels: list[str]) -> list[str]:
    """Channel names the answer mentions; a plain word (``value``) only when quoted or called a channel."""
    found = []
    for name in channels:
        word = re.escape(name)
        if re.search(r"\d", name):
            hit = re.search(rf"(?<![\w-]){word}(?![\w-])", text, re.IGNORECASE)
        else:
            hit = re.search(rf"['\"`*]{word}['\"`*]|\b{word}\s+(?:channel|column)\b|\b(?:channel|column)\s+['\"`]?{word}\b",
                            text, re.IGNORECASE)
        if hit:
            found.append(name)
    return found


def grade(answer: str | None, q: Question, gold: Gold, series: TimeSeries) -> Grade:
    if not answer or not answer.strip():
        return Grade(correct=False, reason="no answer")
    if q.grade in ("number", "duration"):
        found = numbers_in(answer) if q.grade == "number" else durations_in(answer)
        target = float(gold.value)  # type: ignore[arg-type]
        tol = max(q.tolerance * abs(target), 0.5 if q.grade == "number" else 0.01 * abs(target))
        if q.grade == "number" and len(found) > MAX_NUMBERS:
            return Grade(correct=False, reason=f"hedged: {len(found)} numbers", found=[f"{v:g}" for v in found])
        hit = any(abs(v - target) <= tol for v in found)
        return Grade(correct=hit, reason="match" if hit else ("nothing to read" if not found else "wrong value"),
                     found=[f"{v:g}" for v in found])
    if q.grade == "day":
        days = list(dict.fromkeys("-".join(m) for m in _DATE.findall(answer)))
        if len(days) > MAX_DAYS:
            return Grade(correct=False, reason=f"hedged: {len(days)} days", found=days)
        hit = gold.value in days
        return Grade(correct=hit, reason="match" if hit else ("no day given" if not days else "wrong day"), found=days)
    if q.grade == "rows":
        start, end = gold.value  # type: ignore[misc]
        tol = max(q.tolerance, end - start + 1)
        rows = [int(v) for v in numbers_in(answer) if v >= 10 and float(v).is_integer()]
        if len(rows) > MAX_ROW_NUMBERS:
            return Grade(correct=False, reason=f"hedged: {len(rows)} row numbers", found=[str(r) for r in rows])
        hit = any(start - tol <= r <= end + tol for r in rows)
        return Grade(correct=hit, reason="match" if hit else ("no rows given" if not rows else "wrong rows"),
                     found=[str(r) for r in rows])
    named = channels_in(answer, series.channels)
    if len(named) > MAX_CHANNELS:
        return Grade(correct=False, reason=f"hedged: {len(named)} channels", found=named)
    hit = gold.value in named
    return Grade(correct=hit, reason="match" if hit else ("no channel named" if not named else "wrong channel"), found=named)


GRADERS = ("number", "duration", "day", "rows", "channel")


# ------------------------------------------------------------------- runner
def load_questions(path: Path | None = None, *, subset: Literal["ci", "all"] = "all", ids: list[str] | None = None) -> list[Question]:
    path = path or QUESTIONS_FILE
    try:
        data = QuestionSet.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read analyst eval questions {path}: {exc}") from exc
    except ValidationError as exc:
        raise ConfigError(f"analyst eval questions {path} are invalid: {exc.errors(include_url=False)[0]}") from exc
    unknown = [q.recipe for q in data.questions if q.recipe not in RECIPES]
    if unknown:
        raise ConfigError(f"{path}: unknown recipe(s) {unknown}; known: {', '.join(RECIPES)}")
    questions = [q for q in data.questions if subset == "all" or q.ci]
    if ids:
        missing = sorted(set(ids) - {q.id for q in data.questions})
        if missing:
            raise ConfigError(f"no question(s) {missing} in {path}; known: {', '.join(q.id for q in data.questions)}")
        questions = [q for q in data.questions if q.id in ids]
    return questions


def prepare(q: Question, data_root: Path) -> tuple[str, Gold, TimeSeries]:
    """The question's text and its answer, computed from the file under ``data_root``."""
    path = data_root / q.path
    if not path.is_file():
        raise DataError(f"question {q.id}: {path} does not exist (is the data root {data_root} right?)")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        series = load_series(path)
    gold = RECIPES[q.recipe](path, series, q)
    return q.question.format(path=q.path, **gold.fields), gold, series


def ask_one(model: BaseChatModel, q: Question, data_root: Path, *, max_steps: int, plots_dir: Path,
            tools_per_turn: int | None = None) -> QuestionResult:
    from langgraph.checkpoint.memory import InMemorySaver

    from anomalygraph.agents.analyst.view import render_call
    from anomalygraph.graphs.analyst import AnalystContext, ask, build_graph
    from anomalygraph.llm.usage import UsageLogger

    text, gold, series = prepare(q, data_root)
    context = AnalystContext(model=model, data_roots=[str(data_root)], output_dir=str(plots_dir),
                             max_steps=max_steps, tools_per_turn=tools_per_turn)
    usage = UsageLogger()
    started = time.perf_counter()
    error = None
    try:
        turn = ask(build_graph(InMemorySaver()), text, context=context, thread_id=q.id, callbacks=[usage])
    except AnomalyGraphError as exc:
        turn, error = None, f"{type(exc).__name__}: {exc}"
    seconds = round(time.perf_counter() - started, 2)
    totals = usage.totals()
    answer = turn.answer if turn else None
    verdict = grade(answer, q, gold, series) if error is None else Grade(correct=False, reason="run failed")
    calls = turn.calls if turn else []
    made = sum(c.outcome != "not_run" for c in calls)
    valid = sum(c.outcome == "ok" for c in calls)
    return QuestionResult(
        id=q.id, question=text, gold=gold.display, answer=answer, correct=verdict.correct,
        grade_reason=verdict.reason + (f" (read: {', '.join(verdict.found[:6])})" if verdict.found else ""),
        tool_calls=made, valid_calls=valid, validity=round(valid / made, 3) if made else None,
        expected_tool_used=any(c.outcome == "ok" and c.name in q.tools for c in calls),
        calls=[f"{render_call(c.name, c.args)} -> {c.outcome}" for c in calls],
        budget_hit=any("budget" in n for n in (turn.notes if turn else [])),
        seconds=seconds, model_calls=totals.calls, input_tokens=totals.input_tokens, output_tokens=totals.output_tokens,
        error=error,
    )


def run_eval(
    model: BaseChatModel,
    data_root: Path,
    questions: list[Question],
    *,
    max_steps: int = 6,
    tools_per_turn: int | None = None,
    out_dir: Path,
    subset: str = "all",
    on_result: Callable[[QuestionResult], None] | None = None,
) -> EvalReport:
    from anomalygraph.graphs.analyst import PROMPTS, AnalystContext
    from anomalygraph.llm.factory import capabilities_of
    from anomalygraph.prompts import load_prompt

    if not questions:
        raise ConfigError("no questions selected")
    results = []
    for q in questions:
        result = ask_one(model, q, data_root, max_steps=max_steps, plots_dir=out_dir / "plots", tools_per_turn=tools_per_turn)
        results.append(result)
        if on_result:
            on_result(result)
    made = sum(r.tool_calls for r in results)
    caps = capabilities_of(model)
    probe = AnalystContext(model=model, max_steps=max_steps, tools_per_turn=tools_per_turn)
    report = EvalReport(
        model=model_name(model),
        provider=str(getattr(model, "provider", None) or "unknown"),
        strategy=probe.resolved_strategy() if caps is not None else "guided",
        subset=subset, max_steps=max_steps, tools_per_turn=probe.answer_after(), n_questions=len(results),
        accuracy=round(sum(r.correct for r in results) / len(results), 3),
        tool_call_validity=round(sum(r.valid_calls for r in results) / made, 3) if made else None,
        expected_tool_rate=round(sum(r.expected_tool_used for r in results) / len(results), 3),
        mean_seconds=round(sum(r.seconds for r in results) / len(results), 1),
        total_seconds=round(sum(r.seconds for r in results), 1),
        prompt_versions=[load_prompt(p).ref for p in PROMPTS],
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        results=results,
    )
    return report


def _cell(text: str | None, limit: int = 90) -> str:
    text = " ".join((text or "").split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown_table(report: EvalReport) -> str:
    validity = "n/a" if report.tool_call_validity is None else f"{report.tool_call_validity:.0%}"
    lines = [
        f"# Analyst eval: {report.model} ({report.provider}, {report.strategy} tool choice)",
        "",
        f"{report.n_questions} question(s), subset `{report.subset}`, at most {report.max_steps} tool calls each "
        f"(answering after {report.tools_per_turn} successful one(s)); "
        f"prompts {', '.join(report.prompt_versions)}; {report.created}.",
        "",
        f"**Accuracy {report.accuracy:.0%}** · tool-call validity {validity} · expected tool used "
        f"{report.expected_tool_rate:.0%} · {report.mean_seconds:.1f} s per question ({report.total_seconds:.0f} s in all)",
        "",
        *table_lines(["question", "gold", "answer", "correct", "calls (valid)", "expected tool", "s", "model calls"]),
    ]
    for r in report.results:
        answer = r.error or r.answer
        lines.append(md_row([
            r.id, _cell(r.gold, 40), _cell(answer), f"{'yes' if r.correct else 'no'} ({_cell(r.grade_reason, 40)})",
            f"{r.tool_calls} ({r.valid_calls}){' budget' if r.budget_hit else ''}", "yes" if r.expected_tool_used else "no",
            f"{r.seconds:.1f}", r.model_calls,
        ]))
    return "\n".join(lines) + "\n"


def write_report(report: EvalReport, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "markdown": out_dir / "table.md", "csv": out_dir / "table.csv"}
    paths["json"].write_text(report.model_dump_json(indent=2))
    paths["markdown"].write_text(markdown_table(report))
    with paths["csv"].open("w", newline="") as fh:
        fields = ["id", "gold", "answer", "correct", "grade_reason", "tool_calls", "valid_calls", "validity",
                  "expected_tool_used", "budget_hit", "seconds", "model_calls", "input_tokens", "output_tokens", "error"]
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in report.results:
            writer.writerow(json.loads(r.model_dump_json()))
    return paths
