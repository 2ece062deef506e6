"""The voter's signed cookie on the wire, and who is voting in a Gradio handler.

`VoterCookieMiddleware` (installed on the served FastAPI app by `ui/layout.create_server`) gives
every browser that has no valid `ftassist_voter` cookie a new signed one on its first response
(the page itself), so the handlers that follow see the same voter across new sessions and reloads.
A cookie that does not verify is replaced by a fresh one: tampering gains nothing.

`identify` turns a handler's request into an `Identity`: a Hugging Face account when signed in
(known by its stable `sub`, with the browser's cookie voter as its alias), else the signed cookie,
else the session's own id (a client that keeps no cookies); plus the client address, hashed, read
from X-Forwarded-For only as far as `FTASSIST_TRUSTED_PROXY_HOPS` says proxies stand in front of
the app. The signing key never leaves the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftassist import config
from ftassist.arena import voters


@dataclass(frozen=True)
class Identity:
    voter: str
    address: str | None  # hashed
    signed_in: bool
    alias: str | None = None  # signed in: the browser's anonymous (cookie) voter, the same person


def _header(scope_headers: list, name: bytes) -> str | None:
    for key, value in scope_headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _cookie(header: str | None, name: str) -> str | None:
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _is_https(scheme: str | None, forwarded_proto: str | None) -> bool:
    if scheme == "https":
        return True
    if config.trusted_proxy_hops() > 0 and forwarded_proto:
        return forwarded_proto.split(",")[-1].strip().lower() == "https"
    return False


def set_cookie_header(value: str, https: bool) -> str:
    """The Set-Cookie line. Over HTTPS it is also sent inside a Space's iframe (SameSite=None, Partitioned)."""
    attributes = f"{voters.COOKIE_NAME}={value}; Path=/; Max-Age={voters.COOKIE_MAX_AGE_S}; HttpOnly"
    return attributes + ("; Secure; SameSite=None; Partitioned" if https else "; SameSite=Lax")


class VoterCookieMiddleware:
    """ASGI middleware: a response to a request without a valid voter cookie sets a new signed one."""

    def __init__(self, app, data_dir: str | Path):
        self.app = app
        self.data_dir = Path(data_dir)

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        secret = voters.load_secret(self.data_dir)
        if voters.verify(secret, _cookie(_header(headers, b"cookie"), voters.COOKIE_NAME)) is not None:
            await self.app(scope, receive, send)
            return
        line = set_cookie_header(voters.issue(secret),
                                 _is_https(scope.get("scheme"), _header(headers, b"x-forwarded-proto")))

        async def send_with_cookie(message):
            if message.get("type") == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", line.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def install(app, data_dir: str | Path) -> None:
    """Add the middleware to a FastAPI app before it serves."""
    app.add_middleware(VoterCookieMiddleware, data_dir=data_dir)


def _request_parts(request: Any) -> tuple[str | None, str | None, str | None]:
    """(cookie value, peer address, X-Forwarded-For) of a gr.Request (or None outside a request)."""
    inner = getattr(request, "request", None) if request is not None else None
    if inner is None:
        return None, None, None
    cookie = inner.cookies.get(voters.COOKIE_NAME) if hasattr(inner, "cookies") else None
    client = getattr(inner, "client", None)
    headers = getattr(inner, "headers", None) or {}
    return cookie, getattr(client, "host", None), headers.get("x-forwarded-for")


def identify(data_dir: str | Path, state: dict, request: Any = None, username: str | None = None,
             sub: str | None = None) -> Identity:
    """Who is voting: an account when signed in (`sub` is its stable id, `username` the fallback where a
    profile has none), else the signed cookie, else this session's id (kept in `state["voter"]`, which the
    caller's session holds). A signed-in voter whose browser has a valid cookie carries it as `alias`."""
    secret = voters.load_secret(data_dir)
    cookie, peer, forwarded = _request_parts(request)
    address = voters.hash_address(secret, voters.client_address(peer, forwarded, config.trusted_proxy_hops()))
    from_cookie = voters.verify(secret, cookie)
    if username or sub:
        state["voter"] = voters.signed_in_voter(secret, username or "", sub)
        return Identity(state["voter"], address, True, alias=from_cookie)
    if from_cookie:
        state["voter"] = from_cookie
    elif not state.get("voter") or str(state["voter"]).startswith("hf-"):
        state["voter"] = voters.new_voter_id()
    return Identity(state["voter"], address, False)
