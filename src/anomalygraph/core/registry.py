"""One registry per extension point (detectors, forecasters): classes by name, built-ins imported lazily.

A built-in is named by ``"module:Class"`` and imported the first time it is asked for, so an optional
heavy implementation (torch models, granite-tsfm) costs nothing until used.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Generic, TypeVar

from anomalygraph.core.errors import ConfigError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    def __init__(self, kind: str, builtin: Mapping[str, str]) -> None:
        self.kind = kind
        self.builtin = dict(builtin)
        self.registered: dict[str, T] = {}

    def register(self, cls: T) -> T:
        """Class decorator adding ``cls`` under ``cls.name``; a second class under one name is refused."""
        name = cls.name  # type: ignore[attr-defined]
        existing = self.registered.get(name)
        if existing is not None and existing is not cls:
            raise ConfigError(f"{self.kind} name '{name}' is already registered by {existing.__qualname__}")
        self.registered[name] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(set(self.builtin) | set(self.registered))

    def get(self, name: str) -> T:
        if name in self.registered:
            return self.registered[name]
        if name not in self.builtin:
            raise ConfigError(f"unknown {self.kind} '{name}'; registered: {', '.join(self.names())}")
        module_name, _, attr = self.builtin[name].partition(":")
        cls = getattr(importlib.import_module(module_name), attr)
        return self.register(cls)
