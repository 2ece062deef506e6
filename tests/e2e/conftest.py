"""Browser tests: the real app (`python app.py`) in a subprocess, driven by Debian's Chromium.

Each app fixture is session-scoped: it gets its own data dir (FTASSIST_HOME), is seeded
*before* it starts (the app owns DuckDB while it runs), waits for HTTP 200 and is killed
with its whole process group at the end (training workers included). Every step saves a
screenshot under `test-artifacts/e2e/`; with `FTASSIST_UPDATE_SCREENSHOTS=1` the ones
named for the README are also copied to `docs/screenshots/`.

Chromium is started headless from /usr/bin/chromium (never `playwright install`); the
tests skip when it is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from e2e_helpers import (ADMIN_PASSWORD, ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, SEEDED_VOTES, VIEWPORT, App, Shots,
                         auth_available, seed_arena)

EXPECT_TIMEOUT_MS = 30_000
ACTION_TIMEOUT_MS = 30_000


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)


def _start(tmp_path_factory, name: str, args: list[str] | None = None, env: dict | None = None,
           n_votes: int = SEEDED_VOTES) -> App:
    """Seed a fresh data dir (before the app owns its DuckDB), start the app on it, wait for HTTP 200."""
    home = tmp_path_factory.mktemp(name) / "home"
    home.mkdir()
    seed_arena(home, n_votes=n_votes)
    return App(home, args, env).wait_ready()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def app(tmp_path_factory, chromium_path):
    """The whole app (every tab), its arena seeded with two models, battles and votes."""
    server = _start(tmp_path_factory, "app")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def arena_app(tmp_path_factory, chromium_path):
    """`python app.py --arena-only`: the blind voting page, seeded with battles, no votes."""
    server = _start(tmp_path_factory, "arena", ["--arena-only"], n_votes=0)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def admin_app(tmp_path_factory, chromium_path):
    """The whole app with FTASSIST_ADMIN_PASSWORD set: everything but the arena needs a login."""
    if not auth_available():
        pytest.skip("admin protection (ftassist/ui/auth.py, FTASSIST_ADMIN_PASSWORD) is not in the app yet")
    server = _start(tmp_path_factory, "admin", env={"FTASSIST_ADMIN_PASSWORD": ADMIN_PASSWORD})
    yield server
    server.stop()


# -- the browser --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import expect, sync_playwright

    # Every handler runs on a busy 2-core box: wait up to 30 s for what a step should show.
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _new_page(browser, timeout_ms: int = ACTION_TIMEOUT_MS):
    # A new context is a fresh, empty profile: no cookies or storage shared between tests.
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.set_default_timeout(timeout_ms)
    return context, context.new_page()


@pytest.fixture
def page(browser):
    context, pg = _new_page(browser)
    yield pg
    context.close()


@pytest.fixture(scope="module")
def module_page(browser):
    """One page for a module whose tests are consecutive steps of one session (the wizard)."""
    context, pg = _new_page(browser)
    yield pg
    context.close()


@pytest.fixture
def shots(request) -> Shots:
    return Shots(request.node.module.__name__.rsplit(".", 1)[-1] + "/" + request.node.name)


@pytest.fixture(scope="session", autouse=True)
def _fresh_artifacts():
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield


