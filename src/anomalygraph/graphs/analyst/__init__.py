"""The analyst graph: a tool-calling chat agent about time series, with memory per thread and a step budget."""

from anomalygraph.agents.analyst.turns import CallRecord, TurnRecord, last_turn
from anomalygraph.graphs.analyst.context import AnalystContext
from anomalygraph.graphs.analyst.graph import (
    ask,
    build_graph,
    make_graph,
    recursion_limit,
    run_config,
    thread_store,
)
from anomalygraph.graphs.analyst.nodes import PROMPTS
from anomalygraph.graphs.analyst.state import AnalystState

__all__ = [
    "PROMPTS",
    "AnalystContext",
    "AnalystState",
    "CallRecord",
    "TurnRecord",
    "ask",
    "build_graph",
    "last_turn",
    "make_graph",
    "recursion_limit",
    "run_config",
    "thread_store",
]
