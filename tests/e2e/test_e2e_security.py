"""The security review's attacks, replayed against the real app (`python app.py` with the admin password set)
over HTTP and in Chromium; each must now be refused. See SECURITY.md, "For the admin"."""

from __future__ import annotations

import re
import time
from contextlib import contextmanager

import httpx
import psutil
import pytest
from e2e_helpers import ADMIN_PASSWORD, App, seed_arena
from tests.data.test_load_caps import write_parquet_bomb
from playwright.sync_api import expect

KEY = "sk-e2e-MARKER-0123456789abcdef"
ORIGINS = ("http://evil.example", "http://localhost:1", "null")


@pytest.fixture(scope="module")
def secured(tmp_path_factory, chromium_path):
    """Its own app: the login throttle test locks out 127.0.0.1, which must not reach the other modules' apps."""
    home = tmp_path_factory.mktemp("secured") / "home"
    home.mkdir()
    seed_arena(home, n_votes=0)
    server = App(home, env={"FTASSIST_ADMIN_PASSWORD": ADMIN_PASSWORD}).wait_ready()
    yield server
    server.stop()


@contextmanager
def _admin(app: App):
    with httpx.Client(base_url=app.url, timeout=60) as client:
        assert client.post("login", data={"username": "admin", "password": ADMIN_PASSWORD}).status_code == 200
        yield client


def test_voting_mount_serves_no_file_and_takes_no_upload(secured):
    with _admin(secured) as admin:
        uploaded = admin.post("gradio_api/upload", files={"files": ("dataset.jsonl", b'{"secret": "admin data"}\n')})
        assert uploaded.status_code == 200
        path = uploaded.json()[0]
        assert admin.get(f"gradio_api/file={path}").status_code == 200  # the admin's own file, to the admin
    with httpx.Client(base_url=secured.url, timeout=60) as anyone:
        assert anyone.get(f"arena/gradio_api/file={path}").status_code == 404
        assert anyone.get(f"arena/gradio_api/file/{path}").status_code == 404
        assert anyone.get("arena/gradio_api/file=/etc/passwd").status_code == 404
        upload = anyone.post("arena/gradio_api/upload", files={"files": ("x.bin", b"x" * 3_000_000)})
        assert upload.status_code == 404
        assert anyone.get("arena/gradio_api/proxy=http://127.0.0.1:9/").status_code == 404
        assert anyone.get("arena/openapi.json").status_code == 404
        # The voting page itself still works.
        assert anyone.get("arena/").status_code == 200 and anyone.get("arena/config").status_code == 200


