"""Series2Graph: how unusual the path of each subsequence is through a graph of the series' shapes.

Why: on TSB-AD's univariate benchmark Series2Graph (Boniol & Palpanas, PVLDB 2020) is among the
leaders (VUS-PR ~0.39); it needs no labels nor clean training data and finds subsequence
anomalies of varying lengths with one pattern length.

Method (after TSB-AD 1.5's ``Series2Graph`` and ``run_Series2Graph``):

1. Embedding: every ``window``-long subsequence becomes the vector of its moving sums over
   ``latent`` points (``window // 3``); PCA keeps 3 dimensions, rotated so that the direction
   of constant subsequences (pure level) is the z-axis, and the (x, y) plane is kept, where
   the series draws a trajectory of shapes.
2. Nodes: ``rate`` rays leave the origin at equal angles; on each ray the radii where the
   trajectory crosses it are smoothed by a Gaussian KDE (Scott's bandwidth, 250 grid points)
   and every density peak becomes a node.
3. Edges: each crossing is assigned to the nearest node of its ray; consecutive crossings
   give directed edges, weighted by how often the trajectory takes them.
4. Score: a ``query_factor * window``-long query's normality is the mean over the edges its
   trajectory takes of ``weight * (degree(source) - 1)``, with the training graph's weights
   and degrees (an edge never seen in training weighs 0); the score is minus the normality,
   placed on the query's centre timestamp (TSB-AD's padding).

By default (``reference="self"``, TSB-AD's use) each scored series is scored against its own
graph, so fitting only fixes the window; ``reference="train"`` builds the graph from the
training rows and follows new series through it. That mode is weaker than it sounds: a
crossing is matched to the nearest training node of its ray however far away it lies, so an
excursion that turns the usual way round (a spike on a cycle) takes ordinary edges. Differences: crossings
are found exactly (sign of the angle swept by each segment) and ordered along the trajectory
(TSB-AD visits a segment's crossings by ray index, which reverses their order when the
trajectory turns clockwise); the constant-subsequence direction is the projection of the
all-ones vector (TSB-AD rotates the projection of the lowest constant subsequence, the same
direction up to an offset); all ``T - window + 1`` subsequences are used (TSB-AD drops the
last). Multichannel input: see :mod:`anomalygraph.detectors.univariate`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field
from scipy.signal import argrelextrema
from scipy.stats import gaussian_kde

from anomalygraph.core.errors import DataError
from anomalygraph.detectors.base import register_detector
from anomalygraph.detectors.univariate import ChannelState, UnivariateConfig, UnivariateDetector

KDE_POINTS = 250


class Series2GraphConfig(UnivariateConfig):
    window: Annotated[int, Field(ge=6, le=100_000)] | Literal["auto"] = Field(
        "auto", description="pattern length (at least 6), or 'auto' for the channel's autocorrelation period"
    )
    latent: int | None = Field(None, ge=1, le=10_000, description="moving-sum length of the embedding; None = window // 3")
    rate: int = Field(30, ge=4, le=1000, description="rays from the origin whose crossings become nodes (TSB-AD: 30)")
    query_factor: float = Field(2.0, gt=1, le=20, description="query (scored subsequence) length in windows (TSB-AD: 2)")
    reference: Literal["self", "train"] = Field(
        "self",
        description="'self': the graph of the scored series itself (TSB-AD, unsupervised); "
        "'train': the graph of the training rows, new series follow its nodes and edges",
    )


def _rotation_to_z(v: np.ndarray) -> np.ndarray:
    """Rotation matrix taking the direction of ``v`` to the z-axis (Rodrigues' formula)."""
    norm = np.linalg.norm(v)
    if norm < 1e-12:
        return np.eye(3)
    a, b = v / norm, np.array([0.0, 0.0, 1.0])
    axis, c = np.cross(a, b), float(a @ b)
    s = np.linalg.norm(axis)
    if s < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + k + k @ k * ((1 - c) / s**2)


def crossings(xy: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where the trajectory ``xy [n, 2]`` crosses the ``rate`` rays, in trajectory order.

    Returns the segment of each crossing (segment ``k`` joins points ``k`` and ``k+1``), its
    ray, its distance from the origin, and the number of crossings of each segment.
    """
    step = 2 * np.pi / rate
    angle = np.mod(np.arctan2(xy[:, 1], xy[:, 0]), 2 * np.pi)
    start = angle[:-1]
    sweep = np.mod(angle[1:] - start + np.pi, 2 * np.pi) - np.pi  # signed angle of each segment, in [-pi, pi)
    up = sweep > 0
    first = np.where(up, np.floor(start / step) + 1, np.ceil(start / step) - 1).astype(np.int64)
    last = np.where(up, np.floor((start + sweep) / step), np.ceil((start + sweep) / step)).astype(np.int64)
    count = np.where(up, last - first + 1, first - last + 1)
    count = np.where(sweep == 0, 0, np.maximum(count, 0))
    segment = np.repeat(np.arange(len(count)), count)
    offset = np.arange(len(segment)) - np.repeat(np.cumsum(count) - count, count)
    ray = np.mod(first[segment] + np.where(up[segment], offset, -offset), rate)
    theta = ray * step
    p, q = xy[segment], xy[segment + 1]
    d = q - p
    denominator = np.cos(theta) * d[:, 1] - np.sin(theta) * d[:, 0]
    numerator = p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]
    safe = np.where(np.abs(denominator) > 1e-300, denominator, 1.0)
    radius = np.where(np.abs(denominator) > 1e-300, np.abs(numerator / safe), np.linalg.norm(p, axis=1))
    return segment, ray, radius, count


def _ray_nodes(radii: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Node radii on one ray: the peaks of the KDE of its crossing radii (TSB-AD's rules)."""
    if len(radii) == 0:
        return np.array([0.0])
    if len(radii) == 1 or np.all(radii == radii[0]):
        return radii[:1].copy()
    try:
        density = gaussian_kde(radii, bw_method="scott").evaluate(grid)
    except np.linalg.LinAlgError:  # radii too close for a bandwidth: one node
        return np.array([float(np.median(radii))])
    peaks = argrelextrema(density, np.greater)[0]
    return grid[peaks] if len(peaks) else grid[:1].copy()


@register_detector
class Series2GraphDetector(UnivariateDetector):
    """Graph of recurring subsequence shapes; unusual paths score high (Series2Graph)."""

    name = "series2graph"
    config_class = Series2GraphConfig
    summary = "Series2Graph: graph of the series' recurring shapes; subsequences taking rare paths score high; finds shape anomalies of varying length"
    config: Series2GraphConfig

    def _min_window(self) -> int:
        return 6

    def _query(self, window: int) -> int:
        return max(window + 1, round(self.config.query_factor * window))

    def _min_length_for(self, window: int) -> int:
        return self._query(window) + 2

    def _max_window(self, n_train: int) -> int:
        return max(6, int((n_train - 2) / (self.config.query_factor + 1)))

    def _latent(self, window: int) -> int:
        return self.config.latent or max(1, window // 3)

    # -------------------------------------------------------------- embedding
    def _phase_space(self, x: np.ndarray, window: int) -> np.ndarray:
        latent = self._latent(window)
        dims = window - latent
        if dims < 3:
            raise DataError(f"series2graph: window {window} minus latent {latent} leaves {dims} < 3 embedding dimensions")
        downsample = max(1, latent // 100)
        sums = np.concatenate([[0.0], np.cumsum(x)])
        moving = sums[latent:] - sums[:-latent]  # moving[j] = sum(x[j : j + latent])
        return np.lib.stride_tricks.sliding_window_view(moving, dims)[: len(x) - window + 1, ::downsample]

    def _trajectory(self, x: np.ndarray, window: int, state: ChannelState) -> np.ndarray:
        phase = self._phase_space(x, window)
        return (phase - state["mean"]) @ state["projection"].T

    # -------------------------------------------------------------------- fit
    def _fit_channel(self, x: np.ndarray, window: int) -> ChannelState:
        if len(x) < self._min_length_for(window):
            raise DataError(f"series2graph: {len(x)} training rows are too few for a window of {window}")
        return self._graph(x, window) if self.config.reference == "train" else {}

    def _graph(self, x: np.ndarray, window: int) -> ChannelState:
        """Embedding, nodes and weighted edges of one channel's series."""
        phase = self._phase_space(x, window)
        mean = phase.mean(axis=0)
        centred = phase - mean
        _, vectors = np.linalg.eigh(centred.T @ centred)
        components = vectors[:, ::-1][:, :3].T  # [3, dims], largest variance first
        if components.shape[0] < 3:
            components = np.vstack([components, np.zeros((3 - components.shape[0], components.shape[1]))])
        rotation = _rotation_to_z(components @ np.ones(phase.shape[1]))
        projection = (rotation @ components)[:2]
        xy = centred @ projection.T

        rate = self.config.rate
        _, ray, radius, _ = crossings(xy, rate)
        extent = 1.2 * float(np.abs(xy).max()) if xy.size else 0.0
        grid = np.arange(KDE_POINTS) * (extent / KDE_POINTS) if extent > 0 else np.zeros(1)
        node_radii = [_ray_nodes(radius[ray == r], grid) for r in range(rate)]
        offsets = np.concatenate([[0], np.cumsum([len(n) for n in node_radii])])
        state: ChannelState = {
            "mean": mean,
            "projection": projection,
            "node_radii": np.concatenate(node_radii),
            "node_offsets": offsets,
        }
        nodes = self._nodes(ray, radius, state)
        n_nodes = int(offsets[-1])
        keys = nodes[:-1] * n_nodes + nodes[1:]
        edge_keys, edge_weights = np.unique(keys, return_counts=True)
        degree = np.bincount(edge_keys // n_nodes, minlength=n_nodes) + np.bincount(edge_keys % n_nodes, minlength=n_nodes)
        state.update({"edge_keys": edge_keys, "edge_weights": edge_weights.astype(np.float64), "degree": degree})
        return state

    @staticmethod
    def _nodes(ray: np.ndarray, radius: np.ndarray, state: ChannelState) -> np.ndarray:
        """The nearest node of its ray for each crossing (first of equally near ones)."""
        offsets, node_radii = state["node_offsets"], state["node_radii"]
        nodes = np.empty(len(ray), dtype=np.int64)
        for r in np.unique(ray):
            on_ray = ray == r
            candidates = node_radii[offsets[r] : offsets[r + 1]]
            gap = np.abs(radius[on_ray][:, None] - candidates[None, :])
            nodes[on_ray] = offsets[r] + gap.argmin(axis=1)
        return nodes

    # ------------------------------------------------------------------ score
    def _score_channel(self, x: np.ndarray, window: int, state: ChannelState) -> np.ndarray:
        if self.config.reference == "self":
            state = self._graph(x, window)
        query = self._query(window)
        xy = self._trajectory(x, window, state)
        n_points = len(xy)
        _, ray, radius, count = crossings(xy, self.config.rate)
        nodes = self._nodes(ray, radius, state)
        n_nodes = int(state["node_offsets"][-1])

        # Each edge joins two consecutive crossings and is taken during the later one's segment.
        keys = nodes[:-1] * n_nodes + nodes[1:]
        where = np.searchsorted(state["edge_keys"], keys)
        where = np.minimum(where, max(len(state["edge_keys"]) - 1, 0))
        known = (state["edge_keys"][where] == keys) if len(state["edge_keys"]) else np.zeros(len(keys), bool)
        weight = np.where(known, state["edge_weights"][where] if len(state["edge_keys"]) else 0.0, 0.0)
        edge_score = weight * (state["degree"][nodes[:-1]] - 1)
        cumulative = np.concatenate([[0.0], np.cumsum(edge_score)])

        # edges_by[k]: edges taken up to and including segment k (point k -> k+1); padded for the last point.
        taken = np.maximum(np.cumsum(count) - 1, 0)
        edges_by = np.concatenate([taken, taken[-1:] if len(taken) else [0]])
        span = query - window  # a query of `query` points covers `span` steps of the trajectory
        lo, hi = edges_by[: n_points - span], edges_by[span:]
        n_edges = hi - lo
        normality = np.full(len(lo), np.nan)
        has = n_edges > 0
        normality[has] = (cumulative[hi[has]] - cumulative[lo[has]]) / n_edges[has]
        normality = _fill(normality)

        # Query i covers [i, i + query); its score goes to its centre.
        scores = -normality
        front = query // 2
        back = len(x) - len(scores) - front
        return np.concatenate([np.full(front, scores[0]), scores, np.full(back, scores[-1])])


def _fill(values: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs, back-fill leading ones; all NaN gives zeros."""
    valid = ~np.isnan(values)
    if not valid.any():
        return np.zeros_like(values)
    index = np.where(valid, np.arange(len(values)), 0)
    np.maximum.accumulate(index, out=index)
    filled = values[index]
    first = int(np.argmax(valid))
    filled[:first] = values[first]
    return filled
