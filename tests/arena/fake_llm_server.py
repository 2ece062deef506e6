"""A local OpenAI-compatible HTTP server for tests: no network, deterministic answers.

Serves `GET /v1/models` and `POST /v1/chat/completions` on 127.0.0.1 (a random port).
It answers each model deterministically from (model, last user message), so two models
give different answers without ever naming themselves (the arena flags answers that
reveal a model's identity). Knobs, all settable on the instance:

- `answers`: {model: str | callable(messages) -> str} to script a model's answers;
- `judge`: callable(messages) -> str, or a list of strings served in order, for any
  model in `judge_models` (scripted LLM-judge verdicts);
- `fail_first_429`: the first N chat requests get a 429 with `Retry-After: 0`;
- `fail_marker`: any request whose last user message contains it gets a 500, always;
- `delay_s`: seconds each chat request takes (to observe concurrency).

It records every request body (`requests`) and the peak number in flight (`max_in_flight`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

WORDS = (
    "river stone garden lamp orbit maple quiet signal copper meadow harbor violet "
    "window canyon ember pocket lantern velvet summit thread"
).split()


def default_answer(model: str, messages: list[dict]) -> str:
    """A stable answer for (model, last user turn); mentions no model name."""
    last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    digest = hashlib.sha256(f"{model}\n{last}".encode()).digest()
    words = " ".join(WORDS[b % len(WORDS)] for b in digest[:8])
    return f"Answer to '{last[:40]}': {words}."


class FakeLLMServer:
    def __init__(self) -> None:
        self.answers: dict[str, str | Callable[[list[dict]], str]] = {}
        self.judge: Callable[[list[dict]], str] | list[str] | None = None
        self.judge_models: set[str] = {"judge"}
        self.fail_first_429 = 0
        self.fail_marker: str | None = None
        self.delay_s = 0.0
        self.models = ["base", "tuned", "judge"]
        self.requests: list[dict] = []
        self.status_log: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "FakeLLMServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- behaviour ---------------------------------------------------------------------
    def _answer(self, model: str, messages: list[dict]) -> str:
        if model in self.judge_models and self.judge is not None:
            if callable(self.judge):
                return self.judge(messages)
            with self._lock:
                return self.judge.pop(0)
        scripted = self.answers.get(model)
        if scripted is None:
            return default_answer(model, messages)
        return scripted(messages) if callable(scripted) else scripted

    def _chat(self, body: dict) -> tuple[int, dict, dict]:
        """(status, headers, payload) for one chat request."""
        with self._lock:
            self.requests.append(body)
            if self.fail_first_429 > 0:
                self.fail_first_429 -= 1
                return 429, {"Retry-After": "0"}, {"error": {"message": "Rate limit reached", "type": "rate_limit"}}
        messages = body.get("messages") or []
        last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        if self.fail_marker and self.fail_marker in str(last):
            return 500, {}, {"error": {"message": "scripted server failure", "type": "server_error"}}
        model = body.get("model", "")
        if model not in self.models:
            return 404, {}, {"error": {"message": f"model {model} not found", "type": "invalid_request_error"}}
        text = self._answer(model, messages)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        payload = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(text.split()),
                "total_tokens": prompt_tokens + len(text.split()),
            },
        }
        return 200, {}, payload

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
                with server._lock:
                    server.status_log.append(status)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/v1/models"):
                    data = [{"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in server.models]
                    self._send(200, {"object": "list", "data": data})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._send(400, {"error": {"message": "bad json"}})
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found"}})
                    return
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if server.delay_s:
                        time.sleep(server.delay_s)
                    status, headers, payload = server._chat(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                self._send(status, payload, headers)

        return Handler


if __name__ == "__main__":  # a manual check: python tests/arena/fake_llm_server.py
    with FakeLLMServer() as srv:
        print(srv.base_url)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
