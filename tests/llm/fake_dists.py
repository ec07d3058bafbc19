"""Fake installed distributions: a ``*.dist-info`` folder plus data files on a sys.path entry.

``importlib.metadata`` finds them like the real model packages, so the assets' own lookup
(``metadata.distribution(...).locate_file(part.path)``) is exercised, part paths included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from anomalygraph.llm.assets import ModelAsset


def install_fake_distribution(site: Path, name: str, version: str, files: dict[str, bytes]) -> None:
    """Write ``name==version`` into ``site`` with ``files`` (paths relative to the install root)."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    record = []
    for rel, data in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        record.append(f"{rel},,{len(data)}")
    (info / "RECORD").write_text("\n".join([*record, f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]) + "\n")


def part_payloads(count: int) -> list[bytes]:
    """Small, distinct contents for ``count`` parts; the first starts with the GGUF magic."""
    return [(b"GGUF" if i == 0 else b"") + bytes([i]) * (97 + i) for i in range(count)]


def install_fake_parts(site: Path, asset: ModelAsset, payloads: Sequence[bytes]) -> ModelAsset:
    """Install ``asset``'s parts (its real names, versions and paths) holding ``payloads``; returns
    the asset re-pinned to the size and hash of their concatenation."""
    assert len(payloads) == len(asset.parts)
    for part, data in zip(asset.parts, payloads, strict=True):
        install_fake_distribution(site, part.distribution, part.version or "0", {part.path: data})
    whole = b"".join(payloads)
    return asset.model_copy(update={"size": len(whole), "sha256": hashlib.sha256(whole).hexdigest()})
