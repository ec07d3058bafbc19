"""Plans a small model can follow: what a question asks for decides which tools produce the facts.

The model does one thing it is good at, naming the kind of question from a closed list; the
tools that produce that kind of fact are fixed here, by what each tool returns (not by which
questions an eval happens to ask), and their arguments come from the question or from the
previous tool's result. The model then phrases the answer from those results.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any, Literal

from langchain_core.messages import BaseMessage, ToolMessage
from pydantic import BaseModel, ConfigDict, Field, create_model

QuestionKind = Literal["facts", "when", "where", "channel", "shape", "comparison", "forecast", "other"]

KINDS: dict[str, str] = {
    "facts": "how many rows, channels or labelled anomaly windows; how often it is sampled; its seasonal period or trend",
    "when": "when (which day or time) an anomaly happens",
    "where": "which rows hold an anomaly",
    "channel": "which channel or sensor deviates, in given rows or at the anomaly",
    "shape": "what the anomaly looks like (spike, level shift, drift, flatline...)",
    "comparison": "which detectors flag an anomaly, and whether they agree",
    "forecast": "whether an anomaly is coming in the next steps (a prediction, not what already happened)",
    "other": "anything else (plots, accuracy against labels, general questions)",
}

PLANS: dict[str, tuple[str, ...]] = {
    # profile_series reports length, channels, sampling, dominant period and the label windows
    "facts": ("profile_series",),
    # detect reports the strongest intervals with rows, times, day and severity
    "when": ("detect",),
    "where": ("detect",),
    # explain_window ranks channels by deviation and names the shape, for rows found first
    "channel": ("detect", "explain_window"),
    "shape": ("detect", "explain_window"),
    # compare_detectors reports the union of intervals with who flags each
    "comparison": ("compare_detectors",),
    # predict_anomaly reports the next steps' probability, its rank among past windows and similar past windows
    "forecast": ("predict_anomaly",),
    "other": (),
}
"""The tools whose results hold each kind of fact, in the order they run."""

# What the wording of a question asks for. Each kind's cues are the usual ways of asking for
# that kind of fact in English; they were written from those, not from the eval's questions, and
# a paraphrase test (tests/agents/test_analyst_plans.py) holds them to wordings the eval does not
# use. Order matters only for reading: every kind that matches is a candidate.
_W = r"(?:which|what|whose)"
KIND_CUES: dict[str, re.Pattern[str]] = {
    "comparison": re.compile(
        r"\bdetectors?\b|\bdetection methods?\b|\b(?:which|what) (?:methods?|algorithms?|models?)\b|\bagree"
        r"|\bdisagree|\bcompare\b|\bcomparison\b|\bin common\b|\biforest\b|\bisolation forest\b|\bmatrix[_ ]profile\b"
        r"|\bsub[_ ]pca\b|\banomaly[_ ]transformer\b|\brobust[_ ]z\b", re.I),
    "shape": re.compile(
        r"\bshape\b|\b(?:what|which) (?:kind|type|sort) of (?:anomaly|anomalies|deviation|event|pattern)\b"
        r"|\blooks? like\b|\bspike\b|\blevel[- ]shift\b|\bflat ?line\b|\bdip\b|\bdrift\b|\bmorpholog"
        r"|\bwhat (?:happens|happened) (?:in|to) the\b|\bdescribe the (?:anomaly|deviation)\b|\bcharacteri[sz]e\b", re.I),
    "channel": re.compile(
        rf"\b{_W} (?:of the )?(?:channels?|sensors?|columns?|signals?|variables?|features?|dimensions?|metrics?|series)\b"
        r"|\bdeviates? most\b|\bmost (?:deviating|anomalous|affected) (?:channel|sensor|column|signal|variable)"
        r"|\bchannels? (?:is|are|was|were) (?:affected|anomalous|responsible|involved)", re.I),
    "where": re.compile(
        rf"\b{_W} rows?\b|\brows? (?:numbers?|range|indices|index|positions?)\b|\bindices\b|\bindex\b"
        rf"|\b{_W} (?:samples?|points?|time ?steps?|steps?|positions?|segment|stretch)\b|\bwhere\b", re.I),
    "when": re.compile(
        rf"\bwhen\b|\b{_W} (?:day|date|time|hour|week|month|year|night|morning|evening)\b|\bat what time\b"
        r"|\bwhat (?:day|date)\b|\blast (?:night|week|month)\b|\byesterday\b|\btimestamp", re.I),
    "forecast": re.compile(
        r"\bpredict|\bforecast|\bupcoming\b|\babout to\b|\bahead\b|\bcoming (?:steps?|hours?|minutes?|days?)\b"
        r"|\b(?:in|over|during|for) the (?:next|coming) \w*\s*(?:steps?|rows?|points?|samples?|readings?|minutes?|hours?"
        r"|days?|weeks?)\b|\bnext (?:\d+ )?(?:steps?|rows?|points?|samples?|readings?)\b"
        r"|\b(?:will|going to|likely to)\b[^.?!]{0,40}\b(?:go|become|turn|get|be|fail|break)\b[^.?!]{0,20}"
        r"\b(?:anomal\w*|abnormal|wrong|bad|odd)", re.I),
    "facts": re.compile(
        r"\bhow many\b|\bhow (?:often|frequently|long|big|large)\b|\bsampl(?:ed|ing|e rate)\b|\btime ?step\b"
        r"|\bperiod(?:icity)?\b|\bseasonal|\bcycle\b|\blength\b|\bnumber of\b|\bfrequency\b|\bresolution\b"
        r"|\bcount\b|\bsize of\b|\bdimensions\b|\btrend\b", re.I),
}


def kinds_in(question: str) -> list[str]:
    """The kinds the question's wording asks for (several when it is ambiguous, none when it names none).

    A question that states its rows ("Rows 10..20 of x.csv are labelled anomalous. Which channel
    ...?") is not asking for rows, so a row range in it does not make it a ``where`` question.
    """
    text = question
    if rows_in(question) is not None:
        text = _ROWS.sub(" ", question)
        text = re.sub(r"\brows?\b", " ", text, flags=re.I)
    return [kind for kind, pattern in KIND_CUES.items() if pattern.search(text)]


# "rows 4187..4199", "rows 4187 to 4199", "4187-4199", "between rows 4187 and 4199"
_ROWS = re.compile(r"(?<![\d.])(\d+)\s*(?:\.\.|-|–|—|\bto\b|\bthrough\b|\band\b)\s*(\d+)(?!\d|\.\d)", re.IGNORECASE)


@cache
def kind_schema(kinds: tuple[str, ...] | None = None) -> type[BaseModel]:
    """``QuestionKind``: one field whose choices are the kinds (a grammar / guided decoding enum),
    all of them or the candidates the wording left."""
    chosen = kinds or tuple(KINDS)
    return create_model(
        "QuestionKind",
        __config__=ConfigDict(extra="forbid"),
        __doc__="What the question asks for.",
        kind=(Literal[chosen], Field(description="; ".join(f"{k}: {KINDS[k]}" for k in chosen))),  # type: ignore[valid-type]
    )


def kinds_menu(kinds: Sequence[str] | None = None) -> str:
    return "\n".join(f"- {kind}: {KINDS[kind]}" for kind in (kinds or KINDS))


def plan_for(kind: str, available: Sequence[str], question: str = "") -> list[str]:
    """The planned tools for ``kind`` that exist here; explain_window needs rows, so a question
    that states them needs no detect first."""
    plan = [t for t in PLANS.get(kind, ()) if t in available]
    if "explain_window" in plan and rows_in(question) is not None:
        plan = [t for t in plan if t != "detect"]
    return plan


def rows_in(question: str) -> tuple[int, int] | None:
    """The row range a question names, if it names exactly one (``"Rows 1200..1225 of x.npy"``)."""
    found = {(int(a), int(b)) for a, b in _ROWS.findall(question) if int(a) <= int(b)}
    return found.pop() if len(found) == 1 else None


def tool_results(messages: Sequence[BaseMessage], tools: tuple[str, ...] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``(tool, result)`` of each successful tool call in ``messages`` (of ``tools`` only, when given), in order."""
    out = []
    for m in messages:
        if not (isinstance(m, ToolMessage) and m.status == "success" and isinstance(m.artifact, dict)):
            continue
        result = m.artifact.get("result")
        if isinstance(result, dict) and (tools is None or m.name in tools):
            out.append((str(m.name), result))
    return out


def latest_interval(messages: Sequence[BaseMessage]) -> tuple[int, int] | None:
    """The strongest interval of the latest successful detect / compare_detectors result."""
    for _, result in reversed(tool_results(messages)):
        intervals = result.get("top_intervals") or result.get("intervals")
        if intervals:
            first = intervals[0]
            return int(first["start"]), int(first["end"])
    return None


def planned_args(tool: str, question: str, turn: Sequence[BaseMessage],
                 detectors: Sequence[str] = ()) -> dict[str, Any] | None:
    """Arguments for a planned tool besides the file, or ``None`` when they cannot be known here.

    Tools whose other arguments have sensible defaults (detect, profile_series) take none;
    compare_detectors takes the rows the question names (it then says who flags them) and the
    detectors it names, of ``detectors`` (two or more); explain_window takes the rows the
    question names, else the interval just found, and the channel the question asks about.
    """
    if tool == "compare_detectors":
        out: dict[str, Any] = {}
        if (rows := rows_in(question)) is not None:
            out = {"start": rows[0], "end": rows[1]}
        named = [d for d in detectors if re.search(rf"(?<![\w-]){re.escape(d)}(?![\w-])", question, re.IGNORECASE)]
        if len(named) >= 2:
            out["detectors"] = named
        return out
    if tool == "predict_anomaly":
        steps = re.search(r"\bnext (\d+) (?:steps?|rows?|points?|samples?|readings?)\b", question, re.I)
        return {"horizon": int(steps.group(1))} if steps else {}
    if tool != "explain_window":
        return {}
    rows = rows_in(question) or latest_interval(turn)
    if rows is None:
        return None
    args: dict[str, Any] = {"start": rows[0], "end": rows[1]}
    if (name := channel_named(question)) is not None:
        args["channel"] = name
    return args


_NOT_NAMES = {"which", "what", "whose", "the", "a", "an", "one", "each", "every", "that", "this", "any", "other",
              "same", "most", "first", "last", "another", "single", "given", "deviating", "anomalous"}
_NAMED_CHANNEL = re.compile(
    r"[`'\"]([\w.\-]+)[`'\"]\s+(?:channel|column|sensor)\b"
    r"|\b(?:in|of|for|on)\s+(?:the\s+)?([\w.\-]+)\s+(?:channel|column|sensor)\b"
    r"|\b(?:channel|column|sensor)\s+(?:[`'\"]([\w.\-]+)[`'\"]|([A-Za-z]*[\d_][\w.\-]*))", re.IGNORECASE)


def channel_named(question: str) -> str | None:
    """The one channel a question asks about ("in the value channel", "channel cmd9"), if it names one."""
    found = set()
    for m in _NAMED_CHANNEL.finditer(question):
        name = next(g for g in m.groups() if g)
        if name.lower() not in _NOT_NAMES and not name.isdigit():
            found.add(name)
    return found.pop() if len(found) == 1 else None



def key_facts(turn: Sequence[BaseMessage]) -> list[str]:
    """The one-sentence answers the tools wrote (``summary``, ``facts``, ``top_channel``), as
    ``tool: sentence`` lines, in the order the tools ran."""
    lines = []
    for name, result in tool_results(turn):
        said = [result[k] for k in ("facts", "summary") if isinstance(result.get(k), str)]
        if result.get("top_channel"):
            said.append(f"the channel that deviates most is {result['top_channel']}")
        if said:
            lines.append(f"{name}: " + "; ".join(said))
    return lines


# ------------------------------------------------------------- direct answers
SHAPE_WORDS = ("spike", "dip", "level shift", "drift", "variance burst", "flatline", "frequency change", "dropout",
               "contextual", "amplitude scaling", "time warp", "correlation break", "segment transplant")


class DirectAnswer(BaseModel):
    """What the tools say to the question, in one sentence, and the terms a right answer states.

    ``rivals`` are the other choices (other shapes, detectors that do not flag the rows): an
    answer naming one of them as well hedges, or contradicts the tool.
    """

    model_config = ConfigDict(extra="forbid")

    tool: str
    sentence: str
    terms: list[str]
    rivals: list[str] = Field(default_factory=list)

    def stated_by(self, answer: str) -> bool:
        said = _words_of(answer)
        return all(_has(said, t) for t in self.terms) and not any(_has(said, r) for r in self.rivals)


def _words_of(text: str) -> str:
    return " " + re.sub(r"[\s_\-]+", " ", text.lower()) + " "


def _has(said: str, term: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(_words_of(term).strip())}(?![\w])", said) is not None


def direct_answer(kind: str | None, question: str, turn: Sequence[BaseMessage]) -> DirectAnswer | None:
    """The tools' own answer to a ``kind`` question from this turn's results (None: nothing to enforce).

    Count and sampling questions have many facts in one profile, and "other" questions no fixed
    fact, so they are left to the model.
    """
    if kind in ("when", "where"):
        found = tool_results(turn, ("detect", "compare_detectors"))
        if not found:
            return None
        tool, result = found[-1]
        intervals = result.get("top_intervals") or result.get("intervals") or []
        if not intervals:
            return DirectAnswer(tool=tool, sentence=str(result.get("summary", "")), terms=[])
        top = intervals[0]
        rows = f"rows {top['start']}..{top['end']}"
        if kind == "when" and top.get("day"):
            at = f" (peak at {top['peak_time']})" if top.get("peak_time") else ""
            return DirectAnswer(tool=tool, sentence=f"The strongest anomaly {tool} found is on {top['day']}{at}, {rows}",
                                terms=[str(top["day"])])
        return DirectAnswer(tool=tool, sentence=f"The strongest anomaly {tool} found is in {rows}",
                            terms=[str(top["start"]), str(top["end"])])
    if kind in ("channel", "shape"):
        found = tool_results(turn, ("explain_window",))
        if not found:
            return None
        tool, result = found[-1]
        devs = result.get("deviating_channels") or []
        rows = f"rows {result.get('start')}..{result.get('end')}"
        if not devs:
            return DirectAnswer(tool=tool, sentence=str(result.get("summary", "")), terms=[])
        first = devs[0]
        shape = str(first["morphology"]).replace("_", " ")
        if kind == "channel":
            return DirectAnswer(tool=tool, sentence=(f"In {rows}, the channel that deviates most is {first['channel']} "
                                                     f"({shape}, peak {first['peak_z']} sigma)"), terms=[first["channel"]])
        return DirectAnswer(tool=tool, sentence=f"In {rows}, channel {first['channel']} shows a {shape} "
                                                f"(peak {first['peak_z']} sigma)",
                            terms=[shape], rivals=[w for w in SHAPE_WORDS if w != shape])
    if kind == "forecast":
        found = tool_results(turn, ("predict_anomaly",))
        if not found:
            return None
        tool, result = found[-1]
        said = str(result.get("summary", ""))
        # the probability is the answer's one number; the outlook word says how it ranks
        return DirectAnswer(tool=tool, sentence=said[:1].upper() + said[1:],
                            terms=[f"{float(result['max_probability']):.2f}"] if "max_probability" in result else [])
    if kind == "comparison":
        found = tool_results(turn, ("compare_detectors",))
        if not found or not isinstance(found[-1][1].get("over_rows"), dict):
            return None
        tool, result = found[-1]
        over: dict[str, bool] = result["over_rows"]
        who = [d for d, hit in over.items() if hit]
        rest = [d for d, hit in over.items() if not hit]
        said = str(result.get("summary", "")).split("; overall:")[0]
        # "none" is an answer too: without it as a term an answer naming no detector would pass
        return DirectAnswer(tool=tool, sentence=said[:1].upper() + said[1:], terms=who or ["none"], rivals=rest)
    return None
