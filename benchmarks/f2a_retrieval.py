"""F2A retrieval cost: build time, query time, memory and recall of the flat, IVF and HNSW indexes.

F2A retrieves the k nearest stored windows of each query window in the encoder's embedding
space (``anomalygraph.detectors.f2a.retrieval``). This prints, for N stored windows of dimension
H, each index kind's build seconds (IVF: k-means training included), query milliseconds per
query (one batch of ``--queries`` queries, k = ``--k``, after a small warm-up batch), the size
of the serialised index in MiB, and recall@k against exact numpy search (float64). The
embeddings are encoder-like: a mixture of 256 Gaussians of unequal weight and spread in a
16-dimensional latent space, projected to H dimensions with a little isotropic noise; the
queries are fresh draws from the same mixture (windows not in the index). Everything is seeded.

Run (``--quick``, N = 1e4 and 1e5: about half a minute on 2 cores; the full run adds N = 1e6,
where HNSW's build takes minutes):

    OMP_NUM_THREADS=2 nice .venv/bin/python benchmarks/f2a_retrieval.py --quick
    OMP_NUM_THREADS=2 nice .venv/bin/python benchmarks/f2a_retrieval.py
    OMP_NUM_THREADS=2 nice .venv/bin/python benchmarks/f2a_retrieval.py --sizes 100000 --dim 128 --k 32

``--threads`` sets faiss's OpenMP threads; numpy's exact search follows OMP_NUM_THREADS.
"""

from __future__ import annotations

import argparse
import sys
import time

import faiss
import numpy as np

from anomalygraph.core.tables import md_row, table_lines
from anomalygraph.detectors.f2a.retrieval import (
    RetrievalConfig,
    WindowIndex,
    brute_force,
    recall_at_k,
)

KINDS = ("flat", "ivf", "hnsw")


def clustered(n: int, dim: int, seed: int, clusters: int = 256, latent: int = 16) -> np.ndarray:
    """``n`` encoder-like embeddings ``[n, dim]``: a mixture of Gaussians in a ``latent``-dimensional
    space (Dirichlet weights, spreads 0.5..1.5), linearly projected, plus noise of 0.05.

    The mixture itself depends only on ``dim`` (seed 1234), so stored vectors and queries drawn
    with different ``seed`` come from the same distribution.
    """
    mixture = np.random.default_rng(1234)
    centres = mixture.normal(0, 4, (clusters, latent))
    spreads = mixture.uniform(0.5, 1.5, clusters)
    weights = mixture.dirichlet(np.full(clusters, 2.0))
    projection = mixture.normal(0, 1, (latent, dim)) / np.sqrt(latent)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    step = 200_000
    for start in range(0, n, step):
        size = min(step, n - start)
        which = rng.choice(clusters, size=size, p=weights)
        z = centres[which] + spreads[which, None] * rng.normal(0, 1, (size, latent))
        out[start : start + size] = z @ projection + rng.normal(0, 0.05, (size, dim))
    return out


def describe(index: WindowIndex) -> str:
    config = index.config
    if index.kind == "ivf":
        return f"nlist {index.nlist}, nprobe {min(config.nprobe, index.nlist or 1)}"
    if index.kind == "hnsw":
        return f"M {config.hnsw_m}, efSearch {config.ef_search}"
    return "exact"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="stored windows N, comma-separated")
    parser.add_argument("--dim", type=int, default=64, help="embedding dimension H")
    parser.add_argument("--k", type=int, default=16, help="neighbours per query")
    parser.add_argument("--queries", type=int, default=1000, help="queries in the timed batch")
    parser.add_argument("--threads", type=int, default=2, help="faiss OpenMP threads")
    parser.add_argument("--kinds", default=",".join(KINDS), help="index kinds, comma-separated")
    parser.add_argument("--nprobe", type=int, default=RetrievalConfig().nprobe, help="IVF lists read per query")
    parser.add_argument("--ef-search", type=int, default=RetrievalConfig().ef_search, help="HNSW candidate list length")
    parser.add_argument("--quick", action="store_true", help="sizes 10000,100000 only")
    args = parser.parse_args()

    sizes = [10_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        print(f"unknown index kinds {unknown}; choose from {list(KINDS)}", file=sys.stderr)
        return 2
    faiss.omp_set_num_threads(args.threads)
    print(
        f"F2A retrieval: H = {args.dim}, k = {args.k}, {args.queries} queries per batch, faiss {faiss.__version__} "
        f"with {args.threads} threads; clustered embeddings (256 Gaussians in a 16-d latent space)\n",
        flush=True,
    )
    queries = clustered(args.queries, args.dim, seed=1)
    warm_up = clustered(10, args.dim, seed=2)
    header = ["N", "index", "parameters", "build s", "query ms/query", "memory MiB", f"recall@{args.k}"]
    print(*table_lines(header), sep="\n", flush=True)
    notes = []
    for n in sizes:
        stored = clustered(n, args.dim, seed=0)
        started = time.perf_counter()
        true_ids = brute_force(stored, queries, args.k)[1]
        notes.append(f"N = {n}: exact numpy search of the {args.queries} queries took {time.perf_counter() - started:.1f} s")
        for kind in kinds:
            config = RetrievalConfig(kind=kind, nprobe=args.nprobe, ef_search=args.ef_search)
            started = time.perf_counter()
            index = WindowIndex.build(stored, config)
            build_s = time.perf_counter() - started
            index.search(warm_up, args.k)
            started = time.perf_counter()
            ids = index.search(queries, args.k)[1]
            query_ms = (time.perf_counter() - started) * 1000 / args.queries
            memory = faiss.serialize_index(index.faiss_index).nbytes / 2**20
            cells = [
                f"{n:,}", kind, describe(index), f"{build_s:.2f}", f"{query_ms:.4f}", f"{memory:.1f}",
                f"{recall_at_k(ids, true_ids):.3f}",
            ]
            print(md_row(cells), flush=True)
            del index
        del stored
    print()
    for note in notes:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
