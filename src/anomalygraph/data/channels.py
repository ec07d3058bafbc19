"""What each channel of a multivariate series is, read from its values: the part detectors should score.

Telemetry files mix measured values with status and command channels. SMAP/MSL is the clear
case: column 0 is the telemetry value, the other 24 or 54 columns are one-hot command flags,
many of them constant. Scored jointly, the flags drown the value (TSB-AD's univariate
baselines on the value alone reach VUS-PR 0.84-1.00 where joint scoring got 0.01-0.07). So:

* ``constant``: one distinct value over every row; carries nothing;
* ``indicator``: only the values 0 and 1 (status flags, one-hot commands): inputs to the
  system, not measurements of it;
* ``two_level``: exactly two levels other than {0, 1} (a telemetry value quantised to two
  states, e.g. -1/+1): a measurement, scored with the values;
* ``value``: everything else.

Roles are read from all rows, labels never: a value channel may be constant in the training
rows and move only where the anomaly is (SMAP ``A-1``).
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.data.series import TimeSeries

ChannelRole = Literal["value", "two_level", "indicator", "constant"]
SCORED_ROLES: tuple[ChannelRole, ...] = ("value", "two_level")


class ChannelInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    name: str
    role: ChannelRole
    levels: int = Field(description="distinct values over all rows (capped at 1000 for the count)")


def channel_role(column: np.ndarray) -> tuple[ChannelRole, int]:
    """The role of one channel and its number of distinct values."""
    levels = np.unique(column)
    n = len(levels)
    if n == 1:
        return "constant", 1
    if n == 2 and set(levels.tolist()) <= {0.0, 1.0}:
        return "indicator", 2
    if n == 2:
        return "two_level", 2
    return "value", min(n, 1000)


def channel_roles(series: TimeSeries) -> list[ChannelInfo]:
    """One :class:`ChannelInfo` per channel, in column order."""
    infos = []
    for j, name in enumerate(series.channels):
        role, levels = channel_role(series.values[:, j])
        infos.append(ChannelInfo(index=j, name=name, role=role, levels=levels))
    return infos


def scored_channels(series: TimeSeries) -> list[int]:
    """Columns a per-channel view scores: the value and two-level ones, else every non-constant one.

    A file of nothing but flags still has to be scored, so it falls back to the varying flags
    rather than to nothing.
    """
    infos = channel_roles(series)
    chosen = [c.index for c in infos if c.role in SCORED_ROLES]
    return chosen or [c.index for c in infos if c.role != "constant"] or [0]


def describe_roles(infos: list[ChannelInfo], *, limit: int = 6) -> str:
    """``"1 value (ch0), 20 indicator, 4 constant"``: what a report says about the channels."""
    counts = Counter(c.role for c in infos)
    parts = []
    for role in ("value", "two_level", "indicator", "constant"):
        if not counts[role]:
            continue
        names = [c.name for c in infos if c.role == role]
        shown = f" ({', '.join(names[:limit])}{', ...' if len(names) > limit else ''})" if role in SCORED_ROLES else ""
        parts.append(f"{counts[role]} {role.replace('_', '-')}{shown}")
    return ", ".join(parts)
