"""The whole journey in one browser session: Decide -> Data -> Estimate -> Train.

The tests run in file order on one page (`module_page`): each step needs what the previous
one left in the session (the checked dataset feeds the estimate; the split feeds the
training form). A step whose earlier steps did not pass (or were not selected) is skipped.
"""

from __future__ import annotations

import re
import time

import pytest
from e2e_helpers import SAMPLE, goto_tab, grid_records, grid_rows, no_traceback, open_app, scroll_to, upload_file
from playwright.sync_api import expect

# Number fields whose blank value means "automatic". Gradio 6 shows (and sends) 0 for a
# gr.Number with value=None, so such a field must either start blank or say that 0 means
# automatic too ("0 or blank: ..."). The flow clears the ones that do not, as a person would.
BLANK_MEANS_AUTO = {
    "Estimate": [r"^Reply tokens per example", r"^Training price override", r"^Input price override",
                 r"^Output price override", r"^Sequence length"],
    "Train": [r"^Learning rate", r"^Max steps"],
}
TRAIN_TIMEOUT_MS = 240_000
TRAIN_EPOCHS = 20
PASSED: set[str] = set()  # the steps of this module that passed, in this run


def _needs(*steps: str) -> None:
    missing = [step for step in steps if step not in PASSED]
    if missing:
        pytest.skip(f"needs the earlier step(s) {', '.join(missing)} to pass first in the same run")


def _label_text(field) -> str:
    return field.evaluate("el => ((el.labels && el.labels[0] && el.labels[0].innerText)"
                          " || el.getAttribute('aria-label') || '')")


def _misleading_zeros(page, tab: str) -> list[tuple[object, str]]:
    """The 'blank means automatic' fields of `tab` that show a value their label does not allow."""
    found = []
    for pattern in BLANK_MEANS_AUTO[tab]:
        field = page.get_by_label(re.compile(pattern)).first
        value, label = field.input_value(), _label_text(field)
        if value != "" and not (value == "0" and re.search(r"\b0 or blank", label)):
            found.append((field, f"{tab}: {label.strip()!r} shows {value!r}"))
    return found


def _clear_blank_fields(page, tab: str) -> None:
    for field, _ in _misleading_zeros(page, tab):
        field.fill("")


def _no_error_toast(page) -> None:
    toasts = page.locator(".toast-body.error, [data-testid='toast-body'].error")
    if toasts.count():
        raise AssertionError("error shown on the page: " + " | ".join(toasts.all_inner_texts()))


def test_01_decide(module_page, app, shots):
    page = open_app(module_page, app.url, first_tab="Decide")
    shots(page, "home")
    expect(page.locator("#ft-stepbar")).to_contain_text("Decide")

    page.get_by_label("Is the goal a writing style, tone or output format?").check()
    page.get_by_label("Have you already tried a good prompt with a few examples?").check()
    page.get_by_label("How many good examples do you have (or could write)?").fill("500")
    page.get_by_role("button", name="Recommend", exact=True).click()

    advice = page.locator("#decide-advice")
    expect(advice.get_by_role("heading", name=re.compile("^Fine-tuning"))).to_be_visible()
    expect(advice).to_contain_text("Why")
    # The step bar says what this step found.
    expect(page.locator("#ft-stepbar")).to_contain_text(re.compile("fine-tun", re.I))
    scroll_to(page.get_by_label("Is the goal a writing style, tone or output format?"), 120)
    shots(page, "advice", readme="decide")
    no_traceback(page)
    PASSED.add("decide")


def test_02_data(module_page, app, shots):
    _needs("decide")
    page = module_page
    goto_tab(page, "Data")
    upload_file(page, SAMPLE)
    page.get_by_role("button", name="Check dataset", exact=True).click()

    rows = page.locator("#data-checklist details")
    expect(rows.first).to_be_visible(timeout=60_000)
    assert rows.count() >= 5, page.locator("#data-checklist").inner_text()
    expect(page.locator("#data-summary")).to_contain_text("60 valid examples")
    expect(page.locator("#data-summary")).to_contain_text("0 errors")
    # Every checklist row has a status and a title; the sample fails none (balance has no labels to judge).
    texts = rows.all_inner_texts()
    assert all(re.match(r"^(PASS|WARN|FAIL|NOT CHECKED) ", t.strip()) for t in texts), texts
    assert any(t.strip().startswith("NOT CHECKED Balanced") for t in texts), texts
    assert any("Consistent format" in t for t in texts), texts
    assert not any(t.strip().startswith("FAIL") for t in texts), texts
    expect(page.locator("#ft-stepbar")).to_contain_text("60 examples")
    scroll_to(page.get_by_role("heading", name="Check your dataset"))
    shots(page, "checklist")
    # A row opens to show its evidence.
    rows.first.locator("summary").click()
    expect(rows.first).to_have_attribute("open", "")

    page.get_by_role("button", name="Fix & split", exact=True).click()
    expect(page.get_by_text(re.compile(r"54 train.*6 validation"))).to_be_visible(timeout=60_000)
    shots(page, "split")
    no_traceback(page)
    PASSED.add("data")


