"""What threshold-dependent metrics look at: labelled events and flagged runs, as prefix sums.

Each family (point, point-adjusted, event, range, affiliation) reads the same two summaries,
so a sweep over thresholds builds them once per distinct set of flags.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict


class PRF(BaseModel):
    """Precision, recall and F1 of one family of metrics at one threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    precision: float
    recall: float
    f1: float


def run_bounds(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive starts and ends of the runs of ones, as arrays.

    The array form of :func:`anomalygraph.core.intervals.mask_to_intervals`, for sweeps that
    extract runs a hundred times per series.
    """
    edges = np.diff(mask.astype(np.int8), prepend=0, append=0)
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1


@dataclass(frozen=True)
class Truth:
    """Labelled events of a checked 0/1 series."""

    labels: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    @classmethod
    def of(cls, labels: np.ndarray) -> Truth:
        starts, ends = run_bounds(labels)
        return cls(labels=labels, starts=starts, ends=ends)

    @property
    def length(self) -> int:
        return int(self.labels.size)

    @property
    def n_positive(self) -> int:
        return int(self.labels.sum())


@dataclass(frozen=True)
class Flags:
    """Flagged timestamps: the mask, its prefix sums and its runs."""

    mask: np.ndarray
    prefix: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    @classmethod
    def of(cls, mask: np.ndarray) -> Flags:
        prefix = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
        starts, ends = run_bounds(mask)
        return cls(mask=mask, prefix=prefix, starts=starts, ends=ends)

    @property
    def n_flagged(self) -> int:
        return int(self.prefix[-1])

    def count(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Flagged timestamps inside each inclusive ``[start, end]``."""
        return self.prefix[ends + 1] - self.prefix[starts]
