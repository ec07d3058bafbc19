"""The one Settings object: its sections, the one data-roots variable, layering with a config file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from anomalygraph.core.errors import ConfigError
from anomalygraph.core.llm_settings import CAPABILITY_PRESETS, LLMSettings, Provider
from anomalygraph.core.settings import (
    DEFAULT_DATA_ROOT,
    DataSettings,
    OutputSettings,
    Settings,
    get_settings,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ANOMALYGRAPH_* from the shell or the Makefile: each test sets what it reads."""
    for key in list(os.environ):
        if key.startswith("ANOMALYGRAPH_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ANOMALYGRAPH_CACHE_DIR", str(tmp_path / "cache"))


def test_defaults_by_section() -> None:
    s = get_settings()
    assert isinstance(s, Settings)
    assert isinstance(s.data, DataSettings) and isinstance(s.llm, LLMSettings) and isinstance(s.output, OutputSettings)
    assert s.data.roots == [Path("../shared/data"), Path(".")]
    assert s.data.benchmark_root == DEFAULT_DATA_ROOT == Path("../shared/data")
    assert s.output.dir == Path("out") and s.output.results == Path("results")
    assert s.llm.provider is Provider.embedded and s.llm.capabilities == CAPABILITY_PRESETS[Provider.embedded]
    assert s.config_file is None


def test_one_data_roots_variable_sets_the_tool_roots_and_the_benchmark_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANOMALYGRAPH_DATA_ROOTS", json.dumps(["/data/bench", "/data/mine"]))
    s = get_settings()
    assert s.data.roots == [Path("/data/bench"), Path("/data/mine")]
    assert s.data.benchmark_root == Path("/data/bench")


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("/not/json", "roots (ANOMALYGRAPH_DATA_ROOTS) is not valid JSON"),
        ("[]", "roots (ANOMALYGRAPH_DATA_ROOTS): List should have at least 1 item"),
    ],
)
def test_bad_data_roots_name_the_variable(monkeypatch: pytest.MonkeyPatch, value: str, needle: str) -> None:
    monkeypatch.setenv("ANOMALYGRAPH_DATA_ROOTS", value)
    with pytest.raises(ConfigError, match="invalid data settings") as info:
        get_settings()
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_output_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ANOMALYGRAPH_OUTPUT_DIR", str(tmp_path / "o"))
    monkeypatch.setenv("ANOMALYGRAPH_OUTPUT_RESULTS", str(tmp_path / "r"))
    s = get_settings()
    assert s.output.dir == tmp_path / "o" and s.output.results == tmp_path / "r"


SECTIONED_YAML = """\
data:
  roots: [/from/file, .]
llm:
  max_tokens: 77
  temperature: 0.5
  embedded:
    n_ctx: 2048
    port: 9999
output:
  dir: file-out
  results: file-results
"""


def test_precedence_overrides_then_env_then_file_then_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "anomalygraph.yaml"
    cfg.write_text(SECTIONED_YAML)
    monkeypatch.setenv("ANOMALYGRAPH_LLM_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("ANOMALYGRAPH_LLM_TEMPERATURE", "0.25")
    monkeypatch.setenv("ANOMALYGRAPH_OUTPUT_DIR", "env-out")
    s = get_settings(llm={"embedded": {"port": 1234}}, output={"results": "kw-results"})
    assert s.config_file == cfg
    assert s.data.roots == [Path("/from/file"), Path(".")]  # file over defaults
    assert s.llm.max_tokens == 77  # file
    assert s.llm.temperature == 0.25  # env over file
    assert s.llm.embedded.n_ctx == 2048  # file, kept beside the override of a sibling field
    assert s.llm.embedded.port == 1234  # override over file
    assert s.llm.repair_retries == 2  # default
    assert s.output.dir == Path("env-out")  # env over file
    assert s.output.results == Path("kw-results")  # override over file


def test_explicit_file_beats_the_variable_and_toml_sections_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ignored = tmp_path / "ignored.yaml"
    ignored.write_text("llm:\n  max_tokens: 1\n")
    monkeypatch.setenv("ANOMALYGRAPH_LLM_CONFIG_FILE", str(ignored))
    cfg = tmp_path / "ag.toml"
    cfg.write_text('[data]\nroots = ["/t"]\n[llm]\nmax_tokens = 55\n[llm.embedded]\nn_ctx = 1024\n')
    s = get_settings(cfg)
    assert s.config_file == cfg
    assert s.data.roots == [Path("/t")] and s.llm.max_tokens == 55 and s.llm.embedded.n_ctx == 1024


def test_presets_fill_what_the_layers_leave_undeclared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "ag.yaml"
    cfg.write_text("llm:\n  provider: vllm\n  base_url: http://gpu:8000/v1\n  model: qwen3-vl\n  capabilities:\n    vision: false\n")
    s = get_settings(cfg)
    assert s.llm.capabilities.vision is False  # declared in the file
    assert s.llm.capabilities.json_schema is True  # from the vLLM preset
    # the environment changes the provider: the preset that fills the rest follows it
    monkeypatch.setenv("ANOMALYGRAPH_LLM_PROVIDER", "openai")
    s = get_settings(cfg)
    assert s.llm.provider is Provider.openai and s.llm.capabilities.json_schema is False
    assert s.llm.capabilities.vision is False


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("data:\n  roots: [/x]\nprovider: vllm\n", "top-level keys provider beside the section(s) data"),
        ("llm: [1, 2]\n", "the 'llm' section must be a mapping"),
        ("- 1\n- 2\n", "must hold a mapping"),
        ("llm: [1, 2\n", "is not valid YAML"),
        ("data:\n  roots: [/x]\n  folders: [/y]\n", "invalid data settings: folders (ANOMALYGRAPH_DATA_FOLDERS)"),
    ],
)
def test_bad_config_files_fail_in_one_line(tmp_path: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "ag.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        get_settings(cfg)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANOMALYGRAPH_LLM_CONFIG_FILE", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match=r"config file .*nope\.yaml does not exist"):
        get_settings()


