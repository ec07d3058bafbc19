"""``get_chat_model(settings)``: one LangChain chat model for vLLM, the embedded server, or any
OpenAI-compatible endpoint: the same ``ChatOpenAI`` path for all three (and, for tests, the
``scripted`` provider: a :class:`~anomalygraph.llm.scripted.ScriptedChatModel` read from a file).

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
from anomalygraph.core.llm_settings import (
    CAPABILITIES_KEY,
    CAPABILITY_PRESETS,
    LLMSettings,
    ModelCapabilities,
    Provider,
)
from anomalygraph.core.settings import Settings, get_settings
from anomalygraph.llm.assets import ASSETS
from anomalygraph.llm.usage import UsageLogger

USAGE = UsageLogger()
"""Process-wide record of model calls made through :func:`get_chat_model` (bounded)."""


def get_chat_model(
    settings: LLMSettings | Settings | None = None,
    *,
    callbacks: Sequence[BaseCallbackHandler] = (),
) -> BaseChatModel:
    """The chat model ``settings`` describe (default: ``get_settings().llm``); for the embedded
    provider, a ready local server.

    With the embedded provider and no ``base_url``, this finds the server ``anomalygraph llm serve``
    started, or starts one for this process (stopped at exit) when ``embedded.auto_start`` is on.
    The scripted provider answers from ``script_file`` with the declared capabilities.
    """
    if isinstance(settings, Settings):
        settings = settings.llm
    settings = settings or get_settings().llm
    if settings.provider is Provider.scripted:
        from anomalygraph.llm.scripted import ScriptedChatModel

        assert settings.script_file is not None  # guaranteed by LLMSettings validation
        return ScriptedChatModel.from_file(settings.script_file, settings.capabilities, callbacks=[USAGE, *callbacks])
    try:
        from anomalygraph.llm.client import CompatChatOpenAI
    except ImportError as exc:  # pragma: no cover - only without the dependency
        raise ConfigError(
            f"the LLM layer needs langchain-openai ({exc}); install it with `pip install 'langchain-openai>=1.7,<1.8'`"
        ) from exc
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
        tool_call_format=settings.tool_call_format,
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


def capabilities_or_text_only(model: Runnable | BaseChatModel) -> ModelCapabilities:
    """The declared capabilities, or, when none were declared, those of an unknown OpenAI-compatible
    server without vision: plots then go to the model as text."""
    return capabilities_of(model) or CAPABILITY_PRESETS[Provider.openai].model_copy(update={"vision": False})


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


# ------------------------------------------------------------ models by name
DEFAULT_MODEL = "settings"
"""The model name graph contexts default to: the one the LLM settings describe."""
NO_MODEL = "none"

_NAMED: dict[str, BaseChatModel] = {}
_FROM_SETTINGS: dict[str, BaseChatModel] = {}
_CAPPED: dict[tuple[int, int, bool], tuple[BaseChatModel, BaseChatModel]] = {}


def register_chat_model(model: BaseChatModel, name: str | None = None) -> str:
    """Make an in-process model (a test double, one the CLI already started) reachable by name.

    Graph contexts hold names, not models, so they stay plain and serialisable; this registry is
    where the live objects are kept, for the life of the process.
    """
    name = name or f"instance:{type(model).__name__}:{id(model):x}"
    if name in (DEFAULT_MODEL, NO_MODEL):
        raise ConfigError(f"model name {name!r} is reserved")
    _NAMED[name] = model
    return name


def model_ref(model: BaseChatModel | str | None) -> str | None:
    """A context's model field: names pass through, a model object is registered and named."""
    if model is None or isinstance(model, str):
        return None if model == NO_MODEL else model
    return register_chat_model(model)


def chat_model(name: str | None, *, config_file: str | None = None) -> BaseChatModel | None:
    """The model a context names: ``None``/``"none"``: no model; ``"settings"``: built from the LLM
    settings (``config_file``, else the environment's) once per process and configuration,
    starting the embedded server when that is the provider; any other name: one given to
    :func:`register_chat_model`."""
    if name is None or name == NO_MODEL:
        return None
    if name == DEFAULT_MODEL:
        settings = get_settings(config_file).llm
        key = settings.model_dump_json()
        if key not in _FROM_SETTINGS:
            _FROM_SETTINGS[key] = get_chat_model(settings)
        return _FROM_SETTINGS[key]
    if name not in _NAMED:
        known = ", ".join([DEFAULT_MODEL, NO_MODEL, *sorted(_NAMED)])
        raise ConfigError(f"unknown chat model {name!r}; known: {known}")
    return _NAMED[name]


def forget_models() -> None:
    """Drop every registered, settings-built and capped model (tests; a process that changes settings)."""
    _NAMED.clear()
    _FROM_SETTINGS.clear()
    _CAPPED.clear()


def capped(model: BaseChatModel, max_tokens: int, *, stream: bool = True) -> BaseChatModel:
    """A copy of ``model`` with its answer cap lowered to ``max_tokens`` (where it has one) and,
    with ``stream=False``, streaming off; made once per model and cap."""
    key = (id(model), max_tokens, stream)
    cached = _CAPPED.get(key)
    if cached is None or cached[0] is not model:
        update: dict[str, object] = {} if stream else {"disable_streaming": True}
        if "max_tokens" in type(model).model_fields:
            current = getattr(model, "max_tokens", None)
            update["max_tokens"] = min(max_tokens, current) if current else max_tokens
        cached = (model, model.model_copy(update=update) if update else model)
        _CAPPED[key] = cached
    return cached[1]
