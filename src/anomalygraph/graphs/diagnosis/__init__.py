"""Autonomous diagnosis: load, profile, choose detectors, run them in parallel, fuse, explain, report."""

from anomalygraph.graphs.diagnosis.graph import build_graph, run_diagnosis
from anomalygraph.graphs.diagnosis.state import DiagnosisContext, DiagnosisVerdict

__all__ = ["DiagnosisContext", "DiagnosisVerdict", "build_graph", "run_diagnosis"]
