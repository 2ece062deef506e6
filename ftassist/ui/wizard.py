"""The wizard: the step bar across the top, the gentle gate before training, and the sample-data run.

The bar is computed from the session dict alone (`step_summaries` is pure and tested), so the
same dict restored after a reload shows the same bar. Live facts that only DuckDB knows (the
job's progress, the arena's votes) are merged into a copy by `live_session` before rendering,
never written back into the session.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

STEPS = ("Decide", "Data", "Estimate", "Train", "Evaluate")
# Which step each tab belongs to (the arena and the leaderboard are both "Evaluate").
TAB_STEP = {"decide": "Decide", "data": "Data", "estimate": "Estimate", "train": "Train",
            "arena": "Evaluate", "leaderboard": "Evaluate"}
SAMPLE_PATH = Path(__file__).resolve().parent.parent / "data" / "sample" / "sample_chat.jsonl"
SAMPLE_BASE_MODEL = "HuggingFaceTB/SmolLM2-135M"  # the smallest catalogue model, for the sample's estimate
SAMPLE_GPU = "T4"
_APPROACH = {"fine_tune": "fine-tune", "rag": "RAG", "both": "RAG + fine-tune",
             "prompt_engineering": "prompting first"}
_METHOD = {"openai": "OpenAI fine-tuning", "lora": "LoRA", "qlora": "QLoRA", "full": "full fine-tuning"}


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _money(x: Any) -> str:
    if x is None:
        return ""
    x = float(x)
    return f"${x:,.2f}" if x >= 0.01 or x == 0 else "< $0.01"


def _decide(session: dict) -> tuple[str, str]:
    g = session.get("guide") or {}
    if not g:
        return "todo", "not answered yet"
    approach = _APPROACH.get(g.get("approach") or "", str(g.get("approach") or "advice given").replace("_", " "))
    method = _METHOD.get(g.get("method") or "", g.get("method") or "")
    return "done", approach + (f", {method}" if method else "")


def _data(session: dict) -> tuple[str, str]:
    report, clean = session.get("report") or {}, session.get("clean") or {}
    if not report and not clean:
        return "todo", "no dataset yet"
    parts = []
    if report:
        parts.append(_plural(int(report.get("n_examples") or 0), "example"))
        n_err, n_warn = len(report.get("errors") or []), len(report.get("warnings") or [])
        if n_err:
            parts.append(_plural(n_err, "error"))
        if n_warn:
            parts.append(_plural(n_warn, "warning"))
    if clean:
        parts.append(f"split {int(clean.get('n_train') or 0):,}/{int(clean.get('n_valid') or 0):,}")
        return ("done" if clean.get("n_train") else "warn"), ", ".join(parts)
    n_err = len(report.get("errors") or [])
    return ("warn" if n_err or not report.get("n_examples") else "active"), ", ".join(parts) + ", not split yet"


def _estimate(session: dict) -> tuple[str, str]:
    e = session.get("estimate") or {}
    if not e:
        return "todo", "no option chosen"
    label = e.get("label") or e.get("id") or "option chosen"
    cost = _money(e.get("cost_usd"))
    return "done", label + (f", {cost}" if cost else "")


def _train(session: dict) -> tuple[str, str]:
    job = session.get("job") or {}
    if not job and not session.get("job_id"):
        return "todo", "no run yet"
    status = job.get("status") or "started"
    if status == "running":
        frac = job.get("fraction")
        return "active", "running" + (f" {round(float(frac) * 100):d}%" if frac is not None else "")
    if status == "succeeded":
        return "done", "finished" + (f": {job['output_model']}" if job.get("output_model") else "")
    if status in ("failed", "cancelled"):
        return "warn", status
    return "active", status


def _evaluate(session: dict) -> tuple[str, str]:
    votes = int((session.get("arena") or {}).get("votes") or 0)
    if not votes:
        return "todo", "no votes yet"
    return "done", _plural(votes, "vote")


_SUMMARISERS = {"Decide": _decide, "Data": _data, "Estimate": _estimate, "Train": _train, "Evaluate": _evaluate}


def step_summaries(session: dict | None, current: str | None = None) -> list[dict]:
    """One dict per step: {"step", "status" (todo|active|warn|done), "summary", "current"}.

    `current` is the step the person is on (the selected tab); without it, the first step in
    progress (active or with warnings), else the one after the last step done. Pure: reads only the dict (see `live_session` for job and votes).
    """
    session = session if isinstance(session, dict) else {}
    rows = []
    for step in STEPS:
        status, summary = _SUMMARISERS[step](session)
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


def train_gate(session: dict | None) -> str | None:
    """What is missing before training, in one sentence; None when the data is validated and split.

    A gentle gate: the Train tab shows it, and the person may still start a run with a file of their own.
    """
    session = session if isinstance(session, dict) else {}
    report, clean = session.get("report") or {}, session.get("clean") or {}
    if clean:
        if not clean.get("n_train"):
            return "The split has no training examples: check the dataset in the Data step."
        return None
    if not report:
        return ("No validated data yet: check your dataset in the Data step (or press *Try with sample data*), "
                "or type the path of a chat JSONL file.")
    n_err = len(report.get("errors") or [])
    if not report.get("n_examples"):
        return "The checked dataset has no valid examples: fix the file and check it again in the Data step."
    if n_err:
        return (f"{_plural(n_err, 'error')} left in the dataset: fix them, or press *Fix & split* in the Data step "
                "to drop those records.")
    return "The dataset is checked but not split: press *Fix & split* in the Data step to get train and validation files."


def live_session(session: dict | None) -> dict:
    """A copy of the session with what DuckDB knows: "job" (the session's job progress) and "arena" (votes)."""
    view = dict(session or {}) if isinstance(session, dict) else {}
    job_id = view.get("job_id")
    if job_id:
        try:
            from ftassist.train import jobs

            job = jobs.get_job(job_id)
            if job:
                prog = jobs.progress(job_id)
                view["job"] = {"status": job.get("status"), "fraction": prog.get("fraction"),
                               "output_model": job.get("output_model")}
        except Exception:  # noqa: BLE001 - the bar must never break the page
            pass
    try:
        from ftassist.store import get_store

        (votes,), = get_store().query_rows("SELECT count(*) FROM votes")
        view["arena"] = {"votes": int(votes)}
    except Exception:  # noqa: BLE001 - no arena tables yet
        pass
    return view


def bar_html(session: dict | None, current: str | None = None) -> str:
    """The rendered bar for a session, with the live facts (event handler helper)."""
    return render_bar(step_summaries(live_session(session), current))


# -- "Try with sample data" ---------------------------------------------------------------------------
def run_sample_flow(session: dict | None, valid_fraction: float = 0.1, seed: int = 42) -> dict:
    """Check, fix & split the shipped sample, estimate it, and choose a `tiny-random` LoRA run.

    The same station functions as the Data and Estimate tabs, so every later step finds its inputs
    exactly as if the person had done it by hand. Returns the new session dict (others' keys kept).
    """
    import uuid

    from ftassist import config
    from ftassist.data.check import check_path
    from ftassist.data.clean import clean_file
    from ftassist.plan import estimate as est

    session = dict(session or {})
    path = config.uploads_dir() / f"{uuid.uuid4().hex[:8]}-{SAMPLE_PATH.name}"
    path.write_bytes(SAMPLE_PATH.read_bytes())
    report = check_path(path).to_dict()
    out = config.data_dir() / "clean" / uuid.uuid4().hex[:8]
    result = clean_file(path, out, valid_fraction=valid_fraction, seed=seed)
    table = est.estimate_all(est.tokens_from_report(report), est.EstimateOptions(
        base_models=[SAMPLE_BASE_MODEL], methods=["lora"], gpus=[SAMPLE_GPU], include_openai=False,
        allow_network=False)).to_dict()
    row = dict(table["rows"][0])
    row.update(model="tiny-random", id="lora:tiny-random:cpu",
               label="LoRA tiny-random (sample run on this machine)",
               note=f"Sample run: costs estimated for {SAMPLE_BASE_MODEL} on one {SAMPLE_GPU}; "
                    "the run itself uses the tiny offline model.")
    session.update(
        report=report, dataset_path=str(path), estimate=row, sample=True,
        clean={"train": str(result.train_path), "valid": str(result.valid_path), "dir": str(out),
               "n_train": result.n_train, "n_valid": result.n_valid},
    )
    return session


def sample_message(session: dict) -> str:
    report, clean = session.get("report") or {}, session.get("clean") or {}
    return (f"Sample data loaded: **{report.get('n_examples', 0):,} examples** checked, split into "
            f"{clean.get('n_train', 0):,} train / {clean.get('n_valid', 0):,} validation; the Train form is set "
            "to a `tiny-random` LoRA run that works offline. Open the **Train** tab and press *Start training*.")