def test_cors_allows_no_other_origin(secured):
    with httpx.Client(base_url=secured.url, timeout=60) as anyone:
        for origin in ORIGINS:
            for path in ("", "arena/config", "config"):
                response = anyone.get(path, headers={"Origin": origin})
                assert "access-control-allow-origin" not in response.headers, (origin, path)
                assert "access-control-allow-credentials" not in response.headers, (origin, path)
            preflight = anyone.options("arena/gradio_api/queue/join", headers={
                "Origin": origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type"})
            assert "access-control-allow-origin" not in preflight.headers, origin


def test_the_page_before_login_lists_no_endpoint(secured):
    with httpx.Client(base_url=secured.url, timeout=60) as anyone:
        page = anyone.get("").text
        info = re.search(r"window\.gradio_api_info = (.*?);</script>", page).group(1)
        assert info == '{"named_endpoints": {}, "unnamed_endpoints": {}}'
        for name in ("check_dataset", "start_training", "assistant_chat", "recommend"):
            assert name not in page
        assert anyone.get("gradio_api/info").status_code == 401
        assert anyone.get("openapi.json").status_code == 404
    with _admin(secured) as admin:  # the same page after login does list them: the check above can fail
        assert "start_training" in admin.get("").text


def test_a_parquet_bomb_is_refused_and_the_app_stays_small(secured, tmp_path):
    from gradio_client import Client, handle_file

    bomb = tmp_path / "bomb.parquet"
    write_parquet_bomb(bomb)  # 2 GiB of text, about 10 KB on disk
    app = psutil.Process(secured.proc.pid)
    before = app.memory_info().rss
    client = Client(secured.url, auth=("admin", ADMIN_PASSWORD), verbose=False)
    started = time.monotonic()
    with pytest.raises(Exception) as refused:
        client.predict([handle_file(str(bomb))], "", "gpt-4.1-mini-2025-04-14", api_name="/check_dataset")
    assert time.monotonic() - started < 120
    assert "decompresses to" in str(refused.value) or "FTASSIST_MAX_UPLOAD" in str(refused.value) \
        or "decompresses to" in secured.log_tail(), str(refused.value)
    assert app.memory_info().rss - before < 500 * 2**20  # not the 7 GB of before


def test_keys_typed_in_the_page_stay_out_of_browser_storage(secured, browser):
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(secured.url)
        page.get_by_label("username").fill("admin")
        page.get_by_label("password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Login").click()
        expect(page.get_by_role("tab", name="Train")).to_be_visible(timeout=60_000)
        # The assistant: a key, a question sent with it (the answer is an error: no model at that URL).
        page.locator("#ft-assistant").get_by_text("Ask the assistant").first.click()
        page.get_by_text("Use a language model (optional)").click()
        page.locator("#ft-assistant").get_by_label("API key").fill(KEY)
        page.get_by_label("Base URL (optional)").fill("http://127.0.0.1:9/v1")
        page.locator("#assistant-input textarea").fill("How much for 5,000 examples?")
        page.locator("#ft-assistant").get_by_role("button", name="Send").click()
        expect(page.locator("#assistant-chat")).to_contain_text("5,000", timeout=60_000)
        # The Train tab: the key sent with Start (refused: no training file; the key went with the request).
        page.get_by_role("tab", name="Train", exact=True).click()
        page.locator("#ft-tabs").get_by_text("OpenAI settings").click()
        train_key = page.locator("#ft-tabs input[type=password]").first
        train_key.fill(KEY)
        with page.expect_response(lambda r: "queue/join" in r.url):  # the Start request, with the key, went out
            page.get_by_role("button", name="Start training", exact=True).click()
        stored = _browser_storage(page)
        assert KEY not in stored and "run-history" not in stored
        page.goto(secured.url + "logout")
        expect(page.get_by_label("username")).to_be_visible()
        stored = _browser_storage(page)
        assert KEY not in stored and "run-history" not in stored
        assert KEY not in str(context.cookies())
    finally:
        context.close()


def _browser_storage(page) -> str:
    """Everything the page's origin keeps: localStorage, sessionStorage and every IndexedDB store."""
    return page.evaluate("""async () => {
        const dump = (s) => Object.fromEntries(Object.keys(s).map(k => [k, s.getItem(k)]));
        const out = {local: dump(localStorage), session: dump(sessionStorage), idb: {}};
        for (const info of (await indexedDB.databases())) {
            const db = await new Promise((ok, ko) => { const r = indexedDB.open(info.name); r.onsuccess = () => ok(r.result); r.onerror = ko; });
            for (const name of db.objectStoreNames) {
                out.idb[info.name + "/" + name] = await new Promise((ok) => {
                    const r = db.transaction(name).objectStore(name).getAll(); r.onsuccess = () => ok(r.result); r.onerror = () => ok(null); });
            }
            db.close();
        }
        return JSON.stringify(out);
    }""")


def test_logins_are_throttled_with_a_growing_delay(secured):
    """Last in this module: it locks 127.0.0.1 out of this app for a while."""
    with httpx.Client(base_url=secured.url, timeout=60) as anyone:
        codes = [anyone.post("login", data={"username": "admin", "password": f"guess-{i}"}).status_code
                 for i in range(40)]
        assert codes.count(400) <= 6 and codes.count(429) >= 34, codes  # 3 free, then 1 s, 2 s, 4 s...
        refused = anyone.post("login", data={"username": "admin", "password": ADMIN_PASSWORD})
        assert refused.status_code == 429  # the right password, while waiting: no answer on it either
        first_wait = int(refused.headers["retry-after"])
        _wait_until_allowed(anyone)
        assert anyone.post("login", data={"username": "admin", "password": "wrong"}).status_code == 400
        second_wait = int(anyone.post("login", data={"username": "admin", "password": "x"}).headers["retry-after"])
        assert second_wait > first_wait  # the delay grows with each failure
        _wait_until_allowed(anyone)
        assert anyone.post("login", data={"username": "admin", "password": ADMIN_PASSWORD}).status_code == 200
        assert anyone.post("login", data={"username": "admin", "password": "wrong"}).status_code == 400  # reset


def _wait_until_allowed(client: httpx.Client) -> None:
    """Wait out the delay the server states (Retry-After), asked with an attempt that is refused unchecked."""
    response = client.post("login", data={"username": "admin", "password": "waiting"})
    assert response.status_code == 429, "expected to be waiting"
    until = time.monotonic() + int(response.headers["retry-after"])
    while time.monotonic() < until:
        time.sleep(min(0.2, max(until - time.monotonic(), 0)))
