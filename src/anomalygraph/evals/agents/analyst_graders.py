"""Reading an agent's free-text answer: the numbers, durations, days, row ranges, channels,
detectors and shapes it states, and the grade against a computed gold answer.

Each reader finds candidates with strict patterns first and only then interprets them (dates
with ``dateutil``, durations with ``pandas.to_timedelta``), never by fuzzy-parsing the whole
answer: a stray number is not a day, a clock time is not a sampling step, a file name's digits
are not rows. What is read and what is refused:

- **numbers**: ``42``, ``4,032`` (comma thousands in groups of three), ``4 032`` with a thin or
  no-break space, ``3.5``, the words ``zero``..``twenty``, ``no``/``none`` as 0. Not read: digits
  inside file paths, dates or clock times; ``1,2,3`` is three numbers, not 123; a decimal comma.
- **days**: ISO ``2015-07-10`` (also ``2015/07/10``, ``2015.07.10``, or with a time
  ``2015-07-10T12:00``); month names ``July 10, 2015``, ``Jul 10 2015``, ``10 July 2015``,
  ``10th of July, 2015``, ``10-Jul-2015``; dotted ``10.07.2015``, read day first (the dotted form
  is the day-month-year convention). A numeric ``07/10/2015`` or ``10-07-2015`` is read only when
  one reading is impossible (``25/07/2015`` is 25 July, ``07/25/2015`` is 25 July) or both agree
  (``07/07/2015``); otherwise it is ambiguous and not read. A day without a year (``July 10``), a
  month alone (``July 2015``) or a bare number is no day.
- **durations**: ``5 minutes``, ``5 min``, ``every 5 mins``, ``300 seconds``, ``0.5 hours``,
  ``5-minute``, ``an hour``, ``half an hour``, ``a quarter of an hour``, ``hourly``, ``daily``,
  ``every minute``, pandas' ``0 days 00:30:00`` and ISO 8601 ``PT30M``. A bare clock time
  (``00:30:00``) is a time of day, not a step, and is not read; a number without a unit is none.
- **row ranges**: ``rows 4187..4199``, ``4187-4199``, ``4187–4199``, ``4187 to 4199``,
  ``from row 4187 through 4199``, ``between 4187 and 4199``, ``rows 4,187..4,199``, ``[4186:4199]``
  (a slice, end exclusive); single rows ``row 4190``. Numbers below 10 are not rows.
- **channels**: a name with digits as a whole word (``cmd9`` is not ``cmd19``); a plain word such
  as ``value`` only when quoted, called a channel/column, or written as explain_window writes it
  (``value (spike, ...)``). The first channel named is the answer.
- **detectors** and **shapes**: names and synonyms from a closed vocabulary, each mention read
  with its local negation ("iforest and sub_pca flag it, matrix_profile does not"; "a level
  shift, not a spike"; "neither iforest nor sub_pca"). Ambiguous words (``jump``, ``drop``,
  ``peak``, ``flat``) are not read as shapes.

Hedged answers that list many candidates are wrong, not lucky.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from itertools import pairwise
from typing import Any, Protocol

import pandas as pd
from dateutil import parser as date_parser
from pydantic import BaseModel, ConfigDict, Field

MAX_NUMBERS = 5  # more distinct candidate numbers than this is a hedge, not an answer
MAX_DAYS = 2  # days, or statements of a day (a span "D1 05:00 to D2 01:00" is one)
MAX_DURATIONS = 3
MAX_CHANNELS = 3
MAX_ROW_NUMBERS = 8
MAX_RANGES = 3
MAX_SHAPES = 2
MIN_ROW = 10  # smaller numbers are counts ("2 intervals"), not rows

GRADERS = ("number", "duration", "day", "rows", "channel", "detectors", "shape")


class Grade(BaseModel):
    model_config = ConfigDict(extra="forbid")

    correct: bool
    reason: str
    found: list[str] = Field(default_factory=list)


class Graded(Protocol):
    """What a grader needs of a question."""

    grade: str
    tolerance: float
    params: dict[str, Any]


# ------------------------------------------------------------------ spans not to read
# A file path or name: a token with a slash and a letter, or with a file extension.
_FILEPATH = re.compile(
    r"\S*[A-Za-z]\S*[/\\]\S*|\S*[/\\]\S*[A-Za-z]\S*|\S+\.(?:csv|tsv|npy|txt|parquet|pq|png|json)\b", re.IGNORECASE
)
# Where numbers are read, identifiers with underscores too (``InternalBleeding16_1200_4187``).
_PATHLIKE = re.compile(_FILEPATH.pattern + r"|\S*_\S*", re.IGNORECASE)
_CLOCK = re.compile(r"(?<![\d:])\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?![\d:])")


def _blank(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for a, b in spans:
        chars[a:b] = " " * (b - a)
    return "".join(chars)


def _sub(pattern: re.Pattern[str], text: str) -> str:
    return _blank(text, (m.span() for m in pattern.finditer(text)))


def without_paths(text: str) -> str:
    """The answer with file paths and names blanked out (their digits and words are not answers)."""
    return _sub(_FILEPATH, text)


# ----------------------------------------------------------------------------- days
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
          r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_ORD = r"(?:st|nd|rd|th)?"
_ISO_DAY = re.compile(r"(?<![\d./-])(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?![\d/-]|\.\d)")
_NAMED_DAY = re.compile(
    rf"\b{_MONTH}\s+\d{{1,2}}{_ORD},?\s+\d{{4}}\b"  # July 10, 2015 / Jul 10 2015 / July 10th, 2015
    rf"|\b\d{{1,2}}{_ORD}(?:\s+of)?[\s-]+{_MONTH},?[\s-]+\d{{4}}\b",  # 10 July 2015 / 10th of July, 2015 / 10-Jul-2015
    re.IGNORECASE,
)
_DOTTED_DAY = re.compile(r"(?<![\d.])(\d{1,2})\.(\d{1,2})\.(\d{4})(?![\d]|\.\d)")
_NUMERIC_DAY = re.compile(r"(?<![\d/.-])(\d{1,2})([/-])(\d{1,2})\2(\d{4})(?![\d/-])")
_FAR, _NEAR = datetime(1, 1, 1), datetime(2, 2, 2)  # two defaults: a field dateutil filled in differs between them


def _valid(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _named(text: str) -> date | None:
    """A month-name date, parsed strictly (no fuzzy matching) and only when year, month and day are given."""
    try:
        a = date_parser.parse(text, default=_FAR)
        b = date_parser.parse(text, default=_NEAR)
    except (ValueError, OverflowError):
        return None
    return a.date() if a.date() == b.date() else None


def date_spans(text: str) -> list[tuple[tuple[int, int], date | None, str]]:
    """Every date-shaped span: ``(span, day or None when ambiguous or impossible, matched text)``."""
    found: list[tuple[tuple[int, int], date | None, str]] = []
    taken: list[tuple[int, int]] = []

    def add(m: re.Match[str], day: date | None) -> None:
        span = m.span()
        if not any(a < span[1] and span[0] < b for a, b in taken):
            taken.append(span)
            found.append((span, day, m.group(0)))

    for m in _ISO_DAY.finditer(text):
        add(m, _valid(int(m.group(1)), int(m.group(3)), int(m.group(4))))
    for m in _NAMED_DAY.finditer(text):
        add(m, _named(m.group(0)))
    for m in _DOTTED_DAY.finditer(text):
        add(m, _valid(int(m.group(3)), int(m.group(2)), int(m.group(1))))
    for m in _NUMERIC_DAY.finditer(text):
        first, second, year = int(m.group(1)), int(m.group(3)), int(m.group(4))
        readings = {d for d in (_valid(year, first, second), _valid(year, second, first)) if d is not None}
        add(m, readings.pop() if len(readings) == 1 else None)
    return sorted(found)


_SPAN_JOINER = re.compile(rf"^\s*(?:[T ]?{_CLOCK.pattern}\s*)?,?\s*(?:to|until|till|through|–|—|-)\s*$", re.IGNORECASE)


def days_in(text: str) -> tuple[list[str], list[str]]:
    """ISO days the answer states, and the date-shaped texts it could not read unambiguously."""
    days, unread, _ = _days_and_statements(text)
    return days, unread


def _days_and_statements(text: str) -> tuple[list[str], list[str], int]:
    """Days, unread date texts, and how many separate statements of a day there are: a span
    "2013-12-16 05:00 to 2013-12-17 01:00" is one statement of two days."""
    text = without_paths(text)
    spans = date_spans(text)
    days = [str(d) for _, d, _ in spans if d is not None]
    unread = [t for _, d, t in spans if d is None]
    read = [span for span, d, _ in spans if d is not None]
    joined = sum(1 for (_, a_end), (b_start, _) in pairwise(read) if _SPAN_JOINER.match(text[a_end:b_start]))
    return list(dict.fromkeys(days)), unread, len(read) - joined


def _plain(text: str) -> str:
    """The answer without file paths, identifiers, dates and clock times, whose digits are not answers."""
    text = _sub(_PATHLIKE, text)
    text = _blank(text, (span for span, _, _ in date_spans(text)))
    return _sub(_CLOCK, text)


# --------------------------------------------------------------------------- numbers
_INT = r"\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?:[\u00a0\u202f\u2009]\d{3})+(?!\d)|\d+"
_NUMBER = re.compile(rf"(?<![\w.])-?(?:{_INT})(?:\.\d+)?(?![\w]|\.\d)")
_WORDS = {w: i for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
     "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
)}


def to_number(token: str) -> float:
    return float(re.sub(r"[,\u00a0\u202f\u2009]", "", token))


def numbers_in(text: str) -> list[float]:
    found = [to_number(m) for m in _NUMBER.findall(_plain(text))]
    words = [float(_WORDS[w]) for w in re.findall(r"[a-z]+", text.lower()) if w in _WORDS]
    if not found and not words and re.search(r"\b(no|none)\b", text.lower()):
        return [0.0]
    return list(dict.fromkeys(found + words))


# ------------------------------------------------------------------------- durations
_UNIT_NAMES = {  # pandas unit code -> how people write it
    "s": ("s", "sec", "secs", "second", "seconds"),
    "min": ("m", "min", "mins", "minute", "minutes"),
    "h": ("h", "hr", "hrs", "hour", "hours"),
    "D": ("d", "day", "days"),
    "W": ("wk", "wks", "week", "weeks"),
}
_UNIT = {alias: unit for unit, aliases in _UNIT_NAMES.items() for alias in aliases}
_QUANTITY = "|".join([r"\d+(?:\.\d+)?", "an?", *_WORDS])
_DURATION = re.compile(
    rf"(?<![\w.])({_QUANTITY})\s*-?\s*({'|'.join(sorted(_UNIT, key=len, reverse=True))})\b", re.IGNORECASE
)
_TIMEDELTA = re.compile(r"\b\d+\s+days?,?\s+\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\b"  # pandas / Python repr
                        r"|\bP(?:\d+D)?T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?\b")  # ISO 8601
_PHRASES = [  # consumed before number + unit, so "half an hour" is not also "an hour"
    (re.compile(r"\bhalf[- ](?:an[- ])?hour(?:ly)?\b|\bhalf of an hour\b", re.IGNORECASE), 1800.0),
    (re.compile(r"\b(?:a\s+)?quarter(?:[- ]of)?[- ](?:an[- ])?hour(?:ly)?\b", re.IGNORECASE), 900.0),
    (re.compile(r"\bhalf[- ](?:a[- ])?minute\b", re.IGNORECASE), 30.0),
    (re.compile(r"\bhalf[- ](?:a[- ])?day\b", re.IGNORECASE), 43200.0),
    (re.compile(r"\bhourly\b|\b(?:every|each|once an?|per)\s+hour\b", re.IGNORECASE), 3600.0),
    (re.compile(r"\bdaily\b|\b(?:every|each|once an?|per)\s+day\b", re.IGNORECASE), 86400.0),
    (re.compile(r"\bweekly\b|\b(?:every|each|once an?|per)\s+week\b", re.IGNORECASE), 604800.0),
    (re.compile(r"\b(?:every|each|once an?|per)\s+minute\b", re.IGNORECASE), 60.0),
    (re.compile(r"\b(?:every|each|once an?|per)\s+second\b", re.IGNORECASE), 1.0),
]


def durations_in(text: str) -> list[float]:
    """Durations the answer states, in seconds."""
    text = _plain_keep_timedeltas(text)
    out: list[float] = []
    for m in _TIMEDELTA.finditer(text):
        out.append(pd.to_timedelta(m.group(0).replace(",", "")).total_seconds())
    text = _sub(_TIMEDELTA, text)
    for pattern, seconds in _PHRASES:
        if pattern.search(text):
            out.append(seconds)
            text = _sub(pattern, text)
    for quantity, unit in _DURATION.findall(text):
        q = quantity.lower()
        value = 1.0 if q in ("a", "an") else float(_WORDS[q]) if q in _WORDS else float(q)
        out.append(pd.to_timedelta(value, unit=_UNIT[unit.lower()]).total_seconds())
    return list(dict.fromkeys(out))


def _plain_keep_timedeltas(text: str) -> str:
    """Paths and dates blanked, but not the clock part of ``0 days 00:30:00``."""
    text = _sub(_PATHLIKE, text)
    return _blank(text, (span for span, _, _ in date_spans(text)))


# ----------------------------------------------------------------------------- rows
_N = rf"(?:{_INT})"
_ROWWORD = r"(?:rows?\s+|indices\s+|index\s+|#)?"
_RANGES = [
    re.compile(rf"\bbetween\s+{_ROWWORD}({_N})\s+and\s+{_ROWWORD}({_N})(?![\d,])", re.IGNORECASE),
    re.compile(rf"(?<![\w.,])({_N})\s*(?:\.{{2,3}}|…|[-–—]|\bto\b|\bthrough\b|\bthru\b|\buntil\b|\btill\b)\s*{_ROWWORD}({_N})(?![\w]|[.,]\d)",
               re.IGNORECASE),
]
_SLICE = re.compile(rf"\[\s*({_N})\s*:\s*({_N})\s*\]")


def rows_in(text: str) -> tuple[list[tuple[int, int]], list[int]]:
    """Row ranges (inclusive) and single rows the answer states."""
    text = _plain(text.replace("\u2026", "..."))
    ranges: list[tuple[int, int]] = []
    for m in _SLICE.finditer(text):
        a, b = int(to_number(m.group(1))), int(to_number(m.group(2)))
        if b > a:
            ranges.append((a, b - 1))
    text = _sub(_SLICE, text)
    for pattern in _RANGES:
        for m in pattern.finditer(text):
            a, b = sorted((int(to_number(m.group(1))), int(to_number(m.group(2)))))
            if b >= MIN_ROW:
                ranges.append((a, b))
        text = _sub(pattern, text)
    singles = [int(v) for v in (to_number(t) for t in _NUMBER.findall(text)) if v >= MIN_ROW and float(v).is_integer()]
    return list(dict.fromkeys(ranges)), list(dict.fromkeys(singles))


# ------------------------------------------------------------------------- channels
_SHAPE_WORDS = "spike|dip|level_shift|drift|flatline|variance_burst|contextual"


def channels_in(text: str, channels: Sequence[str]) -> list[str]:
    """Channel names the answer mentions, first mention first. A name with digits (``cmd9``) as a
    whole word; a plain word (``value``) only when quoted, called a channel or column, said to be
    the channel ("the channel that deviates most is value"), or followed by a shape in brackets
    as explain_window writes it (``value (spike, peak 316 sigma)``)."""
    found = []
    for name in channels:
        word = re.escape(name)
        if re.search(r"\d", name):
            hit = re.search(rf"(?<![\w-]){word}(?![\w-])", text, re.IGNORECASE)
        else:
            hit = re.search(rf"['\"`*]{word}['\"`*]|\b{word}\s+(?:channel|column)\b|\b(?:channel|column)\s+['\"`]?{word}\b"
                            rf"|\b{word}\s*\((?:{_SHAPE_WORDS})\b|\b(?:channel|column)\b[^.;\n]{{0,80}}?\b(?:is|was)\s+(?:the\s+)?{word}\b",
                            text, re.IGNORECASE)
        if hit:
            found.append((hit.start(), name))
    return [name for _, name in sorted(found)]


# ----------------------------------------------------- claims with local negation
_CLAUSE = re.compile(r"[.;:!?\n]+(?!\d)|\b(?:but|while|whereas|however|although|though|yet|except)\b", re.IGNORECASE)
_JOINER = re.compile(r"^\s*(?:,|/|&|\+)?\s*(?:and|nor|as well as)?\s*(?:also\s+|a\s+|an\s+|the\s+)?$", re.IGNORECASE)
_OR_JOINER = re.compile(r"^\s*,?\s*(?:or|or\s+maybe|or\s+perhaps|or\s+possibly)\s+(?:a\s+|an\s+|the\s+)?$", re.IGNORECASE)
_PRE_NEGATION = re.compile(
    r"\b(?:not|no|neither|nor|none|never|without|rather than|instead of|other than)\b|n[’']t\b", re.IGNORECASE)
_POST_NEGATION = re.compile(
    r"\b(?:not|never|neither|fails?|failed|miss(?:es|ed)?|nothing)\b|n[’']t\b", re.IGNORECASE)
_ALL = re.compile(r"\ball\s+(?:three|four|two|\d+|of\s+them|(?:the\s+)?detectors)\b|\b(?:every|each)\s+(?:one|detector)\b"
                  r"|\bboth\s+(?:of\s+them|detectors)\b", re.IGNORECASE)
_NONE = re.compile(r"\b(?:none|no detector|no one|nothing|neither)\b", re.IGNORECASE)


class Claims(BaseModel):
    """What an answer asserts about a closed vocabulary: the items claimed (first mention first),
    the items it denies, and whether it says all / none without naming any."""

    claimed: list[str] = Field(default_factory=list)
    denied: list[str] = Field(default_factory=list)
    says_all: bool = False
    says_none: bool = False
    alternatives: bool = Field(False, description="claimed items offered as alternatives ('a spike or a dip')")


def claims(text: str, vocabulary: dict[str, str]) -> Claims:
    """Read ``vocabulary`` (phrase pattern -> item) from ``text`` with each mention's local negation.

    Clauses split at sentence marks and contrast words ("but", "while"); within one, mentions
    joined only by commas, "and", "or", "nor" form a group that shares what follows it up to
    the next comma. A group is denied when a negation stands between the previous comma (or
    group) and it ("not a spike", "neither iforest nor ..."), or after it before the next comma
    ("matrix_profile does not").
    """
    pattern = re.compile("|".join(f"(?P<g{i}>{p})" for i, p in enumerate(vocabulary)), re.IGNORECASE)
    items = list(vocabulary.values())
    claimed: list[str] = []
    denied: list[str] = []
    says_all = says_none = alternatives = False
    bounds = [0, *[m.end() for m in _CLAUSE.finditer(text)], len(text)]
    for lo, hi in pairwise(bounds):
        clause = text[lo:hi]
        mentions = [(m.start(), m.end(), items[int(next(k for k, v in m.groupdict().items() if v)[1:])])
                    for m in pattern.finditer(clause)]
        if not mentions:
            says_all |= bool(_ALL.search(clause)) and not _PRE_NEGATION.search(clause)
            says_none |= bool(_NONE.search(clause))
            continue
        groups: list[list[tuple[int, int, str]]] = [[mentions[0]]]
        ors: set[int] = set()
        for mention in mentions[1:]:
            joiner = clause[groups[-1][-1][1] : mention[0]]
            if _JOINER.match(joiner) or _OR_JOINER.match(joiner):
                groups[-1].append(mention)
                if _OR_JOINER.match(joiner):
                    ors.add(len(groups) - 1)
            else:
                groups.append([mention])
        previous_end = 0
        for i, group in enumerate(groups):
            start, end = group[0][0], group[-1][1]
            before = clause[previous_end:start]
            before = before[before.rfind(",") + 1 :]
            after_end = groups[i + 1][0][0] if i + 1 < len(groups) else len(clause)
            after = clause[end:after_end]
            after = after[: after.find(",")] if "," in after else after
            negated = bool(_PRE_NEGATION.search(before) or _POST_NEGATION.search(after))
            for _, _, item in group:
                (denied if negated else claimed).append(item)
            alternatives |= i in ors and not negated
            previous_end = end
    denied_set = set(denied)
    return Claims(claimed=list(dict.fromkeys(c for c in claimed if c not in denied_set)),
                  denied=list(dict.fromkeys(denied)), says_all=says_all, says_none=says_none, alternatives=alternatives)


# The agent's tools' names and their usual spellings in prose.
DETECTOR_NAMES: dict[str, str] = {
    r"\biforest\b|\bi-forest\b|\bisolation[ -]forests?\b": "iforest",
    r"\bsub[_ -]?pca\b|\bsubsequence[ -]pca\b": "sub_pca",
    r"\bmatrix[_ -]profiles?\b|\bstump[y]?\b": "matrix_profile",
    r"\brobust[_ -]z(?:[_ -]?scores?)?\b": "robust_z",
    r"\banomaly[_ -]transformer\b": "anomaly_transformer",
}

# Shapes of the rule-bank vocabulary and their synonyms; ambiguous words (jump, drop, peak, flat) are left out.
SHAPE_NAMES: dict[str, str] = {
    r"\b(?:negative|downward|inverted)[ -]spikes?\b|\bdips?\b|\bdipped\b|\bplunges?\b|\btroughs?\b": "dip",
    r"\b(?:positive|upward)[ -]spikes?\b|\bspikes?\b|\bspiky\b|\bsurges?\b": "spike",
    r"\blevel[ _-]?shift(?:s|ed)?\b|\bshift(?:s|ed)?\s+in\s+(?:the\s+)?(?:level|mean|baseline)\b"
    r"|\b(?:mean|baseline)\s+shift\b|\bstep[ -]?(?:change|increase|decrease|up|down)s?\b": "level_shift",
    r"\bflat[ _-]?lin(?:e|es|ed|ing)\b|\bstuck\b|\bfrozen\b|\bconstant\s+(?:value|level|segment|reading|stretch)s?\b"
    r"|\bflat\s+(?:segment|stretch|section|period)s?\b": "flatline",
    r"\bdrift(?:s|ing|ed)?\b|\bgradual(?:ly)?\s+(?:increase|decrease|rise|decline|change|rising|falling)s?\b": "drift",
    r"\bvariance[ _-]?bursts?\b|\bbursts?\s+of\s+(?:variance|noise|volatility)\b|\bnoise\s+bursts?\b"
    r"|\b(?:increased|higher|high)\s+(?:variance|volatility|noise)\b": "variance_burst",
    r"\bcontextual\b": "contextual",
}


# ---------------------------------------------------------------------------- grade
def grade(answer: str | None, q: Graded, gold_value: Any, channels: Sequence[str] = ()) -> Grade:
    """Whether ``answer`` states ``gold_value`` in the way ``q.grade`` reads it."""
    if not answer or not answer.strip():
        return Grade(correct=False, reason="no answer")
    kind = q.grade
    if kind in ("number", "duration"):
        found = numbers_in(answer) if kind == "number" else durations_in(answer)
        target = float(gold_value)
        tol = max(q.tolerance * abs(target), 0.5 if kind == "number" else 0.01 * abs(target))
        shown = [f"{v:g}" for v in found]
        limit = MAX_NUMBERS if kind == "number" else MAX_DURATIONS
        if len(found) > limit:
            return Grade(correct=False, reason=f"hedged: {len(found)} {'numbers' if kind == 'number' else 'durations'}", found=shown)
        hit = any(abs(v - target) <= tol for v in found)
        return Grade(correct=hit, reason="match" if hit else ("nothing to read" if not found else "wrong value"), found=shown)
    if kind == "day":
        days, unread, statements = _days_and_statements(answer)
        if len(days) > MAX_DAYS and statements > MAX_DAYS:
            return Grade(correct=False, reason=f"hedged: {len(days)} days", found=days)
        hit = gold_value in days
        if hit:
            return Grade(correct=True, reason="match", found=days)
        if not days:
            reason = f"ambiguous date ({', '.join(unread)})" if unread else "no day given"
            return Grade(correct=False, reason=reason, found=unread)
        return Grade(correct=False, reason="wrong day", found=days)
    if kind == "rows":
        start, end = gold_value
        slack = q.tolerance
        ranges, singles = rows_in(answer)
        shown = [f"{a}..{b}" for a, b in ranges] + [str(r) for r in singles]
        n_numbers = 2 * len(ranges) + len(singles)
        if n_numbers > MAX_ROW_NUMBERS or len(ranges) > MAX_RANGES:
            return Grade(correct=False, reason=f"hedged: {n_numbers} row numbers", found=shown)
        # a range is right when it overlaps the labelled rows (give or take the slack) and is not
        # much wider than them; with no range given, one row inside them will do
        widest = (end - start + 1) + 2 * slack
        overlapping = [(a, b) for a, b in ranges if a <= end + slack and b >= start - slack]
        if any(b - a + 1 <= widest for a, b in overlapping):
            return Grade(correct=True, reason="match", found=shown)
        if overlapping:
            return Grade(correct=False, reason=f"range too wide (more than {widest} rows)", found=shown)
        if not ranges and any(start - slack <= r <= end + slack for r in singles):
            return Grade(correct=True, reason="match (one row)", found=shown)
        return Grade(correct=False, reason="no rows given" if not shown else "wrong rows", found=shown)
    if kind == "channel":
        named = channels_in(answer, channels)  # the first named is the answer ("cmd9, then cmd7")
        if len(named) > MAX_CHANNELS:
            return Grade(correct=False, reason=f"hedged: {len(named)} channels", found=named)
        hit = bool(named) and named[0] == gold_value
        reason = "match" if hit else "no channel named" if not named else "named second" if gold_value in named else "wrong channel"
        return Grade(correct=hit, reason=reason, found=named)
    if kind == "detectors":
        candidates = list(q.params.get("detectors") or [])
        read = claims(without_paths(answer), DETECTOR_NAMES)
        said = [d for d in read.claimed if d in candidates]
        if not said and read.says_all and not read.denied:
            said = candidates
        readable = bool(read.claimed or read.denied or read.says_all or read.says_none)
        shown = said or (["none"] if readable else [])
        if not readable:
            return Grade(correct=False, reason="no detector named", found=[])
        if read.alternatives:
            return Grade(correct=False, reason=f"hedged: {' or '.join(said)}", found=shown)
        hit = set(said) == set(gold_value)
        return Grade(correct=hit, reason="match" if hit else "wrong detectors", found=shown)
    if kind == "shape":
        read = claims(without_paths(answer), SHAPE_NAMES)
        if len(read.claimed) > MAX_SHAPES or read.alternatives:
            return Grade(correct=False, reason=f"hedged: {' or '.join(read.claimed)}", found=read.claimed)
        if not read.claimed:
            return Grade(correct=False, reason="no shape named", found=[f"not {d}" for d in read.denied])
        hit = read.claimed[0] == gold_value
        return Grade(correct=hit, reason="match" if hit else "wrong shape", found=read.claimed)
    raise ValueError(f"unknown grader {kind!r}; known: {', '.join(GRADERS)}")
