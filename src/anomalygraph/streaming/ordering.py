"""Per-key event-time ordering: buffer points, release them in timestamp order, refuse the rest loudly.

The policy, stated once: a point is scored when the watermark (or the end of its stream) passes its
timestamp, in timestamp order. A second point with a timestamp already seen is a duplicate: the
first one wins; if the values differ it is recorded as a *conflicting* duplicate. A point whose
timestamp is earlier than one already released is *late*: its neighbours were scored without it,
so it is recorded (``Rejected``), not scored. Nothing is dropped without a record.
"""

from __future__ import annotations

from collections import OrderedDict

from anomalygraph.streaming.records import Point, Rejected

RECENT = 4096  # released timestamps remembered to tell a duplicate from a late point


class OrderedBuffer:
    """Plain-Python state of one key (picklable, so a Beam state cell can hold it)."""

    def __init__(self) -> None:
        self.pending: dict[float, Point] = {}
        self.released_upto: float | None = None
        self.recent: OrderedDict[float, float] = OrderedDict()  # released timestamp -> value

    def add(self, point: Point) -> Rejected | None:
        ts = point.timestamp
        seen = self.pending.get(ts)
        if seen is None and ts in self.recent:
            seen_value: float | None = self.recent[ts]
        else:
            seen_value = None if seen is None else seen.value
        if seen_value is not None:
            same = seen_value == point.value
            return Rejected(key=point.key, timestamp=ts, value=point.value,
                            reason="duplicate" if same else "conflicting duplicate")
        if self.released_upto is not None and ts <= self.released_upto:
            return Rejected(key=point.key, timestamp=ts, value=point.value, reason="late")
        self.pending[ts] = point
        return None

    def earliest(self) -> float | None:
        return min(self.pending) if self.pending else None

    def release(self, upto: float | None = None) -> list[Point]:
        """Pending points with timestamp <= ``upto`` (all when None), oldest first."""
        ready = sorted(ts for ts in self.pending if upto is None or ts <= upto)
        out = [self.pending.pop(ts) for ts in ready]
        for p in out:
            self.recent[p.timestamp] = p.value
            while len(self.recent) > RECENT:
                self.recent.popitem(last=False)
        if out:
            self.released_upto = out[-1].timestamp
        return out
