"""The HTTP guard in front of both Gradio apps: what an outsider can reach, decided in one place.

Why a middleware of our own: Gradio's routes are made for an app that trusts its visitors. Here the
voting page at `/arena` is open to anyone while the rest of the app holds the admin's datasets, runs
and keys, so:

- The voting mount is sealed: only the routes the voting page uses answer (its page, config, assets,
  the queue that runs its events). Uploads, `file=` downloads, proxies, streams and everything else
  are 404 there, so nobody can store a file on the server or fetch one, the admin's included. Served
  alone (`--arena-only`) with FTASSIST_ARENA_SIGN_IN on, it also answers Gradio's Hugging Face sign-in
  routes (`/login/huggingface`, `/login/callback`, `/logout`).
- The page served before the admin login carries no list of endpoints: Gradio embeds its API info in
  every page; before login it is replaced by an empty one.
- Login attempts are throttled per client address with a growing delay (`auth.LoginThrottle`).
- `/openapi.json` (Gradio's route list) answers nowhere.

Cross-origin requests are refused by Starlette's CORSMiddleware with no allowed origin, added next to
this guard (see `layout.create_server`): a page on another site cannot read any answer of this app.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from . import auth

Scope = dict[str, Any]

# The routes the voting page uses (relative to its mount). Anything else is 404 on the voting mount.
VOTING_GET_EXACT = frozenset({"/", "/config", "/config/", "/theme.css", "/favicon.ico", "/manifest.json",
                              "/robots.txt", "/gradio_api/info", "/gradio_api/info/", "/gradio_api/app_id",
                              "/gradio_api/app_id/", "/gradio_api/theme.css", "/gradio_api/startup-events",
                              "/gradio_api/queue/data", "/gradio_api/queue/status", "/gradio_api/user",
                              "/gradio_api/user/", "/gradio_api/login_check", "/gradio_api/login_check/"})
VOTING_GET_PREFIXES = ("/assets/", "/static/", "/svelte/", "/gradio_api/heartbeat/", "/gradio_api/call/")
VOTING_POST_EXACT = frozenset({"/gradio_api/queue/join", "/gradio_api/cancel"})
VOTING_POST_PREFIXES = ("/gradio_api/call/", "/gradio_api/run/", "/gradio_api/api/")
# Gradio's "Sign in with Hugging Face" routes: answered only on the voting page served alone (`--arena-only`)
# with FTASSIST_ARENA_SIGN_IN on; Hugging Face sends voters back to the root's /login/callback.
VOTING_OAUTH_GET = frozenset({"/login/huggingface", "/login/callback", "/logout"})
LOGIN_PATHS = frozenset({"/login", "/login/"})
_API_INFO = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.S)
EMPTY_API_INFO = b'window.gradio_api_info = {"named_endpoints": {}, "unnamed_endpoints": {}};</script>'


def voting_route_allowed(method: str, path: str, sign_in: bool = False) -> bool:
    """Whether the sealed voting mount answers `method path` (path relative to the mount); `sign_in`: also
    the Hugging Face sign-in routes."""
    if method in ("GET", "HEAD"):
        return (path in VOTING_GET_EXACT or path.startswith(VOTING_GET_PREFIXES)
                or (sign_in and path in VOTING_OAUTH_GET))
    if method == "POST":
        return path in VOTING_POST_EXACT or path.startswith(VOTING_POST_PREFIXES)
    return method == "OPTIONS"  # preflights: answered (and refused) by the CORS middleware


class Guard:
    """ASGI middleware on the parent FastAPI app (outermost, before the Gradio mounts).

    `voting_prefix`: where the voting page is mounted ("/arena", or "" when it is the whole app).
    `admin_app`: the full app's Gradio `App` (its login tokens tell who is logged in), None when the
    app has no login. `throttle`: the login throttle (one per server)."""

    def __init__(self, app: Callable, voting_prefix: str | None = "/arena", admin_app: Any = None,
                 throttle: auth.LoginThrottle | None = None):
        self.app = app
        self.voting_prefix = voting_prefix
        self.admin_app = admin_app
        self.throttle = throttle or auth.LoginThrottle()
        self.sign_in = voting_prefix == "" and _sign_in_on()

    def _voting_path(self, path: str) -> str | None:
        """The path inside the voting mount, or None when `path` is the full app's."""
        prefix = self.voting_prefix
        if prefix is None:
            return None
        if prefix == "":
            return path
        if path.startswith(prefix + "/"):
            return path[len(prefix):]
        return None

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":  # neither app uses websockets
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if path.endswith("/openapi.json"):
            await _plain(send, 404, "Not Found")
            return
        inner = self._voting_path(path)
        if inner is not None:
            if not voting_route_allowed(method, inner, self.sign_in):
                await _plain(send, 404, "Not Found")
                return
            await self.app(scope, receive, send)
            return
        if self.admin_app is not None and method == "POST" and path in LOGIN_PATHS:
            await self._login(scope, receive, send)
            return
        if self.admin_app is not None and method == "GET" and path == "/" and not self._logged_in(scope):
            await self._login_page(scope, receive, send)
            return
        await self.app(scope, receive, send)

    # -- the login -------------------------------------------------------------------------------
    def _logged_in(self, scope: Scope) -> bool:
        cookies = _cookies(scope)
        cookie_id = getattr(self.admin_app, "cookie_id", "")
        tokens = getattr(self.admin_app, "tokens", {}) or {}
        token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
        return bool(token) and token in tokens

    async def _login(self, scope: Scope, receive: Callable, send: Callable) -> None:
        address = client_address(scope)
        wait = self.throttle.begin(address)
        if wait > 0:
            await _plain(send, 429, json.dumps({"detail": auth.refusal_message(wait)}),
                         media="application/json", extra=[(b"retry-after", str(int(wait) + 1).encode())])
            return
        status: dict[str, int] = {}

        async def watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status.get("code") == 200:
            self.throttle.succeeded(address)

    async def _login_page(self, scope: Scope, receive: Callable, send: Callable) -> None:
        """Gradio's login page, less the API info it embeds (the names and parameters of every endpoint)."""
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"accept-encoding"]
        scope = dict(scope, headers=headers)  # uncompressed, so the page can be edited
        start: dict[str, Any] = {}
        body = bytearray()

        async def collect(message: dict) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app(scope, receive, collect)
        page = _API_INFO.sub(lambda _: EMPTY_API_INFO, bytes(body), count=1)
        out = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        out.append((b"content-length", str(len(page)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 200), "headers": out})
        await send({"type": "http.response.body", "body": page})


