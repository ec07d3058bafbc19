"""Analyst agent eval: fixed questions about the real data, scored for tool-call validity and answer
correctness.

Answers are never stored: each question names a *recipe* (``analyst_recipes``) that computes
its answer from the file's labels and raw values when the eval runs, and a *grader*
(``analyst_graders``) that reads the agent's free text: numbers, durations, days, row ranges,
channels, detectors and shapes as people write them, refusing hedged answers that list many
candidates. Each question has a ``kind`` (count, time, rows, channel, detector, sampling,
explanation) and a fixed ``split``: ``tune`` questions are for working on prompts and tools,
``validate`` ones for reporting; the split is by series (no file has questions in both) and
balanced across kinds. Tool-call validity is the share of the calls the model made that ran:
valid arguments, a known tool, accepted by the tool.

``anomalygraph eval analyst`` runs the validate split by default (``--split tune|all``;
``--subset ci`` is the small set CI runs) with the embedded model or any served model
(``--provider vllm --base-url ... --model ...``), and writes ``results.json``, ``table.md`` and
``table.csv``: accuracy overall and per kind, tool-call validity, time per question.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anomalygraph.core.errors import AnomalyGraphError, ConfigError, DataError
from anomalygraph.core.tables import md_row, table_lines
from anomalygraph.data.loaders import load_series
from anomalygraph.data.series import TimeSeries
from anomalygraph.evals.agents import analyst_graders as graders
from anomalygraph.evals.agents.analyst_graders import (  # noqa: F401 (the eval's public names)
    GRADERS,
    Grade,
    channels_in,
    days_in,
    durations_in,
    numbers_in,
    rows_in,
)
from anomalygraph.evals.agents.analyst_recipes import (  # noqa: F401 (the eval's public names)
    RECIPES,
    Gold,
    anomaly_shape,
    autocorrelation,
    channel_count,
    detectors_flagging,
    dominant_period,
    label_events,
    labelled_point_day,
    labelled_rows,
    largest_labelled_day,
    row_count,
    sampling_interval,
    top_deviating_channel,
)
from anomalygraph.llm.factory import model_name

QUESTIONS_FILE = Path(__file__).with_name("analyst_questions.yaml")
GradeKind = Literal["number", "duration", "day", "rows", "channel", "detectors", "shape"]
Kind = Literal["count", "time", "rows", "channel", "detector", "sampling", "explanation"]
KINDS: tuple[str, ...] = get_args(Kind)
Split = Literal["tune", "validate"]
SPLITS: tuple[str, ...] = get_args(Split)


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    path: str = Field(description="file path relative to the data root")
    question: str = Field(description="template; {path} and the recipe's fields are filled in")
    kind: Kind = Field(description="what the question asks for; the report scores each kind")
    split: Split = Field(description="tune (for prompt and tool work) or validate (for reporting); fixed per series")
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


class QuestionResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    kind: str = ""
    split: str = ""
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


class KindScore(BaseModel):
    """One kind of question's share of the report."""

    model_config = ConfigDict(extra="forbid")

    n: int
    correct: int
    accuracy: float
    tool_call_validity: float | None
    mean_seconds: float


class EvalReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    provider: str
    strategy: str
    subset: str
    split: str = Field("all", description="validate, tune, all, or selected (questions picked by id)")
    max_steps: int
    tools_per_turn: int
    n_questions: int
    accuracy: float
    per_kind: dict[str, KindScore] = Field(default_factory=dict)
    tool_call_validity: float | None
    expected_tool_rate: float
    mean_seconds: float
    total_seconds: float
    prompt_versions: list[str]
    created: str
    results: list[QuestionResult]


# ------------------------------------------------------------------ graders
def grade(answer: str | None, q: Question, gold: Gold, series: TimeSeries | Any) -> Grade:
    """``q``'s grader on ``answer`` against ``gold`` (``series`` gives the channel names)."""
    return graders.grade(answer, q, gold.value, list(getattr(series, "channels", None) or []))


