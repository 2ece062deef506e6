"""The Data tab on a dataset with problems: each error has its line and a fix, the checklist
turns amber, and clicking an error shows the record it points at."""

from __future__ import annotations

import json
import re

from e2e_helpers import SAMPLE, goto_tab, grid_rows, no_traceback, open_app, scroll_to, upload_file
from playwright.sync_api import expect


def _broken_dataset(path):
    """The first 20 sample lines with a broken line, a missing answer, a bad role, a card number and a duplicate."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()[:20]
    lines[3] = '{"messages": [{"role": "user", "content": "Hi"}'
    lines[7] = json.dumps({"messages": [{"role": "user", "content": "What is your return policy?"}]})
    lines[11] = json.dumps({"messages": [{"role": "customer", "content": "Hello"},
                                         {"role": "assistant", "content": "Hi!"}]})
    lines[15] = json.dumps({"messages": [{"role": "user", "content": "My card is 4111 1111 1111 1111, charge it"},
                                         {"role": "assistant", "content": "Thanks, noted."}]})
    lines.append(lines[2])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_errors_point_at_lines(page, app, shots, tmp_path):
    data = _broken_dataset(tmp_path / "support_chats.jsonl")
    open_app(page, app.url)
    goto_tab(page, "Data")
    upload_file(page, data)
    page.get_by_role("button", name="Check dataset", exact=True).click()

    summary = page.locator("#data-summary")
    expect(summary).to_contain_text("18 valid examples", timeout=60_000)
    expect(summary).to_contain_text("3 errors")
    checklist = page.locator("#data-checklist")
    expect(checklist).to_contain_text(re.compile(r"WARN\s+Secrets and personal data"))
    expect(checklist).to_contain_text(re.compile(r"WARN\s+Diverse inputs"))

    errors = page.locator("#data-errors")
    for code in ("invalid_json", "example_missing_assistant_message", "unrecognized_role"):
        expect(errors).to_contain_text(code)
    assert grid_rows(errors) >= 3
    # Each error names its line: 4, 8 and 12 in the file.
    cells = errors.get_by_role("gridcell")
    for line in ("4", "8", "12"):
        expect(cells.filter(has_text=re.compile(rf"^\s*{line}\s*$")).first).to_be_visible()
    scroll_to(summary, 110)
    shots(page, "checklist")

    # Clicking an error shows the record it is about.
    errors.get_by_role("gridcell", name="example_missing_assistant_message").first.click()
    record = page.locator(".cm-content").filter(has_text="What is your return policy?")  # the Record code view
    expect(record).to_be_visible(timeout=30_000)
    scroll_to(summary, 110)
    shots(page, "record-preview", readme="data-checklist")
    no_traceback(page)


def test_check_without_a_file_says_what_to_do(page, app, shots):
    open_app(page, app.url)
    goto_tab(page, "Data")
    page.get_by_role("button", name="Check dataset", exact=True).click()
    toast = page.get_by_text("Upload a dataset file")
    expect(toast.first).to_be_visible()
    shots(page, "no-file")
    no_traceback(page)


def _x_labels(plot) -> list[str]:
    return plot.evaluate("el => Array.from(el.querySelectorAll('.role-axis-label text')).map(t => t.textContent)")


def test_token_histogram_bins_in_order(page, app, tmp_path):
    """The bins of 'Tokens per example' read left to right from short to long."""
    data = _broken_dataset(tmp_path / "support_chats.jsonl")
    open_app(page, app.url)
    goto_tab(page, "Data")
    upload_file(page, data)
    page.get_by_role("button", name="Check dataset", exact=True).click()
    plot = page.locator("#data-histogram")
    expect(plot.locator(".role-axis-label text").first).to_be_attached(timeout=60_000)
    starts = [int(t.split("-")[0].replace(",", "")) for t in _x_labels(plot) if re.match(r"^[\d,]+-[\d,]+$", t)]
    assert len(starts) >= 2, _x_labels(plot)
    assert starts == sorted(starts), f"histogram bins out of order: {_x_labels(plot)}"
