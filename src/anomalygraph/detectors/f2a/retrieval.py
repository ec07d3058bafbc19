"""F2A's retrieval: the k nearest past windows by l2 distance in the encoder's embedding space.

Forecast2Anomaly (arXiv 2511.03149) conditions its forecast of a window on the stored windows
whose embeddings lie closest to it. This module holds those embeddings in a faiss index and
answers k-nearest-neighbour queries with squared l2 distances and integer ids; what an id stands
for (the window's rows, its future, its label) is the caller's payload, kept beside the index.

Rules, stated once:

* **which index**: ``flat`` is exact, but every query reads all ``N`` stored vectors (O(N·H));
  ``ivf`` clusters them into ``nlist`` lists and reads only the ``nprobe`` nearest lists, so a
  query costs about ``N·nprobe/nlist`` instead (approximate); ``hnsw`` walks a proximity graph
  (approximate, no training, the largest in memory). ``auto`` takes ``flat`` below
  ``auto_threshold`` stored vectors, where exact search is cheap enough, else ``ivf``.
* **IVF training**: k-means on the stored embeddings themselves, or on a seeded subsample of at
  most 100 000 of them (k-means cost grows with the points, its quality hardly beyond that).
* **k**: clipped to the number of stored vectors; a result faiss could not fill (an IVF probe
  that reached fewer than ``k`` vectors) has id ``-1`` and distance ``inf``.
* **exclude**: a training window is itself in the index, at distance 0; retrieving it would hand
  the model its own target. With ``exclude`` each query's own id is never returned: the index is
  searched for ``k + 1`` and that id dropped (the last result, when it was not among them).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal, cast

try:
    import faiss
except ImportError:  # without the [f2a] extra the module still imports; building an index says what to install
    faiss = None
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anomalygraph.core.errors import ConfigError, DataError

IndexKind = Literal["flat", "ivf", "hnsw", "auto"]
BuiltKind = Literal["flat", "ivf", "hnsw"]

MAX_TRAIN = 100_000
"""IVF k-means sees at most this many stored embeddings (a seeded subsample beyond it)."""

MIN_POINTS_PER_LIST = 39
"""faiss's k-means asks for at least 39 training points per centroid (it warns below)."""

_FORMAT = "anomalygraph.f2a.retrieval/1"


class RetrievalConfig(BaseModel):
    """Which faiss index holds the stored windows' embeddings, and how it searches."""

    model_config = ConfigDict(extra="forbid")

    kind: IndexKind = Field("auto", description="flat (exact), ivf, hnsw, or auto (flat below auto_threshold, else ivf)")
    auto_threshold: int = Field(
        50_000, ge=1, description="auto: stored vectors from which ivf replaces flat (flat search is O(N) per query)"
    )
    nlist: int | None = Field(
        None, ge=1, description="ivf lists; None = about 4·sqrt(N), at most one per 39 training vectors"
    )
    nprobe: int = Field(16, ge=1, description="ivf lists read per query (more: higher recall, slower)")
    hnsw_m: int = Field(32, ge=2, description="hnsw neighbours per node (more: higher recall, more memory)")
    ef_search: int = Field(64, ge=1, description="hnsw candidate list length per query (more: higher recall, slower)")
    seed: int = Field(0, ge=0, description="seed of the ivf training subsample and k-means")


