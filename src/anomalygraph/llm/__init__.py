"""The LLM layer: one OpenAI-compatible path to vLLM (Qwen3-VL) and to an embedded offline model.

Everything an agent needs::

    from anomalygraph.llm import get_chat_model, structured, plot_message, capabilities_of

    model = get_chat_model()                      # get_settings().llm: ANOMALYGRAPH_LLM_* / config file
    msg = plot_message("Anything odd?", capabilities=capabilities_of(model), image=png, series=ts)
    verdict = structured(model, Verdict, [msg])   # a valid Verdict, or StructuredOutputError

See docs/llm.md for serving vLLM and the embedded model. Names are imported on first use, so
``anomalygraph llm status`` and the health check start without loading LangChain. The settings
types live in :mod:`anomalygraph.core.llm_settings` (the ``llm`` section of
:func:`anomalygraph.core.settings.get_settings`) and are re-exported here.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "errors": [
        "EmbeddedServerError", "LLMContextLengthError", "LLMError", "LLMRateLimitError", "LLMRequestError",
        "LLMServerError", "LLMTimeoutError", "LLMUnavailableError", "ModelAssetError", "StructuredOutputError",
    ],
    "factory": ["USAGE", "capabilities_of", "get_chat_model"],
    "health": ["ServerHealth", "check_server"],
    "messages": ["has_image", "image_part", "plot_message"],
    "rendering": ["render_series"],
    "anomalygraph.core.llm_settings": ["CAPABILITY_PRESETS", "EmbeddedSettings", "LLMSettings", "ModelCapabilities", "Provider"],
    "scripted": ["ScriptedChatModel"],
    "structured": ["structured"],
    "usage": ["UsageLogger", "UsageRecord"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'anomalygraph.llm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module if "." in module else f"anomalygraph.llm.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