# ------------------------------------------------------------------- runner
def load_questions(path: Path | None = None, *, subset: Literal["ci", "all"] = "all",
                   split: Literal["tune", "validate", "all"] = "all", ids: list[str] | None = None) -> list[Question]:
    """The questions of ``split`` (``all``: both) and ``subset`` (``ci``: the CI ones); ``ids``
    picks questions by id, whatever their split and subset."""
    if split not in (*SPLITS, "all"):
        raise ConfigError(f"split must be tune, validate or all, got {split!r}")
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
    ids_seen = [q.id for q in data.questions]
    twice = sorted({i for i in ids_seen if ids_seen.count(i) > 1})
    if twice:
        raise ConfigError(f"{path}: question id(s) {twice} appear more than once")
    split_of: dict[str, set[str]] = {}
    for q in data.questions:
        split_of.setdefault(q.path, set()).add(q.split)
    mixed = sorted(f for f, splits in split_of.items() if len(splits) > 1)
    if mixed:
        raise ConfigError(f"{path}: the split is by series, but {mixed} have questions in both splits")
    questions = [q for q in data.questions if (subset == "all" or q.ci) and (split == "all" or q.split == split)]
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
            tools_per_turn: int | None = None, planner: str = "kinds", strategy: str = "auto") -> QuestionResult:
    from langgraph.checkpoint.memory import InMemorySaver

    from anomalygraph.agents.analyst.view import render_call
    from anomalygraph.graphs.analyst import AnalystContext, ask, build_graph
    from anomalygraph.llm.usage import UsageLogger

    text, gold, series = prepare(q, data_root)
    context = AnalystContext(model=model, data_roots=[str(data_root)], output_dir=str(plots_dir),
                             max_steps=max_steps, tools_per_turn=tools_per_turn, planner=planner,  # type: ignore[arg-type]
                             strategy=strategy)  # type: ignore[arg-type]
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
        id=q.id, kind=q.kind, split=q.split, question=text, gold=gold.display, answer=answer, correct=verdict.correct,
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
    planner: str = "kinds",
    strategy: str = "auto",
    out_dir: Path,
    subset: str = "all",
    split: str = "all",
    on_result: Callable[[QuestionResult], None] | None = None,
) -> EvalReport:
    from anomalygraph.graphs.analyst import PROMPTS, AnalystContext
    from anomalygraph.llm.factory import capabilities_of
    from anomalygraph.prompts import load_prompt

    if not questions:
        raise ConfigError("no questions selected")
    results = []
    for q in questions:
        result = ask_one(model, q, data_root, max_steps=max_steps, plots_dir=out_dir / "plots", tools_per_turn=tools_per_turn,
                         planner=planner, strategy=strategy)
        results.append(result)
        if on_result:
            on_result(result)
    made = sum(r.tool_calls for r in results)
    caps = capabilities_of(model)
    probe = AnalystContext(model=model, max_steps=max_steps, tools_per_turn=tools_per_turn, strategy=strategy)  # type: ignore[arg-type]
    report = EvalReport(
        model=model_name(model),
        provider=str(getattr(model, "provider", None) or "unknown"),
        strategy=probe.resolved_strategy() if caps is not None or strategy != "auto" else "guided",
        subset=subset, split=split, max_steps=max_steps, tools_per_turn=probe.answer_after(), n_questions=len(results),
        accuracy=round(sum(r.correct for r in results) / len(results), 3),
        per_kind=per_kind(results),
        tool_call_validity=round(sum(r.valid_calls for r in results) / made, 3) if made else None,
        expected_tool_rate=round(sum(r.expected_tool_used for r in results) / len(results), 3),
        mean_seconds=round(sum(r.seconds for r in results) / len(results), 1),
        total_seconds=round(sum(r.seconds for r in results), 1),
        prompt_versions=[load_prompt(p).ref for p in PROMPTS],
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        results=results,
    )
    return report


def per_kind(results: list[QuestionResult]) -> dict[str, KindScore]:
    """Accuracy, tool-call validity and time of each kind of question, in the order of ``KINDS``."""
    out = {}
    for kind in sorted({r.kind for r in results}, key=lambda k: KINDS.index(k) if k in KINDS else len(KINDS)):
        rs = [r for r in results if r.kind == kind]
        made = sum(r.tool_calls for r in rs)
        out[kind] = KindScore(
            n=len(rs), correct=sum(r.correct for r in rs), accuracy=round(sum(r.correct for r in rs) / len(rs), 3),
            tool_call_validity=round(sum(r.valid_calls for r in rs) / made, 3) if made else None,
            mean_seconds=round(sum(r.seconds for r in rs) / len(rs), 1),
        )
    return out


def _cell(text: str | None, limit: int = 90) -> str:
    text = " ".join((text or "").split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown_table(report: EvalReport) -> str:
    validity = "n/a" if report.tool_call_validity is None else f"{report.tool_call_validity:.0%}"
    lines = [
        f"# Analyst eval: {report.model} ({report.provider}, {report.strategy} tool choice)",
        "",
        f"{report.n_questions} question(s) of the **{report.split}** split"
        f"{'' if report.split in ('all', 'selected') else ' (tune: for prompt and tool work; validate: for reporting)'}, "
        f"subset `{report.subset}`, at most {report.max_steps} tool calls each "
        f"(answering after {report.tools_per_turn} successful one(s)); "
        f"prompts {', '.join(report.prompt_versions)}; {report.created}.",
        "",
        f"**Accuracy {report.accuracy:.0%}** · tool-call validity {validity} · expected tool used "
        f"{report.expected_tool_rate:.0%} · {report.mean_seconds:.1f} s per question ({report.total_seconds:.0f} s in all)",
        "",
        *table_lines(["kind", "questions", "correct", "accuracy", "tool-call validity", "s per question"]),
        *(md_row([kind, k.n, k.correct, f"{k.accuracy:.0%}",
                  "n/a" if k.tool_call_validity is None else f"{k.tool_call_validity:.0%}", f"{k.mean_seconds:.1f}"])
          for kind, k in report.per_kind.items()),
        "",
        *table_lines(["question", "kind", "gold", "answer", "correct", "calls (valid)", "expected tool", "s", "model calls"]),
    ]
    for r in report.results:
        answer = r.error or r.answer
        lines.append(md_row([
            r.id, r.kind, _cell(r.gold, 40), _cell(answer), f"{'yes' if r.correct else 'no'} ({_cell(r.grade_reason, 40)})",
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
        fields = ["id", "kind", "split", "gold", "answer", "correct", "grade_reason", "tool_calls", "valid_calls", "validity",
                  "expected_tool_used", "budget_hit", "seconds", "model_calls", "input_tokens", "output_tokens", "error"]
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in report.results:
            writer.writerow(json.loads(r.model_dump_json()))
    return paths
