"""Admin protection: with FTASSIST_ADMIN_PASSWORD set, everything but the arena needs a login,
in the browser and through the API; voters reach /arena/ without one."""

from __future__ import annotations

import urllib.error
import urllib.request

from e2e_helpers import ADMIN_PASSWORD, open_app
from playwright.sync_api import expect


def _status(url: str, data: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_admin_login(page, admin_app, shots):
    # Without a login, neither the page's config nor a named API endpoint answers.
    assert _status(admin_app.url + "config") == 401
    assert _status(admin_app.url + "gradio_api/call/check_dataset", b'{"data": []}') == 401

    page.goto(admin_app.url)
    expect(page.get_by_text("This ftassist app is protected")).to_be_visible()
    assert page.get_by_role("tab", name="Data").count() == 0
    shots(page, "login")

    page.get_by_label("username").fill("admin")
    page.get_by_label("password").fill("not-the-password")
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_text("Incorrect Credentials", exact=False)).to_be_visible()
    assert page.get_by_role("tab", name="Data").count() == 0
    shots(page, "wrong-password")

    page.get_by_label("username").fill("admin")
    page.get_by_label("password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_role("tab", name="Train")).to_be_visible(timeout=30_000)
    expect(page.locator("#ft-stepbar")).to_contain_text("Decide")
    shots(page, "logged-in")
    # The password never reaches the page.
    assert ADMIN_PASSWORD not in page.content()


def test_voters_need_no_login(page, admin_app, shots):
    assert _status(admin_app.url + "arena/config") == 200
    open_app(page, admin_app.url + "arena/", first_tab=None)
    expect(page.get_by_role("heading", name="Which answer is better?")).to_be_visible()
    expect(page.locator("#arena-prompt textarea")).not_to_have_value("", timeout=30_000)
    expect(page.get_by_role("button", name="A is better")).to_be_enabled()
    assert page.get_by_text("username").count() == 0
    shots(page, "arena-open")
