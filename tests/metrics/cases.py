"""Seeded label and score generators covering what breaks metric code: edges, ties, tiny series."""

from __future__ import annotations

import numpy as np

LABEL_STYLES = ("short", "long", "edges", "single", "point", "dense", "mixed")
SCORE_STYLES = ("noise", "signal", "lagged", "tied", "smooth", "integer")


def random_labels(rng: np.random.Generator, length: int, style: str) -> np.ndarray:
    """0/1 labels with at least one anomalous and one normal timestamp."""
    y = np.zeros(length, dtype=np.int64)

    def put(start: int, size: int) -> None:
        y[max(start, 0) : max(start, 0) + max(size, 1)] = 1

    if style == "short":
        for _ in range(rng.integers(1, 8)):
            put(int(rng.integers(0, length)), int(rng.integers(1, 4)))
    elif style == "long":
        for _ in range(rng.integers(1, 4)):
            size = int(rng.integers(length // 10 + 1, length // 3 + 2))
            put(int(rng.integers(0, length - size + 1)), size)
    elif style == "edges":
        put(0, int(rng.integers(1, length // 8 + 2)))
        size = int(rng.integers(1, length // 8 + 2))
        put(length - size, size)
        if rng.random() < 0.5:
            put(int(rng.integers(0, length)), int(rng.integers(1, 6)))
    elif style == "single":
        size = int(rng.integers(1, length // 5 + 2))
        put(int(rng.integers(0, length - size + 1)), size)
    elif style == "point":
        put(int(rng.choice([0, length - 1, int(rng.integers(0, length))])), 1)
    elif style == "dense":
        t = int(rng.integers(0, 5))
        while t < length:
            size = int(rng.integers(1, 6))
            put(t, size)
            t += size + int(rng.integers(1, 8))  # gaps down to one normal point
    elif style == "mixed":
        for sub in ("short", "long", "point"):
            y |= random_labels(rng, length, sub)
    else:
        raise ValueError(style)
    if y.all():
        y[length // 2] = 0
    if not y.any():
        y[length // 2] = 1
    return y


def random_scores(rng: np.random.Generator, labels: np.ndarray, style: str) -> np.ndarray:
    """Scores from useless to informative, with ties and lags where detectors produce them."""
    n = labels.size
    noise = rng.random(n)
    strength = rng.uniform(0.2, 2.0)
    if style == "noise":
        return noise
    if style == "signal":
        return noise + strength * labels
    if style == "lagged":
        return noise + strength * np.roll(labels, int(rng.integers(-6, 7)))
    if style == "tied":
        return np.round((noise + strength * labels) * 3) / 3
    if style == "smooth":
        kernel = np.ones(int(rng.integers(2, 12)))
        return np.convolve(noise + strength * labels, kernel / kernel.size, mode="same")
    if style == "integer":
        return rng.integers(0, 4, n) + labels * rng.integers(0, 3, n)
    raise ValueError(style)


def periodic_series(rng: np.random.Generator, length: int, period: float) -> np.ndarray:
    """A noisy seasonal signal, sometimes with a second season, for the period estimate."""
    t = np.arange(length)
    x = np.sin(2 * np.pi * t / period) + rng.normal(0, rng.uniform(0.05, 0.8), length)
    if rng.random() < 0.4:
        x += 0.5 * np.sin(2 * np.pi * t / rng.uniform(period * 2, period * 5))
    return x