def test_03_estimate(module_page, app, shots):
    _needs("decide", "data")
    page = module_page
    goto_tab(page, "Estimate")
    _clear_blank_fields(page, "Estimate")
    page.get_by_role("button", name="Estimate", exact=True).click()

    summary = page.locator("#estimate-summary")
    # The exact counts of the train split are used (not the raw file, nor the quick-mode defaults).
    expect(summary).to_contain_text("54 examples, 6,820 tokens (exact, from the train split", timeout=60_000)
    expect(summary).to_contain_text("Recommended")
    table = page.locator("#estimate-table")
    expect(table).to_contain_text("gpt-4.1-mini")
    expect(table).to_contain_text("LoRA")
    _no_error_toast(page)
    assert grid_rows(table) >= 6, table.inner_text()[:2000]
    # Cost cells are real prices, not the zero of a blank override.
    assert re.search(r"\b0\.0*[1-9]\d*", table.inner_text()), table.inner_text()[:2000]
    scroll_to(summary)
    shots(page, "table", readme="estimate")

    page.get_by_role("button", name="Use this option", exact=True).click()
    expect(page.locator("#estimate-chosen")).to_contain_text("Chosen for training")
    expect(page.locator("#ft-stepbar")).to_contain_text("$")
    no_traceback(page)
    PASSED.add("estimate")


def _progress_step(page) -> int:
    found = re.search(r"step (\d+)/", page.locator("#train-progress").inner_text() or "")
    return int(found.group(1)) if found else 0


def _chart_points(page) -> int:
    """How many data points the loss chart holds (Vega draws one hover symbol per point)."""
    return page.locator("#train-loss").evaluate(
        "el => el.querySelectorAll('.mark-symbol path[role=graphics-symbol]').length")


def _line_strokes(page) -> list[str]:
    """The stroke colour of each drawn loss line ('' when the line is invisible)."""
    return page.locator("#train-loss").evaluate(
        "el => Array.from(el.querySelectorAll('.mark-line path[role=graphics-symbol]'))"
        ".map(p => p.getAttribute('stroke') || '')")


@pytest.mark.timeout(420)
def test_04_train(module_page, app, shots):
    _needs("decide", "data", "estimate")
    page = module_page
    goto_tab(page, "Train")
    # The Data step's split is handed over: the gate says so and the paths are filled in.
    expect(page.locator("#train-gate")).to_contain_text("54 train / 6 validation")
    expect(page.get_by_label("Training file (chat JSONL")).to_have_value(re.compile(r"train\.jsonl$"))
    expect(page.get_by_label("Validation file (optional)")).to_have_value(re.compile(r"valid\.jsonl$"))

    # Whatever option the estimate chose (a GPU elsewhere, most likely), train locally on tiny-random here.
    page.get_by_role("radio", name="local", exact=True).check()
    base = page.get_by_label("Base model (Hub id, local folder, or tiny-random)")
    base.fill("tiny-random")
    base.press("Enter")
    page.keyboard.press("Escape")
    page.get_by_role("radio", name="lora", exact=True).check()
    # Enough steps (280; ~12 s on an idle CPU) for the 2-second monitor to show the run midway.
    page.get_by_label("Epochs", exact=True).fill(str(TRAIN_EPOCHS))
    _clear_blank_fields(page, "Train")
    shots(page, "form")
    page.get_by_role("button", name="Start training", exact=True).click()

    status = page.locator("#train-status")
    expect(status).to_contain_text(re.compile(r"running|queued|succeeded"), timeout=60_000)
    _no_error_toast(page)

    # Watch the run: the logged steps grow, and the chart gains points as they come.
    seen_steps, points_while_running, trace = set(), [], []
    start = deadline = time.monotonic()
    deadline += TRAIN_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        text = status.inner_text()
        step = _progress_step(page)
        trace.append(f"{time.monotonic() - start:5.1f}s step {step}: {text.splitlines()[0] if text else ''}")
        if re.search(r"succeeded|failed|cancelled", text):
            break
        if "running" in text and step and step not in seen_steps:
            seen_steps.add(step)
            points_while_running.append(_chart_points(page))
            if len(seen_steps) == 3:
                scroll_to(page.locator("#train-status"))
                shots(page, "running")
        time.sleep(1.0)
    text = status.inner_text()
    assert "succeeded" in text, f"the run did not succeed: {text}\n{app.log_tail()}"
    page.wait_for_timeout(500)  # let the chart draw its last points
    scroll_to(page.locator("#train-status"))
    shots(page, "finished", readme="train")
    assert len(seen_steps) >= 2, (
        f"saw no progress while the run was going: steps {sorted(seen_steps)}\n" + "\n".join(trace))

    # Live updates: the chart gained points while the run was going (the last look may already hold
    # every logged step when the finished event lands a moment later), and kept them all at the end.
    final_points = _chart_points(page)
    assert points_while_running[-1] > points_while_running[0] and final_points >= max(points_while_running), (
        f"the loss chart did not gain points: {points_while_running} while running, {final_points} at the end")
    strokes = _line_strokes(page)
    assert strokes and all(strokes), (
        f"the loss chart's lines are not all drawn (stroke colours {strokes}): Gradio 6 fixes a LinePlot's colour "
        "domain from the first data it draws, so send None (not an empty frame) before the first point and keep "
        "both series, train and validation, in every frame (a NaN row for the one with no point yet)")
    expect(page.locator(".block", has=page.get_by_text("All jobs", exact=True)).last).to_contain_text("succeeded")
    no_traceback(page)
    progress = page.locator("#train-progress").inner_text()
    assert re.search(r"step (\d+)/\1\b", progress), (
        f"a finished run's progress should be complete, not {progress.strip()!r} (the last logged step is not "
        "the last step: use the finished event's step count)")
    PASSED.add("train")


