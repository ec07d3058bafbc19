"""F2A's retrieval index: exact where it claims to be, high recall where approximate, never itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.detectors.f2a.retrieval import (
    RetrievalConfig,
    WindowIndex,
    brute_force,
    default_nlist,
    recall_at_k,
)


def clustered(n: int, dim: int, seed: int, clusters: int = 50, latent: int = 8) -> np.ndarray:
    """Encoder-like embeddings: a mixture of Gaussians in a low-dimensional latent space, projected
    to ``dim`` dimensions with a little isotropic noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (clusters, latent))
    z = centres[rng.integers(clusters, size=n)] + rng.normal(0, 1, (n, latent))
    projection = rng.normal(0, 1, (latent, dim)) / np.sqrt(latent)
    return (z @ projection + rng.normal(0, 0.1, (n, dim))).astype(np.float32)


@pytest.fixture(scope="module")
def big() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """20 000 x 32 stored, 200 held-out queries, and their true 10 nearest ids."""
    stored, queries = clustered(20_000, 32, seed=0), clustered(200, 32, seed=1)
    return stored, queries, brute_force(stored, queries, 10)[1]


def test_brute_force_matches_the_definition() -> None:
    rng = np.random.default_rng(3)
    stored, queries = rng.normal(size=(300, 5)), rng.normal(size=(7, 5))
    distances, ids = brute_force(stored, queries, 4)
    full = ((queries[:, None, :] - stored[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(ids, np.argsort(full, axis=1)[:, :4])
    np.testing.assert_allclose(distances, np.sort(full, axis=1)[:, :4], rtol=1e-6)
    assert distances.dtype == np.float32 and ids.dtype == np.int64


def test_flat_equals_brute_force() -> None:
    rng = np.random.default_rng(0)
    stored = rng.normal(size=(3000, 16)).astype(np.float32)
    queries = rng.normal(size=(64, 16)).astype(np.float32)
    index = WindowIndex.build(stored, RetrievalConfig(kind="flat"))
    assert index.kind == "flat" and len(index) == 3000 and index.dim == 16
    distances, ids = index.search(queries, 12)
    true_distances, true_ids = brute_force(stored, queries, 12)
    assert distances.shape == ids.shape == (64, 12)
    assert distances.dtype == np.float32 and ids.dtype == np.int64
    np.testing.assert_array_equal(ids, true_ids)
    np.testing.assert_allclose(distances, true_distances, rtol=1e-4)
    assert np.all(np.diff(distances, axis=1) >= 0)  # nearest first


def test_k_is_clipped_to_the_stored_vectors() -> None:
    stored = np.random.default_rng(1).normal(size=(5, 3))
    index = WindowIndex.build(stored, RetrievalConfig(kind="flat"))
    distances, ids = index.search(stored[:2], 10)
    assert ids.shape == (2, 5)
    assert sorted(ids[0].tolist()) == [0, 1, 2, 3, 4]
    assert ids[0, 0] == 0 and ids[1, 0] == 1 and distances[0, 0] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("config", "floor"),
    [(RetrievalConfig(kind="ivf"), 0.9), (RetrievalConfig(kind="hnsw"), 0.9)],
    ids=["ivf", "hnsw"],
)
def test_approximate_indexes_recall_the_true_neighbours(big, config: RetrievalConfig, floor: float) -> None:
    stored, queries, true_ids = big
    index = WindowIndex.build(stored, config)
    assert index.kind == config.kind
    distances, ids = index.search(queries, 10)
    assert recall_at_k(ids, true_ids) >= floor
    # the distances returned are the true distances of the ids returned
    exact = ((queries[:, None, :].astype(np.float64) - stored[ids].astype(np.float64)) ** 2).sum(axis=2)
    np.testing.assert_allclose(distances, exact, rtol=1e-3, atol=1e-4)


def test_search_parameters_are_applied(big) -> None:
    """One IVF probe or a tiny HNSW candidate list loses neighbours: the settings reach faiss."""
    stored, queries, true_ids = big
    ivf = WindowIndex.build(stored, RetrievalConfig(kind="ivf", nprobe=1))
    assert ivf.nlist == default_nlist(len(stored)) == 512  # 4·sqrt(20 000) = 566, at most 20 000 // 39
    assert ivf.faiss_index.nprobe == 1
    assert recall_at_k(ivf.search(queries, 10)[1], true_ids) < 0.6
    hnsw = WindowIndex.build(stored, RetrievalConfig(kind="hnsw", hnsw_m=4, ef_search=10))
    assert hnsw.faiss_index.hnsw.efSearch == 10
    assert recall_at_k(hnsw.search(queries, 10)[1], true_ids) < 0.85


def test_exclude_never_returns_the_query_itself() -> None:
    rng = np.random.default_rng(5)
    stored = rng.normal(size=(400, 6)).astype(np.float32)
    index = WindowIndex.build(stored, RetrievalConfig(kind="flat"))
    own = np.arange(0, 400, 7)
    distances, ids = index.search(stored[own], 8, exclude=own)
    assert ids.shape == (own.size, 8)
    assert not np.any(ids == own[:, None])
    for row, i in enumerate(own):  # the rest: brute force over the other stored vectors
        others = np.delete(np.arange(400), i)
        true_distances, true_local = brute_force(stored[others], stored[i : i + 1], 8)
        np.testing.assert_array_equal(ids[row], others[true_local[0]])
        np.testing.assert_allclose(distances[row], true_distances[0], rtol=1e-4, atol=1e-6)


def test_exclude_with_an_id_not_in_the_index_excludes_nothing() -> None:
    rng = np.random.default_rng(6)
    stored = rng.normal(size=(50, 4))
    index = WindowIndex.build(stored, RetrievalConfig(kind="flat"))
    queries = rng.normal(size=(3, 4))
    plain = index.search(queries, 5)[1]
    excluded = index.search(queries, 5, exclude=np.array([-1, -1, int(plain[2, 0])]))[1]
    np.testing.assert_array_equal(excluded[:2], plain[:2])
    np.testing.assert_array_equal(excluded[2], index.search(queries[2:], 6)[1][0, 1:])
    assert index.search(stored[:3], 100, exclude=np.arange(3))[1].shape == (3, 49)  # k clipped to N - 1


def test_exclude_on_an_approximate_index(big) -> None:
    stored, _, _ = big
    own = np.arange(0, 20_000, 101)
    for kind in ("ivf", "hnsw"):
        ids = WindowIndex.build(stored, RetrievalConfig(kind=kind)).search(stored[own], 10, exclude=own)[1]
        assert ids.shape == (own.size, 10)
        assert not np.any(ids == own[:, None]), kind


def test_auto_picks_flat_below_the_threshold_and_ivf_above() -> None:
    stored = clustered(2000, 8, seed=2)
    config = RetrievalConfig(auto_threshold=1000)
    assert RetrievalConfig().kind == "auto"
    assert WindowIndex.build(stored[:999], config).kind == "flat"
    above = WindowIndex.build(stored[:1000], config)
    assert above.kind == "ivf" and above.nlist == 1000 // 39
    assert WindowIndex.build(stored, RetrievalConfig()).kind == "flat"  # default threshold 50 000


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_save_load_round_trip(tmp_path: Path, kind: str) -> None:
    stored, queries = clustered(3000, 12, seed=4), clustered(50, 12, seed=5)
    index = WindowIndex.build(stored, RetrievalConfig(kind=kind, nprobe=3, ef_search=20))
    path = index.save(tmp_path / "windows.index")
    assert path == tmp_path / "windows.index" and path.is_file()  # no suffix appended
    loaded = WindowIndex.load(path)
    assert loaded.kind == kind and len(loaded) == 3000 and loaded.config == index.config
    for exclude in (None, np.arange(50)):
        before, after = index.search(queries, 7, exclude=exclude), loaded.search(queries, 7, exclude=exclude)
        np.testing.assert_array_equal(after[1], before[1])
        np.testing.assert_array_equal(after[0], before[0])


def test_load_rejects_what_save_did_not_write(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no retrieval index"):
        WindowIndex.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not an index")
    with pytest.raises(DataError, match="not a retrieval index"):
        WindowIndex.load(junk)


@pytest.mark.parametrize(
    ("embeddings", "message"),
    [
        (np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0]]), r"NaN or inf .* 1 rows \(first row 1\)"),
        (np.array([[0.0, np.inf]]), "NaN or inf"),
        (np.array([[1e39, 0.0]]), "beyond float32"),
        (np.arange(6.0), r"2-D array \[N, H\], got shape \(6,\)"),
        (np.zeros((2, 3, 4)), "2-D array"),
        (np.empty((0, 8)), r"empty embeddings \(N = 0\)"),
        (np.array([]), r"2-D array .* shape \(0,\)"),
        (np.empty((4, 0)), "no dimensions"),
        (np.array([["a", "b"]]), "real numbers"),
    ],
    ids=["nan", "inf", "overflow", "1-d", "3-d", "empty", "empty-1d", "no-dims", "strings"],
)
def test_bad_embeddings_raise_data_error(embeddings: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=message):
        WindowIndex.build(embeddings, RetrievalConfig(kind="flat"))


