"""One clear message per way an LLM call can fail, and whether retrying it can help.

Transport failures are retried inside the OpenAI client (``max_retries``, exponential backoff
with jitter, ``Retry-After`` honoured) before they reach here: connection errors, timeouts,
408/409/429 and 5xx. What is raised here is final. A too-long prompt, a rejected key or an
unknown model are never retried: the same request would fail the same way.
"""

from __future__ import annotations

import re
from typing import Any

from anomalygraph.core.errors import AnomalyGraphError


class LLMError(AnomalyGraphError, RuntimeError):
    """Base class: a model call failed for a reason the message names."""

    retryable: bool = False


class LLMUnavailableError(LLMError):
    """Nothing answers at the server's address (connection refused, DNS, server process gone)."""

    retryable = True


class LLMTimeoutError(LLMError):
    """The server accepted the request but did not answer in time."""

    retryable = True


class LLMRateLimitError(LLMError):
    """The server kept answering 429 after the client's retries."""

    retryable = True


class LLMServerError(LLMError):
    """The server failed while answering (HTTP 5xx, or the connection dropped mid-answer)."""

    retryable = True


class LLMContextLengthError(LLMError):
    """The prompt plus the answer budget does not fit the model's context window."""


class LLMRequestError(LLMError):
    """The server rejected the request itself (bad key, unknown model, unsupported parameter)."""


class StructuredOutputError(LLMError):
    """The model did not produce a valid instance of the schema within the repair budget."""

    def __init__(self, schema: str, attempts: int, last_error: str, last_output: str | None = None) -> None:
        self.schema = schema
        self.attempts = attempts
        self.last_error = last_error
        self.last_output = last_output
        super().__init__(
            f"the model gave no valid {schema} in {attempts} attempt{'s' if attempts != 1 else ''}; "
            f"last error: {last_error}"
        )


class ModelAssetError(LLMError):
    """The embedded model file is missing, incomplete or does not match its pinned hash."""


class EmbeddedServerError(LLMError):
    """The embedded llama.cpp server could not be started, or stopped unexpectedly."""


_CONTEXT_PATTERNS = re.compile(
    r"context[_ ]length|context window|maximum context|max_model_len|too many tokens|prompt is too long",
    re.IGNORECASE,
)


def _server_message(exc: Any) -> str:
    """The server's own error text, whatever shape its JSON body takes."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
        if body.get("message"):
            return str(body["message"])
        if body.get("detail"):
            return str(body["detail"])
    return str(getattr(exc, "message", None) or exc)


def translate_error(exc: BaseException, *, url: str, model: str, timeout_s: float, hint: str | None = None) -> LLMError | None:
    """Map an OpenAI-client exception to an :class:`LLMError`; ``None`` when it is not one.

    ``hint`` is appended where the server itself may be the cause (the embedded server's log).
    """
    try:
        import openai
    except ImportError:  # pragma: no cover - langchain-openai depends on openai
        return None
    if isinstance(exc, LLMError):
        return exc
    where = f"the LLM server at {url}"
    tail = f" ({hint})" if hint else ""
    if isinstance(exc, openai.APITimeoutError):
        return LLMTimeoutError(
            f"{where} did not answer within {timeout_s:g} s (model {model}); it may be overloaded or "
            f"still loading; raise ANOMALYGRAPH_LLM_TIMEOUT_S or check the server{tail}"
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        reason = f": {cause}" if cause else ""
        return LLMUnavailableError(
            f"cannot reach {where}{reason}; start it (`anomalygraph llm serve` for the embedded model, "
            f"scripts/serve_vllm.sh for vLLM) or fix ANOMALYGRAPH_LLM_BASE_URL{tail}"
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        text = _server_message(exc)
        if status == 429 or isinstance(exc, openai.RateLimitError):
            return LLMRateLimitError(f"{where} is rate limiting requests (HTTP 429) after the client's retries: {text}")
        if status in (400, 413, 422) and _CONTEXT_PATTERNS.search(text):
            return LLMContextLengthError(
                f"the prompt does not fit the context window of model {model}: {text} Shorten the input, "
                "lower ANOMALYGRAPH_LLM_MAX_TOKENS, or serve the model with a longer context "
                "(embedded: ANOMALYGRAPH_LLM_EMBEDDED__N_CTX; vLLM: --max-model-len)"
            )
        if status in (401, 403):
            return LLMRequestError(f"{where} rejected the API key (HTTP {status}); set ANOMALYGRAPH_LLM_API_KEY")
        if status == 404:
            return LLMRequestError(
                f"{where} has no such model or route (HTTP 404) for model {model!r}: {text}; "
                "check ANOMALYGRAPH_LLM_MODEL and that the base URL ends in /v1"
            )
        if status >= 500:
            return LLMServerError(f"{where} failed while answering (HTTP {status}, after retries): {text}{tail}")
        return LLMRequestError(f"{where} rejected the request (HTTP {status}): {text}")
    if isinstance(exc, openai.APIResponseValidationError):
        return LLMServerError(f"{where} sent an answer that is not a valid OpenAI response: {exc}")
    return None
