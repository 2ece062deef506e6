"""The Train tab: a thin adapter over the training use cases (prefill, start, monitor, cancel)."""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr
import pytest
from standins import OpenAIStandIn

from ftassist import config, store
from ftassist.train import jobs
from ftassist.ui import train as tab
from ftassist.usecases.session import Session, Split
from ftassist.usecases.context import Context

pytestmark = pytest.mark.usefixtures("no_stray_workers")  # tests/train/conftest.py

SPLIT = Split(train="/d/train.jsonl", valid="/d/valid.jsonl", folder="/d", n_train=90, n_valid=10)


def test_tab_prefills_every_field_from_data_and_estimate_steps():
    session = Session(split=SPLIT).chose({"id": "qlora:Qwen/Qwen2.5-7B:A100", "kind": "self_hosted",
                                          "model": "Qwen/Qwen2.5-7B", "method": "qlora", "epochs": 2})
    gate, key, *updates = tab.prefill_handler(Context.open(), session, "")
    values = dict(zip(tab.PREFILLED, (u["value"] for u in updates)))
    assert values == {"train_file": "/d/train.jsonl", "valid_file": "/d/valid.jsonl", "backend": "local",
                      "base_model": "Qwen/Qwen2.5-7B", "method": "qlora", "num_epochs": 2.0,
                      "openai_model": "gpt-4o-mini-2024-07-18", "flavor": "", "objective": "sft", "dpo_beta": 0.1,
                      "start_from": None}
    assert "90 train / 10 validation" in gate
    again = tab.prefill_handler(Context.open(), session, key)  # same results: the person's edits are kept
    assert again[1] == key and all("value" not in u for u in again[2:])

    # An OpenAI option afterwards: the backend AND the models change together (never openai + a Hub model).
    _, key2, *updates = tab.prefill_handler(Context.open(), session.chose({"id": "openai:gpt-4.1-mini", "kind": "openai",
                                                           "model": "gpt-4.1-mini-2025-04-14", "epochs": 3}), key)
    values = dict(zip(tab.PREFILLED, (u["value"] for u in updates)))
    assert key2 != key
    assert (values["backend"], values["openai_model"], values["base_model"]) == (
        "openai", "gpt-4.1-mini-2025-04-14", "tiny-random")

    assert "No validated data" in tab.gate_message(None)
    assert "not split" in tab.gate_message({"report": {"n_examples": 3}, "dataset_path": "/d/raw.jsonl"})


def test_tab_with_no_runs_and_bad_form_input():
    status, progress, frame, tail, history, select = tab.refresh_handler(Context.open(), None, Session())
    # no points yet: None clears the chart (an empty frame would break its colour legend for good)
    assert "No run yet" in status and frame is None and progress == "" and tail == ""
    assert list(tab.loss_frame([]).columns) == ["step", "loss", "series"]
    assert history.empty and select["value"] is None
    form = ["tiny-random", "lora", 3, None, 16, 32, None]
    with pytest.raises(gr.Error, match="No training file"):
        tab.start_handler(Context.open(), "local", *form, "", "", "gpt-4o-mini-2024-07-18", "", "openai", "", "", "", "", None)
    with pytest.raises(gr.Error, match="num_epochs"):
        tab.start_handler(Context.open(), "local", "tiny-random", "lora", -1, None, 16, 32, None, __file__, "",
                          "gpt-4o-mini-2024-07-18", "", "openai", "", "", "", "", None)
    with pytest.raises(gr.Error, match="64"):
        tab.start_handler(Context.open(), "openai", "", "lora", 3, None, 16, 32, None, __file__, "", "gpt-4o-mini-2024-07-18",
                          "x" * 65, "custom", "http://127.0.0.1:9/v1", "", "", "", None)
    with pytest.raises(gr.Error, match="letters, digits"):
        tab.start_handler(Context.open(), "openai", "", "lora", 3, None, 16, 32, None, __file__, "", "gpt-4o-mini-2024-07-18",
                          "has:colon", "custom", "http://127.0.0.1:9/v1", "", "", "", None)
    with pytest.raises(gr.Error, match="Choose a run"):
        tab.cancel_handler(Context.open(), None)
    with pytest.raises(gr.Error, match="no run 'nope'"):
        tab.cancel_handler(Context.open(), "nope")
    assert jobs.list_jobs(store.get_store()) == []  # nothing was started by a refused form
    # A blank number box can arrive as 0: it means "use the preset", not a learning rate of 0.
    spec = tab.build_spec("local", "tiny-random", "full", 2, 0, 8, 16, 0, __file__, "", "", "", "openai", "", "", "")
    assert "learning_rate" not in spec and "max_steps" not in spec  # the worker resolves the preset
    assert (spec["num_epochs"], spec["lora_r"], spec["lora_alpha"], spec["method"]) == (2.0, 8, 16, "full")
    spec = tab.build_spec("openai", "", "lora", 0, None, 16, 32, None, __file__, "", "gpt-4.1-mini-2025-04-14",
                          "my-bot", "azure", "", "https://x.openai.azure.com", "2024-10-21")
    assert "n_epochs" not in spec["openai"] and spec["openai"]["model"] == "gpt-4.1-mini-2025-04-14"
    assert spec["openai"]["provider"] == "azure" and spec["openai"]["suffix"] == "my-bot"


