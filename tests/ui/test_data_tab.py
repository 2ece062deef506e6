"""The app builds with its six tabs, and the Data tab's handlers work on a real file."""

import json

import pandas as pd

from ftassist.ui import data_tab
from ftassist.ui.layout import build_app
from ftassist.usecases.session import Session
from ftassist.usecases.context import Context


def test_app_has_every_step_tab():
    demo = build_app()
    config = demo.get_config_file()
    labels = [c["props"].get("label") for c in config["components"] if c.get("type") == "tabitem"]
    assert labels[:6] == ["Decide", "Data", "Estimate", "Train", "Arena", "Leaderboard"]
    assert {"Evaluate", "Playground"} <= set(labels)
    names = {d.get("api_name") for d in config["dependencies"]}
    assert {"check_dataset", "fix_and_split"} <= names


def _sample(tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"Where is my order {i}?"},
                          {"role": "assistant", "content": f"Order {i} ships tomorrow <b>morning</b>."}]}
            for i in range(11)]
    lines = [json.dumps(r) for r in rows]
    lines.insert(4, '{"messages": [{"role": "user", "content": "<script>alert(1)</script>"}]}')
    path = tmp_path / "sample.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_check_handler_fills_the_tab(tmp_path):
    path = _sample(tmp_path)
    session, summary, checklist, errors, histogram, fix_btn = data_tab.check_dataset(Context.open(),
        str(path), "", "gpt-4o-mini-2024-07-18", Session(), progress=lambda *a, **k: None)
    assert isinstance(session, Session)
    report = session.dataset.report
    assert report["n_examples"] == 11 and session.dataset.model == "gpt-4o-mini-2024-07-18"
    assert session.dataset.path != str(path) and open(session.dataset.path).read() == path.read_text()  # kept copy
    assert "11 valid examples" in summary
    assert checklist.count("<details") >= 6
    assert "<script>" not in checklist  # dataset text is escaped, never markup
    assert isinstance(errors, pd.DataFrame) and list(errors["line"]) == ["5"]  # grouped lines
    assert errors.iloc[0]["code"] == "example_missing_assistant_message"
    frame = data_tab.token_histogram(report)
    assert frame["examples"].sum() == 11
    assert histogram.sort == list(frame["tokens"])  # bins in numeric order, not sorted as text
    preview = data_tab.record_preview(Context.open(), session.dataset.path, 5)
    assert "alert(1)" in preview

    # the report is kept in DuckDB (it survives a restart of the app)
    from ftassist.store import get_store

    rows = get_store().query("SELECT n_examples, n_errors FROM datasets")
    assert rows == [{"n_examples": 11, "n_errors": 1}]

    session, message, files = data_tab.fix_and_split(Context.open(), 0.2, 3, session, progress=lambda *a, **k: None)
    assert session.split.n_train + session.split.n_valid == 11
    assert len(open(session.split.train).read().splitlines()) == session.split.n_train
    assert any(f.endswith("train.jsonl") for f in files) and "dropped 1 invalid" in message


def test_check_handler_takes_a_stored_dict_and_refuses_nothing_to_check(tmp_path):
    import gradio as gr
    import pytest

    path = _sample(tmp_path)
    old = {"guide": {"approach": "fine_tune", "method": "lora", "answers": {}}}  # a session saved by the first UI
    session, *_ = data_tab.check_dataset(Context.open(), str(path), "", None, old, progress=lambda *a, **k: None)
    assert session.decision.method == "lora" and session.dataset.n_examples == 11
    with pytest.raises(gr.Error, match="Upload a dataset file"):
        data_tab.check_dataset(Context.open(), None, "  ", None, Session(), progress=lambda *a, **k: None)
    with pytest.raises(gr.Error, match="Check a dataset first"):
        data_tab.fix_and_split(Context.open(), 0.1, 42, Session(), progress=lambda *a, **k: None)
    with pytest.raises(gr.Error, match="validation fraction"):
        data_tab.fix_and_split(Context.open(), 1.0, 42, session, progress=lambda *a, **k: None)
