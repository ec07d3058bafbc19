"""Bounded parameter distributions: the only way a rule says "how much" or "how long".

Every distribution has a finite support, so a rule can be checked against an operator's bounds
before anything runs, and every draw is vectorised (``sample(rng, n)`` returns ``n`` values).
Rules are data: these models hold numbers and category names, never code.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from scipy.special import ndtr, ndtri

_FINITE = 1e12  # any bound beyond this is treated as unbounded and rejected


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def support(self) -> tuple[float, float] | None:
        """Smallest and largest value a numeric distribution can draw; ``None`` for categories."""
        raise NotImplementedError

    def categories(self) -> list[str] | None:
        """Category names a categorical distribution can draw; ``None`` for numbers."""
        return None

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value) or abs(value) > _FINITE:
        raise ValueError(f"{what} must be a finite number, got {value}")
    return value


class Fixed(_Dist):
    """Always the same value (a number, or a category name)."""

    kind: Literal["fixed"] = "fixed"
    value: float | str

    @model_validator(mode="after")
    def _check(self) -> Fixed:
        if isinstance(self.value, float):
            _finite(self.value, "value")
        return self

    def support(self) -> tuple[float, float] | None:
        return None if isinstance(self.value, str) else (self.value, self.value)

    def categories(self) -> list[str] | None:
        return [self.value] if isinstance(self.value, str) else None

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        del rng
        if isinstance(self.value, str):
            return np.full(n, self.value)
        return np.full(n, self.value, dtype=np.float64)

    def describe(self) -> str:
        return str(self.value) if isinstance(self.value, str) else f"{self.value:g}"


class Uniform(_Dist):
    """Uniform on ``[low, high]``."""

    kind: Literal["uniform"] = "uniform"
    low: float
    high: float

    @model_validator(mode="after")
    def _check(self) -> Uniform:
        _finite(self.low, "low")
        _finite(self.high, "high")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is above high ({self.high:g})")
        return self

    def support(self) -> tuple[float, float]:
        return (self.low, self.high)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)

    def describe(self) -> str:
        return f"U({self.low:g}, {self.high:g})"


class LogUniform(_Dist):
    """Log-uniform on ``[low, high]`` (both positive): every order of magnitude equally likely."""

    kind: Literal["log_uniform"] = "log_uniform"
    low: float = Field(gt=0)
    high: float = Field(gt=0)

    @model_validator(mode="after")
    def _check(self) -> LogUniform:
        _finite(self.high, "high")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is above high ({self.high:g})")
        return self

    def support(self) -> tuple[float, float]:
        return (self.low, self.high)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.exp(rng.uniform(math.log(self.low), math.log(self.high), n))

    def describe(self) -> str:
        return f"logU({self.low:g}, {self.high:g})"


class TruncatedNormal(_Dist):
    """Normal(mean, std) truncated to ``[low, high]``: a typical value with a bounded spread."""

    kind: Literal["normal"] = "normal"
    mean: float
    std: float = Field(gt=0)
    low: float
    high: float

    @model_validator(mode="after")
    def _check(self) -> TruncatedNormal:
        for name in ("mean", "std", "low", "high"):
            _finite(getattr(self, name), name)
        if self.low >= self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        a, b = (self.low - self.mean) / self.std, (self.high - self.mean) / self.std
        if ndtr(b) - ndtr(a) < 1e-9:
            raise ValueError(
                f"[{self.low:g}, {self.high:g}] holds almost no mass of N({self.mean:g}, {self.std:g})"
            )
        return self

    def support(self) -> tuple[float, float]:
        return (self.low, self.high)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        a = ndtr((self.low - self.mean) / self.std)
        b = ndtr((self.high - self.mean) / self.std)
        draws = self.mean + self.std * ndtri(rng.uniform(a, b, n))
        return np.clip(draws, self.low, self.high)

    def describe(self) -> str:
        return f"N({self.mean:g}, {self.std:g}) in [{self.low:g}, {self.high:g}]"


class Choice(_Dist):
    """One of a few values (numbers or category names), optionally weighted."""

    kind: Literal["choice"] = "choice"
    values: list[float] | list[str] = Field(min_length=1, max_length=64)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _check(self) -> Choice:
        if len(set(self.values)) != len(self.values):
            raise ValueError("values must be distinct")
        for v in self.values:
            if not isinstance(v, str):
                _finite(v, "value")
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError(f"{len(self.weights)} weights for {len(self.values)} values")
            if any(not math.isfinite(w) or w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError("weights must be non-negative, finite and not all zero")
        return self

    @property
    def is_categorical(self) -> bool:
        return isinstance(self.values[0], str)

    def support(self) -> tuple[float, float] | None:
        if self.is_categorical:
            return None
        return (min(self.values), max(self.values))  # type: ignore[type-var]

    def categories(self) -> list[str] | None:
        return list(self.values) if self.is_categorical else None  # type: ignore[arg-type]

    def probabilities(self) -> np.ndarray:
        if self.weights is None:
            return np.full(len(self.values), 1.0 / len(self.values))
        w = np.asarray(self.weights, dtype=np.float64)
        return w / w.sum()

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        index = rng.choice(len(self.values), size=n, p=self.probabilities())
        values = np.asarray(self.values) if self.is_categorical else np.asarray(self.values, dtype=np.float64)
        return values[index]

    def describe(self) -> str:
        if self.weights is None:
            return "{" + ", ".join(str(v) for v in self.values) + "}"
        return "{" + ", ".join(f"{v}: {w:g}" for v, w in zip(self.values, self.weights, strict=True)) + "}"


def _shorthand(value: Any) -> Any:
    """A bare number or name in a bank file means a fixed value."""
    if isinstance(value, bool):
        return value  # let pydantic reject it with its own message
    if isinstance(value, int | float | str):
        return {"kind": "fixed", "value": value}
    return value


Distribution = Annotated[
    Fixed | Uniform | LogUniform | TruncatedNormal | Choice,
    Field(discriminator="kind"),
    BeforeValidator(_shorthand),
]
"""Any bounded distribution; in YAML a bare number or name stands for ``{kind: fixed, value: ...}``."""

DistributionModel = Fixed | Uniform | LogUniform | TruncatedNormal | Choice
