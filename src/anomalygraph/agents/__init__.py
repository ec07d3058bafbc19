"""Agents: language-model roles with prompts from ``anomalygraph/prompts`` and structured answers.

Each agent lives in its own submodule (``analyst``: the tool-calling chat agent;
``prior_miner``: scenario text + normal series + plot -> anomaly priors, and a critic of the
rules they compile into, for Agentic-PAG). Names below are imported on first use, so importing
one agent does not load the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PriorMiner": "anomalygraph.agents.prior_miner",
    "PriorDraft": "anomalygraph.agents.prior_miner",
    "Critique": "anomalygraph.agents.prior_miner",
    "FaultList": "anomalygraph.agents.prior_miner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'anomalygraph.agents' has no attribute {name!r}")