def test_unknown_section_or_field_is_refused() -> None:
    with pytest.raises(ConfigError, match="invalid settings: paths: Extra inputs"):
        get_settings(paths={"x": 1})
    with pytest.raises(ConfigError, match=r"invalid output settings: folder \(ANOMALYGRAPH_OUTPUT_FOLDER\)"):
        get_settings(output={"folder": "x"})


def test_errors_in_two_sections_name_both() -> None:
    with pytest.raises(ConfigError) as info:
        get_settings(llm={"max_tokens": 0}, data={"roots": []})
    message = str(info.value)
    assert message.startswith("invalid settings: ")
    assert "llm.max_tokens (ANOMALYGRAPH_LLM_MAX_TOKENS)" in message and "data.roots (ANOMALYGRAPH_DATA_ROOTS)" in message


def test_scripted_provider_needs_a_script_file_and_gets_the_embedded_like_preset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANOMALYGRAPH_LLM_PROVIDER", "scripted")
    with pytest.raises(ConfigError, match=r"provider scripted needs script_file \(ANOMALYGRAPH_LLM_SCRIPT_FILE\)"):
        get_settings()
    script = tmp_path / "script.json"
    script.write_text('["hello"]')
    monkeypatch.setenv("ANOMALYGRAPH_LLM_SCRIPT_FILE", str(script))
    s = get_settings()
    caps = s.llm.capabilities
    assert s.llm.provider is Provider.scripted and s.llm.script_file == script
    assert (caps.vision, caps.tool_calling, caps.auto_tool_choice, caps.json_schema) == (False, True, False, False)
    monkeypatch.setenv("ANOMALYGRAPH_LLM_CAPABILITIES__VISION", "true")
    assert get_settings().llm.capabilities.vision is True


def test_scripted_provider_from_the_environment_gives_a_scripted_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from anomalygraph.llm.factory import capabilities_of, get_chat_model
    from anomalygraph.llm.scripted import ScriptedChatModel

    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"tool_calls": [{"name": "profile", "args": {"path": "a.csv"}}], "content": ""}, "done"]))
    monkeypatch.setenv("ANOMALYGRAPH_LLM_PROVIDER", "scripted")
    monkeypatch.setenv("ANOMALYGRAPH_LLM_SCRIPT_FILE", str(script))
    monkeypatch.setenv("ANOMALYGRAPH_LLM_CAPABILITIES__AUTO_TOOL_CHOICE", "true")
    settings = get_settings()
    for model in (get_chat_model(), get_chat_model(settings), get_chat_model(settings.llm)):
        assert isinstance(model, ScriptedChatModel)
        assert capabilities_of(model) == settings.llm.capabilities
        assert capabilities_of(model).auto_tool_choice is True
        first = model.invoke("go")
        assert first.tool_calls[0]["name"] == "profile" and first.tool_calls[0]["args"] == {"path": "a.csv"}
        assert model.invoke("and?").content == "done"
        assert model.invoke("again?").content == "done"  # the last reply repeats
