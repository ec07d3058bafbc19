"""What every graph's run-time context shares: plain, serialisable settings with defaults.

LangGraph passes a context to each run (``context_schema=``); under ``langgraph dev`` or the
LangGraph server a run may bring none, or a JSON object. So contexts hold only names and
numbers: the chat model is a *name* resolved at run time (:func:`anomalygraph.llm.factory.chat_model`),
the data roots are paths defaulting to the settings', and caches live in the modules that fill
them, never in the context.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel

from anomalygraph.core.device import cuda_available
from anomalygraph.llm.factory import DEFAULT_MODEL, chat_model, model_ref

C = TypeVar("C", bound="RunContext")


@dataclass(kw_only=True)
class RunContext:
    """``model``: ``"settings"`` (the configured model, the default), ``None`` (no model), or a name
    given to ``register_chat_model``; a model object passed here is registered and replaced by
    its name. ``data_roots``: folders files may be read from (``None``: the settings' roots).
    ``gpu``: whether heavy detectors may run (``None``: whether CUDA is available)."""

    model: Any = DEFAULT_MODEL
    llm_config: str | None = None
    """An LLM settings file for the ``"settings"`` model (default: the environment's)."""
    data_roots: list[str] | None = None
    gpu: bool | None = None

    def __post_init__(self) -> None:
        self.model = model_ref(self.model)
        if self.data_roots is not None:
            self.data_roots = [str(Path(p)) for p in self.data_roots]
        if self.llm_config is not None:
            self.llm_config = str(self.llm_config)

    def roots(self) -> list[Path]:
        if self.data_roots is None:
            from anomalygraph.core.settings import get_settings

            return [Path(p) for p in get_settings().data.roots]
        return [Path(p) for p in self.data_roots]

    def chat_model(self) -> BaseChatModel | None:
        return chat_model(self.model, config_file=self.llm_config)

    def has_gpu(self) -> bool:
        return cuda_available() if self.gpu is None else self.gpu


def context_of(runtime: Any, cls: type[C]) -> C:
    """The run's context as ``cls``: as given, built from a JSON object, or the defaults."""
    ctx = getattr(runtime, "context", None)
    if isinstance(ctx, cls):
        return ctx
    if isinstance(ctx, dict):
        return cls(**ctx)
    return cls()
