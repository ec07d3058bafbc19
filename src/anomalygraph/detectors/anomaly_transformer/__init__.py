"""Anomaly Transformer (Xu et al., ICLR 2022): association discrepancy with a minimax strategy."""

from anomalygraph.detectors.anomaly_transformer.config import AnomalyTransformerConfig
from anomalygraph.detectors.anomaly_transformer.detector import AnomalyTransformerDetector
from anomalygraph.detectors.anomaly_transformer.model import (
    AnomalyTransformerModel,
    anomaly_criterion,
    fused_minimax_loss,
    minimax_losses,
    symmetric_kl,
)

__all__ = [
    "AnomalyTransformerConfig",
    "AnomalyTransformerDetector",
    "AnomalyTransformerModel",
    "anomaly_criterion",
    "fused_minimax_loss",
    "minimax_losses",
    "symmetric_kl",
]
