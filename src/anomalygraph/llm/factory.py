"""``get_chat_model(settings)``: one LangChain chat model for vLLM, the embedded server, or any
OpenAI-compatible endpoint: the same ``ChatOpenAI`` path for all three.

The returned model carries its declared :class:`ModelCapabilities` (read them back with
:func:`capabilities_of`), logs token usage and latency of every call, retries transient
failures inside the OpenAI client, and turns what is left into one clear :class:`LLMError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable, RunnableBinding

from anomalygraph.core.errors import ConfigError
from anomalygraph.llm.assets import ASSETS
from anomalygraph.llm.settings import LLMSettings, ModelCapabilities, Provider, load_settings
from anomalygraph.llm.usage import UsageLogger

CAPABILITIES_KEY = "anomalygraph_capabilities"

USAGE = UsageLogger()
"""Process-wide record of model calls made through :func:`get_chat_model` (bounded)."""


def get_chat_model(
    settings: LLMSettings | None = None,
    *,
    callbacks: Sequence[BaseCallbackHandler] = (),
) -> BaseChatModel:
    """The chat model ``settings`` describe; for the embedded provider, a ready local server.

    With the embedded provider and no ``base_url``, this finds the server ``anomalygraph llm serve``
    started, or starts one for this process (stopped at exit) when ``embedded.auto_start`` is on.
    """
    try:
        from anomalygraph.llm.client import CompatChatOpenAI
    except ImportError as exc:  # pragma: no cover - only without the dependency
        raise ConfigError(
            f"the LLM layer needs langchain-openai ({exc}); install it with `pip install 'langchain-openai>=1.7,<1.8'`"
        ) from exc
    settings = settings or load_settings()
    embedded_url = server_log = None
    if settings.provider is Provider.embedded and settings.base_url is None:
        from anomalygraph.llm.embedded import ensure_server

        endpoint = ensure_server(settings)
        base_url, model = endpoint.base_url, endpoint.alias
        embedded_url, server_log = endpoint.base_url, endpoint.log_path
    elif settings.provider is Provider.embedded:
        base_url = settings.base_url
        model = settings.model or (
            settings.embedded.model_path.stem if settings.embedded.model_path else ASSETS[settings.embedded.model].alias
        )
    else:
        base_url, model = settings.base_url, settings.model
    assert base_url is not None and model is not None  # guaranteed by LLMSettings validation
    return CompatChatOpenAI(
        model=model,
        base_url=base_url,
        api_key=settings.api_key,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        timeout=settings.request_timeout(),
        max_retries=settings.max_retries,
        seed=settings.seed,
        use_responses_api=False,
        # llama.cpp's server doubles function names in streamed forced tool calls; ask for them whole.
        disable_streaming="tool_calling" if settings.provider is Provider.embedded else False,
        capabilities=settings.capabilities,
        provider=settings.provider.value,
        repair_retries=settings.repair_retries,
        embedded_base_url=embedded_url,
        server_log=server_log,
        callbacks=[USAGE, *callbacks],
        metadata={CAPABILITIES_KEY: settings.capabilities.model_dump(), "anomalygraph_provider": settings.provider.value},
    )


def model_name(model: Any) -> str:
    """The served model's name for provenance (``model_name``/``model`` attribute, else the class)."""
    for attr in ("model_name", "model"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


def capabilities_of(model: Runnable | BaseChatModel) -> ModelCapabilities | None:
    """The capabilities a model was declared with (through ``bind``/``bind_tools`` wrappers too).

    Models not made by :func:`get_chat_model` (fakes in tests) can declare theirs in
    ``metadata={"anomalygraph_capabilities": {...}}``; ``None`` when nothing was declared.
    """
    seen = 0
    while isinstance(model, RunnableBinding) and seen < 16:
        model = model.bound
        seen += 1
    caps = getattr(model, "capabilities", None)
    if isinstance(caps, ModelCapabilities):
        return caps
    meta = getattr(model, "metadata", None) or {}
    declared = meta.get(CAPABILITIES_KEY)
    if isinstance(declared, ModelCapabilities):
        return declared
    if isinstance(declared, dict):
        return ModelCapabilities.model_validate(declared)
    return None
