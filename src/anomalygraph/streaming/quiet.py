"""Import Apache Beam without its import-time root-logger warning (about optional GCP libraries).

``logging.warning`` on a root logger without handlers calls ``basicConfig``, which would leave a
handler printing every later library warning; a temporary ``NullHandler`` and level prevent both.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType


def quiet_import(name: str) -> ModuleType:
    root = logging.getLogger()
    guard, level = logging.NullHandler(), root.level
    root.addHandler(guard)
    root.setLevel(logging.ERROR)
    try:
        return importlib.import_module(name)
    finally:
        root.removeHandler(guard)
        root.setLevel(level)
