"""Token usage and latency of every model call, as structured log records, so runs can be costed.

Each call logs one record on the ``anomalygraph.llm.usage`` logger: the message is a compact
``key=value`` line for humans, and the same fields ride on the record as ``record.llm_call``
(a dict) for JSON log handlers. The handler also keeps the records, so a command can print totals.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from pydantic import BaseModel, ConfigDict

logger = logging.getLogger("anomalygraph.llm.usage")


class UsageRecord(BaseModel):
    """One model call."""

    model_config = ConfigDict(extra="forbid")

    model: str
    latency_s: float
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    tokens_per_s: float | None = None
    ok: bool = True
    error: str | None = None
    tags: list[str] = []


class UsageTotals(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calls: int
    failed: int
    input_tokens: int
    output_tokens: int
    latency_s: float


class UsageLogger(BaseCallbackHandler):
    """LangChain callback that times each chat-model call and logs its token usage."""

    raise_error = False

    def __init__(self, *, keep: int = 1000) -> None:
        self.records: deque[UsageRecord] = deque(maxlen=keep)
        self._started: dict[UUID, tuple[float, str, list[str]]] = {}
        self._lock = threading.Lock()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        params = kwargs.get("invocation_params") or {}
        model = str(params.get("model") or params.get("model_name") or (serialized or {}).get("name") or "unknown")
        with self._lock:
            self._started[run_id] = (time.perf_counter(), model, list(tags or []))

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        start, model, tags = self._pop(run_id)
        latency = time.perf_counter() - start
        usage = _usage(response)
        out = usage.get("output_tokens")
        record = UsageRecord(
            model=str((response.llm_output or {}).get("model_name") or model),
            latency_s=round(latency, 4),
            input_tokens=usage.get("input_tokens"),
            output_tokens=out,
            total_tokens=usage.get("total_tokens"),
            tokens_per_s=round(out / latency, 2) if out and latency > 0 else None,
            tags=tags,
        )
        self._emit(record, logging.INFO)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        start, model, tags = self._pop(run_id)
        record = UsageRecord(
            model=model,
            latency_s=round(time.perf_counter() - start, 4),
            ok=False,
            error=f"{type(error).__name__}: {error}"[:300],
            tags=tags,
        )
        self._emit(record, logging.WARNING)

    def totals(self) -> UsageTotals:
        records = list(self.records)
        return UsageTotals(
            calls=len(records),
            failed=sum(not r.ok for r in records),
            input_tokens=sum(r.input_tokens or 0 for r in records),
            output_tokens=sum(r.output_tokens or 0 for r in records),
            latency_s=round(sum(r.latency_s for r in records), 4),
        )

    def _pop(self, run_id: UUID) -> tuple[float, str, list[str]]:
        with self._lock:
            return self._started.pop(run_id, (time.perf_counter(), "unknown", []))

    def _emit(self, record: UsageRecord, level: int) -> None:
        self.records.append(record)
        fields = record.model_dump(exclude_none=True, exclude={"tags"})
        text = " ".join(f"{k}={v}" for k, v in fields.items())
        logger.log(level, "llm_call %s", text, extra={"llm_call": record.model_dump()})


def _usage(response: LLMResult) -> dict[str, int]:
    """Token counts from the message's ``usage_metadata``, else the provider's ``token_usage``."""
    for generations in response.generations:
        for gen in generations:
            if isinstance(gen, ChatGeneration) and getattr(gen.message, "usage_metadata", None):
                meta = gen.message.usage_metadata
                return {k: int(meta[k]) for k in ("input_tokens", "output_tokens", "total_tokens") if k in meta}
    raw = (response.llm_output or {}).get("token_usage") or {}
    mapping = {"prompt_tokens": "input_tokens", "completion_tokens": "output_tokens", "total_tokens": "total_tokens"}
    return {ours: int(raw[theirs]) for theirs, ours in mapping.items() if raw.get(theirs) is not None}
