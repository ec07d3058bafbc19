"""F2A (Forecast2Anomaly, arXiv 2511.03149): anomaly prediction with a time-series foundation model, a joint loss and retrieval."""

from anomalygraph.detectors.f2a.config import BackboneConfig, F2AConfig
from anomalygraph.detectors.f2a.detector import F2ADetector, Forecast, shipped_weights
from anomalygraph.detectors.f2a.model import F2ANet, focal_loss, weighted_mae

__all__ = ["BackboneConfig", "F2AConfig", "F2ADetector", "F2ANet", "Forecast", "focal_loss", "shipped_weights",
           "weighted_mae"]
