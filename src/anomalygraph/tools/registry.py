"""The tool registry: each entry is a name, a description for the model, an argument schema and
the function; ``build_tools`` binds them to one context as LangChain tools."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel

from anomalygraph.core.errors import AnomalyGraphError
from anomalygraph.tools import analysis, prediction
from anomalygraph.tools.context import ToolContext


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args: type[BaseModel]
    func: Callable[[ToolContext, Any], BaseModel]


SPECS: tuple[ToolSpec, ...] = (
    ToolSpec("load_series", "Load a time-series file and summarise it: length, channels, sampling, labels, repairs.",
             analysis.SeriesArgs, analysis.load),
    ToolSpec("profile_series", "Profile a series: per-channel trend, seasonal period, change points and statistics.",
             analysis.SeriesArgs, analysis.profile),
    ToolSpec("detect", "Run one anomaly detector on a series and return its strongest anomalous intervals.",
             analysis.DetectArgs, analysis.detect),
    ToolSpec("compare_detectors", "Run several detectors and report which intervals they agree on.",
             analysis.CompareArgs, analysis.compare),
    ToolSpec("explain_window", "Explain rows start..end: which channels deviate from their context, by how much, and the shape.",
             analysis.WindowArgs, analysis.explain),
    ToolSpec("plot_series", "Save a PNG of a series (optionally rows start..end, with detector scores) and return its path.",
             analysis.PlotArgs, analysis.plot),
    ToolSpec("evaluate", "Score a detector against the file's labels (VUS-PR headline).",
             analysis.EvaluateArgs, analysis.evaluate),
    ToolSpec("predict_anomaly", "Predict whether the next steps will be anomalous (F2A): probability per step, how it "
             "ranks against the file's earlier windows, the forecast band, and the most similar past windows with what "
             "followed them.", prediction.PredictArgs, prediction.predict_anomaly),
)
TOOL_NAMES = tuple(spec.name for spec in SPECS)


def _bind(spec: ToolSpec, ctx: ToolContext) -> BaseTool:
    def run(**kwargs: Any) -> dict[str, Any]:
        try:
            return spec.func(ctx, spec.args(**kwargs)).model_dump(mode="json")
        except AnomalyGraphError as exc:
            # The model sees the message and can correct its call; nothing else leaks.
            raise ToolException(str(exc)) from exc

    return StructuredTool.from_function(
        func=run, name=spec.name, description=spec.description, args_schema=spec.args, handle_tool_error=True,
    )


def build_tools(ctx: ToolContext, names: tuple[str, ...] | list[str] | None = None) -> list[BaseTool]:
    """LangChain tools bound to ``ctx``; ``names`` picks a subset in registry order."""
    wanted = set(names or TOOL_NAMES)
    unknown = wanted - set(TOOL_NAMES)
    if unknown:
        raise AnomalyGraphError(f"unknown tool(s) {sorted(unknown)}; known: {', '.join(TOOL_NAMES)}")
    return [_bind(spec, ctx) for spec in SPECS if spec.name in wanted]
