"""The running app's door for the CLI: use cases called by name over a Unix socket.

Why a socket and not the app's HTTP endpoints: DuckDB allows one writing process, so while the
app runs, the CLI must ask the app to read and write for it. The Gradio endpoints exist only for
what the UI shows, sit behind the admin login when one is set, and are reachable from the
network; a Unix socket in a folder only this user can open is local by construction, needs no
password (the same person could open the database file itself), covers every use case by name,
and answers without Gradio's queue. One JSON line asks, one JSON line answers:

    {"use_case": "list_runs", "arguments": {"limit": 20}}
    {"ok": true, "result": [...]}   or   {"ok": false, "error": "...", "kind": "NotFound"}
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from pathlib import Path
from typing import Any

from ftassist.redact import scrub
from ftassist.usecases import registry
from ftassist.usecases.context import Context, NotFound, Settings, UseCaseError

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 2.0
MAX_REQUEST_BYTES = 16 * 1024 * 1024
_KINDS = {"UseCaseError": UseCaseError, "NotFound": NotFound}


class AppUnavailable(RuntimeError):
    """The app's socket exists but the app did not answer."""


# -- the app's side ---------------------------------------------------------------------------------
class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST_BYTES)
        if not line.strip():  # a probe (`connect`) that only checks the app is there
            return
        try:
            request = json.loads(line)
            name, arguments = request["use_case"], request.get("arguments") or {}
            result = registry.call(self.server.ctx, name, arguments)  # type: ignore[attr-defined]
            answer: dict[str, Any] = {"ok": True, "result": registry.to_jsonable(result)}
        except UseCaseError as exc:
            answer = {"ok": False, "error": scrub(exc), "kind": type(exc).__name__ if type(exc).__name__ in _KINDS
                      else "UseCaseError"}
        except (ValueError, KeyError, TypeError) as exc:
            answer = {"ok": False, "error": f"bad request: {scrub(exc)}", "kind": "UseCaseError"}
        except Exception as exc:
            log.exception("use case over the socket failed")
            answer = {"ok": False, "error": f"{type(exc).__name__}: {scrub(exc)}", "kind": "internal"}
        try:
            self.wfile.write(json.dumps(answer, ensure_ascii=False, default=str).encode() + b"\n")
        except BrokenPipeError:  # the command was interrupted (Ctrl-C) before the answer came
            log.info("the caller of %s left before the answer", request.get("use_case"))


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(ctx: Context) -> _Server:
    """Listen on the context's socket path in a background thread; returns the server (`.shutdown()` stops it).

    A socket left by a dead app is replaced; one a live app answers on is not (that app owns the data dir,
    and this process could not have opened its database anyway)."""
    path = ctx.settings.socket_path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    if path.exists():
        if _answers(path):
            raise AppUnavailable(f"another ftassist app already serves {ctx.settings.data_dir}")
        path.unlink()
    registry.load_all()
    old_umask = os.umask(0o177)
    try:
        server = _Server(str(path), _Handler)
    finally:
        os.umask(old_umask)
    server.ctx = ctx  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, name="ftassist-socket", daemon=True).start()
    return server


def stop(server: _Server) -> None:
    server.shutdown()
    server.server_close()
    try:
        Path(server.server_address).unlink()  # type: ignore[arg-type]
    except OSError:
        pass


def _answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(CONNECT_TIMEOUT_S)
            probe.connect(str(path))
        return True
    except OSError:
        return False


# -- the CLI's side -----------------------------------------------------------------------------------
class Client:
    """Calls use cases in the running app. Results come back as JSON values (dataclasses as dicts)."""

    def __init__(self, path: Path):
        self.path = path

    def call(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        request = json.dumps({"use_case": name, "arguments": registry.to_jsonable(arguments or {})}).encode() + b"\n"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(CONNECT_TIMEOUT_S)
                conn.connect(str(self.path))
                conn.settimeout(None)  # a check of a large file takes as long as it takes
                conn.sendall(request)
                with conn.makefile("rb") as reader:
                    line = reader.readline()
        except OSError as exc:
            raise AppUnavailable(f"the running app did not answer ({exc.strerror or exc})") from None
        if not line:
            raise AppUnavailable("the running app closed the connection without an answer (see its log)")
        answer = json.loads(line)
        if answer.get("ok"):
            return answer.get("result")
        kind = _KINDS.get(answer.get("kind"), UseCaseError)
        raise kind(answer.get("error") or "the app refused the request")


def connect(settings: Settings | None = None) -> Client | None:
    """A client for the app serving this data dir, or None when no app runs there."""
    settings = settings or Settings.from_environment()
    path = settings.socket_path
    if not path.exists() or not _answers(path):
        return None
    return Client(path)
