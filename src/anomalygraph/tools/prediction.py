"""``predict_anomaly``: will the series go anomalous in the next steps? F2A, with its evidence.

The answer is F2A zero-shot (the shipped pretrained weights, nothing fine-tuned on the file, so
it takes seconds on a CPU): the predicted anomaly probability of the next ``horizon`` rows, the
forecast with its interval, and the past windows retrieval found most like the present one,
with what followed each of them (a labelled anomaly, when the file has labels, and how far the
values moved). A raw probability from a model that never saw the file is not calibrated to it,
so the outlook ranks the present against the file's own earlier windows ("above 97 % of them"
is what a user can act on), by F2A's joint score: the probability together with how badly the
model forecast the rows just observed. Measured zero-shot on the tune fold (14 series, paper
protocol, prediction VUS-PR): the probability alone 0.16, the forecast error alone 0.33, the two
together 0.30; the probability alone is too weak to rank by, and the joint score keeps both of
the model's outputs in the answer at about the error's accuracy.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.data.channels import scored_channels
from anomalygraph.data.series import TimeSeries
from anomalygraph.tools.analysis import SeriesArgs
from anomalygraph.tools.context import ToolContext

ELEVATED = 0.95
"""Outlook "elevated": the probability is above this share of the file's earlier windows."""
MAX_CHANNELS = 5


class PredictArgs(SeriesArgs):
    horizon: int = Field(16, ge=1, le=720, description="steps ahead to predict (at most the model's horizon: 16)")
    at: int | None = Field(None, ge=0, description="predict rows at..at+horizon-1 from the rows before 'at' "
                                                   "(default: the steps after the last row)")
    neighbours: int = Field(4, ge=1, le=16, description="past windows to retrieve as evidence")


class Neighbour(BaseModel):
    """A past window like the present one, and what came after it."""

    context_rows: str = Field(description="first..last row of the past window's context")
    context_end_time: str | None = None
    followed_rows: str = Field(description="the rows that followed it, first..last")
    followed_start_time: str | None = None
    followed_by_anomaly: bool | None = Field(None, description="a labelled anomaly in the rows that followed (None: no labels)")
    change: float = Field(description="how far the following rows moved: largest |value - context mean| in context sigmas")
    distance: float = Field(description="embedding distance, in units of the typical nearest-neighbour distance")


class ChannelOutlook(BaseModel):
    channel: str
    last_value: float
    forecast_end: float = Field(description="point forecast of the last predicted row")
    low: float = Field(description="lowest 20% quantile over the predicted rows")
    high: float = Field(description="highest 80% quantile over the predicted rows")


class AnomalyForecast(BaseModel):
    summary: str = Field(description="the answer in one sentence: probability, its rank, the outlook, the evidence")
    path: str
    rows: str = Field(description="the predicted rows, first..last")
    start_time: str | None = None
    horizon: int
    probability: list[float] = Field(description="predicted anomaly probability of each predicted row")
    max_probability: float
    recent_error: float = Field(description="forecast error of the last h observed rows, in robust sigmas of training windows")
    percentile: float = Field(description="share of the file's earlier windows that rank lower (probability and "
                                          "forecast error together: the joint score)")
    outlook: Literal["elevated", "usual"]
    channels: list[ChannelOutlook] = Field(description=f"forecast of up to {MAX_CHANNELS} value channels")
    neighbours: list[Neighbour] = Field(description="nearest past windows first")
    model: str = Field(description="which weights answered, and what they were fitted on")
    plot: str | None = Field(None, description="PNG of the recent rows, the forecast band and the predicted rows")


def _time(series: TimeSeries, row: int) -> str | None:
    """The timestamp of ``row``; past the end, the last one plus the median sampling step."""
    ts = series.timestamps
    if ts is None or row < 0 or len(ts) < 2:
        return None
    if row < len(ts):
        return str(ts[row])
    return str(ts[-1] + (row - len(ts) + 1) * (ts[1:] - ts[:-1]).median())


