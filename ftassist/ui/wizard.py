"""The wizard: the step bar across the top, and the sample-data button's handler.

The bar is computed from the typed Session and a few live facts (`Live`: the selected run's
state and the arena's votes, asked of the use cases), by pure functions that tests call directly;
the same session restored after a reload shows the same bar.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from ftassist.formatting import format_money, plural
from ftassist.usecases.context import Context
from ftassist.usecases.session import Session

STEPS = ("Decide", "Data", "Estimate", "Train", "Evaluate")
# Which step each tab belongs to (the arena and the leaderboard are both "Evaluate").
TAB_STEP = {"decide": "Decide", "data": "Data", "estimate": "Estimate", "train": "Train",
            "arena": "Evaluate", "leaderboard": "Evaluate", "evaluate": "Evaluate", "playground": "Evaluate"}
_APPROACH = {"fine_tune": "fine-tune", "rag": "RAG", "both": "RAG + fine-tune",
             "prompt_engineering": "prompting first"}
_METHOD = {"openai": "OpenAI fine-tuning", "lora": "LoRA", "qlora": "QLoRA", "full": "full fine-tuning"}


@dataclass(frozen=True)
class Live:
    """What only the database knows: the selected run's state and the arena's vote count."""

    run_status: str | None = None
    run_fraction: float | None = None
    run_output: str | None = None
    votes: int = 0


def _decide(session: Session, live: Live) -> tuple[str, str]:
    decision = session.decision
    if decision is None:
        return "todo", "not answered yet"
    approach = _APPROACH.get(decision.approach, decision.approach.replace("_", " "))
    method = _METHOD.get(decision.method or "", decision.method or "")
    return "done", approach + (f", {method}" if method else "")


def _data(session: Session, live: Live) -> tuple[str, str]:
    dataset, split = session.dataset, session.split
    if dataset is None and split is None:
        return "todo", "no dataset yet"
    parts = []
    if dataset is not None:
        parts.append(plural(dataset.n_examples, "example"))
        n_warn = len(dataset.report.get("warnings") or [])
        if dataset.n_errors:
            parts.append(plural(dataset.n_errors, "error"))
        if n_warn:
            parts.append(plural(n_warn, "warning"))
    if split is not None:
        parts.append(f"split {split.n_train:,}/{split.n_valid:,}" + (f"/{split.n_test:,} test" if split.n_test else ""))
        return ("done" if split.n_train else "warn"), ", ".join(parts)
    if dataset is not None and not dataset.n_examples:  # nothing valid to train on: never green
        return "warn", ", ".join(parts)
    return ("warn" if dataset.n_errors else "active"), ", ".join(parts) + ", not split yet"


def _estimate(session: Session, live: Live) -> tuple[str, str]:
    option = session.option
    if not option:
        return "todo", "no option chosen"
    label = option.get("label") or option.get("id") or "option chosen"
    cost = format_money(option.get("cost_usd"))
    return "done", label + (f", {cost}" if cost else "")


def _train(session: Session, live: Live) -> tuple[str, str]:
    if not session.run_id:
        return "todo", "no run yet"
    status = live.run_status or "started"
    if status == "running":
        fraction = live.run_fraction
        return "active", "running" + (f" {round(float(fraction) * 100):d}%" if fraction is not None else "")
    if status == "succeeded":
        return "done", "finished" + (f": {live.run_output}" if live.run_output else "")
    if status in ("failed", "cancelled"):
        return "warn", status
    return "active", status


def _evaluate(session: Session, live: Live) -> tuple[str, str]:
    if not live.votes:
        return "todo", "no votes yet"
    return "done", plural(live.votes, "vote")


_SUMMARISERS = {"Decide": _decide, "Data": _data, "Estimate": _estimate, "Train": _train, "Evaluate": _evaluate}


def step_summaries(session: Session | dict | None, live: Live | None = None,
                   current: str | None = None) -> list[dict]:
    """One dict per step: {"step", "status" (todo|active|warn|done), "summary", "current"}.

    `current` is the step the person is on (the selected tab); without it, the first step in
    progress (active or with warnings), else the one after the last step done. Pure: reads only
    the session and the live facts given (see `live_facts`).
    """
    session, live = Session.of(session), live or Live()
    rows = []
    for step in STEPS:
        status, summary = _SUMMARISERS[step](session, live)
        rows.append({"step": step, "status": status, "summary": summary, "current": False})
    if current not in STEPS:
        current = _where(rows)
    for r in rows:
        r["current"] = r["step"] == current
    return rows


def _where(rows: list[dict]) -> str:
    busy = next((r["step"] for r in rows if r["status"] in ("active", "warn")), None)
    if busy:
        return busy
    done = [i for i, r in enumerate(rows) if r["status"] == "done"]
    return STEPS[min(done[-1] + 1, len(STEPS) - 1)] if done else STEPS[0]


_COLOURS = {"todo": ("#f1f3f4", "#5f6368", "○"), "active": ("#e8f0fe", "#1a73e8", "◐"),
            "warn": ("#fef7e0", "#b06000", "!"), "done": ("#e6f4ea", "#137333", "✓")}


def render_bar(rows: list[dict]) -> str:
    """The step bar as HTML; every text is escaped."""
    cells = []
    for i, r in enumerate(rows, 1):
        bg, fg, mark = _COLOURS.get(r["status"], _COLOURS["todo"])
        border = f"2px solid {fg}" if r["current"] else "1px solid #dadce0"
        cells.append(
            f"<div class='ft-step ft-step-{html.escape(r['status'])}{' ft-step-current' if r['current'] else ''}' "
            f"data-step='{html.escape(r['step'].lower())}' "
            f"style='flex:1;min-width:120px;background:{bg};border:{border};border-radius:6px;padding:6px 8px'>"
            f"<div style='color:{fg};font-weight:600'>{mark} {i}. {html.escape(r['step'])}"
            f"{' ◀ you are here' if r['current'] else ''}</div>"
            f"<div style='font-size:0.85em;color:#3c4043'>{html.escape(r['summary'])}</div></div>"
        )
    return "<div class='ft-stepbar' style='display:flex;gap:6px;flex-wrap:wrap'>" + "".join(cells) + "</div>"


def live_facts(app: Context, session: Session | dict | None) -> Live:
    """The selected run's state and the vote count, from the use cases (never fatal for the page)."""
    from ftassist.usecases import arena, training

    session = Session.of(session)
    status = fraction = output = None
    votes = 0
    if session.run_id:
        try:
            run = training.run_summary(app, session.run_id)
            if run is not None:
                status, fraction, output = run.status, run.fraction, run.output_model
        except Exception:  # noqa: BLE001 - the bar must never break the page
            pass
    try:
        votes = int(arena.arena_counts(app).votes)
    except Exception:  # noqa: BLE001 - no arena yet, or a database error: the bar shows no votes
        votes = 0
    return Live(run_status=status, run_fraction=fraction, run_output=output, votes=votes)


def bar_html(app: Context, session: Session | dict | None, current: str | None = None) -> str:
    """The rendered bar for a session, with the live facts (event handler helper)."""
    return render_bar(step_summaries(session, live_facts(app, session), current))


def sample_message(session: Session) -> str:
    dataset, split = session.dataset, session.split
    n_examples = dataset.n_examples if dataset else 0
    return (f"Sample data loaded: **{n_examples:,} examples** checked, split into "
            f"{split.counts() if split else '0 train / 0 validation'}; the Train form is set "
            "to a `tiny-random` LoRA run that works offline. Open the **Train** tab and press *Start training*.")
