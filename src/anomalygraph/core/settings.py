"""Run-time settings: one object in three sections, layered by pydantic-settings, so nothing is hard-wired.

    settings = get_settings()                              # or get_settings("ag.yaml", llm={"max_tokens": 256})
    settings.data.roots, settings.data.benchmark_root      # where files may be read; the benchmark datasets
    settings.llm.provider, settings.llm.capabilities       # the LLM section (core/llm_settings.py)
    settings.output.dir, settings.output.results           # where runs write

Where a value comes from, highest first: keyword overrides (``get_settings(**overrides)``, one
mapping per section), environment variables, the config file, defaults. Each section reads its
own variables: ``ANOMALYGRAPH_DATA_ROOTS`` (a JSON list), ``ANOMALYGRAPH_LLM_<FIELD>`` (nested
fields joined by ``__``: ``ANOMALYGRAPH_LLM_CAPABILITIES__VISION``), ``ANOMALYGRAPH_OUTPUT_<FIELD>``.
The config file (``get_settings(config_file)`` or ``ANOMALYGRAPH_LLM_CONFIG_FILE``; YAML, or TOML
by its ``.toml`` suffix) holds ``llm:``, ``data:`` and ``output:`` sections, or the LLM section
alone at its top level. Provider capability presets fill the capability fields nobody declared.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from anomalygraph.core.errors import ConfigError
from anomalygraph.core.llm_settings import LLMSettings

CONFIG_FILE_ENV = "ANOMALYGRAPH_LLM_CONFIG_FILE"
DEFAULT_DATA_ROOT = Path("../shared/data")
"""The benchmark data beside the checkout (NAB/, SMAP_MSL/, UCR/, TSB-AD/); never copied into it."""


class DataSettings(BaseSettings):
    """Where data is read from: ``ANOMALYGRAPH_DATA_ROOTS='["/data/bench", "."]'``."""

    model_config = SettingsConfigDict(env_prefix="ANOMALYGRAPH_DATA_", extra="forbid")

    roots: list[Path] = Field(
        default_factory=lambda: [DEFAULT_DATA_ROOT, Path(".")],
        min_length=1,
        description="folders agents' file tools may read; the first also holds the benchmark datasets",
    )

    @property
    def benchmark_root(self) -> Path:
        """The folder holding NAB/, SMAP_MSL/, UCR/, TSB-AD/ (for ``bench``, the evals, tests): the first root."""
        return self.roots[0]


class OutputSettings(BaseSettings):
    """Where runs write: ``ANOMALYGRAPH_OUTPUT_DIR``, ``ANOMALYGRAPH_OUTPUT_RESULTS``."""

    model_config = SettingsConfigDict(env_prefix="ANOMALYGRAPH_OUTPUT_", extra="forbid")

    dir: Path = Field(Path("out"), description="where agents, graphs and evals write plots, reports and threads")
    results: Path = Field(Path("results"), description="where `anomalygraph bench` writes by default")


class UISettings(BaseSettings):
    """The web workspace (``anomalygraph ui``): ``ANOMALYGRAPH_UI_PORT``, ``ANOMALYGRAPH_UI_MAX_UPLOAD_MB``..."""

    model_config = SettingsConfigDict(env_prefix="ANOMALYGRAPH_UI_", extra="forbid")

    host: str = Field("127.0.0.1", description="address to bind; anything but loopback needs `anomalygraph ui --allow-remote`")
    port: int = Field(8501, ge=1, le=65535, description="port to serve on")
    max_upload_mb: float = Field(50.0, gt=0, le=2048, description="largest file the page accepts")
    uploads: Path | None = Field(None, description="folder uploads go to (default: <output dir>/uploads); the page reads it as one more data root")
    user: str | None = Field(None, max_length=100, description="name recorded on feedback marks (default: the login name)")


SECTION_TITLES = {"data": "data", "llm": "LLM", "output": "output", "ui": "web workspace"}


class Settings(BaseSettings):
    """All run-time settings; build it with :func:`get_settings`, which turns bad values into one-line errors."""

    model_config = SettingsConfigDict(env_prefix="ANOMALYGRAPH_", extra="forbid")

    data: DataSettings = Field(default_factory=DataSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)
    ui: UISettings = Field(default_factory=UISettings)
    config_file: Path | None = Field(None, description=f"the config file read, if any (${CONFIG_FILE_ENV})")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        assert isinstance(init_settings, InitSettingsSource)
        path = init_settings.init_kwargs.get("config_file") or os.environ.get(CONFIG_FILE_ENV)
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, SectionEnvSource(settings_cls))
        return (*sources, ConfigFileSource(settings_cls, Path(path))) if path else sources


def _sections(settings_cls: type[BaseSettings]) -> dict[str, type[BaseSettings]]:
    sections = {}
    for name, field in settings_cls.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings):
            sections[name] = field.annotation
    return sections


class SectionEnvSource(PydanticBaseSettingsSource):
    """Every section's own variables (its ``env_prefix``, ``__`` between nested fields), each read
    by pydantic-settings' ``EnvSettingsSource`` for that section."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # all the work is in __call__, one section at a time

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, section in _sections(self.settings_cls).items():
            try:
                found = EnvSettingsSource(section)()
            except SettingsError as exc:
                field = m.group(1) if (m := re.search(r'field "(\w+)"', str(exc))) else "?"
                env = f"{section.model_config.get('env_prefix', '')}{field}".upper()
                cause = f" ({exc.__cause__})" if exc.__cause__ else ""
                raise ConfigError(
                    f"invalid {SECTION_TITLES.get(name, name)} settings: {field} ({env}) is not valid JSON{cause}"
                ) from exc
            if found:
                values[name] = found
        return values


