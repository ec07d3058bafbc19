"""Synthetic anomalies planted in a series' own fit rows, to rank detectors without labels.

The surrogate of Goswami et al. (ICLR 2023): a detector that finds anomalies planted in this
series is likelier to find the real ones. The anomalies come from this project's operators and
PAG sampler with the ``generic`` bank (one rule per operator), each window placed apart from
the others so that every planted anomaly is its own event. Labels are never read: the sampler
gets the rows without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from anomalygraph.core.errors import DataError
from anomalygraph.data.periods import estimate_period
from anomalygraph.data.series import TimeSeries
from anomalygraph.detectors.candidates import fit_slice
from anomalygraph.detectors.selection import InjectedRows
from anomalygraph.rulebank.operators import get_operator
from anomalygraph.rulebank.sampler import PAGSampler
from anomalygraph.rulebank.store import load_bank

KIND_OF = {"spike": "point", "level_shift": "level", "drift": "level", "flatline": "level", "dropout": "level"}
"""Operator -> kind of planted anomaly; every other operator changes the shape ("shape")."""


MIN_EFFECT = 3.0
"""Smallest planted change, in local robust scales: plainly visible, as the anomalies worth ranking on are."""


def save_injection(path: Path, injected: InjectedRows | None) -> None:
    """Write planted rows to ``path`` (.npz); ``None`` (too short to plant) is written as empty arrays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if injected is None:
        np.savez(path, values=np.zeros(0, np.float32), kinds=np.zeros(0, str), window=0)
    else:
        np.savez(path, values=injected.values, kinds=injected.kinds, window=injected.window)


def load_injection(path: str | Path) -> InjectedRows | None:
    """What :func:`save_injection` wrote."""
    data = np.load(path, allow_pickle=False)
    if not data["values"].size:
        return None
    return InjectedRows(values=data["values"], kinds=data["kinds"], window=int(data["window"]))


def injection_window(values: np.ndarray) -> int:
    """Window of one planted anomaly: the period of the first channel, within [32, rows / 8]."""
    return int(np.clip(estimate_period(values[:, 0]), 32, max(32, len(values) // 8)))


def inject(
    series: TimeSeries, channels: Sequence[int], *, seed: int = 0, bank: str = "generic", max_events: int = 12,
) -> InjectedRows | None:
    """A copy of the fit rows with 3..``max_events`` planted anomalies on ``channels``; None if too short."""
    rows = series.values[fit_slice(series)]
    channels = list(channels)
    sub = TimeSeries(values=rows[:, channels], channels=[series.channels[c] for c in channels], name=f"{series.name}[fit]")
    window = injection_window(sub.values)
    n = int(np.clip(len(rows) // (4 * window), 3, max_events))
    if len(rows) < 4 * window:
        return None
    rules = load_bank(bank)
    usable = [r for r in rules.rules if get_operator(r.operator).min_channels <= len(channels)]
    rules = rules.model_copy(update={"rules": usable})
    try:
        sampler = PAGSampler(rules, sub, window=window, seed=seed, exclude_labelled=False, min_effect=MIN_EFFECT, max_redraws=5)
        batch = sampler.sample(6 * n)
    except DataError:
        return None
    values = rows.copy()
    kinds = np.full(len(rows), "", dtype=object)
    taken = np.zeros(len(rows), dtype=bool)
    order = np.random.default_rng(seed).permutation(len(batch))
    placed = 0
    for i in order:
        start = int(batch.starts[i])
        # a margin of one window on each side keeps planted events apart
        lo, hi = max(0, start - window), min(len(rows), start + 2 * window)
        if taken[lo:hi].any() or not batch.mask[i].any():
            continue
        taken[start : start + window] = True
        values[start : start + window, channels] = batch.x_pa[i]
        kind = KIND_OF.get(get_operator(rules.rule(batch.rule_id(i)).operator).name, "shape")
        kinds[start : start + window][batch.mask[i]] = kind
        placed += 1
        if placed == n:
            break
    if placed == 0:
        return None
    return InjectedRows(values=values.astype(np.float32), kinds=kinds.astype(str), window=window)
