"""Who a voter is, in a way that is hard to fake: a signed id, a hashed address, a Hugging Face account.

A browser session's random id is free to throw away, so limits keyed on it alone hold nothing
(ten fresh sessions vote ten times). As FastChat's arena does, a voter here is known by:

- a **signed id**: a random id with an HMAC signature, kept by the browser in a long-lived
  cookie, so the same voter across new sessions and reloads is one voter (one vote per battle
  still holds); a cookie that does not verify is ignored and a fresh id issued;
- the **client address**, stored only as a keyed hash (`hash_address`), for limits per address:
  throwaway sessions from one machine share it. Behind a proxy (a Space) the address is read from
  X-Forwarded-For only as far as the trusted proxies append to it (`client_address`);
- optionally a **Hugging Face account** (OAuth on a Space): its id is a keyed hash of the account's
  stable OpenID `sub`, not of its user name, which the owner may change and someone else may later take;
  the browser's anonymous (cookie) voter is linked to it (`link_alias`), so one person cannot vote on a
  battle once anonymously and again signed in.

The signing key is made once and kept in the data dir (`.voter_secret`, mode 0600); it never
leaves the server. No web code here: the cookie's transport is `ui/voter_cookie.py`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import threading
import time
import uuid
from pathlib import Path

COOKIE_NAME = "ftassist_voter"
COOKIE_MAX_AGE_S = 365 * 24 * 3600
SECRET_FILE = ".voter_secret"
_VERSION = "v1"
_ID = re.compile(r"^[0-9a-f]{32}$")

_secrets: dict[Path, bytes] = {}
_secrets_lock = threading.Lock()


def load_secret(data_dir: str | Path) -> bytes:
    """The data dir's signing key, made on first use (32 random bytes, hex, file mode 0600).

    Created with O_EXCL so that two processes starting at once agree on one key."""
    path = Path(data_dir) / SECRET_FILE
    with _secrets_lock:
        cached = _secrets.get(path)
        if cached is not None:
            return cached
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(secrets.token_hex(32))
        value = path.read_text(encoding="ascii").strip()
        if len(value) < 32:
            raise ValueError(f"{path} is not a voter signing key (too short): delete it and restart the app "
                             "(voters then get new ids).")
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        _secrets[path] = value.encode()
        return _secrets[path]


def _sign(secret: bytes, purpose: str, value: str) -> str:
    digest = hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode().rstrip("=")


def new_voter_id() -> str:
    return uuid.uuid4().hex


def issue(secret: bytes, voter_id: str | None = None) -> str:
    """The cookie value for `voter_id` (a new random id by default): `v1.<id>.<signature>`."""
    voter_id = voter_id or new_voter_id()
    if not _ID.match(voter_id):
        raise ValueError("A voter id is 32 lowercase hex digits.")
    return f"{_VERSION}.{voter_id}.{_sign(secret, 'voter', voter_id)}"


def verify(secret: bytes, value: str | None) -> str | None:
    """The voter id in a cookie value this server signed, else None (missing, malformed or tampered)."""
    if not isinstance(value, str) or len(value) > 200:
        return None
    parts = value.split(".")
    if len(parts) != 3 or parts[0] != _VERSION or not _ID.match(parts[1]):
        return None
    if not hmac.compare_digest(parts[2], _sign(secret, "voter", parts[1])):
        return None
    return parts[1]


def signed_in_voter(secret: bytes, username: str, sub: str | None = None) -> str:
    """The voter id of a Hugging Face account: a keyed hash of its OpenID `sub` (neither is stored).

    The `sub` is the account's stable id: a renamed account stays one voter, and a new account that takes
    an old name does not inherit its votes or limits. The user name is the fallback only where a profile
    carries no `sub`; the two are hashed under different labels, so a name never equals some account's id."""
    sub = (sub or "").strip()
    label = f"hf-sub:{sub}" if sub else f"hf-user:{username.strip().lower()}"
    digest = hmac.new(secret, label.encode(), hashlib.sha256).hexdigest()
    return "hf-" + digest[:32]


def link_alias(store, account: str, alias: str, now: float | None = None) -> None:
    """Record that the anonymous voter `alias` (the browser's signed cookie) is the person signed in as
    `account`, so that the one-vote-per-battle rule (`battles.vote`) holds across both ids: without the
    link, a battle voted on anonymously could be voted on again after signing in, or after signing out."""
    store.execute(
        "INSERT INTO voter_links (account, alias, linked_epoch) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        [account, alias, time.time() if now is None else now],
    )


def hash_address(secret: bytes, address: str | None) -> str | None:
    """A keyed hash of a client address (the address itself is never stored). IPv6 clients are grouped
    by their /64 network, which one household or machine gets whole."""
    if not address:
        return None
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        key = address.strip()[:100]
    else:
        mapped = getattr(parsed, "ipv4_mapped", None)
        if isinstance(parsed, ipaddress.IPv6Address) and mapped is None:
            key = str(ipaddress.ip_network(f"{parsed}/64", strict=False))
        else:
            key = str(mapped or parsed)
    return hmac.new(secret, f"address:{key}".encode(), hashlib.sha256).hexdigest()[:32]


def client_address(peer: str | None, forwarded_for: str | None, trusted_hops: int) -> str | None:
    """The client's address: the connection's peer, unless `trusted_hops` proxies stand in front of the app.

    Each trusted proxy appends the address it received the request from to X-Forwarded-For, so the
    client is the entry `trusted_hops` from the right; what a client wrote there itself lies further
    left and is never believed. With no trusted proxy the header is ignored.
    """
    if trusted_hops <= 0 or not forwarded_for:
        return peer
    entries = [entry.strip() for entry in forwarded_for.split(",") if entry.strip()]
    return entries[-trusted_hops] if len(entries) >= trusted_hops else peer
