"""The arena in a real browser: blind votes, names revealed only afterwards, and the
leaderboard moving with each vote. The fixtures seed two models ("base-0.5b" and
"tuned-0.5b"), a dozen pre-generated battles and (for the full app) 30 imported votes."""

from __future__ import annotations

import re
import urllib.request

from e2e_helpers import BASE_NAME, SEEDED_VOTES, TUNED_NAME, goto_tab, grid_rows, no_traceback, open_app
from playwright.sync_api import expect

NAMES = (BASE_NAME, TUNED_NAME)


def _wait_for_battle(page) -> str:
    """The prompt of the battle the page opened with (served on page load)."""
    prompt = page.locator("#arena-prompt textarea")
    expect(prompt).not_to_have_value("", timeout=30_000)
    expect(page.locator("#arena-answer-a textarea")).not_to_have_value("")
    expect(page.locator("#arena-answer-b textarea")).not_to_have_value("")
    expect(page.get_by_role("button", name="A is better")).to_be_enabled()
    return prompt.input_value()


def _refresh_leaderboard(page, votes: int) -> None:
    """Refresh the leaderboard and wait until its headline counts `votes` votes."""
    goto_tab(page, "Leaderboard")
    page.get_by_role("button", name="Refresh", exact=True).click()
    expect(page.locator("#leaderboard-headline")).to_contain_text(re.compile(rf"\b{votes} votes"), timeout=60_000)


def _vote(page, button: str = "A is better") -> str:
    page.get_by_role("button", name=button).click()
    status = page.locator("#arena-status")
    expect(status).to_contain_text("Model A was", timeout=30_000)
    return status.inner_text()


def test_vote_changes_leaderboard(page, app, shots):
    open_app(page, app.url)
    _refresh_leaderboard(page, SEEDED_VOTES)
    table = page.locator("#leaderboard-table")
    expect(table).to_contain_text(TUNED_NAME)
    assert grid_rows(table) == 2
    shots(page, "leaderboard-before")

    goto_tab(page, "Arena")
    _wait_for_battle(page)
    status = page.locator("#arena-status")
    for name in NAMES:  # nothing on the voting side names a model before the vote
        assert name not in status.inner_text()
        assert name not in page.locator("#arena-answer-a").inner_text() + page.locator("#arena-answer-b").inner_text()
    page.locator("#arena-prompt").scroll_into_view_if_needed()
    shots(page, "battle")
    revealed = _vote(page, "B is better")
    assert all(name in revealed for name in NAMES), revealed
    expect(page.locator("#arena-answer-a")).to_contain_text(re.compile("Model A: (base|tuned)-0.5b"))
    shots(page, "revealed")

    _refresh_leaderboard(page, SEEDED_VOTES + 1)
    # The vote counts for both models in the table (30 seeded + this one).
    expect(table).to_contain_text(str(SEEDED_VOTES + 1))
    expect(table).to_contain_text(TUNED_NAME)
    page.locator("#leaderboard-headline").scroll_into_view_if_needed()
    shots(page, "leaderboard-after", readme="leaderboard")
    no_traceback(page)


def test_arena_only_hides_names_until_the_vote(page, arena_app, shots):
    open_app(page, arena_app.url, first_tab=None)
    prompt = _wait_for_battle(page)
    assert prompt.strip()
    # Only the voting page: no tabs, no owner tools.
    assert page.get_by_role("tab", name="Train").count() == 0
    assert page.get_by_text("Manage the arena").count() == 0
    # Before the vote, no model name anywhere: not in the page text, its HTML, or the app config.
    text, html = page.locator("body").inner_text(), page.content()
    with urllib.request.urlopen(arena_app.url + "config", timeout=10) as resp:
        config = resp.read().decode()
    for name in NAMES:
        assert name not in text, f"{name} shown before the vote"
        assert name not in html, f"{name} in the page's HTML before the vote"
        assert name not in config, f"{name} in /config"
    expect(page.get_by_role("button", name="New round")).to_be_visible()
    shots(page, "battle")

    revealed = _vote(page, "A is better")
    assert all(name in revealed for name in NAMES), revealed
    body = page.locator("body").inner_text()
    assert BASE_NAME in body and TUNED_NAME in body
    # The vote buttons are off until the next round; a new round hides the names again.
    expect(page.get_by_role("button", name="A is better")).to_be_disabled()
    shots(page, "revealed", readme="arena")

    page.get_by_role("button", name="New round").click()
    expect(page.locator("#arena-status")).not_to_contain_text("Model A was", timeout=30_000)
    expect(page.get_by_role("button", name="A is better")).to_be_enabled()
    for name in NAMES:
        assert name not in page.locator("body").inner_text()
    no_traceback(page)
