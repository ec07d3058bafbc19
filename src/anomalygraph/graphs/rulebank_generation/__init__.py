"""Agentic-PAG rule-bank generation: scenario text + normal series + plot -> a reviewed rule bank."""

from anomalygraph.graphs.rulebank_generation.graph import (
    GenerationOutcome,
    GenerationRequest,
    build_graph,
    make_graph,
    run_generation,
)
from anomalygraph.graphs.rulebank_generation.state import (
    ApprovalDecision,
    ApprovalRequest,
    GenerationContext,
    GenerationResult,
)

__all__ = [
    "ApprovalDecision",
    "ApprovalRequest",
    "GenerationContext",
    "GenerationOutcome",
    "GenerationRequest",
    "GenerationResult",
    "build_graph",
    "make_graph",
    "run_generation",
]
