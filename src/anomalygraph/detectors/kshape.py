"""KShapeAD: distance of each subsequence to a few weighted k-Shape centroids of normal shapes.

Why: on TSB-AD's univariate benchmark KShapeAD (SAND's offline mode, Boniol et al., VLDB 2021)
is among the leaders (VUS-PR ~0.40); it models the recurring shapes of a series, so it finds
subsequence (shape) anomalies that point-wise and level-based detectors miss.

Method (after TSB-AD 1.5's ``run_KShapeAD``, i.e. ``SAND(pattern_length=w,
subsequence_length=4w).fit(overlaping_rate=1.5w)``): subsequences of ``subsequence_factor *
window`` points, taken every ``stride_factor * window`` points of the training rows, are
z-normalised and clustered by k-Shape (Paparrizos & Gravano, SIGMOD 2015: shape-based distance
SBD = 1 - max normalised cross-correlation, centroids by shape extraction). Each centroid gets
the weight ``frequency**2 / centrality`` (cluster size and summed SBD to the other centroids,
both min-max scaled to [1, 2]), so big, typical clusters count most. A scored series' every
``window``-long subsequence gets the weighted mean of its z-normalised Euclidean distance to the
nearest ``window``-long part of each centroid (a stumpy AB-join, as SAND), divided by its
bound ``2 * sqrt(window)``; each timestamp takes the mean over the subsequences covering it
(SAND's running mean).

Differences from TSB-AD: k-Shape here is our own seeded implementation (TSB-AD calls tslearn's
unseeded ``KShape``, so its own scores vary from run to run); subsequences are z-normalised
before clustering, as k-Shape prescribes (SAND clusters raw ones); the offline SAND also
multiplies each weight by ``(1 + 1/(1 + rows since the cluster was last seen)) / 2``, a
leftover of its streaming mode that we leave out; SAND's final z-scoring of the scores is a
monotone rescaling we skip. Multichannel input: see :mod:`anomalygraph.detectors.univariate`.
"""

from __future__ import annotations

import warnings

import numpy as np
from pydantic import Field

from anomalygraph.core.errors import DataError
from anomalygraph.data.windows import windows_to_scores
from anomalygraph.detectors.base import register_detector
from anomalygraph.detectors.univariate import ChannelState, UnivariateConfig, UnivariateDetector


class KShapeConfig(UnivariateConfig):
    n_clusters: int = Field(6, ge=1, le=100, description="k-Shape clusters (SAND's k; TSB-AD's default 6)")
    subsequence_factor: int = Field(4, ge=1, le=16, description="clustered subsequences are this many windows long")
    stride_factor: float = Field(1.5, gt=0, le=16, description="step between clustered subsequences, in windows")
    max_iter: int = Field(100, ge=1, le=1000, description="k-Shape refinement rounds")


