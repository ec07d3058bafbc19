"""Checks that a model's prose quotes only numbers it was given.

Small models invent rows, dates and sigmas ("the strongest anomaly is at row 2157" after a tool
reported rows 0..21); prompts forbid it, and these checks catch it so the caller can ask again,
fall back to measured statistics, or warn the reader.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A number not glued to a preceding digit or decimal point: "10033..10136" gives both ends,
# "2015-01-26" gives 2015, 01 and 26.
_NUMBER = re.compile(r"(?<!\d)(?<!\d\.)[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
# Names with digits (channels cmd12, MSL C-1, machine-1-1) are names, not numbers.
_NAME = re.compile(r"[A-Za-z_]+[-_]?\d[\w-]*")


def numbers_in(text: str) -> set[str]:
    """The numbers in ``text`` without sign, trailing decimal zeros or a bare point ("-4.0" -> "4")."""
    found = set()
    for raw in _NUMBER.findall(_NAME.sub(" ", text)):
        number = raw.lstrip("+-")
        if "." in number and "e" not in number.lower():
            number = number.rstrip("0").rstrip(".")
        if number.isdigit():
            number = number.lstrip("0") or "0"
        found.add(number)
    return found


def invented_numbers(answer: str, *sources: str) -> list[str]:
    """Numbers in ``answer`` that appear in none of ``sources``, sorted.

    Single-digit integers are let through: they are counts and unit conversions ("5 minutes"
    from a step of 300 s, "2 intervals") far more often than invented facts.
    """
    given: set[str] = set()
    for source in sources:
        given |= numbers_in(source)
    return sorted(n for n in numbers_in(answer) - given if not (n.isdigit() and len(n) == 1))


def invented_names(answer: str, names: Iterable[str], *sources: str) -> list[str]:
    """Names from ``names`` (a series' channels) that ``answer`` mentions and none of ``sources`` does.

    A small model asked "which channel deviates" names a plausible channel it never saw in a
    result; a name counts as mentioned only as a whole word (``cmd1`` is not in ``cmd12``). Only
    names with a digit, ``_`` or ``-`` are checked: a channel called ``value`` or ``temperature``
    is also an ordinary word, which an answer may use without naming the channel.
    """
    def mentions(text: str, name: str) -> bool:
        return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None

    coined = {n for n in names if re.search(r"[\d_-]", n)}
    return sorted(n for n in coined if mentions(answer, n) and not any(mentions(s, n) for s in sources))
