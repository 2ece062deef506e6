"""A stand-in for Hugging Face's OpenID Connect provider ("Sign in with Hugging Face" on a Space).

What Gradio's `gradio.oauth` (through authlib) asks of hf.co when a Space has `hf_oauth: true`, so the
sign-in is tested through the real client with no network:

- `/.well-known/openid-configuration`: the discovery document (`OPENID_PROVIDER_URL` + that path);
- `/oauth/authorize`: the page a person signs in on. Who signs in is the `X-Standin-User` header of the
  request (the person typing their password at hf.co), else the first user; the stand-in checks the
  client id, `response_type=code`, the redirect URI, state and nonce, and sends the browser back to the
  redirect URI with a one-time code;
- `/oauth/token`: the code for an access token and an ID token (RS256, signed with a key made at start,
  carrying the nonce, `sub`, `preferred_username`, `name`, `profile`, `picture`); the client must authenticate
  with its id and secret, and a code works once, for the redirect URI it was issued for;
- `/oauth/jwks`: the public key the ID token verifies with; `/oauth/userinfo`: the user of a token.

Each account has a stable `sub` (random, as hf.co's account ids are not derived from names) that stays when
the account is renamed (`rename`); a name freed by a rename or a deleted account can be taken by a new
account with a new `sub` (`new_account`).

Anything else, or a request that breaks a rule, is answered 400/401/404 and recorded in `refusals`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from .wire import JSONStandIn

SCOPES = "openid profile"


def _at_hash(access_token: str) -> str:
    """OpenID Connect's at_hash for RS256: the left half of the token's SHA-256, base64url."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode().rstrip("=")


