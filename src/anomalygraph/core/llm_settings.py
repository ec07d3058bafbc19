"""The ``llm`` section of the settings: which model to talk to and what it can do.

Capabilities are declared, never probed: a vLLM server serving Qwen3-VL sees images and does
schema-guided decoding; the embedded llama.cpp server does neither and must be told which tool
to call. Each provider has a preset; any field of it can be overridden, e.g.
``ANOMALYGRAPH_LLM_CAPABILITIES__VISION=false`` for a text-only model behind vLLM.

Read it through :func:`anomalygraph.core.settings.get_settings` (``.llm``), which layers keyword
overrides over ``ANOMALYGRAPH_LLM_*`` variables over the config file over these defaults.
``LLMSettings()`` on its own reads the environment only.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "ANOMALYGRAPH_LLM_"
CACHE_DIR_ENV = "ANOMALYGRAPH_CACHE_DIR"
EMBEDDED_HOST = "127.0.0.1"
CAPABILITIES_KEY = "anomalygraph_capabilities"
"""The chat-model ``metadata`` key that holds its declared :class:`ModelCapabilities`."""


class Provider(StrEnum):
    embedded = "embedded"  # llama-cpp-python's OpenAI-compatible server, started by us on 127.0.0.1
    vllm = "vllm"  # a vLLM OpenAI-compatible server (production: Qwen3-VL)
    openai = "openai"  # any other OpenAI-compatible endpoint
    scripted = "scripted"  # replies read from a JSON script file: deterministic runs under a LangGraph server in tests


class ModelCapabilities(BaseModel):
    """What the served model and its server support; agents branch on this, not on model names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vision: bool = Field(description="accepts image parts (PNG as base64 data URLs) in user messages")
    tool_calling: bool = Field(description="answers with OpenAI-style tool calls")
    auto_tool_choice: bool = Field(
        description="can be trusted to pick a tool itself; when false, callers force the tool they want"
    )
    json_schema: bool = Field(
        description="the server constrains decoding to a JSON schema via response_format json_schema"
    )
    legacy_max_tokens: bool = Field(
        description="also send max_tokens, for servers that ignore max_completion_tokens"
    )


_EMBEDDED_CAPABILITIES = ModelCapabilities(
    vision=False, tool_calling=True, auto_tool_choice=False, json_schema=False, legacy_max_tokens=True
)

CAPABILITY_PRESETS: dict[Provider, ModelCapabilities] = {
    # Measured: forced tool choice works, automatic is unreliable, json_schema answers HTTP 500,
    # max_completion_tokens is ignored.
    Provider.embedded: _EMBEDDED_CAPABILITIES,
    # Qwen3-VL with --enable-auto-tool-choice --tool-call-parser hermes and structured outputs.
    Provider.vllm: ModelCapabilities(
        vision=True, tool_calling=True, auto_tool_choice=True, json_schema=True, legacy_max_tokens=False
    ),
    # Unknown server: assume the least and let the user declare more.
    Provider.openai: ModelCapabilities(
        vision=False, tool_calling=True, auto_tool_choice=True, json_schema=False, legacy_max_tokens=False
    ),
    # Stands in for the offline default, so graphs take the paths they take with the embedded model.
    Provider.scripted: _EMBEDDED_CAPABILITIES,
}

