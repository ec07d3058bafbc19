from __future__ import annotations

from pathlib import Path

import pytest

from anomalygraph.core.errors import ConfigError
from anomalygraph.core.llm_settings import (
    CAPABILITY_PRESETS,
    LLMSettings,
    Provider,
    user_cache_dir,
)
from anomalygraph.core.settings import get_settings


def load_settings(config_file: Path | None = None, **overrides: object) -> LLMSettings:
    """The LLM section as callers get it (``load_settings`` was the LLM-only accessor before the one Settings)."""
    return get_settings(config_file, llm=overrides).llm


def test_defaults_are_the_embedded_model_with_its_measured_capabilities() -> None:
    s = load_settings()
    assert s.provider is Provider.embedded
    assert s.capabilities == CAPABILITY_PRESETS[Provider.embedded]
    assert not s.capabilities.vision and not s.capabilities.json_schema and s.capabilities.legacy_max_tokens
    assert s.request_timeout() == 600.0


def test_env_vars_select_vllm_and_override_one_capability(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANOMALYGRAPH_LLM_PROVIDER", "vllm")
    monkeypatch.setenv("ANOMALYGRAPH_LLM_BASE_URL", "http://gpu:8000/v1")
    monkeypatch.setenv("ANOMALYGRAPH_LLM_MODEL", "qwen3-vl")
    monkeypatch.setenv("ANOMALYGRAPH_LLM_CAPABILITIES__VISION", "false")
    monkeypatch.setenv("ANOMALYGRAPH_LLM_EMBEDDED__N_CTX", "8192")
    s = load_settings()
    assert s.provider is Provider.vllm and s.model == "qwen3-vl"
    assert s.capabilities.vision is False  # declared
    assert s.capabilities.json_schema is True  # from the vLLM preset
    assert s.embedded.n_ctx == 8192
    assert s.request_timeout() == 120.0
    # The plain BaseSettings constructor reads the same variables.
    assert LLMSettings().capabilities == s.capabilities


def test_precedence_overrides_then_env_then_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "anomalygraph.yaml"
    cfg.write_text("llm:\n  max_tokens: 77\n  temperature: 0.5\n  embedded:\n    n_ctx: 2048\n    port: 9999\n")
    monkeypatch.setenv("ANOMALYGRAPH_LLM_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("ANOMALYGRAPH_LLM_TEMPERATURE", "0.25")
    s = load_settings(embedded={"port": 1234})
    assert s.max_tokens == 77  # file
    assert s.temperature == 0.25  # env beats file
    assert s.embedded.n_ctx == 2048  # file, kept beside the override of a sibling field
    assert s.embedded.port == 1234  # override beats file


def test_toml_file_without_section(tmp_path: Path) -> None:
    cfg = tmp_path / "llm.toml"
    cfg.write_text('provider = "openai"\nbase_url = "http://x:1/v1"\nmodel = "m"\n[capabilities]\nvision = true\n')
    s = load_settings(cfg)
    assert s.provider is Provider.openai and s.capabilities.vision is True
    assert s.capabilities.json_schema is False  # the generic preset assumes no guided decoding


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"provider": "vllm"}, "base_url (ANOMALYGRAPH_LLM_BASE_URL)"),
        ({"max_tokens": 0}, "max_tokens (ANOMALYGRAPH_LLM_MAX_TOKENS)"),
        ({"embedded": {"n_ctx": 10}}, "embedded.n_ctx (ANOMALYGRAPH_LLM_EMBEDDED__N_CTX)"),
        ({"embedded": {"model_sha256": "xyz"}}, "model_sha256"),
        ({"base_url": "gpu:8000"}, "http://"),
        ({"capabilities": {"telepathy": True}}, "capabilities.telepathy"),
    ],
)
def test_bad_settings_name_the_field_and_env_var(overrides: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match="invalid LLM settings") as info:
        load_settings(**overrides)
    assert needle in str(info.value)


def test_missing_or_malformed_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("llm: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid"):
        load_settings(bad)


def test_cache_dir_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANOMALYGRAPH_CACHE_DIR", str(tmp_path / "c"))
    assert user_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ANOMALYGRAPH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "xdg" / "anomalygraph"
