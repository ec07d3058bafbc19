"""Turning scores into decisions without looking at test labels.

Every rule returns a :class:`Threshold` that records its method and parameters, so a verdict
can say exactly how its intervals were chosen.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from anomalygraph.errors import DataError


class Threshold(BaseModel):
    value: float
    method: str = Field(description="percentile, pot or k_sigma")
    params: dict[str, float] = Field(default_factory=dict)
    fitted_on: str = Field("train scores", description="which scores the threshold was computed from")

    def describe(self) -> str:
        params = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.method}({params}) on {self.fitted_on} = {self.value:.6g}"


def _finite_scores(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size == 0:
        raise DataError("cannot compute a threshold from zero scores")
    if not np.isfinite(scores).all():
        raise DataError("cannot compute a threshold: scores contain NaN or inf")
    return scores


def percentile_threshold(train_scores: np.ndarray, contamination: float) -> Threshold:
    """The ``1 - contamination`` quantile of training scores (PyOD's rule)."""
    if not 0 < contamination < 0.5:
        raise DataError(f"contamination must be in (0, 0.5), got {contamination}")
    scores = _finite_scores(train_scores)
    value = float(np.quantile(scores, 1.0 - contamination))
    return Threshold(value=value, method="percentile", params={"contamination": contamination})
