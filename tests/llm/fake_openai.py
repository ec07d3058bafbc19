"""A small OpenAI-compatible HTTP server for tests: scripted answers, recorded requests.

Used in-process (a thread, :class:`FakeOpenAI`) for client, health and CLI tests, and as a
subprocess (``python fake_openai.py --port P --model-alias A``) standing in for the llama.cpp
server in lifecycle tests, so those run without llama-cpp-python.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer to ``POST /v1/chat/completions``."""

    status: int = 200
    content: str | None = "ok"
    tool_calls: list[dict[str, Any]] | None = None
    error: str | None = None
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def tool_call(name: str, args: dict[str, Any] | str, call_id: str = "call_1") -> dict[str, Any]:
    arguments = args if isinstance(args, str) else json.dumps(args)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


class FakeOpenAI:
    """Serves ``/v1/models``, ``/health`` and ``/v1/chat/completions`` on 127.0.0.1."""

    def __init__(self, models: list[str] | None = None, *, models_status: int = 200, health_status: int = 404,
                 models_delay_s: float = 0.0) -> None:
        self.models = models if models is not None else ["fake-model"]
        self.models_status = models_status
        self.health_status = health_status
        self.models_delay_s = models_delay_s
        self.replies: deque[Reply] = deque()
        self.default = Reply()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError):  # the client gave up (timeout tests)
                    self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/health":
                    self._send(fake.health_status, {} if fake.health_status == 200 else {"detail": "Not Found"})
                elif self.path == "/v1/models":
                    time.sleep(fake.models_delay_s)
                    if fake.models_status != 200:
                        self._send(fake.models_status, {"error": {"message": "Loading model", "code": fake.models_status}})
                    else:
                        self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in fake.models]})
                else:
                    self._send(404, {"detail": "Not Found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(body)
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                reply = fake.replies.popleft() if fake.replies else fake.default
                time.sleep(reply.delay_s)
                if reply.status != 200:
                    self._send(
                        reply.status,
                        {"error": {"message": reply.error or "error", "type": "invalid_request_error", "code": None}},
                        reply.headers,
                    )
                    return
                message: dict[str, Any] = {"role": "assistant", "content": reply.content}
                if reply.tool_calls:
                    message["tool_calls"] = reply.tool_calls
                self._send(200, {
                    "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "fake-model"),
                    "choices": [{"index": 0, "message": message,
                                 "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
                    "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                })

        return Handler


def main() -> None:
    """Stand-in for ``python -m llama_cpp.server``: same flags that matter, same readiness."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model_alias", default="fake-model")
    parser.add_argument("--exit-code", type=int, default=None, help="print an error and exit with it")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before listening (model loading)")
    args, _ = parser.parse_known_args()
    if args.exit_code is not None:
        print("error: failed to load model from file", file=sys.stderr, flush=True)
        sys.exit(args.exit_code)
    time.sleep(args.delay)
    fake = FakeOpenAI([args.model_alias])
    fake._server.server_close()
    fake._server = ThreadingHTTPServer(("127.0.0.1", args.port), fake._handler())
    print(f"listening on {args.port}", flush=True)
    fake._server.serve_forever()


if __name__ == "__main__":
    main()
