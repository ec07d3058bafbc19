"""LangChain tools over the detectors and data: pydantic arguments in, small pydantic verdicts out.

Tools never hand a model raw arrays of thousands of floats, only read files under the
configured data roots, and never execute anything a model wrote.
"""

from anomalygraph.tools.context import ToolContext
from anomalygraph.tools.registry import TOOL_NAMES, build_tools

__all__ = ["TOOL_NAMES", "ToolContext", "build_tools"]
