"""The analyst: a tool-calling chat agent about time series, with memory per thread and a step budget."""

from anomalygraph.agents.analyst.context import AnalystContext
from anomalygraph.agents.analyst.graph import (
    ask,
    build_graph,
    make_graph,
    recursion_limit,
    run_config,
    thread_store,
)
from anomalygraph.agents.analyst.nodes import PROMPTS
from anomalygraph.agents.analyst.state import AnalystState, CallRecord, TurnRecord, last_turn

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
