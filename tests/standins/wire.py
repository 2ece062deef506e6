"""What every stand-in server shares: a JSON reply, a request body, serving on 127.0.0.1 in a thread."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: dict, headers: dict | None = None) -> None:
    """One JSON reply with its length, so keep-alive clients (httpx) know where it ends."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, sized or chunked (the SDKs send multipart uploads chunked)."""
    if handler.headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().strip() or b"0", 16)
            if size == 0:
                handler.rfile.readline()
                break
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        return b"".join(chunks)
    length = int(handler.headers.get("content-length") or 0)
    return handler.rfile.read(length) if length else b""


def serve(handler_class: type[BaseHTTPRequestHandler], name: str) -> ThreadingHTTPServer:
    """Serves on 127.0.0.1 at a free port from a daemon thread; `shutdown()` + `server_close()` stop it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True).start()
    return server


class QuietHandler(BaseHTTPRequestHandler):
    """Keeps test output clean."""

    def log_message(self, format, *args) -> None:
        pass


class JSONStandIn:
    """A stand-in API that answers JSON: `handle(method, path, query, headers, body)` returns
    `(status, payload, extra headers)`. Every status is logged in `status_log` before the answer
    leaves, so a client that has its answer also sees it logged. Subclasses set `name` and, when the
    SDK uses more than GET and POST, `methods`; they create `status_log` and `_lock` in `__init__`."""

    name = "stand-in"
    methods: tuple[str, ...] = ("GET", "POST")
    status_log: list[int]
    _lock: threading.Lock
    _server: ThreadingHTTPServer | None = None

    def handle(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> tuple[int, Any, dict]:
        raise NotImplementedError

    def send(self, handler, status: int, payload: Any, extra: dict) -> None:
        """Write the answer `handle` gave: JSON here; a stand-in that streams overrides this."""
        send_json(handler, status, payload, extra)

    def start(self):
        stand_in = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                split = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(split.query).items()}
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload, extra = stand_in.handle(self.command, split.path, query, headers, read_body(self))
                with stand_in._lock:
                    stand_in.status_log.append(status)
                stand_in.send(self, status, payload, extra)

        for method in self.methods:
            setattr(Handler, f"do_{method}", Handler._serve)
        self._server = serve(Handler, self.name)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the stand-in first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """Root of the server."""
        return f"http://127.0.0.1:{self.port}"
