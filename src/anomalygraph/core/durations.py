"""Durations as people write them ("5 min", "1 hour", "2.5 days"): one wording for every answer."""

from __future__ import annotations


def human_seconds(seconds: float) -> str:
    """``seconds`` in the largest unit that states it exactly (or to one decimal from ten units up)."""
    for unit, size in (("day", 86400.0), ("hour", 3600.0), ("min", 60.0)):
        if seconds >= size and (seconds % size == 0 or seconds >= 10 * size):
            value = seconds / size
            text = f"{value:g}" if value == int(value) else f"{value:.1f}"
            return f"{text} {unit}{'s' if unit != 'min' and value != 1 else ''}"
    return f"{seconds:g} s"


__all__ = ["human_seconds"]
