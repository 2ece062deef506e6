"""The step bar from the typed session and the live facts, and the sample-data run through the tabs' handlers."""

from __future__ import annotations

import json

import pytest

from ftassist.ui import wizard
from ftassist.usecases.context import Context
from ftassist.usecases.session import Dataset, Decision, Session, Split

REPORT = {"n_examples": 1204, "n_records": 1210, "errors": [{"line": 3}] * 6, "warnings": [{"line": 9}] * 2,
          "checklist": [], "tokens": {}}


def _by_step(session, live=None, current=None):
    return {r["step"]: r for r in wizard.step_summaries(session, live, current)}


def _checked(report=REPORT) -> Session:
    return Session().checked(Dataset("data.jsonl", report))


def test_empty_session_everything_to_do():
    rows = wizard.step_summaries(Session())
    assert [r["step"] for r in rows] == ["Decide", "Data", "Estimate", "Train", "Evaluate"]
    assert all(r["status"] == "todo" for r in rows)
    assert [r["current"] for r in rows] == [True, False, False, False, False]
    assert wizard.step_summaries(None) == rows  # a missing session is an empty one


def test_each_step_says_what_it_found():
    session = (_checked(dict(REPORT, errors=[])).decided(Decision({}, "fine_tune", "lora"))
               .split_into(Split("t.jsonl", "v.jsonl", "clean", 1083, 121))
               .chose({"id": "lora:x:L4", "label": "LoRA Qwen2.5-0.5B on L4", "cost_usd": 1.2}).selected_run("j1"))
    s = _by_step(session, wizard.Live(run_status="running", run_fraction=0.4, votes=12))
    assert s["Decide"]["summary"] == "fine-tune, LoRA" and s["Decide"]["status"] == "done"
    assert s["Data"]["summary"] == "1,204 examples, 2 warnings, split 1,083/121" and s["Data"]["status"] == "done"
    assert s["Estimate"]["summary"] == "LoRA Qwen2.5-0.5B on L4, $1.20"
    assert s["Train"]["summary"] == "running 40%" and s["Train"]["status"] == "active"
    assert s["Evaluate"]["summary"] == "12 votes" and s["Evaluate"]["status"] == "done"
    assert s["Train"]["current"]  # the first step not done


def test_data_step_states():
    assert _by_step(_checked())["Data"] == {
        "step": "Data", "status": "warn", "summary": "1,204 examples, 6 errors, 2 warnings, not split yet",
        "current": True}
    assert _by_step(_checked(dict(REPORT, errors=[], warnings=[])))["Data"]["status"] == "active"
    assert _by_step(Session().split_into(Split("t", None, "f", 0, 0)))["Data"]["status"] == "warn"


def test_a_file_with_no_valid_example_never_turns_green():
    empty = _checked({"n_examples": 0, "errors": [], "warnings": []})
    assert _by_step(empty)["Data"]["status"] == "warn"


def test_train_and_evaluate_states():
    run = Session().selected_run("j")
    assert _by_step(run)["Train"]["summary"] == "started"
    assert _by_step(run, wizard.Live(run_status="succeeded", run_output="runs/j/adapter"))["Train"] == {
        "step": "Train", "status": "done", "summary": "finished: runs/j/adapter", "current": False}
    assert _by_step(run, wizard.Live(run_status="failed"))["Train"]["status"] == "warn"
    assert _by_step(run, wizard.Live(run_status="queued"))["Train"]["summary"] == "queued"
    assert _by_step(Session(), wizard.Live(votes=1))["Evaluate"]["summary"] == "1 vote"
    assert _by_step(Session().chose({"label": "x", "cost_usd": 0.0001}))["Estimate"]["summary"] == "x, < $0.01"


def test_current_step_from_the_tab():
    assert _by_step(Session(), current="Train")["Train"]["current"]
    assert sum(r["current"] for r in wizard.step_summaries(Session(), current="Evaluate")) == 1
    assert _by_step(Session(), current="nonsense")["Decide"]["current"]


