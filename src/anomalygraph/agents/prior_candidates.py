"""Candidate priors from measurement, and measurable checks of the rules made from them.

The prior miner's first step is not a model call. Each fault the scenario names is matched to
the shapes its wording points to (:mod:`anomalygraph.rulebank.fault_words`) and to the channels
it mentions. Shapes the normal data cannot carry are then struck out by measurement: breaking a
correlation needs a correlated partner; a value wrong for the time of day, a shifted pattern or a
changed frequency needs a cycle. The model chooses among what is left and sets the sizes; with
nothing left by the text, it chooses among every shape the data can carry.

After compiling, a rule's sampled pseudo-anomalies are judged by checks anyone can rerun instead
of a free-text verdict: *visible* (the median largest change reaches ``min_effect`` local
scales), *plausible* (values stay within a few normal ranges and do not go negative on a channel
that never does, except a dropout to zero), and *distinct* (no kept rule has the same shape on
the same channels).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.core.stats import robust_scale
from anomalygraph.data.periods import periods
from anomalygraph.data.series import TimeSeries
from anomalygraph.rulebank.fault_words import cues_in, names_in, shapes_for, words
from anomalygraph.rulebank.names import MORPHOLOGIES
from anomalygraph.rulebank.sampler import PseudoAnomalyBatch
from anomalygraph.rulebank.schema import Rule

MIN_PARTNER_CORR = 0.5  # |r| with another channel before a correlation can break
NEEDS_CYCLE = ("contextual", "time_warp", "frequency_change")
NEEDS_PARTNER = ("correlation_break",)
PLAUSIBLE_RANGES = 3.0  # a pseudo-anomaly may leave the normal 0.5-99.5% range by this many ranges
MAX_MEASURED_CHANNELS = 64
_MAX_POINTS = 20_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChannelMeasure(_Model):
    """What the normal data of one channel can carry."""

    name: str
    low: float = Field(description="0.5th percentile")
    high: float = Field(description="99.5th percentile")
    minimum: float
    local_sd: float
    period: int | None = Field(None, description="fundamental period in steps (autocorrelation peak), if any")
    partner: str | None = Field(None, description="the channel it correlates with most")
    partner_corr: float | None = None


class ShapeCandidate(_Model):
    morphology: str
    cues: list[str] = Field(default_factory=list, description="words of the fault's text that point to this shape")


class FaultCandidates(_Model):
    """A fault with the shapes and channels measurement and wording leave for the model."""

    fault: str
    sentence: str = Field(description="the sentence of the scenario text the fault was matched to")
    shapes: list[ShapeCandidate]
    channels: list[str] = Field(description="channels its text names, best first (may be empty)")
    struck: list[str] = Field(default_factory=list, description="shapes the wording named but the data cannot carry, with why")
    source: Literal["text", "data"] = Field(description="text: its wording named the shapes; data: it named none")

    def describe(self) -> str:
        """The candidates in the words the propose prompt shows."""
        shown = ", ".join(f"{s.morphology} ('{', '.join(s.cues)}')" if s.cues else s.morphology for s in self.shapes)
        lines = [f"Shapes that fit its wording and this data: {shown}" if self.source == "text"
                 else f"Its wording names no shape; shapes this data can carry: {shown}"]
        if self.channels:
            lines.append(f"Channels its description names: {', '.join(self.channels)}")
        return "\n".join(lines)


def measure_channels(series: TimeSeries) -> list[ChannelMeasure]:
    """Range, local scale, cycle and best-correlated partner of each channel (the first 64)."""
    values = np.asarray(series.values[:_MAX_POINTS, :MAX_MEASURED_CHANNELS], dtype=np.float64)
    names = list(series.channels[:MAX_MEASURED_CHANNELS])
    n, d = values.shape
    window = min(100, n)
    starts = np.unique(np.linspace(0, n - window, 64).astype(int))
    local = np.median(robust_scale(values[starts[:, None] + np.arange(window)[None, :]]), axis=0)
    low, high = np.percentile(values, [0.5, 99.5], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(values.T) if d > 1 else np.ones((1, 1))
    corr = np.nan_to_num(np.atleast_2d(corr), nan=0.0)
    out = []
    for j in range(d):
        found = periods(values[:, j])
        partner, r = None, None
        if d > 1:
            others = np.abs(corr[j]).copy()
            others[j] = -1
            k = int(np.argmax(others))
            partner, r = names[k], float(corr[j, k])
        out.append(ChannelMeasure(
            name=names[j], low=float(low[j]), high=float(high[j]), minimum=float(values[:, j].min()),
            local_sd=float(local[j]), period=found[0][0] if found else None, partner=partner,
            partner_corr=None if r is None else round(r, 4),
        ))
    return out


_SENTENCE = re.compile(r"(?<=[.;!?])\s+|\n+")


def fault_context(fault: str, scenario: str) -> tuple[str, str]:
    """The clause of ``scenario`` sharing most words with ``fault`` (the fault itself when none
    does), and the clause after it in the same sentence.

    A small model names a fault in a few words ("meter gateway froze" from "a meter gateway
    that froze"); the clause around it often holds the words that say its shape, and the one
    after it what the fault did ("a dock door left ajar, the room warming until somebody closed
    it"). Only the prose is read (:func:`narrative`): channel tables name channels, not faults.
    """
    from anomalygraph.agents.prior_miner import narrative

    target = words(fault)
    best, after, score = fault, "", 0
    for sentence in _SENTENCE.split(narrative(scenario)):
        clauses = [c.strip() for c in re.split(r",\s+|\s+and\s+", sentence)]
        for i, clause in enumerate(clauses):
            shared = len(target & words(clause))
            if shared > score:
                best, score = clause, shared
                after = clauses[i + 1] if i + 1 < len(clauses) else ""
    return best, after


def channel_descriptions(scenario: str, channels: Sequence[str]) -> dict[str, str]:
    """Each channel's row in a table or list of the scenario text, if it has one (prose lines
    name faults and other channels too, so they are not taken as a description)."""
    out: dict[str, str] = {}
    lines = [line for line in scenario.splitlines() if line.lstrip().startswith(("|", "- ", "* "))]
    for name in channels:
        pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])")
        for line in lines:
            if pattern.search(line):
                out[name] = pattern.sub(" ", line)
                break
    return out


def _carries(shape: str, channels: Sequence[ChannelMeasure]) -> str | None:
    """Why the measured channels cannot carry ``shape``; None when they can."""
    if shape in NEEDS_PARTNER and not any(abs(m.partner_corr or 0.0) >= MIN_PARTNER_CORR for m in channels):
        return f"{shape}: no channel correlates with another (|r| < {MIN_PARTNER_CORR:g})"
    if shape in NEEDS_CYCLE and not any(m.period for m in channels):
        return f"{shape}: no channel has a cycle"
    return None


def candidates_for(fault: str, scenario: str, measures: Sequence[ChannelMeasure],
                   descriptions: Mapping[str, str] | None = None) -> FaultCandidates:
    """The shapes and channels left for ``fault`` by its wording and the data's measurements."""
    names = [m.name for m in measures]
    sentence, after = fault_context(fault, scenario)
    text = f"{fault}. {sentence}"
    channels = names_in(text, names, descriptions)
    scope = [m for m in measures if m.name in channels] or list(measures)
    named = shapes_for(fault) or shapes_for(sentence)
    if not named and (named := shapes_for(after)):  # the clause after says what the fault did
        text, sentence = f"{text} {after}", f"{sentence}, {after}"
    struck = []
    shapes = []
    for shape, _ in named:
        why = _carries(shape, scope)
        if why is None:
            shapes.append(ShapeCandidate(morphology=shape, cues=cues_in(text, shape)))
        else:
            struck.append(why)
    if shapes:
        return FaultCandidates(fault=fault, sentence=sentence, shapes=shapes, channels=channels, struck=struck, source="text")
    free = [ShapeCandidate(morphology=s) for s in MORPHOLOGIES if _carries(s, scope) is None]
    return FaultCandidates(fault=fault, sentence=sentence, shapes=free, channels=channels, struck=struck, source="data")


# ------------------------------------------------------------------- checks
class RuleCheckResult(_Model):
    """The measurable verdict on one rule's samples: keep, revise (with the problem) or reject."""

    verdict: Literal["keep", "revise", "reject"]
    reason: str
    effect: float
    outside: float = Field(description="share of anomalous values beyond the plausible range")


def check_samples(rule: Rule, batch: PseudoAnomalyBatch, measures: Sequence[ChannelMeasure],
                  kept: Mapping[str, Rule], *, min_effect: float) -> RuleCheckResult:
    """Visible, plausible and distinct, measured on ``batch`` (samples of ``rule`` on normal data)."""
    effect = float(np.median(batch.effect)) if len(batch) else 0.0
    for rid, other in kept.items():
        if other.morphology == rule.morphology and other.channels == rule.channels:
            return RuleCheckResult(verdict="reject", effect=effect, outside=0.0,
                                   reason=f"duplicates rule '{rid}' (same shape on the same channels)")
    outside_counts, total = 0, 0
    negative = False
    for i in range(len(batch)):
        touched = np.flatnonzero(batch.channels[i])
        mask = batch.mask[i]
        for c in touched:
            if c >= len(measures):
                continue  # beyond the measured channels
            m = measures[c]
            x = batch.x_pa[i, mask, c].astype(np.float64)
            span = max(m.high - m.low, 6 * m.local_sd, 1e-9)
            outside_counts += int(((x < m.low - PLAUSIBLE_RANGES * span) | (x > m.high + PLAUSIBLE_RANGES * span)).sum())
            total += x.size
            if m.minimum >= 0 and rule.operator != "dropout" and (x < -0.05 * span).any():
                negative = True
    outside = outside_counts / total if total else 0.0
    if effect < min_effect:
        return RuleCheckResult(verdict="revise", effect=effect, outside=outside, reason=(
            f"not visible: its samples change the data by {effect:.2f} local standard deviations (median), "
            f"need {min_effect:g}; make it larger or longer"))
    if outside > 0.05:
        return RuleCheckResult(verdict="revise", effect=effect, outside=outside, reason=(
            f"not plausible: {outside:.0%} of its anomalous values lie more than {PLAUSIBLE_RANGES:g} normal ranges "
            "outside what this channel ever reads; make it smaller"))
    if negative:
        return RuleCheckResult(verdict="revise", effect=effect, outside=outside, reason=(
            "not plausible: it drives a channel that is never negative below zero; make it smaller or pick "
            "another direction"))
    return RuleCheckResult(verdict="keep", effect=effect, outside=outside, reason=(
        f"visible ({effect:.1f} local standard deviations), plausible ({outside:.0%} beyond the normal range) "
        "and distinct from the kept rules"))


__all__ = [
    "ChannelMeasure",
    "FaultCandidates",
    "RuleCheckResult",
    "ShapeCandidate",
    "candidates_for",
    "channel_descriptions",
    "check_samples",
    "fault_context",
    "measure_channels",
]