def test_bad_queries_and_arguments() -> None:
    index = WindowIndex.build(np.random.default_rng(0).normal(size=(20, 4)), RetrievalConfig(kind="flat"))
    with pytest.raises(DataError, match="queries have 3 dimensions, the index holds 4"):
        index.search(np.zeros((2, 3)), 2)
    with pytest.raises(DataError, match="queries contain NaN"):
        index.search(np.array([[0.0, 0.0, np.nan, 0.0]]), 2)
    with pytest.raises(DataError, match="queries must be a 2-D array"):
        index.search(np.zeros(4), 2)
    with pytest.raises(DataError, match="exclude must hold one integer id per query"):
        index.search(np.zeros((2, 4)), 2, exclude=np.array([0]))
    with pytest.raises(DataError, match="exclude must hold one integer id per query"):
        index.search(np.zeros((2, 4)), 2, exclude=np.array([0.0, 1.0]))
    for k in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="k must be a whole number"):
            index.search(np.zeros((1, 4)), k)  # type: ignore[arg-type]
    assert index.search(np.zeros((0, 4)), 3)[1].shape == (0, 3)
    with pytest.raises(ConfigError, match="nlist 50 exceeds the 20 vectors"):
        WindowIndex.build(np.zeros((20, 4)), RetrievalConfig(kind="ivf", nlist=50))


def test_config_is_strict() -> None:
    with pytest.raises(ValidationError):
        RetrievalConfig(kind="lsh")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RetrievalConfig(nprobe=0)
    with pytest.raises(ValidationError):
        RetrievalConfig(typo=1)  # type: ignore[call-arg]


def test_recall_at_k() -> None:
    true = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    assert recall_at_k(true, true) == 1.0
    assert recall_at_k(np.array([[3, 2, 9, 9], [-1, -1, -1, -1]]), true) == pytest.approx(0.25)
    with pytest.raises(DataError):
        recall_at_k(np.zeros((3, 4)), true)


def test_default_nlist() -> None:
    assert default_nlist(1) == 1 and default_nlist(38) == 1
    assert default_nlist(10_000) == 256  # 4·sqrt = 400, 10 000 // 39 = 256
    assert default_nlist(1_000_000) == 2564  # 4·sqrt = 4000, the 100 000 training vectors // 39
