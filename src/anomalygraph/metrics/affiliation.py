"""Affiliation precision and recall (Huet, Navarro and Rossi, KDD 2022), vectorised.

Timestamp ``i`` is the interval ``[i, i + 1)``. The series is cut into one affiliation zone per
labelled event (boundaries halfway between consecutive events). Inside a zone, a flagged point
at distance ``d`` from the event scores the probability that a point drawn uniformly from the
zone lies farther than ``d`` from the event (precision); each point of the event scores the
probability that a uniform point lies farther from it than the nearest flagged run in the zone
(recall). Zone scores are averaged: precision over zones holding any flag, recall over all.

Both integrands are piecewise linear in time, so every integral below is exact: closed forms
for precision, the trapezoid rule over the integrand's breakpoints for recall.
"""

from __future__ import annotations

import numpy as np

from anomalygraph.metrics.flags import PRF, Flags, Truth

F1_EPS = 1e-15


def _pieces(truth: Truth, flags: Flags) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flagged runs cut at zone boundaries: (zone, start, stop) of each piece, plus zone bounds."""
    ev_start = truth.starts.astype(np.float64)
    ev_stop = truth.ends + 1.0
    cuts = (ev_stop[:-1] + ev_start[1:]) / 2
    zone_lo = np.concatenate(([0.0], cuts))
    zone_hi = np.concatenate((cuts, [float(truth.length)]))

    run_start = flags.starts.astype(np.float64)
    run_stop = flags.ends + 1.0
    first_zone = np.searchsorted(cuts, run_start, side="right")
    last_zone = np.searchsorted(cuts, run_stop, side="left")
    n_pieces = last_zone - first_zone + 1
    owner = np.repeat(np.arange(run_start.size), n_pieces)
    offset = np.arange(owner.size) - np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)
    zone = first_zone[owner] + offset
    start = np.maximum(run_start[owner], zone_lo[zone])
    stop = np.minimum(run_stop[owner], zone_hi[zone])
    keep = start < stop
    return zone[keep], start[keep], stop[keep], zone_lo, zone_hi


def _min_integral(lo: np.ndarray, hi: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Integral of ``min(x, cap)`` for ``x`` from ``lo`` to ``hi``."""
    return (np.minimum(hi, cap) ** 2 - np.minimum(lo, cap) ** 2) / 2 + cap * (np.maximum(hi, cap) - np.maximum(lo, cap))


def _precision_mass(start: np.ndarray, stop: np.ndarray, ev_lo: np.ndarray, ev_hi: np.ndarray, zone_lo: np.ndarray, zone_hi: np.ndarray) -> np.ndarray:
    """Integral over each piece of the survival probability of its distance to the event."""
    event_len = ev_hi - ev_lo
    zone_len = zone_hi - zone_lo
    cap = np.minimum(ev_lo - zone_lo, zone_hi - ev_hi)
    inside = np.maximum(0.0, np.minimum(stop, ev_hi) - np.maximum(start, ev_lo))

    def outside(d_lo: np.ndarray, d_hi: np.ndarray, present: np.ndarray) -> np.ndarray:
        width = d_hi - d_lo
        lost = event_len * width + _min_integral(d_lo, d_hi, cap) + (d_hi**2 - d_lo**2) / 2
        return np.where(present, width - lost / zone_len, 0.0)

    before = outside(ev_lo - np.minimum(stop, ev_lo), ev_lo - start, start < ev_lo)
    after = outside(np.maximum(start, ev_hi) - ev_hi, stop - ev_hi, stop > ev_hi)
    return inside + before + after


def _recall_mass(lo: np.ndarray, hi: np.ndarray, run_lo: np.ndarray, run_hi: np.ndarray, zone_lo: np.ndarray, zone_hi: np.ndarray) -> np.ndarray:
    """Integral over event parts ``[lo, hi]`` of the survival probability of their distance to a run."""
    zone_len = zone_hi - zone_lo
    knots = np.stack(
        (lo, hi, run_lo, run_hi, (zone_lo + zone_hi) / 2, (zone_lo + run_lo) / 2, (run_hi + zone_hi) / 2), axis=1
    )
    t = np.sort(np.clip(knots, lo[:, None], hi[:, None]), axis=1)
    d = np.maximum(np.maximum(run_lo[:, None] - t, t - run_hi[:, None]), 0.0)
    room = np.minimum(t - zone_lo[:, None], zone_hi[:, None] - t)
    f = 1.0 - (np.minimum(d, room) + d) / zone_len[:, None]
    return np.sum((f[:, 1:] + f[:, :-1]) / 2 * np.diff(t, axis=1), axis=1)


def affiliation_prf_of(truth: Truth, flags: Flags) -> PRF:
    """Affiliation precision, recall and F1; with nothing flagged, precision is reported as 0."""
    n_events = truth.starts.size
    if flags.starts.size == 0:
        return PRF(precision=0.0, recall=0.0, f1=0.0)
    zone, start, stop, zone_lo, zone_hi = _pieces(truth, flags)
    ev_lo = truth.starts.astype(np.float64)
    ev_hi = truth.ends + 1.0

    mass = _precision_mass(start, stop, ev_lo[zone], ev_hi[zone], zone_lo[zone], zone_hi[zone])
    zone_mass = np.bincount(zone, weights=mass, minlength=n_events)
    zone_width = np.bincount(zone, weights=stop - start, minlength=n_events)
    occupied = zone_width > 0
    precision = float(np.sum(zone_mass[occupied] / zone_width[occupied]) / occupied.sum())

    # Recall: inside each zone, the event is split halfway between consecutive pieces.
    first_in_zone = np.concatenate(([True], zone[1:] != zone[:-1]))
    last_in_zone = np.concatenate((zone[1:] != zone[:-1], [True]))
    mid = (stop[:-1] + start[1:]) / 2
    part_lo = np.where(first_in_zone, zone_lo[zone], np.concatenate(([0.0], mid)))
    part_hi = np.where(last_in_zone, zone_hi[zone], np.concatenate((mid, [0.0])))
    lo = np.maximum(ev_lo[zone], part_lo)
    hi = np.minimum(ev_hi[zone], part_hi)
    real = lo < hi
    recall_mass = np.zeros(zone.size)
    recall_mass[real] = _recall_mass(lo[real], hi[real], start[real], stop[real], zone_lo[zone][real], zone_hi[zone][real])
    per_event = np.bincount(zone, weights=recall_mass, minlength=n_events) / (ev_hi - ev_lo)
    recall = float(per_event.sum() / n_events)

    f1 = 2 * precision * recall / (precision + recall + F1_EPS)
    return PRF(precision=precision, recall=recall, f1=f1)
