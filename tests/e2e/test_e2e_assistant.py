"""The assistant panel with no API key: answers grounded in the app's numbers and the
person's session, and actions that wait for Confirm."""

from __future__ import annotations

import re

from e2e_helpers import no_traceback, open_app, scroll_to
from playwright.sync_api import expect


def _ask(page, question: str, expect_text) -> None:
    box = page.locator("#assistant-input textarea")
    box.fill(question)
    box.press("Enter")
    expect(page.locator("#assistant-chat")).to_contain_text(expect_text, timeout=60_000)


def test_assistant_answers_and_waits_for_confirmation(page, app, shots):
    open_app(page, app.url)
    page.get_by_role("button", name="Ask the assistant").click()
    expect(page.locator("#assistant-input textarea")).to_be_visible()

    # Priced with the app's own pricing table (500 tokens per example assumed, 3 epochs).
    _ask(page, "How much for 5,000 examples on gpt-4.1-mini?", re.compile(r"\$[\d,.]+ to fine-tune gpt-4\.1-mini"))
    # Grounded in this session: the sample data, once loaded, is what it talks about.
    page.locator("#ft-sample").click()
    expect(page.locator("#ft-sample-note")).to_contain_text("Sample data loaded", timeout=60_000)
    _ask(page, "Is my dataset OK?", "60")

    # An action is proposed, not run: it waits for Confirm, and Cancel drops it.
    _ask(page, "Start training with tiny-random", "tiny-random")
    pending = page.locator("#assistant-pending")
    expect(pending).to_contain_text("Waiting for your confirmation", timeout=30_000)
    expect(page.locator("#assistant-confirm")).to_be_visible()
    scroll_to(page.locator("#assistant-chat"), 60)
    shots(page, "confirm", readme="assistant")
    page.locator("#assistant-cancel").click()
    expect(pending).to_be_hidden(timeout=30_000)
    expect(page.locator("#assistant-confirm")).to_be_hidden()
    no_traceback(page)
