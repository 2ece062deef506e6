"""Server-side session state: each browser's `Session` kept as `<data dir>/sessions/<id>.json`.

Why: a `gr.State` lives in the server's memory for one page view only, so a reload would lose
the checked dataset, the estimate and the chosen options. The browser keeps only a random id
(uuid4, in `gr.BrowserState`); the session itself stays on the server under the data dir, one
file per id, so several people on one app never see each other's data.

Secrets are never written: a Session has no field for one, and keys that look like credentials
are dropped at any depth on save (a pending action's arguments, say), as a second line of defence.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

from ftassist import config
from ftassist.usecases.session import Session

_ID = re.compile(r"^[0-9a-f]{32}$")
_SECRET = re.compile(r"(api[_-]?key|password|passwd|secret|credential|auth|bearer|access[_-]?token)", re.I)
MAX_BYTES = 20 * 1024 * 1024  # a session larger than this is not saved (reports are far smaller)


def new_session_id() -> str:
    """A fresh, unguessable id (uuid4 hex)."""
    return uuid.uuid4().hex


def valid_id(session_id: object) -> bool:
    """True for ids this module made: 32 lowercase hex digits (never a path)."""
    return isinstance(session_id, str) and bool(_ID.match(session_id))


def session_path(session_id: str) -> Path:
    if not valid_id(session_id):
        raise ValueError("Not a session id.")
    return config.sessions_dir() / f"{session_id}.json"


def storable(session: Session | dict | None) -> dict:
    """The session as it may go to disk: no key that looks like a credential, at any depth."""
    return _without_secrets(Session.of(session).to_dict())


def _without_secrets(value):
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items() if not (isinstance(k, str) and _SECRET.search(k))}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def save(session_id: str, session: Session | dict | None) -> bool:
    """Write the session atomically (temp file + rename). False when the id is invalid or it is too big."""
    if not valid_id(session_id):
        return False
    text = json.dumps(storable(session), ensure_ascii=False, default=str)
    if len(text) > MAX_BYTES:
        return False
    path = session_path(session_id)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return True


def load(session_id: str) -> Session:
    """The stored session (also one an earlier version saved), or an empty one when there is none."""
    if not valid_id(session_id):
        return Session()
    try:
        data = json.loads(session_path(session_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Session()
    return Session.from_dict(data if isinstance(data, dict) else {})


def restore(session_id: object) -> tuple[str, Session]:
    """On page open: (id, session). A known id gets its stored session; anything else a new id and an empty one."""
    if valid_id(session_id):
        return session_id, load(session_id)  # type: ignore[arg-type]
    return new_session_id(), Session()


def delete(session_id: str) -> None:
    if valid_id(session_id):
        session_path(session_id).unlink(missing_ok=True)


def prune(max_age_days: float = 30.0) -> int:
    """Delete sessions untouched for `max_age_days` (run at startup, so the data dir does not grow forever)."""
    import time

    cutoff = time.time() - max_age_days * 86400
    removed = 0
    for path in config.sessions_dir().glob("*.json"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed
