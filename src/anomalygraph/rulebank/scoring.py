"""How close a mined bank comes to a scenario's hidden bank: morphologies, channels, durations.

TimeAnomalyBench injects its test anomalies with a hidden bank, so a bank mined from the
scenario's text and normal data can be scored against it (APE's question: does Agentic-PAG
capture the real anomaly mechanisms, or only a fraction, as fixed heuristics do?).

* **Morphology precision / recall / F1** over the sets of anomaly shapes each bank makes: of
  the shapes the mined bank draws, how many does the scenario really have; of the scenario's,
  how many are covered. The *weighted* variants use sampling weights: the share of the mined
  bank's draws that land on a real shape, and the share of the hidden bank's weight covered.
* **Operator precision / recall**: the same over operators (``spike`` makes spikes and dips).
* **Rule matches**: mined and hidden rules of the same morphology paired one to one
  (Hungarian assignment, maximising channel plus duration agreement); for each pair the
  Jaccard index of the channels they touch and the overlap of their duration ranges.

Durations are compared in steps on a log scale: the intersection over union of
``[log lo, log hi]``, each range widened to at least a factor of two around its centre, so a
fixed 10-step duration inside 5 to 20 steps overlaps instead of scoring zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.rulebank.schema import Rule, RuleBank

MIN_LOG_WIDTH = math.log(2.0)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleMatch(_Model):
    """A mined rule paired with the hidden rule of the same morphology it agrees with most."""

    mined: str
    hidden: str
    morphology: str
    channel_jaccard: float | None = Field(description="|channels ∩| / |channels ∪|; None when a side touches 'all' channels unknown here")
    duration_overlap: float | None = Field(description="log-scale IoU of the duration ranges in steps; None when units cannot be converted")


class BankScore(_Model):
    """The comparison of one mined bank with one hidden bank."""

    mined: str
    hidden: str
    mined_rules: int
    hidden_rules: int
    mined_morphologies: list[str]
    hidden_morphologies: list[str]
    found: list[str] = Field(description="morphologies both banks have")
    spurious: list[str] = Field(description="morphologies only the mined bank has")
    missed: list[str] = Field(description="morphologies only the hidden bank has")
    morphology_precision: float
    morphology_recall: float
    morphology_f1: float
    weighted_precision: float = Field(description="share of the mined bank's weight on morphologies the hidden bank has")
    weighted_recall: float = Field(description="share of the hidden bank's weight on morphologies the mined bank has")
    operator_precision: float
    operator_recall: float
    matches: list[RuleMatch]
    channel_jaccard: float | None = Field(description="mean over matches (None without any)")
    duration_overlap: float | None = Field(description="mean over matches (None without any)")


def _prf(found: int, predicted: int, actual: int) -> tuple[float, float, float]:
    precision = found / predicted if predicted else 0.0
    recall = found / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _weights(bank: RuleBank, key: str) -> dict[str, float]:
    out: dict[str, float] = {}
    total = sum(r.weight for r in bank.rules)
    for rule in bank.rules:
        name = str(getattr(rule, key))
        out[name] = out.get(name, 0.0) + rule.weight / total
    return out


def channel_set(rule: Rule, channels: Sequence[str] | None = None) -> set[str] | None:
    """The channels a rule names: ``all`` needs the series' channel list; ``random`` names none."""
    mode = rule.channels.mode
    if mode == "named":
        return set(rule.channels.names)
    if mode == "all":
        return set(channels) if channels is not None else None
    return set()


def jaccard(a: set[str] | None, b: set[str] | None) -> float | None:
    if a is None or b is None:
        return None
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def duration_steps(rule: Rule, *, step_seconds: float | None = None, window: int | None = None) -> tuple[float, float] | None:
    """A rule's duration range in steps; ``None`` when its unit cannot be converted with what is known."""
    lo, hi = rule.duration.dist.support() or (math.nan, math.nan)
    if rule.duration.unit == "seconds":
        if not step_seconds:
            return None
        return lo / step_seconds, hi / step_seconds
    if rule.duration.unit == "window":
        if not window:
            return None
        return lo * window, hi * window
    return lo, hi


