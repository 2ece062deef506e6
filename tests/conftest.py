"""Every test gets its own data dir, so no test writes into the checkout or sees another's DuckDB."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def ftassist_home(tmp_path, monkeypatch):
    from ftassist import store

    home = tmp_path / "ftassist_home"
    home.mkdir()
    monkeypatch.setenv("FTASSIST_HOME", str(home))
    store.reset_store()
    yield home
    store.reset_store()
