"""Which model to talk to and what it can do, from env vars (``ANOMALYGRAPH_LLM_*``) and a file.

Capabilities are declared, never probed: a vLLM server serving Qwen3-VL sees images and does
schema-guided decoding; the embedded llama.cpp server does neither and must be told which tool
to call. Each provider has a preset; any field of it can be overridden, e.g.
``ANOMALYGRAPH_LLM_CAPABILITIES__VISION=false`` for a text-only model behind vLLM.

Precedence, highest first: keyword overrides, environment variables, the config file
(``ANOMALYGRAPH_LLM_CONFIG_FILE`` or an explicit path; YAML or TOML, top level or an ``llm:``
section), defaults.
"""

from __future__ import annotations

import os
import sys
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from anomalygraph.core.errors import ConfigError

ENV_PREFIX = "ANOMALYGRAPH_LLM_"
CONFIG_FILE_ENV = "ANOMALYGRAPH_LLM_CONFIG_FILE"
CACHE_DIR_ENV = "ANOMALYGRAPH_CACHE_DIR"
EMBEDDED_HOST = "127.0.0.1"


class Provider(StrEnum):
    embedded = "embedded"  # llama-cpp-python's OpenAI-compatible server, started by us on 127.0.0.1
    vllm = "vllm"  # a vLLM OpenAI-compatible server (production: Qwen3-VL)
    openai = "openai"  # any other OpenAI-compatible endpoint


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


CAPABILITY_PRESETS: dict[Provider, ModelCapabilities] = {
    # Measured: forced tool choice works, automatic is unreliable, json_schema answers HTTP 500,
    # max_completion_tokens is ignored.
    Provider.embedded: ModelCapabilities(
        vision=False, tool_calling=True, auto_tool_choice=False, json_schema=False, legacy_max_tokens=True
    ),
    # Qwen3-VL with --enable-auto-tool-choice --tool-call-parser hermes and structured outputs.
    Provider.vllm: ModelCapabilities(
        vision=True, tool_calling=True, auto_tool_choice=True, json_schema=True, legacy_max_tokens=False
    ),
    # Unknown server: assume the least and let the user declare more.
    Provider.openai: ModelCapabilities(
        vision=False, tool_calling=True, auto_tool_choice=True, json_schema=False, legacy_max_tokens=False
    ),
}

EmbeddedModelName = Literal["qwen2.5-coder-0.5b", "smollm2-135m"]


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
    """Run-time LLM settings; see the module docstring for where values come from."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    provider: Provider = Field(Provider.embedded, description="embedded, vllm or openai (any compatible server)")
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
    embedded: EmbeddedSettings = Field(default_factory=EmbeddedSettings)

    @model_validator(mode="before")
    @classmethod
    def _fill_capabilities(cls, data: Any) -> Any:
        """Declared capability fields win; the rest come from the provider's preset."""
        if not isinstance(data, dict):
            return data
        provider = Provider(data.get("provider", Provider.embedded))
        declared = data.get("capabilities") or {}
        if isinstance(declared, ModelCapabilities):
            return data
        if not isinstance(declared, dict):
            return data
        merged = CAPABILITY_PRESETS[provider].model_dump() | declared
        return {**data, "capabilities": merged}

    @model_validator(mode="after")
    def _remote_needs_url(self) -> LLMSettings:
        if self.provider is not Provider.embedded:
            missing = [name for name in ("base_url", "model") if not getattr(self, name)]
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


def read_config_file(path: Path) -> dict[str, Any]:
    """The ``llm`` section of a YAML/TOML file (or the whole file when it has no such section)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"LLM config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"LLM config file {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from exc
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"LLM config file {path} must hold a mapping, got {type(data).__name__}")
    section = data.get("llm", data)
    if not isinstance(section, dict):
        raise ConfigError(f"LLM config file {path}: the 'llm' section must be a mapping")
    return section


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _explicit(settings: BaseModel) -> dict[str, Any]:
    """Only the fields a source actually set, recursively (so presets can fill the rest)."""
    out: dict[str, Any] = {}
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, BaseModel):
            out[name] = _explicit(value)
        elif isinstance(value, SecretStr):
            out[name] = value.get_secret_value()
        else:
            out[name] = value
    return out


def settings_error(exc: ValidationError) -> ConfigError:
    """One line naming the setting, its env var and what is wrong with it."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        env = ENV_PREFIX + "__".join(str(p) for p in err["loc"]).upper()
        where = f"{loc} ({env})" if loc else "settings"
        problems.append(f"{where}: {err['msg']}")
    return ConfigError("invalid LLM settings: " + "; ".join(problems))


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> LLMSettings:
    """Settings from overrides > env vars > config file > defaults, as one validated object."""
    path = config_file or os.environ.get(CONFIG_FILE_ENV)
    from_file = read_config_file(Path(path)) if path else {}
    try:
        from_env = _explicit(_EnvOnly())
        data = _deep_merge(_deep_merge(from_file, from_env), overrides)
        # model_validate does not read the environment again, so the precedence above holds.
        return LLMSettings.model_validate(data)
    except ValidationError as exc:
        raise settings_error(exc) from exc


class _EnvOnly(BaseSettings):
    """The same fields read from the environment alone, unvalidated across fields."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore")

    provider: Provider | None = None
    base_url: str | None = None
    model: str | None = None
    api_key: SecretStr | None = None
    capabilities: dict[str, bool] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    timeout_s: float | None = None
    max_retries: int | None = None
    repair_retries: int | None = None
    seed: int | None = None
    embedded: dict[str, Any] | None = None
