"""The APE post-training graph: bank (load or mine) -> sample -> fit -> post-train -> evaluate -> report."""

from anomalygraph.graphs.ape_post_training.graph import build_graph, make_graph, run_post_training
from anomalygraph.graphs.ape_post_training.state import APEContext, APERequest, APEVerdict

__all__ = ["APEContext", "APERequest", "APEVerdict", "build_graph", "make_graph", "run_post_training"]
