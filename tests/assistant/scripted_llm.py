"""A scripted OpenAI-compatible chat server on 127.0.0.1 for the assistant's LLM-path tests.

`POST /v1/chat/completions` answers with the next entry of `script` (a callable taking the
request body and returning either {"tool_calls": [(name, arguments_dict), ...]} or
{"content": "..."}); past the end of the script it keeps answering with the last entry.
Every request body and its Authorization header are recorded, so a test can check what the
assistant sent (the tool results) and that the key went only where it should.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


class ScriptedLLM:
    def __init__(self, script: list[dict | Callable[[dict], dict]]):
        self.script = list(script)
        self.requests: list[dict] = []
        self.auth_headers: list[str] = []
        self.status = 200  # set to e.g. 401 to make every request fail
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def _reply(self, body: dict) -> dict:
        i = min(len(self.requests) - 1, len(self.script) - 1)
        step = self.script[i]
        step = step(body) if callable(step) else step
        message: dict[str, Any] = {"role": "assistant", "content": step.get("content")}
        finish = "stop"
        if step.get("tool_calls"):
            message["tool_calls"] = [
                {"id": f"call_{len(self.requests)}_{k}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args)}}
                for k, (name, args) in enumerate(step["tool_calls"])
            ]
            finish = "tool_calls"
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": 0,
                "model": body.get("model", "scripted"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    def start(self) -> "ScriptedLLM":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(body)
                server.auth_headers.append(self.headers.get("Authorization", ""))
                if server.status != 200:
                    # like OpenAI's own 401, the message quotes the key it was given
                    given = server.auth_headers[-1].removeprefix("Bearer ")
                    payload = {"error": {"message": f"Incorrect API key provided: {given}.",
                                         "type": "invalid_request_error",
                                         "code": "invalid_api_key"}}
                    status = server.status
                elif not self.path.endswith("/chat/completions"):
                    payload, status = {"error": {"message": "not found"}}, 404
                else:
                    payload, status = server._reply(body), 200
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
