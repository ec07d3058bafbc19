"""Gold answers for the analyst eval, computed when it runs from a file's labels and raw values.

A recipe reads what the question is about (a count, a day, rows, a channel, which detectors
flag a window, the sampling step or period, the shape of a labelled anomaly) from sources the
agent's tools do not compute for it where that is possible: the label files themselves
(``combined_windows.json``, ``combined_labels.json``, ``labeled_anomalies.csv``, UCR file
names, as the loaders read them), the raw file (rows, columns, timestamps) and simple robust
statistics written out here. The one exception is by definition: "which detectors flag this
window" runs the detectors (through ``detectors.run``, not the tool) with the defaults the
tools use. A recipe refuses (``ConfigError``) when its answer would be ambiguous, e.g. two
labelled windows almost equally large, so the eval never asks a question without one answer.

Every recipe is deterministic; the slowest (detectors on a 10k-row series) takes a few seconds
and is cached per process.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.core.errors import ConfigError
from anomalygraph.core.intervals import mask_to_intervals
from anomalygraph.core.stats import median_sigma
from anomalygraph.data.series import TimeSeries


class Gold(BaseModel):
    """The answer a recipe computed, and the values the question template needs."""

    model_config = ConfigDict(extra="forbid")

    value: int | float | str | list[int] | list[str]
    display: str
    fields: dict[str, Any] = Field(default_factory=dict)


class Asked(Protocol):
    """What a recipe needs of a question."""

    id: str
    path: str
    params: dict[str, Any]


Recipe = Callable[[Path, TimeSeries, Asked], Gold]


# ---------------------------------------------------------------- label helpers
def _events(series: TimeSeries) -> list[tuple[int, int]]:
    return [] if series.labels is None else list(mask_to_intervals(series.labels.astype(bool)))


def _event(series: TimeSeries, q: Asked) -> tuple[int, int]:
    events = _events(series)
    k = int(q.params.get("event", 0))
    if not 0 <= k < len(events):
        raise ConfigError(f"question {q.id}: {q.path} has {len(events)} labelled event(s); event {k} does not exist")
    return events[k]


def _channel(series: TimeSeries, q: Asked) -> tuple[int, str]:
    name = str(q.params.get("channel", series.channels[0]))
    if name not in series.channels:
        raise ConfigError(f"question {q.id}: {q.path} has no channel {name!r}")
    return series.channels.index(name), name


def _ambiguous(q: Asked, what: str) -> ConfigError:
    return ConfigError(f"question {q.id}: {q.path} has no clear answer: {what}")


# ---------------------------------------------------------------------- counts
def label_events(path: Path, series: TimeSeries, q: Asked) -> Gold:
    """Labelled anomaly windows (NAB windows, SMAP/MSL sequences, the UCR file name's one), after merging touching ones."""
    n = len(_events(series))
    return Gold(value=n, display=str(n))


def row_count(path: Path, series: TimeSeries, q: Asked) -> Gold:
    """Data rows of the file itself: a CSV's rows under its header, a UCR text file's values."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        n = len(pd.read_csv(path))
    elif suffix == ".txt":
        n = int(np.loadtxt(path, ndmin=1).shape[0])
    else:  # a .npy test array is served with its training array in front: the "rows" would be ambiguous
        raise ConfigError(f"question {q.id}: row_count reads CSV and UCR text files, not {suffix}")
    return Gold(value=n, display=str(n))


def channel_count(path: Path, series: TimeSeries, q: Asked) -> Gold:
    """Columns of the raw array (.npy) or value columns of a CSV (not its timestamp or label column)."""
    if path.suffix.lower() == ".npy":
        n = int(np.load(path, mmap_mode="r").shape[1])
    elif path.suffix.lower() == ".csv":
        columns = pd.read_csv(path, nrows=1).columns
        n = sum(1 for c in columns if "time" not in c.lower() and c.lower() not in ("label", "labels", "is_anomaly"))
    else:
        n = 1
    return Gold(value=n, display=str(n))


# ------------------------------------------------------------ sampling, period
def sampling_interval(path: Path, series: TimeSeries, q: Asked) -> Gold:
    """The median step between the file's timestamps."""
    frame = pd.read_csv(path)
    column = next((c for c in frame.columns if "time" in c.lower()), None)
    if column is None:
        raise ConfigError(f"question {q.id}: {path} has no timestamp column")
    step = pd.to_datetime(frame[column]).diff().median()
    seconds = float(step.total_seconds())
    return Gold(value=seconds, display=f"{seconds:g} s ({step})")


def autocorrelation(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64) - float(np.mean(x))
    n = len(x)
    spectrum = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    return acf / acf[0] if acf[0] > 0 else acf


def dominant_period(path: Path, series: TimeSeries, q: Asked) -> Gold:
    """The lag of the highest local maximum of the autocorrelation, between 4 rows and a third of the series."""
    acf = autocorrelation(series.values[:, 0])
    lo, hi = 4, len(acf) // 3
    seg = acf[lo:hi]
    peaks = [i for i in range(1, len(seg) - 1) if seg[i] >= seg[i - 1] and seg[i] >= seg[i + 1]]
    if not peaks:
        raise ConfigError(f"question {q.id}: {q.path} has no autocorrelation peak")
    best = max(peaks, key=lambda i: seg[i]) + lo
    return Gold(value=int(best), display=f"{best} rows (autocorrelation {acf[best]:.2f})")


# ------------------------------------------------------------------------ time
def largest_labelled_day(path: Path, series: TimeSeries, q: Asked) -> Gold:
    """The day of the peak of the labelled window whose values stray furthest from the unlabelled rows
    (robust z: distance to their median over 1.4826 MAD). ``min_margin`` (default 1.2): the largest
    must beat the runner-up by that factor, else the question has no clear answer."""
    if series.timestamps is None:
        raise ConfigError(f"question {q.id}: {q.path} has no timestamps, so no day")
    events = _events(series)
    if not events:
        raise ConfigError(f"question {q.id}: {q.path} has no labelled anomaly")
    x = series.values[:, 0].astype(np.float64)
    normal = ~series.labels.astype(bool)  # type: ignore[union-attr]
    median, sigma = median_sigma(x[normal])
    sigma = sigma or float(x[normal].std()) or 1.0
    ranked = sorted(((float(np.max(np.abs(x[a : b + 1] - median))) / sigma, a + int(np.argmax(np.abs(x[a : b + 1] - median))))
                     for a, b in events), reverse=True)
    (z, row), runner = ranked[0], ranked[1][0] if len(ranked) > 1 else 0.0
    margin = float(q.params.get("min_margin", 1.2))
    if runner and z < margin * runner:
        raise _ambiguous(q, f"the largest labelled window ({z:.1f} sigma) is within {margin}x of the next ({runner:.1f})")
    day = str(pd.Timestamp(series.timestamps[row]).date())
    return Gold(value=day, display=f"{day} ({z:.1f} robust sigmas; next {runner:.1f})")


def _nab_point_labels(path: Path, q: Asked) -> list[str]:
    path = path.resolve()
    labels = path.parents[2] / "labels" / "combined_labels.json"
    if path.parents[1].name != "data" or not labels.is_file():
        raise ConfigError(f"question {q.id}: {q.path} is not a NAB file with labels/combined_labels.json")
    return list(json.loads(labels.read_text())[f"{path.parent.name}/{path.name}"])


def labelled_point_day(path: Path, series: TimeSeries, q: Asked) -> Gold:
    """The day of NAB's anomaly label (``combined_labels.json``: the timestamp where the anomaly
    begins, around which NAB centres its window). Only for files with one label, so "the anomaly"
    means one thing."""
    points = _nab_point_labels(path, q)
    if len(points) != 1:
        raise _ambiguous(q, f"{len(points)} labelled anomalies, not one")
    stamp = pd.Timestamp(points[0])
    return Gold(value=str(stamp.date()), display=f"{stamp.date()} (label at {stamp})")


# ------------------------------------------------------------------------ rows
def labelled_rows(path: Path, series: TimeSeries, q: Asked) -> Gold:
    """Rows (0-based, inclusive, as the loader serves the file) of labelled event ``event``."""
    start, end = _event(series, q)
    return Gold(value=[start, end], display=f"rows {start}..{end}", fields={"start": start, "end": end})


# --------------------------------------------------------------------- channel
def top_deviating_channel(path: Path, series: TimeSeries, q: Asked) -> Gold:
    """The channel whose values in the labelled interval stray furthest from the rows around it
    (5x the interval, at least 100 rows, each side), in robust sigmas of those rows (floored at a
    tenth of the channel's std). ``min_margin`` (default 1.5): the top channel must beat the next
    by that factor."""
    start, end = _event(series, q)
    reach = max(5 * (end - start + 1), 100)
    lo, hi = max(0, start - reach), min(series.length, end + 1 + reach)
    around = np.r_[lo:start, end + 1 : hi]
    scores = {}
    for j, name in enumerate(series.channels):
        x = series.values[:, j].astype(np.float64)
        if x.std() == 0:
            continue
        median, sigma = median_sigma(x[around])
        sigma = max(sigma, 0.1 * float(x.std()))
        scores[name] = float(np.max(np.abs(x[start : end + 1] - median))) / sigma
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    (top, z), runner = ranked[0], ranked[1] if len(ranked) > 1 else ("-", 0.0)
    margin = float(q.params.get("min_margin", 1.5))
    if runner[1] and z < margin * runner[1]:
        raise _ambiguous(q, f"{top} ({z:.0f} sigma) is within {margin}x of {runner[0]} ({runner[1]:.0f})")
    return Gold(value=top, display=f"{top} ({z:.0f} sigma; next {runner[0]} {runner[1]:.0f})",
                fields={"start": start, "end": end})


# -------------------------------------------------------------------- detectors
@lru_cache(maxsize=64)
def _flagged(path: str, mtime: float, detector: str) -> tuple[tuple[int, int], ...]:
    """The intervals ``detector`` flags on the file with the tools' defaults (fit on the training
    split when there is one, percentile threshold of the training scores)."""
    from anomalygraph.data.loaders import load_series
    from anomalygraph.detectors.run import run_detector

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_detector(load_series(Path(path)), detector)
    return tuple((iv.start, iv.end) for iv in run.intervals)


def detectors_flagging(path: Path, series: TimeSeries, q: Asked) -> Gold:
    """Which of ``detectors`` flag an interval overlapping labelled event ``event``, each run as the
    tools run it (``detect``/``compare_detectors`` defaults). The question is about the detectors'
    output, so the gold is that output; computed here through ``detectors.run``, not the tool."""
    from anomalygraph.detectors import get_detector_class

    names = list(q.params.get("detectors") or [])
    if len(names) < 2:
        raise ConfigError(f"question {q.id}: detectors_flagging needs params.detectors, two or more names")
    heavy = [n for n in names if get_detector_class(n).heavy]
    if heavy:
        raise ConfigError(f"question {q.id}: {heavy} need a GPU; the eval asks about CPU detectors only")
    start, end = _event(series, q)
    mtime = path.stat().st_mtime
    who = [n for n in names if any(a <= end and b >= start for a, b in _flagged(str(path.resolve()), mtime, n))]
    listing = ", ".join(names[:-1]) + f" and {names[-1]}"
    return Gold(value=who, display=", ".join(who) or "none", fields={"start": start, "end": end, "detectors": listing})


# ----------------------------------------------------------------------- shape
SHAPES = ("spike", "dip", "level_shift", "flatline")


def _longest_equal_run(x: np.ndarray) -> int:
    """Rows in the longest stretch of identical consecutive values."""
    if len(x) < 2:
        return len(x)
    same = np.r_[False, np.diff(x) == 0, False]
    edges = np.flatnonzero(np.diff(same.astype(np.int8)))
    return int(np.max(edges[1::2] - edges[::2])) + 1 if len(edges) else 1


def anomaly_shape(path: Path, series: TimeSeries, q: Asked) -> Gold:
    """The shape of labelled event ``event`` in ``channel`` (default the first), judged against the
    unlabelled rows just before it (5x its length, at least 100), in robust sigmas of those rows
    (1.4826 MAD, floored at 1% of their range). In this order, the first rule that holds:

    - ``flatline``: a run of identical values of at least max(10, a tenth of the window) rows,
      three times longer than any such run before it;
    - ``level_shift``: a tail of the window, at least max(10, a fifth of it) rows to its end, with
      80% of its rows beyond 3 sigma on one side;
    - ``spike`` / ``dip``: the largest excursion is at least 6 sigma, up or down, and few rows
      (at most max(5, a tenth of the window)) come within half of it on that side.

    A window none of these describe (a seasonal contextual anomaly, a burst of spikes, a drift)
    raises: the eval asks only about shapes these rules settle.
    """
    start, end = _event(series, q)
    j, name = _channel(series, q)
    length = end - start + 1
    reach = max(5 * length, 100)
    labelled = series.labels.astype(bool) if series.labels is not None else np.zeros(series.length, dtype=bool)
    before = np.arange(max(0, start - reach), start)
    before = before[~labelled[before]]
    if len(before) < 20:
        raise _ambiguous(q, f"only {len(before)} unlabelled rows before rows {start}..{end}")
    x = series.values[:, j].astype(np.float64)
    ctx, window = x[before], x[start : end + 1]
    median, sigma = median_sigma(ctx)
    sigma = max(sigma, 0.01 * float(ctx.max() - ctx.min()), 1e-9 * max(1.0, abs(median)))
    z = (window - median) / sigma
    fields = {"start": start, "end": end, "channel": name}

    run, ctx_run = _longest_equal_run(window), _longest_equal_run(ctx)
    if run >= max(10, 0.1 * length) and run >= 3 * ctx_run:
        return Gold(value="flatline", display=f"flatline ({run} equal rows; at most {ctx_run} before)", fields=fields)
    min_tail = max(10, length // 5)
    for k in range(0, length - min_tail + 1):
        tail = z[k:]
        for sign, word in ((1, "up"), (-1, "down")):
            if np.mean(sign * tail > 3) >= 0.8:
                return Gold(value="level_shift", display=f"level_shift ({word}, from row {start + k}; "
                            f"median {float(np.median(tail)):+.1f} sigma)", fields=fields)
    peak = int(np.argmax(np.abs(z)))
    sign = 1.0 if z[peak] > 0 else -1.0
    near = int(np.sum(sign * z >= 0.5 * abs(z[peak])))
    if abs(z[peak]) >= 6 and near <= max(5, 0.1 * length):
        shape = "spike" if sign > 0 else "dip"
        return Gold(value=shape, display=f"{shape} (row {start + peak}, {z[peak]:+.3g} sigma; {near} row(s) within half)",
                    fields=fields)
    raise _ambiguous(q, f"rows {start}..{end} of {name} are no clear {', '.join(SHAPES)} "
                        f"(peak {z[peak]:+.1f} sigma, {near} rows near it, longest flat run {run})")


RECIPES: dict[str, Recipe] = {
    f.__name__: f
    for f in (label_events, row_count, channel_count, sampling_interval, dominant_period, largest_labelled_day,
              labelled_point_day, labelled_rows, top_deviating_channel, detectors_flagging, anomaly_shape)
}
