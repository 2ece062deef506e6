"""Admin protection with real HTTP: the full app behind a login when the password is set, the arena never."""

from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import contextmanager

import httpx
import pytest

from ftassist.ui import auth


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(arena_only: bool = False):
    """The real server (create_server + uvicorn) on a random free port, stopped afterwards."""
    import uvicorn

    from ftassist.ui.layout import create_server

    port = _free_port()
    app = create_server(arena_only=arena_only, host="127.0.0.1", port=port)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=base, timeout=10, follow_redirects=True) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _labels(config: dict) -> set[str]:
    return {str(c.get("props", {}).get("label")) for c in config["components"]}


def _tab_labels(config: dict) -> set[str]:
    return {str(c.get("props", {}).get("label")) for c in config["components"] if c.get("type") == "tabitem"}


def test_check_login(monkeypatch):
    monkeypatch.delenv("FTASSIST_ADMIN_PASSWORD", raising=False)
    assert auth.gradio_auth() is None and not auth.auth_enabled()
    monkeypatch.setenv("FTASSIST_ADMIN_PASSWORD", "s3cret")
    assert auth.check_login("admin", "s3cret")
    assert auth.check_login(" admin ", "s3cret")
    assert not auth.check_login("admin", "wrong")
    assert not auth.check_login("root", "s3cret")
    monkeypatch.setenv("FTASSIST_ADMIN_USER", "owner")
    assert auth.check_login("owner", "s3cret") and not auth.check_login("admin", "s3cret")


def test_login_required_except_arena(monkeypatch):
    monkeypatch.setenv("FTASSIST_ADMIN_PASSWORD", "s3cret")
    with serve() as client:
        page = client.get("/")
        assert page.status_code == 200 and '"auth_required":true' in page.text.replace(" ", "")
        assert "s3cret" not in page.text
        assert client.get("/config").status_code == 401
        assert client.post("/gradio_api/upload", files={"files": ("a.jsonl", b"{}")}).status_code == 401
        # The arena is open to voters and shows only the voting parts.
        arena = client.get("/arena/config")
        assert arena.status_code == 200
        labels = _labels(arena.json())
        assert "Model A" in labels and "Model B" in labels
        assert not _tab_labels(arena.json())
        assert not {"Training file (chat JSONL)", "Dataset file", "Display name"} & labels
        assert client.get("/arena/").status_code == 200
        typed = client.get("/arena?x=1", follow_redirects=False)  # the link without the slash
        assert typed.status_code == 307 and typed.headers["location"] == "arena/?x=1"
        assert client.get("/arena").status_code == 200
        # Wrong password: refused; right one: the full app.
        assert client.post("/login", data={"username": "admin", "password": "nope"}).status_code == 400
        ok = client.post("/login", data={"username": "admin", "password": "s3cret"})
        assert ok.status_code == 200 and ok.json() == {"success": True}
        config = client.get("/config")
        assert config.status_code == 200
        assert {"Decide", "Data", "Estimate", "Train", "Arena", "Leaderboard"} <= _tab_labels(config.json())


def test_no_login_without_password(monkeypatch):
    monkeypatch.delenv("FTASSIST_ADMIN_PASSWORD", raising=False)
    with serve() as client:
        page = client.get("/")
        assert page.status_code == 200 and '"auth_required":true' not in page.text.replace(" ", "")
        config = client.get("/config")
        assert config.status_code == 200
        assert "Train" in _tab_labels(config.json())
        assert config.json().get("max_file_size") == 1024**3
        assert client.get("/arena/config").status_code == 200


def test_arena_only_serves_only_voting(monkeypatch):
    monkeypatch.setenv("FTASSIST_ADMIN_PASSWORD", "s3cret")  # voters never need a login
    with serve(arena_only=True) as client:
        config = client.get("/config")
        assert config.status_code == 200
        data = config.json()
        assert not _tab_labels(data)
        text = json.dumps(data)
        for hidden in ("Training file", "Dataset file", "Manage the arena", "Try with sample data"):
            assert hidden not in text
        assert "Model A" in _labels(data)
        assert client.get("/arena/config").status_code == 404


def test_upload_limit_from_env(monkeypatch):
    from ftassist import config

    monkeypatch.setenv("FTASSIST_MAX_UPLOAD", "1kb")
    monkeypatch.delenv("FTASSIST_ADMIN_PASSWORD", raising=False)
    assert config.max_upload() == "1kb"
    with serve() as client:
        assert client.get("/config").json().get("max_file_size") == 1024
        big = client.post("/gradio_api/upload", files={"files": ("big.jsonl", b"x" * 5000)})
        assert big.status_code == 413
        assert "size" in big.text.lower()
    monkeypatch.setenv("FTASSIST_MAX_UPLOAD", "lots")
    with pytest.raises(ValueError, match="FTASSIST_MAX_UPLOAD"):
        config.max_upload()