# ------------------------------------------------------------------- k-Shape
def _znorm(x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    std = x.std(axis=-1, keepdims=True)
    return np.where(std > 0, (x - mean) / np.where(std > 0, std, 1.0), 0.0)


def _cross_correlations(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """``cc[i, k, s] = sum_t centroids[k, t] * x[i, t - s]`` for shifts ``s = -(L-1) .. L-1``, normalised."""
    length = x.shape[1]
    size = 1 << (2 * length - 1).bit_length()
    fx = np.fft.rfft(x, size)
    fc = np.fft.rfft(centroids, size)
    cc = np.fft.irfft(fc[None, :, :] * np.conj(fx[:, None, :]), size)
    cc = np.concatenate([cc[..., -(length - 1) :], cc[..., :length]], axis=-1) if length > 1 else cc[..., :1]
    norms = np.linalg.norm(x, axis=1)[:, None] * np.linalg.norm(centroids, axis=1)[None, :]
    return cc / np.where(norms > 0, norms, np.inf)[..., None]


def sbd(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shape-based distance ``[n, k]`` of each row of ``x`` to each centroid, and the best shift."""
    cc = _cross_correlations(x, centroids)
    best = cc.argmax(axis=-1)
    dist = 1.0 - np.take_along_axis(cc, best[..., None], axis=-1)[..., 0]
    return dist, best - (x.shape[1] - 1)


def _shifted(x: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Row ``i`` of ``x`` moved right by ``shifts[i]`` (left when negative), zero-filled."""
    n, length = x.shape
    source = np.arange(length)[None, :] - shifts[:, None]
    valid = (source >= 0) & (source < length)
    return np.where(valid, x[np.arange(n)[:, None], np.clip(source, 0, length - 1)], 0.0)


def _extract_shape(members: np.ndarray, centroid: np.ndarray) -> np.ndarray:
    """The z-normalised shape maximising the summed squared correlation with the aligned members."""
    if not np.any(centroid):
        aligned = members
    else:
        _, shifts = sbd(members, centroid[None, :])
        aligned = _shifted(members, shifts[:, 0])
    length = members.shape[1]
    centred = aligned - aligned.mean(axis=1, keepdims=True)  # Q x with Q = I - 1/L
    m = centred.T @ centred
    _, vectors = np.linalg.eigh(m)
    shape = vectors[:, -1]
    if np.linalg.norm(aligned - shape, axis=1).sum() > np.linalg.norm(aligned + shape, axis=1).sum():
        shape = -shape
    return _znorm(shape[None, :])[0] if length > 1 else shape


def kshape(x: np.ndarray, k: int, rng: np.random.Generator, max_iter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """k-Shape clustering of z-normalised rows: centroids ``[k, L]`` and labels ``[n]``.

    Starts from ``k`` distinct random rows as centroids; an emptied cluster is reseeded with the
    row farthest from its centroid. Stops when the assignment no longer changes.
    """
    n = len(x)
    centroids = x[rng.choice(n, size=k, replace=False)].copy()
    labels = sbd(x, centroids)[0].argmin(axis=1)
    for _ in range(max_iter):
        for j in range(k):
            members = x[labels == j]
            if len(members) == 0:
                dist = sbd(x, centroids)[0][np.arange(n), labels]
                members = x[[int(np.argmax(dist))]]
            centroids[j] = _extract_shape(members, centroids[j])
        new = sbd(x, centroids)[0].argmin(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
    return centroids, labels


def centroid_weights(centroids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """SAND's normal-model weights: ``frequency**2 / centrality``, each min-max scaled to [1, 2]."""
    k = len(centroids)
    frequency = np.bincount(labels, minlength=k).astype(np.float64)
    dist = sbd(centroids, centroids)[0]
    np.fill_diagonal(dist, 0.0)
    centrality = dist.sum(axis=1)

    def to_1_2(v: np.ndarray) -> np.ndarray:
        return (v - v.min()) / (v.max() - v.min() + 1e-7) + 1.0

    return to_1_2(frequency) ** 2 / to_1_2(centrality)


# ------------------------------------------------------------------ detector
@register_detector
class KShapeDetector(UnivariateDetector):
    """Weighted distance of subsequences to k-Shape centroids (TSB-AD's KShapeAD / SAND offline)."""

    name = "kshape"
    config_class = KShapeConfig
    summary = "KShapeAD: distance of each subsequence to weighted k-Shape centroids of the series' recurring shapes; strong on shape anomalies"
    config: KShapeConfig

    def _min_window(self) -> int:
        return 3

    def _subsequence(self, window: int) -> int:
        return self.config.subsequence_factor * window

    def _max_window(self, n_train: int) -> int:
        return max(3, (n_train - 2) // self.config.subsequence_factor)

    def _fit_channel(self, x: np.ndarray, window: int) -> ChannelState:
        length = self._subsequence(window)
        stride = max(1, int(self.config.stride_factor * window))
        starts = np.arange(0, len(x) - length, stride)
        if len(starts) == 0:
            raise DataError(
                f"kshape: {len(x)} training rows leave no subsequence of {length} points "
                f"({self.config.subsequence_factor} x window {window}); use a shorter window"
            )
        subsequences = _znorm(np.stack([x[s : s + length] for s in starts]))
        k = min(self.config.n_clusters, len(subsequences))
        rng = np.random.default_rng(self.config.seed)
        centroids, labels = kshape(subsequences, k, rng, self.config.max_iter)
        used = np.unique(labels)
        centroids = centroids[used]
        labels = np.searchsorted(used, labels)
        return {"centroids": centroids, "weights": centroid_weights(centroids, labels)}

    def _score_channel(self, x: np.ndarray, window: int, state: ChannelState) -> np.ndarray:
        from anomalygraph.detectors.baselines import _stumpy

        stumpy = _stumpy()
        centroids, weights = state["centroids"], state["weights"]
        bound = 2 * np.sqrt(window)
        join = np.zeros(len(x) - window + 1)
        for centroid, weight in zip(centroids, weights, strict=True):
            with warnings.catch_warnings():
                # stumpy warns when many distances are ~0 (flat stretches); that is data, not misuse.
                warnings.filterwarnings("ignore", message="A large number of values", category=UserWarning)
                profile = stumpy.stump(x, window, T_B=centroid.astype(np.float64), ignore_trivial=False)
            distances = np.nan_to_num(profile[:, 0].astype(np.float64), nan=bound, posinf=bound)
            join += weight * np.minimum(distances, bound)
        join /= weights.sum() * bound
        return windows_to_scores(join, np.arange(len(join)), window, len(x), "mean")