def test_bar_escapes_everything():
    session = Session().chose({"label": "<script>alert(1)</script>", "cost_usd": 1})
    page = wizard.render_bar(wizard.step_summaries(session, current="Estimate"))
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("class='ft-step ") == 5 and "you are here" in page


def test_live_facts_for_an_unknown_run_and_no_votes():
    app = Context.open()
    session = Session().selected_run("nope")
    live = wizard.live_facts(app, session)
    assert live == wizard.Live(votes=0)
    assert "no votes yet" in wizard.bar_html(app, session)


def _quiet(*args, **kwargs):
    return None


def test_sample_flow_end_to_end_through_the_handlers():
    """Try with sample data: check + split + estimate, then the Data, Estimate and Train tabs find it all."""
    from ftassist.ui import data_tab, estimate, layout
    from ftassist.usecases import planning, training

    app = Context.open()
    before = Session().decided(Decision({"style_or_format": True}, "fine_tune", "lora"))
    session, message, tabs, current = layout.sample_handler(app, before, progress=_quiet)
    assert tabs.selected == "data" and current == "Data"  # the person lands on the checked data
    assert session.decision == before.decision and before.dataset is None  # the decision kept, input untouched
    dataset, split = session.dataset, session.split
    assert dataset.n_examples == 60 and not dataset.n_errors and session.sample
    assert split.n_train + split.n_valid == 60 and split.n_valid > 0
    assert "60 examples" in message and "tiny-random" in message
    train_lines = open(split.train).read().splitlines()
    assert len(train_lines) == split.n_train and "messages" in json.loads(train_lines[0])

    # The same result as the Data tab's own handlers on the same file.
    checked, *_ = data_tab.check_dataset(app, str(planning.SAMPLE_PATH), "", None, Session(), progress=_quiet)
    by_hand, _, _ = data_tab.fix_and_split(app, 0.1, 42, checked, progress=_quiet)
    assert checked.dataset.n_examples == dataset.n_examples
    assert (by_hand.split.n_train, by_hand.split.n_valid) == (split.n_train, split.n_valid)

    # The Data tab shows the sample's report (hand-off), once.
    shown, summary, checklist, *_, split_note = data_tab.session_report_handler(session, "")
    assert "60 valid examples" in summary and "<details" in checklist and "train" in split_note
    again = data_tab.session_report_handler(session, shown)
    assert again[0] == shown and all(x == {"__type__": "update"} for x in again[1:])  # gr.skip(): nothing redrawn

    # The Train form starts from a tiny-random LoRA run on the split files.
    defaults = training.training_defaults(app, session)
    assert (defaults.backend, defaults.base_model, defaults.method) == ("local", "tiny-random", "lora")
    assert (defaults.train_file, defaults.valid_file) == (split.train, split.valid)

    # The estimate counts the train split exactly (not the raw records), and the bar says what each step found.
    out = estimate.estimate_handler(app, session, True, None, None, None, "", [], "auto", None, None, None,
                                    planning.SAMPLE_BASE_MODEL, ["lora"], None, ["T4"], None, 1, True, 16, 0.3, 0,
                                    False)
    assert f"{split.n_train} examples" in out[0] and "exact" in out[0]
    rows = {r["step"]: r for r in wizard.step_summaries(session)}
    assert rows["Data"]["summary"].startswith("60 examples") and rows["Data"]["status"] == "done"
    assert rows["Estimate"]["summary"].startswith("LoRA tiny-random")
    assert rows["Train"]["current"]


def test_sample_flow_failure_is_one_clear_message(monkeypatch):
    import gradio as gr

    from ftassist.ui import layout
    from ftassist.usecases import planning

    monkeypatch.setattr(planning, "SAMPLE_PATH", planning.SAMPLE_PATH.with_name("missing.jsonl"))
    with pytest.raises(gr.Error, match="sample dataset is missing"):
        layout.sample_handler(Context.open(), Session(), progress=_quiet)