def _embeddings(values: object, what: str) -> np.ndarray:
    """A C-contiguous float32 ``[N, H]`` copy of ``values``, or a :class:`DataError` naming the problem."""
    array = np.asarray(values)
    if array.dtype.kind not in "iuf":
        raise DataError(f"{what} must be real numbers, got dtype {array.dtype}")
    if array.ndim != 2:
        raise DataError(f"{what} must be a 2-D array [N, H], got shape {array.shape}")
    if array.shape[1] == 0:
        raise DataError(f"{what} have no dimensions: shape {array.shape}")
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, reported below
        out = np.ascontiguousarray(array, dtype=np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise DataError(
            f"{what} contain NaN or inf (or values beyond float32) in {rows.size} rows (first row {int(rows[0])})"
        )
    return out


def _whole(value: object) -> bool:
    """An integer, numpy's included, but not a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _require_faiss() -> None:
    if faiss is None:
        raise ConfigError("retrieval needs faiss-cpu (the [f2a] extra): pip install 'anomalygraph[f2a]'")


def default_nlist(n: int) -> int:
    """About ``4·sqrt(n)`` lists, but at most one per 39 training vectors (and at least one).

    The training set is the ``min(n, 100 000)`` vectors k-means sees; fewer than 39 per list
    leaves centroids poorly placed (faiss warns).
    """
    n_train = min(n, MAX_TRAIN)
    return max(1, min(round(4 * math.sqrt(n)), n_train // MIN_POINTS_PER_LIST))


class WindowIndex:
    """Stored windows' embeddings ``[N, H]`` in a faiss index; ids are the rows, 0..N-1.

    Build one with :meth:`build` or :meth:`load`; the caller keeps whatever an id stands for.
    """

    def __init__(self, index: faiss.Index, kind: BuiltKind, config: RetrievalConfig) -> None:
        self._index = index
        self._kind: BuiltKind = kind
        self._config = config
        self._apply_search_params()

    @classmethod
    def build(cls, embeddings: np.ndarray, config: RetrievalConfig | None = None) -> WindowIndex:
        """Index ``embeddings`` (``[N, H]``, finite, ``N >= 1``) as ``config`` says."""
        _require_faiss()
        config = RetrievalConfig() if config is None else config
        vectors = _embeddings(embeddings, "embeddings")
        n, dim = vectors.shape
        if n == 0:
            raise DataError("cannot build a retrieval index from empty embeddings (N = 0)")
        kind: BuiltKind
        if config.kind == "auto":
            kind = "flat" if n < config.auto_threshold else "ivf"
        else:
            kind = config.kind
        index: faiss.Index
        if kind == "flat":
            index = faiss.IndexFlatL2(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, config.hnsw_m)
        else:
            index = cls._trained_ivf(vectors, config)
        index.add(vectors)
        return cls(index, kind, config)

    @staticmethod
    def _trained_ivf(vectors: np.ndarray, config: RetrievalConfig) -> faiss.IndexIVFFlat:
        n, dim = vectors.shape
        nlist = default_nlist(n) if config.nlist is None else config.nlist
        if n > MAX_TRAIN:
            rows = np.random.default_rng(config.seed).choice(n, size=MAX_TRAIN, replace=False)
            train = vectors[np.sort(rows)]
        else:
            train = vectors
        if nlist > train.shape[0]:
            raise ConfigError(f"nlist {nlist} exceeds the {train.shape[0]} vectors IVF trains on; choose nlist <= {train.shape[0]}")
        quantizer = faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_L2)
        index.cp.seed = config.seed
        index.train(train)
        return index

    def _apply_search_params(self) -> None:
        if self._kind == "ivf":
            ivf = cast(faiss.IndexIVF, self._index)
            ivf.nprobe = min(self._config.nprobe, ivf.nlist)
        elif self._kind == "hnsw":
            cast(faiss.IndexHNSW, self._index).hnsw.efSearch = self._config.ef_search

    @property
    def kind(self) -> BuiltKind:
        """The faiss index actually built: ``flat``, ``ivf`` or ``hnsw`` (``auto`` resolved)."""
        return self._kind

    @property
    def config(self) -> RetrievalConfig:
        return self._config

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def nlist(self) -> int | None:
        """The IVF lists (None for flat and hnsw)."""
        return int(cast(faiss.IndexIVF, self._index).nlist) if self._kind == "ivf" else None

    @property
    def faiss_index(self) -> faiss.Index:
        """The underlying faiss index (for measuring it; searching it directly skips the checks)."""
        return self._index

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __repr__(self) -> str:
        return f"WindowIndex(kind={self._kind!r}, n={len(self)}, dim={self.dim})"

    def search(
        self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest stored vectors of each query: squared l2 ``float32 [B, k]``, ids ``int64 [B, k]``.

        Nearest first. ``k`` is clipped to ``N`` (to ``N - 1`` with ``exclude``). ``exclude[b]`` is
        query ``b``'s own id, never returned (so a training window does not retrieve itself); an
        id not in the index, e.g. ``-1``, excludes nothing.
        """
        if not (_whole(k) and k >= 1):
            raise ConfigError(f"k must be a whole number >= 1, got {k!r}")
        batch = _embeddings(queries, "queries")
        if batch.shape[1] != self.dim:
            raise DataError(f"queries have {batch.shape[1]} dimensions, the index holds {self.dim}")
        n = len(self)
        if exclude is None:
            return self._search(batch, min(int(k), n))
        own = np.asarray(exclude)
        if own.shape != (batch.shape[0],) or (own.size and own.dtype.kind not in "iu"):
            raise DataError(
                f"exclude must hold one integer id per query, shape ({batch.shape[0]},), got {own.dtype} {own.shape}"
            )
        own = own.astype(np.int64)
        keep = min(int(k), n - 1)
        distances, ids = self._search(batch, min(keep + 1, n))
        # stable: the other results keep their order; a row without its own id drops its last one
        order = np.argsort(ids == own[:, None], axis=1, kind="stable")[:, :keep]
        return np.take_along_axis(distances, order, axis=1), np.take_along_axis(ids, order, axis=1)

    def _search(self, batch: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if batch.shape[0] == 0 or k == 0:
            return np.zeros((batch.shape[0], k), np.float32), np.zeros((batch.shape[0], k), np.int64)
        distances, ids = self._index.search(batch, k)
        distances = np.asarray(distances, dtype=np.float32)
        ids = np.asarray(ids, dtype=np.int64)
        distances[ids < 0] = np.inf  # faiss fills what it could not find with -1 and FLT_MAX
        return distances, ids

    def save(self, path: str | Path) -> Path:
        """Write the index and its config to one ``.npz`` file at exactly ``path``."""
        path = Path(path)
        data = faiss.serialize_index(self._index)
        meta = {"format": _FORMAT, "kind": self._kind, "config": self._config.model_dump(mode="json")}
        with path.open("wb") as handle:  # a file object: numpy would append .npz to a bare name
            np.savez(handle, index=np.asarray(data, dtype=np.uint8), meta=np.array(json.dumps(meta)))
        return path

    @classmethod
    def load(cls, path: str | Path) -> WindowIndex:
        """Read an index written by :meth:`save`; it returns the same search results."""
        _require_faiss()
        path = Path(path)
        if not path.is_file():
            raise DataError(f"no retrieval index at {path}")
        try:
            with np.load(path, allow_pickle=False) as stored:
                data = np.array(stored["index"], dtype=np.uint8)
                meta = json.loads(str(stored["meta"]))
        except (OSError, ValueError, KeyError) as error:
            raise DataError(f"{path} is not a retrieval index saved by WindowIndex.save: {error}") from error
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT or meta.get("kind") not in ("flat", "ivf", "hnsw"):
            raise DataError(f"{path} is not a retrieval index saved by WindowIndex.save (format {_FORMAT})")
        try:
            config = RetrievalConfig.model_validate(meta["config"])
        except ValidationError as error:
            raise DataError(f"{path} holds an invalid retrieval config: {error}") from error
        return cls(faiss.deserialize_index(data), meta["kind"], config)


def brute_force(embeddings: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours in numpy (float64 arithmetic): squared l2 ``float32 [B, k]``, ids ``int64 [B, k]``.

    The reference for tests and recall: equal distances among the ``k`` found are ordered by id.
    Queries are taken in chunks so the ``[chunk, N]`` float64 distance block stays near 256 MB.
    """
    stored = _embeddings(embeddings, "embeddings").astype(np.float64)
    batch = _embeddings(queries, "queries").astype(np.float64)
    if stored.shape[0] == 0:
        raise DataError("cannot search empty embeddings (N = 0)")
    if batch.shape[1] != stored.shape[1]:
        raise DataError(f"queries have {batch.shape[1]} dimensions, the embeddings {stored.shape[1]}")
    if not (_whole(k) and k >= 1):
        raise ConfigError(f"k must be a whole number >= 1, got {k!r}")
    n, k = stored.shape[0], min(int(k), stored.shape[0])
    norms = np.einsum("ij,ij->i", stored, stored)
    chunk = max(1, (1 << 25) // n)
    distances = np.empty((batch.shape[0], k), np.float32)
    ids = np.empty((batch.shape[0], k), np.int64)
    for start in range(0, batch.shape[0], chunk):
        q = batch[start : start + chunk]
        block = np.einsum("ij,ij->i", q, q)[:, None] + norms[None, :] - 2.0 * (q @ stored.T)
        np.maximum(block, 0.0, out=block)
        part = np.argpartition(block, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (len(q), 1))
        values = np.take_along_axis(block, part, axis=1)
        order = np.lexsort((part, values), axis=1)
        ids[start : start + len(q)] = np.take_along_axis(part, order, axis=1)
        distances[start : start + len(q)] = np.take_along_axis(values, order, axis=1)
    return distances, ids


def recall_at_k(found_ids: np.ndarray, true_ids: np.ndarray) -> float:
    """Mean over queries of the fraction of the true ``k`` neighbours among those found (``[B, k]`` each)."""
    found, true = np.asarray(found_ids), np.asarray(true_ids)
    if found.ndim != 2 or true.ndim != 2 or found.shape[0] != true.shape[0]:
        raise DataError(f"recall needs two [B, k] id arrays with the same B, got {found.shape} and {true.shape}")
    if true.size == 0:
        raise DataError("recall of no true neighbours is undefined")
    hits = [np.isin(t, f).sum() for f, t in zip(found, true, strict=True)]
    return float(np.mean(hits) / true.shape[1])
