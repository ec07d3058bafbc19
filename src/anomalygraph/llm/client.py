"""``ChatOpenAI`` adjusted for OpenAI-compatible servers (vLLM, llama.cpp, others)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import Field

from anomalygraph.core.llm_settings import ModelCapabilities
from anomalygraph.llm.errors import translate_error
from anomalygraph.llm.prompted_tools import parse_reply, prompted_messages, wants_prompted


class CompatChatOpenAI(ChatOpenAI):  # type: ignore[misc,valid-type]
    """``ChatOpenAI`` for OpenAI-compatible servers: declared capabilities, clear errors.

    ``ChatOpenAI`` renames ``max_tokens`` to ``max_completion_tokens``, which llama.cpp's server
    ignores (it then generates until the context is full); with ``legacy_max_tokens`` both are sent.
    """

    capabilities: ModelCapabilities
    provider: str = "openai"
    tool_call_format: Literal["server", "prompted"] = "server"
    """``prompted``: automatic tool choice through the model's own ``<tool_call>`` text (llm.prompted_tools)."""
    repair_retries: int = 2
    embedded_base_url: str | None = Field(default=None, exclude=True)
    server_log: str | None = Field(default=None, exclude=True)

    def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        if self.capabilities.legacy_max_tokens and payload.get("max_completion_tokens") is not None:
            payload["max_tokens"] = payload["max_completion_tokens"]
        return payload

    def _hint(self) -> str | None:
        if self.embedded_base_url is None:
            return None
        from anomalygraph.llm.embedded import owned_server_exit

        return owned_server_exit(self.embedded_base_url) or (
            f"embedded server log: {self.server_log}" if self.server_log else None
        )

    def _translated(self, exc: Exception) -> Exception:
        timeout = self.request_timeout if isinstance(self.request_timeout, int | float) else 0.0
        err = translate_error(
            exc, url=self.openai_api_base or "?", model=self.model_name, timeout_s=float(timeout), hint=self._hint()
        )
        return err or exc

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        tools = None
        if self.tool_call_format == "prompted" and wants_prompted(kwargs):
            tools = kwargs.pop("tools")
            kwargs.pop("tool_choice", None)
            kwargs.pop("parallel_tool_calls", None)
            messages = prompted_messages(messages, tools)
        try:
            result = super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        except Exception as exc:
            err = self._translated(exc)
            if err is exc:
                raise
            raise err from exc
        if tools is not None:
            names = [t.get("function", t).get("name", "") for t in tools]
            for gen in result.generations:
                if isinstance(gen.message, AIMessage):
                    gen.message = parse_reply(gen.message, names)
        return result

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        try:
            return await super()._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
        except Exception as exc:
            err = self._translated(exc)
            if err is exc:
                raise
            raise err from exc

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        try:
            yield from super()._stream(*args, **kwargs)
        except Exception as exc:
            err = self._translated(exc)
            if err is exc:
                raise
            raise err from exc

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        try:
            async for chunk in super()._astream(*args, **kwargs):
                yield chunk
        except Exception as exc:
            err = self._translated(exc)
            if err is exc:
                raise
            raise err from exc
