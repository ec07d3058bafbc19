"""Versioned forecaster artifacts, written atomically: a half-written model is never loaded.

A version is a directory ``<root>/<key>/v000002/``. It is written under a temporary name, every
file and the directory are fsynced, and only then renamed into place (``os.rename`` is atomic on
one filesystem). So the newest ``vNNNNNN`` directory is always complete; a crash before the rename
leaves a ``.tmp-*`` folder that readers ignore and the next publish removes. Readers poll
:meth:`ModelStore.latest` (one directory listing), which is how the running pipeline swaps models.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from anomalygraph.core.errors import ConfigError
from anomalygraph.detectors.calm import QuantileForecaster, get_forecaster_class

MODEL = "model"
META = "meta.json"
_VERSION = re.compile(r"^v(\d{6})$")


def key_dir_name(key: str) -> str:
    """A filesystem-safe, collision-free folder name for a series key."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", key)[:60].strip("._") or "key"
    return f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ModelStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def key_dir(self, key: str) -> Path:
        return self.root / key_dir_name(key)

    def versions(self, key: str) -> list[int]:
        directory = self.key_dir(key)
        if not directory.is_dir():
            return []
        return sorted(int(m.group(1)) for p in directory.iterdir() if (m := _VERSION.match(p.name)) and p.is_dir())

    def latest(self, key: str) -> int | None:
        found = self.versions(key)
        return found[-1] if found else None

    def publish(self, key: str, forecaster: QuantileForecaster, meta: dict[str, Any]) -> int:
        """Write ``forecaster`` as the next version of ``key``; returns the version number."""
        directory = self.key_dir(key)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        version = (self.latest(key) or 0) + 1
        tmp = directory / f".tmp-v{version:06d}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        forecaster.save(tmp / MODEL)
        (tmp / META).write_text(json.dumps({"key": key, "version": version, "forecaster": forecaster.name, **meta},
                                           indent=2, default=str))
        for path in sorted(tmp.rglob("*"), reverse=True):
            _fsync(path)
        _fsync(tmp)
        os.rename(tmp, directory / f"v{version:06d}")
        _fsync(directory)
        return version

    def load(self, key: str, version: int) -> QuantileForecaster:
        path = self.key_dir(key) / f"v{version:06d}"
        meta_file = path / META
        if not meta_file.is_file():
            raise ConfigError(f"model store {self.root}: no complete version {version} for key {key!r}")
        meta = json.loads(meta_file.read_text())
        forecaster = get_forecaster_class(meta["forecaster"]).load(path / MODEL)
        forecaster.version = version
        return forecaster