class ConfigFileSource(InitSettingsSource):
    """The config file's values, as if passed to the constructor, below the environment."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        self.path = Path(path).expanduser()
        data = _file_sections(read_config_file(self.path), self.path, set(_sections(settings_cls)))
        super().__init__(settings_cls, {**data, "config_file": self.path})


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping a YAML or TOML (by suffix) settings file holds."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    kind = "TOML" if path.suffix == ".toml" else "YAML"
    try:
        data = tomllib.loads(text) if kind == "TOML" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} is not valid {kind}: {' '.join(str(exc).split())}") from exc
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def _file_sections(data: dict[str, Any], path: Path, sections: set[str]) -> dict[str, Any]:
    """``llm:``/``data:``/``output:`` sections as they are; a file without any is the LLM section."""
    named = sorted(sections & set(data))
    if not named:
        return {"llm": data} if data else {}
    if stray := sorted(set(data) - sections):
        raise ConfigError(
            f"config file {path}: top-level keys {', '.join(stray)} beside the section(s) {', '.join(named)}; "
            f"put them under one of {', '.join(sorted(sections))}"
        )
    out = {}
    for name in named:
        value = data[name] or {}
        if not isinstance(value, dict):
            raise ConfigError(f"config file {path}: the {name!r} section must be a mapping, got {type(value).__name__}")
        out[name] = value
    return out


def _env_var(loc: tuple[Any, ...]) -> str | None:
    """The variable that sets the field at ``loc`` (list indices and below belong to the field's own variable)."""
    sections = _sections(Settings)
    if len(loc) < 2 or loc[0] not in sections:
        return CONFIG_FILE_ENV if loc == ("config_file",) else None
    path = []
    for part in loc[1:]:
        if not isinstance(part, str):
            break
        path.append(part)
    prefix = sections[loc[0]].model_config.get("env_prefix", "")
    return (prefix + "__".join(path)).upper()


def settings_error(exc: ValidationError) -> ConfigError:
    """One line naming each bad setting, the variable that sets it, and what is wrong with it."""
    errors = exc.errors()
    heads = {err["loc"][0] if err["loc"] else None for err in errors}
    section = next(iter(heads)) if len(heads) == 1 and next(iter(heads)) in SECTION_TITLES else None
    problems = []
    for err in errors:
        loc = tuple(err["loc"])
        name = ".".join(str(p) for p in (loc[1:] if section else loc))
        env = _env_var(loc)
        where = f"{name} ({env})" if name and env else name
        message = err["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    title = f"{SECTION_TITLES[section]} " if section else ""
    return ConfigError(f"invalid {title}settings: " + "; ".join(problems))


def get_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """The settings: ``overrides`` (a mapping per section: ``llm={"max_tokens": 256}``) over the
    environment over ``config_file`` (default ``$ANOMALYGRAPH_LLM_CONFIG_FILE``) over defaults.

    Raises :class:`ConfigError` with one line naming the setting and its variable.
    """
    if config_file is not None:
        overrides["config_file"] = Path(config_file)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise settings_error(exc) from exc