EmbeddedModelName = Literal["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "smollm2-135m"]
"""Packaged models (``llm.assets.ASSETS``); the 1.5B is stronger and about 2x slower than the 0.5B default."""


class EmbeddedSettings(BaseModel):
    """The offline default: a small GGUF model behind ``python -m llama_cpp.server``."""

    model_config = ConfigDict(extra="forbid")

    model: EmbeddedModelName = Field(
        "qwen2.5-coder-0.5b", description="packaged model to use when model_path is not given"
    )
    model_path: Path | None = Field(None, description="any local GGUF file instead of the packaged model")
    model_sha256: str | None = Field(None, description="optional SHA-256 pin for model_path")
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port")
    n_ctx: int = Field(4096, ge=256, description="context window in tokens")
    n_threads: int | None = Field(
        None, ge=1, description="CPU threads; default: all cores but one (llama.cpp collapses when oversubscribed)"
    )
    chat_format: str = Field("chatml-function-calling", description="llama.cpp chat format (tool calls need this one)")
    repack_weights: bool = Field(
        False,
        description="let llama.cpp repack weights into its extra CPU buffer types (AMX, ...); off because "
        "llama-cpp-python 0.3.36 crashes (SIGSEGV) on any batched prompt with them on CPUs with AMX",
    )
    startup_timeout_s: float = Field(180.0, gt=0, description="how long to wait for the model to load")
    auto_start: bool = Field(True, description="start a server when a command needs one and none runs")
    cache_dir: Path | None = Field(None, description=f"default: ${CACHE_DIR_ENV} or the user cache dir")

    @field_validator("model_sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ValueError("must be 64 hexadecimal characters")
        return value


class LLMSettings(BaseSettings):
    """Run-time LLM settings: ``ANOMALYGRAPH_LLM_<FIELD>``, nested fields joined by ``__``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    provider: Provider = Field(
        Provider.embedded, description="embedded, vllm, openai (any compatible server) or scripted (tests)"
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible base URL, e.g. http://gpu-box:8000/v1 (embedded: an already running server)"
    )
    model: str | None = Field(None, description="model name the server serves (vLLM: --served-model-name)")
    api_key: SecretStr = Field(SecretStr("not-needed"), description="sent as a bearer token")
    capabilities: ModelCapabilities = Field(
        default_factory=lambda: CAPABILITY_PRESETS[Provider.embedded],
        description="declared capabilities; unset fields come from the provider's preset",
    )
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(1024, gt=0, description="answer length cap, sent on every call")
    timeout_s: float | None = Field(
        None, gt=0, description="per-request timeout; default 600 s for the embedded CPU model, 120 s otherwise"
    )
    max_retries: int = Field(
        2, ge=0, le=10, description="transport retries (connection errors, timeouts, 429, 5xx) with backoff"
    )
    repair_retries: int = Field(2, ge=0, le=10, description="structured output: repair rounds after the first try")
    seed: int | None = Field(0, description="sampling seed where the server honours one")
    tool_call_format: Literal["server", "prompted"] = Field(
        "server",
        description="automatic tool choice: the server's tool calling, or prompted (tools described in the "
        "system prompt, the model's own <tool_call> text parsed; for llama.cpp, whose handler cannot answer in "
        "text when it may call a tool)",
    )
    script_file: Path | None = Field(
        None, description="scripted provider: a JSON list of replies (a string, or {\"tool_calls\": [...], \"content\": \"\"})"
    )
    embedded: EmbeddedSettings = Field(default_factory=EmbeddedSettings)

    @model_validator(mode="before")
    @classmethod
    def _fill_capabilities(cls, data: Any) -> Any:
        """Declared capability fields win; the rest come from the provider's preset."""
        if not isinstance(data, dict):
            return data
        try:
            provider = Provider(data.get("provider", Provider.embedded))
        except ValueError:
            return data  # the field's own validation names the bad provider
        declared = data.get("capabilities") or {}
        if not isinstance(declared, dict):
            return data
        merged = CAPABILITY_PRESETS[provider].model_dump() | declared
        return {**data, "capabilities": merged}

    @model_validator(mode="after")
    def _provider_needs(self) -> LLMSettings:
        needed = {
            Provider.vllm: ("base_url", "model"),
            Provider.openai: ("base_url", "model"),
            Provider.scripted: ("script_file",),
        }.get(self.provider, ())
        missing = [name for name in needed if not getattr(self, name)]
        if missing:
            raise ValueError(
                f"provider {self.provider.value} needs "
                + " and ".join(f"{n} ({ENV_PREFIX}{n.upper()})" for n in missing)
            )
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        return self

    def request_timeout(self) -> float:
        if self.timeout_s is not None:
            return self.timeout_s
        return 600.0 if self.provider is Provider.embedded else 120.0

    def cache_dir(self) -> Path:
        return self.embedded.cache_dir or user_cache_dir()


def user_cache_dir() -> Path:
    """``$ANOMALYGRAPH_CACHE_DIR``, else the platform's per-user cache folder."""
    if env := os.environ.get(CACHE_DIR_ENV):
        return Path(env).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "anomalygraph"
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "anomalygraph" / "Cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "anomalygraph"