def predict_anomaly(ctx: ToolContext, args: PredictArgs) -> AnomalyForecast:
    from anomalygraph.detectors import create_detector

    key, full = ctx.load(args.path)
    columns = scored_channels(full)
    series = replace(full, values=full.values[:, columns], channels=[full.channels[c] for c in columns], meta=dict(full.meta))
    at = full.length if args.at is None else args.at
    if at > full.length:
        raise DataError(f"at={at} is past the end of series '{full.name}' ({full.length} rows)")
    det = create_detector("f2a", fine_tune=False, rag_k=args.neighbours)
    L, h = det.config.context_length, det.config.horizon
    if args.horizon > h:
        raise ConfigError(f"horizon {args.horizon}: the model predicts at most {h} steps ahead")
    if at < L + h + 1:
        raise DataError(f"predicting at row {at} needs at least {L + h + 1} earlier rows (context {L} + horizon {h} "
                        "to build the retrieval memory)")
    past = series.values[:at]
    labels = None if full.labels is None else full.labels[:at].astype(np.int8)
    det.fit(past, labels=labels)  # zero-shot: builds the retrieval memory of the past windows, trains nothing
    outlook = det.forecast(past, args.horizon, quantiles=(0.2, 0.8))
    # windows every h steps up to now: each one's probability with the error of the window before it,
    # whose horizon has just been observed (the joint score, which beat the probability alone on tune)
    starts = np.arange((at - L) % h, at - L + 1, h)
    pred = det.predict_windows(past, starts=starts)
    probability = pred.probability[:, : args.horizon].max(axis=1)
    observed = past[pred.issued[:-1, None] + np.arange(h)[None]]  # [n - 1, h, C]: only rows before `at`
    error = (np.abs(pred.forecast[:-1] - observed) / pred.scale[:-1]).mean(axis=(1, 2))
    joint = det.joint(probability[1:], error)
    if len(joint) < 2:
        raise DataError(f"predicting at row {at} needs at least {L + 2 * h} earlier rows to rank it against the past")
    reference, score = joint[:-1], float(joint[-1])
    now = det.predict_windows(past, starts=np.array([at - L]))
    p = float(max(outlook.anomaly_probability))
    recent = float((error[-1] - det.reference_[1, 0]) / det.reference_[1, 1])
    percentile = float(np.mean(reference < score))
    neighbours = _neighbours(det, now, full, labels is not None)

    rows = f"{at}..{at + args.horizon - 1}"
    channels = [ChannelOutlook(channel=name, last_value=float(past[-1, c]), forecast_end=outlook.point[-1][c],
                               low=min(step[c] for step in outlook.quantiles["0.2"]),
                               high=max(step[c] for step in outlook.quantiles["0.8"]))
                for c, name in enumerate(series.channels[:MAX_CHANNELS])]
    kind: Literal["elevated", "usual"] = "elevated" if percentile >= ELEVATED else "usual"
    summary = (f"F2A gives rows {rows}" + (f" (from {_time(full, at)})" if _time(full, at) else "")
               + f" an anomaly probability of at most {p:.2f}; with the forecast error of the last {h} rows "
               f"({recent:+.1f} sigma), that ranks above {percentile:.0%} of the file's {len(reference)} earlier "
               f"windows: {kind}; " + _evidence(neighbours))
    plot = _plot(ctx, full, series, at, outlook, neighbours, det.config.context_length)
    return AnomalyForecast(
        summary=summary, path=key, rows=rows, start_time=_time(full, at), horizon=args.horizon,
        probability=[round(float(v), 4) for v in outlook.anomaly_probability], max_probability=round(p, 4),
        recent_error=round(recent, 2), percentile=round(percentile, 3), outlook=kind, channels=channels, neighbours=neighbours,
        model=f"{det.weights_source_}; zero-shot, retrieval memory of rows 0..{at - 1}", plot=plot,
    )


def _neighbours(det: Any, now: Any, full: TimeSeries, labelled: bool) -> list[Neighbour]:
    memory = det.memory_
    if memory is None or now.neighbours is None:
        return []
    L, h = det.config.context_length, det.config.horizon
    out = []
    chosen = [(int(i), float(d)) for i, d in zip(now.neighbours[0], now.distances[0], strict=True) if i >= 0]
    for i, distance in chosen:
        s = int(memory.starts[i])
        out.append(Neighbour(
            context_rows=f"{s}..{s + L - 1}", context_end_time=_time(full, s + L - 1),
            followed_rows=f"{s + L}..{s + L + h - 1}", followed_start_time=_time(full, s + L),
            followed_by_anomaly=bool(memory.labels[i].any()) if labelled else None,
            change=round(float(np.abs(memory.futures[i]).max()), 2),
            distance=round(distance, 2),
        ))
    return out


def _evidence(neighbours: list[Neighbour]) -> str:
    if not neighbours:
        return "no past window was retrieved"
    known = [n for n in neighbours if n.followed_by_anomaly is not None]
    moved = max(n.change for n in neighbours)
    if known:
        hit = [n for n in known if n.followed_by_anomaly]
        said = f"{len(hit)} of its {len(neighbours)} nearest past windows were followed by a labelled anomaly"
        if hit:
            said += f" (rows {', '.join(n.followed_rows for n in hit)})"
        return said + f"; what followed them moved up to {moved} sigma"
    return (f"the file has no labels; what followed its {len(neighbours)} nearest past windows moved up to "
            f"{moved} sigma (the nearest: rows {neighbours[0].followed_rows})")


def _plot(ctx: ToolContext, full: TimeSeries, series: TimeSeries, at: int, outlook: Any, neighbours: list[Neighbour],
          context: int) -> str:
    from anomalygraph.plots.forecast import plot_forecast

    path = ctx.plot_path(full, f"forecast_{at}")
    spans = [tuple(int(v) for v in n.context_rows.split("..")) for n in neighbours]
    return str(plot_forecast(series, at, outlook, path=path, context=context, neighbours=spans))
