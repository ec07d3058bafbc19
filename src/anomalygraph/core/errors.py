"""Exceptions that carry a user-facing message.

Anything raised as an :class:`AnomalyGraphError` is an expected problem with the user's input or
configuration: the CLI prints its message on one line and exits with status 2, no traceback.
Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import warnings
from typing import Any


class AnomalyGraphError(Exception):
    """Base class for problems the user can fix."""


class DataError(AnomalyGraphError, ValueError):
    """Input data is missing, malformed, or does not fit what was asked of it."""


class ConfigError(AnomalyGraphError, ValueError):
    """A configuration value or option is invalid."""


class NotFittedError(AnomalyGraphError, RuntimeError):
    """A detector was asked to score or save before it was fitted."""


class DataWarning(UserWarning):
    """Data was usable but was repaired or looks suspicious; the message says what and how much."""


def warn_data(message: str) -> None:
    """Emit a :class:`DataWarning` attributed to the caller's caller."""
    warnings.warn(message, DataWarning, stacklevel=3)


def validation_problems(exc: Any, root: str = "config") -> str:
    """A pydantic ``ValidationError`` as one line: ``field: message`` for every bad field, ``; ``-separated
    (``root`` names a problem with the whole object)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or root}: {e['msg']}" for e in exc.errors())
