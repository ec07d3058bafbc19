"""Detectors behind one contract (``fit`` / ``score`` / ``predict`` / ``save`` / ``load``) and a registry."""

from anomalygraph.detectors.base import (
    Detector,
    DetectorConfig,
    Encoder,
    affordable_detectors,
    create_detector,
    detector_names,
    get_detector_class,
    register_detector,
)

__all__ = [
    "Detector",
    "DetectorConfig",
    "Encoder",
    "affordable_detectors",
    "create_detector",
    "detector_names",
    "get_detector_class",
    "register_detector",
]
