"""AnomalyGraph: agentic time-series anomaly detection.

The public surface is small on purpose: containers and loaders from :mod:`anomalygraph.data`,
detectors from :mod:`anomalygraph.detectors`, metrics from :mod:`anomalygraph.evals`.
"""

from importlib.metadata import PackageNotFoundError, version

from anomalygraph.core.errors import AnomalyGraphError, ConfigError, DataError, NotFittedError

try:
    __version__ = version("anomalygraph")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

__all__ = ["AnomalyGraphError", "ConfigError", "DataError", "NotFittedError", "__version__"]
