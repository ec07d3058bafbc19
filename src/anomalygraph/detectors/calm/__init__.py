"""CALM (arXiv 2508.21273): quantile forecasters, the IQR anomaly rule, and fine-tuning on kept points.

The forecasters load lazily by name (:func:`create_forecaster`), so importing this package costs
no torch model; the streaming layer drives them.
"""

from anomalygraph.detectors.calm.forecaster import (
    DEFAULT_QUANTILES,
    FineTuneReport,
    ForecasterConfig,
    QuantileForecaster,
    create_forecaster,
    forecaster_names,
    get_forecaster_class,
    register_forecaster,
)
from anomalygraph.detectors.calm.iqr import (
    IQR_K,
    Q1_LEVELS,
    Q3_LEVELS,
    flag,
    interval_coverage,
    interval_width,
    iqr_bounds,
    outlier_score,
    quantile_column,
)

__all__ = [
    "DEFAULT_QUANTILES",
    "IQR_K",
    "Q1_LEVELS",
    "Q3_LEVELS",
    "FineTuneReport",
    "ForecasterConfig",
    "QuantileForecaster",
    "create_forecaster",
    "flag",
    "forecaster_names",
    "get_forecaster_class",
    "interval_coverage",
    "interval_width",
    "iqr_bounds",
    "outlier_score",
    "quantile_column",
    "register_forecaster",
]