def test_tab_runs_an_openai_job_with_a_session_key(chat_data, monkeypatch):
    """Start from the tab with the key typed in (session only), follow it to the ft: model."""
    train, valid = map(str, chat_data)
    key = "sk-session-only-key-987654321"
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("FTASSIST_OPENAI_POLL_INTERVAL", "0.05")
    server = OpenAIStandIn(expected_key=key).start()
    try:
        session, message, select = tab.start_handler(Context.open(),
            "openai", "", "lora", 2, None, 16, 32, None, train, valid, "gpt-4o-mini-2024-07-18", "tab",
            "custom", server.base_url, "", "", key, Session(split=SPLIT))
        run_id = session.run_id
        assert isinstance(session, Session) and session.split == SPLIT  # the rest of the session is kept
        assert select["value"] == run_id and "running" in message
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, progress, frame, tail, history, select = tab.refresh_handler(Context.open(), None, session)  # the session's run
            if jobs.get_job(store.get_store(), run_id)["status"] != "running":
                break
            time.sleep(0.2)
        job = jobs.get_job(store.get_store(), run_id)
        assert job["status"] == "succeeded", (job, tail)
        assert job["output_model"].startswith("ft:gpt-4o-mini-2024-07-18:") and job["output_model"] in status
        assert set(frame["series"]) == {"train", "validation"} and frame["step"].min() == 1
        assert "step 6/6" in progress
        assert history.iloc[0]["id"] == run_id and history.iloc[0]["status"] == "succeeded"
        assert select["value"] == run_id
        run_dir = Path(job["run_dir"])
    finally:
        server.stop()
    store.reset_store()
    blobs = b"".join(p.read_bytes() for p in config.data_dir().rglob("*") if p.is_file())
    assert key.encode() not in blobs  # not in the run folder, the spec, the log or DuckDB
    assert (run_dir / "events.jsonl").is_file()


def test_tab_builds_with_named_endpoints():
    from ftassist.ui.context import UIContext

    with gr.Blocks() as demo:
        tab.build(UIContext(session=gr.State(Session())))
    names = {fn.api_name for fn in demo.fns.values()}
    assert {"start_training", "cancel_training", "training_status"} <= names


def test_choosing_a_run_in_the_list_makes_it_the_sessions_run():
    session = Session().selected_run("run-started-last")
    chosen = tab.select_handler(session, "run-the-person-looks-at")
    assert chosen.run_id == "run-the-person-looks-at" and session.run_id == "run-started-last"
    assert tab.select_handler(chosen, None) == chosen  # an emptied list keeps the choice


def test_a_held_out_test_split_is_named_wherever_the_split_is():
    """Fix & split can hold a test split out for Evaluate: the Train gate, the step bar and the run's plan say
    so, instead of a train / validation count that seems to have lost examples."""
    from dataclasses import replace

    from ftassist.ui.wizard import step_summaries

    with_test = replace(SPLIT, test="/d/test.jsonl", n_test=12)
    assert "90 train / 10 validation / 12 test" in tab.gate_message(Session(split=with_test))
    assert "90 train / 10 validation**" in tab.gate_message(Session(split=SPLIT))  # no test split: none named
    (data_row,) = [row for row in step_summaries(Session(split=with_test)) if row["step"] == "Data"]
    assert "split 90/10/12 test" in data_row["summary"]