def log_overlap(a: tuple[float, float] | None, b: tuple[float, float] | None, min_width: float = MIN_LOG_WIDTH) -> float | None:
    """IoU of two positive ranges on a log scale, each widened to at least ``min_width``."""
    if a is None or b is None:
        return None

    def widen(r: tuple[float, float]) -> tuple[float, float]:
        lo, hi = math.log(max(r[0], 1e-9)), math.log(max(r[1], 1e-9))
        if hi - lo < min_width:
            mid = 0.5 * (lo + hi)
            lo, hi = mid - min_width / 2, mid + min_width / 2
        return lo, hi

    (a0, a1), (b0, b1) = widen(a), widen(b)
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    union = max(a1, b1) - min(a0, b0)
    return inter / union if union > 0 else 1.0


def match_rules(mined: RuleBank, hidden: RuleBank, *, step_seconds: float | None = None, window: int | None = None,
                channels: Sequence[str] | None = None) -> list[RuleMatch]:
    """One-to-one pairs of same-morphology rules, chosen to maximise channel + duration agreement."""
    from scipy.optimize import linear_sum_assignment

    m, h = mined.rules, hidden.rules
    pair: dict[tuple[int, int], RuleMatch] = {}
    gain = np.full((len(m), len(h)), -1.0)
    for i, a in enumerate(m):
        for j, b in enumerate(h):
            if a.morphology != b.morphology:
                continue
            match = RuleMatch(
                mined=a.id, hidden=b.id, morphology=str(a.morphology),
                channel_jaccard=jaccard(channel_set(a, channels), channel_set(b, channels)),
                duration_overlap=log_overlap(duration_steps(a, step_seconds=step_seconds, window=window),
                                             duration_steps(b, step_seconds=step_seconds, window=window)),
            )
            pair[i, j] = match
            gain[i, j] = 1.0 + (match.channel_jaccard or 0.0) + (match.duration_overlap or 0.0)
    if not pair:
        return []
    rows, cols = linear_sum_assignment(-gain)
    return [pair[i, j] for i, j in zip(rows, cols, strict=True) if (i, j) in pair]


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(float(np.mean(known)), 4) if known else None


def score_bank(mined: RuleBank, hidden: RuleBank, *, step_seconds: float | None = None, window: int | None = None,
               channels: Sequence[str] | None = None) -> BankScore:
    """Score ``mined`` against ``hidden``; ``step_seconds``, ``window`` and ``channels`` convert units and 'all'."""
    mm = {str(r.morphology) for r in mined.rules}
    hm = {str(r.morphology) for r in hidden.rules}
    precision, recall, f1 = _prf(len(mm & hm), len(mm), len(hm))
    mo = {r.operator for r in mined.rules}
    ho = {r.operator for r in hidden.rules}
    op_p, op_r, _ = _prf(len(mo & ho), len(mo), len(ho))
    wm, wh = _weights(mined, "morphology"), _weights(hidden, "morphology")
    matches = match_rules(mined, hidden, step_seconds=step_seconds, window=window, channels=channels)
    return BankScore(
        mined=mined.name, hidden=hidden.name, mined_rules=len(mined.rules), hidden_rules=len(hidden.rules),
        mined_morphologies=sorted(mm), hidden_morphologies=sorted(hm),
        found=sorted(mm & hm), spurious=sorted(mm - hm), missed=sorted(hm - mm),
        morphology_precision=round(precision, 4), morphology_recall=round(recall, 4), morphology_f1=round(f1, 4),
        weighted_precision=round(sum(w for k, w in wm.items() if k in hm), 4),
        weighted_recall=round(sum(w for k, w in wh.items() if k in mm), 4),
        operator_precision=round(op_p, 4), operator_recall=round(op_r, 4),
        matches=matches,
        channel_jaccard=_mean([x.channel_jaccard for x in matches]),
        duration_overlap=_mean([x.duration_overlap for x in matches]),
    )


__all__ = ["BankScore", "RuleMatch", "channel_set", "duration_steps", "jaccard", "log_overlap", "match_rules", "score_bank"]
