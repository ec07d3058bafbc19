"""The LLM CLI's tests use the LLM layer's fixtures (isolated settings and cache, fake servers)."""

from tests.llm.conftest import _isolated_llm_env, fake_llama, fake_openai, gguf, repo_root  # noqa: F401