def _sign_in_on() -> bool:
    """Whether FTASSIST_ARENA_SIGN_IN asks for the Hugging Face sign-in (a wrong value: no)."""
    from ftassist import config

    try:
        return config.arena_choice("sign_in") != "off"
    except ValueError:
        return False


def client_address(scope: Scope) -> str:
    """The client's address: the connection's peer, or, behind `config.trusted_proxy_hops()` proxies that
    append to X-Forwarded-For, the entry those proxies added (an address a client cannot choose)."""
    from ftassist import config

    peer = (scope.get("client") or ("unknown", 0))[0]
    try:
        hops = config.trusted_proxy_hops()
    except (AttributeError, ValueError):
        hops = 0
    if hops <= 0:
        return peer
    forwarded = [h.decode("latin-1") for k, h in scope.get("headers", []) if k.lower() == b"x-forwarded-for"]
    entries = [e.strip() for e in ",".join(forwarded).split(",") if e.strip()]
    return entries[-hops] if len(entries) >= hops else peer


def _cookies(scope: Scope) -> dict[str, str]:
    from http.cookies import SimpleCookie

    jar: dict[str, str] = {}
    for key, value in scope.get("headers", []):
        if key.lower() == b"cookie":
            parsed = SimpleCookie()
            try:
                parsed.load(value.decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed cookie header: no login
                continue
            jar.update({name: morsel.value for name, morsel in parsed.items()})
    return jar


async def _plain(send: Callable, status: int, text: str, media: str = "text/plain; charset=utf-8",
                 extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    headers = [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