class HFOAuthStandIn(JSONStandIn):
    name = "hf-oauth-stand-in"

    def __init__(self, client_id: str = "standin-client-id", client_secret: str = "standin-client-secret",
                 users: dict[str, str] | None = None):
        from joserfc.jwk import RSAKey

        self.client_id = client_id
        self.client_secret = client_secret
        self.users = dict(users or {"alice": "Alice Example"})
        self.subs = {user: secrets.token_hex(12) for user in self.users}  # user name -> stable account id
        self.key = RSAKey.generate_key(2048, parameters={"kid": "standin-key", "use": "sig", "alg": "RS256"})
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}  # access token -> the account's sub (its name may change)
        self.signed_in: list[str] = []  # the user of each token issued, in order
        self.refusals: list[str] = []
        self.status_log = []
        self._lock = threading.Lock()

    # -- what a Space sets for an app with `hf_oauth: true` ---------------------------------------------
    def space_env(self) -> dict[str, str]:
        """The variables the Spaces platform gives an app with OAuth on, pointing at this stand-in."""
        return {"OAUTH_CLIENT_ID": self.client_id, "OAUTH_CLIENT_SECRET": self.client_secret,
                "OAUTH_SCOPES": SCOPES, "OPENID_PROVIDER_URL": self.url}

    # -- the routes -------------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> tuple[int, Any, dict]:
        if method == "GET" and path == "/.well-known/openid-configuration":
            return 200, self._discovery(), {}
        if method == "GET" and path == "/oauth/authorize":
            return self._authorize(query, headers)
        if method == "POST" and path == "/oauth/token":
            return self._token(headers, dict(parse_qsl(body.decode())))
        if method == "GET" and path == "/oauth/jwks":
            return 200, {"keys": [self.key.as_dict(private=False)]}, {}
        if method == "GET" and path == "/oauth/userinfo":
            sub = self.tokens.get(headers.get("authorization", "").removeprefix("Bearer ").strip())
            user = next((name for name, held in self.subs.items() if held == sub), None)
            if user is None:
                return self._refuse(401, "userinfo without a valid access token")
            return 200, self._profile(user), {}
        return self._refuse(404, f"no route {method} {path}")

    def _discovery(self) -> dict:
        return {"issuer": self.url, "authorization_endpoint": f"{self.url}/oauth/authorize",
                "token_endpoint": f"{self.url}/oauth/token", "userinfo_endpoint": f"{self.url}/oauth/userinfo",
                "jwks_uri": f"{self.url}/oauth/jwks", "response_types_supported": ["code"],
                "scopes_supported": SCOPES.split(), "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"]}

    def _authorize(self, query: dict, headers: dict) -> tuple[int, Any, dict]:
        if query.get("client_id") != self.client_id:
            return self._refuse(400, f"authorize: unknown client {query.get('client_id')!r}")
        if query.get("response_type") != "code":
            return self._refuse(400, f"authorize: response_type {query.get('response_type')!r}")
        if set(query.get("scope", "").split()) - set(SCOPES.split()) or "openid" not in query.get("scope", ""):
            return self._refuse(400, f"authorize: scope {query.get('scope')!r}")
        redirect_uri, state, nonce = query.get("redirect_uri"), query.get("state"), query.get("nonce")
        if not (redirect_uri and state and nonce):
            return self._refuse(400, "authorize: redirect_uri, state and nonce are required")
        user = headers.get("x-standin-user") or next(iter(self.users))
        if user not in self.users:
            return self._refuse(401, f"authorize: nobody called {user!r} can sign in")
        code = secrets.token_urlsafe(16)
        with self._lock:
            self.codes[code] = {"user": user, "nonce": nonce, "redirect_uri": redirect_uri}
        separator = "&" if "?" in redirect_uri else "?"
        location = f"{redirect_uri}{separator}{urlencode({'code': code, 'state': state})}"
        return 302, {"redirect": location}, {"Location": location}

    def _client_authenticated(self, headers: dict, form: dict) -> bool:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return False
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        return secrets.compare_digest(client_id, self.client_id) and secrets.compare_digest(secret, self.client_secret)

    def _token(self, headers: dict, form: dict) -> tuple[int, Any, dict]:
        if not self._client_authenticated(headers, form):
            return self._refuse(401, "token: the client did not authenticate")
        if form.get("grant_type") != "authorization_code":
            return self._refuse(400, f"token: grant_type {form.get('grant_type')!r}")
        with self._lock:
            issued = self.codes.pop(form.get("code", ""), None)
        if issued is None or issued["redirect_uri"] != form.get("redirect_uri"):
            return self._refuse(400, "token: unknown, used or mismatched code")
        from joserfc import jwt

        user, now = issued["user"], int(time.time())
        access_token = "hf_oauth_" + secrets.token_urlsafe(24)
        claims = {"iss": self.url, "aud": self.client_id, "iat": now, "exp": now + 3600, "auth_time": now,
                  "nonce": issued["nonce"], "at_hash": _at_hash(access_token), **self._profile(user)}
        id_token = jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key)
        with self._lock:
            self.tokens[access_token] = self.subs[user]
            self.signed_in.append(user)
        return 200, {"access_token": access_token, "token_type": "bearer", "expires_in": 28800, "scope": SCOPES,
                     "id_token": id_token}, {}

    def _profile(self, user: str) -> dict:
        return {"sub": self.subs[user], "name": self.users[user],
                "preferred_username": user, "profile": f"https://huggingface.co/{user}",
                "picture": f"https://huggingface.co/avatars/{user}.svg"}

    # -- what people do with their accounts at hf.co ----------------------------------------------------
    def rename(self, old: str, new: str) -> None:
        """The account `old` is now called `new`: same `sub`, new `preferred_username`."""
        with self._lock:
            self.users[new] = self.users.pop(old)
            self.subs[new] = self.subs.pop(old)

    def new_account(self, user: str, name: str) -> str:
        """A new account called `user` (a name nobody holds now, or held once by another): a new `sub`."""
        with self._lock:
            self.users[user] = name
            self.subs[user] = secrets.token_hex(12)
            return self.subs[user]

    def _refuse(self, status: int, why: str) -> tuple[int, Any, dict]:
        with self._lock:
            self.refusals.append(why)
        return status, {"error": "invalid_request", "error_description": why}, {}
