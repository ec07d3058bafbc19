"""Prompt templates shipped as files, versioned, loaded by name.

A name is a path under this package without the extension (``diagnosis/choose_detectors``).
Each file starts with a ``version: N`` line and a ``---`` separator; the rest is a
``str.format`` template. The version travels with the rendered prompt into logs and reports,
so a change of wording is visible when results change.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict

from anomalygraph.core.errors import ConfigError


class PromptTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: int
    text: str

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    def render(self, **values: object) -> str:
        try:
            return self.text.format(**values)
        except KeyError as exc:
            raise ConfigError(f"prompt {self.name} v{self.version} needs a value for {exc.args[0]!r}") from exc


@cache
def load_prompt(name: str) -> PromptTemplate:
    """The template ``anomalygraph/prompts/<name>.txt``."""
    parts = name.split("/")
    if any(not p or p in {".", ".."} for p in parts):
        raise ConfigError(f"bad prompt name {name!r}")
    resource = resources.files("anomalygraph").joinpath("prompts", *parts[:-1], f"{parts[-1]}.txt")
    if not resource.is_file():
        raise ConfigError(f"no prompt template named {name!r} in anomalygraph/prompts")
    raw = resource.read_text(encoding="utf-8")
    head, sep, body = raw.partition("\n---\n")
    if not sep or not head.startswith("version:"):
        raise ConfigError(f"prompt template {name!r} must start with 'version: N' and a '---' line")
    try:
        version = int(head.split(":", 1)[1])
    except ValueError as exc:
        raise ConfigError(f"prompt template {name!r}: bad version line {head!r}") from exc
    return PromptTemplate(name=name, version=version, text=body.strip())