def test_05_state_survives_a_reload(module_page, app, shots):
    _needs("data")
    page = open_app(module_page, app.url, first_tab="Decide")
    bar = page.locator("#ft-stepbar")
    # The session is kept server-side under this browser's id: the bar is restored.
    expect(bar).to_contain_text("60 examples", timeout=30_000)
    expect(bar).to_contain_text("split 54/6")
    goto_tab(page, "Train")
    expect(page.locator("#train-gate")).to_contain_text("54 train / 6 validation")
    expect(page.get_by_label("Training file (chat JSONL")).to_have_value(re.compile(r"train\.jsonl$"))
    shots(page, "reloaded")


def test_06_sample_data_button(page, app, shots):
    """A new browser (a new session): "Try with sample data" fills every step up to Train."""
    open_app(page, app.url, first_tab="Decide")
    bar = page.locator("#ft-stepbar")
    expect(bar).to_contain_text("no dataset yet")  # nothing from the other browser's session
    # The gentle gate: Train says what is missing, and the form stays usable.
    goto_tab(page, "Train")
    expect(page.locator("#train-gate")).to_contain_text("No validated data yet")
    expect(page.get_by_role("button", name="Start training", exact=True)).to_be_enabled()
    page.locator("#ft-sample").click()
    expect(page.locator("#ft-sample-note")).to_contain_text("Sample data loaded", timeout=60_000)
    expect(bar).to_contain_text("60 examples")
    expect(bar).to_contain_text("tiny-random")
    goto_tab(page, "Train")
    expect(page.get_by_label("Base model (Hub id, local folder, or tiny-random)")).to_have_value("tiny-random")
    expect(page.get_by_label("Training file (chat JSONL")).to_have_value(re.compile(r"train\.jsonl$"))
    expect(page.get_by_role("radio", name="local", exact=True)).to_be_checked()
    shots(page, "sample-ready")
    no_traceback(page)


def test_07_estimate_with_the_form_as_it_opens(page, app, shots):
    """Quick mode, nothing typed: the optional fields ('blank: ...') must not break the estimate
    (a 0 below `minimum=1`) nor override the prices with 0."""
    open_app(page, app.url, first_tab="Decide")
    goto_tab(page, "Estimate")
    page.get_by_role("button", name="Estimate", exact=True).click()
    summary = page.locator("#estimate-summary")
    page.wait_for_timeout(1000)
    _no_error_toast(page)
    expect(summary).to_contain_text("1,000 examples")
    expect(summary).to_contain_text("Recommended")
    rows = {r.get("option", ""): r for r in grid_records(page.locator("#estimate-table"))}
    mini = next((r for name, r in rows.items() if name.startswith("OpenAI gpt-4.1-mini")), None)
    assert mini, list(rows)
    # 1,000 examples x 500 tokens x 3 epochs at a few dollars per million tokens: dollars, not zero.
    assert float(mini["training $"]) >= 1, mini
    shots(page, "quick-estimate")
