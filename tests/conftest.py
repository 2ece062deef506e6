"""Every test gets its own data dir, so no test writes into the checkout or sees another's DuckDB."""

from __future__ import annotations

import pytest

# the stand-ins of outside services (OpenAI, the Hub) and their fixtures, for every test
pytest_plugins = ["standins.fixtures"]


@pytest.fixture(autouse=True)
def ftassist_home(tmp_path, monkeypatch):
    from ftassist import store

    home = tmp_path / "ftassist_home"
    home.mkdir()
    monkeypatch.setenv("FTASSIST_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no test reaches the Hub; tests of the online path unset it
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    store.reset_store()
    yield home
    store.reset_store()
