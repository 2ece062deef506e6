"""The chat panel's handlers, called directly, and the panel's wiring (named API endpoint)."""

from __future__ import annotations

import gradio as gr

from ftassist.ui import assistant as ui
from ftassist.ui.context import UIContext


def visible(update) -> bool:
    return bool(update.get("visible"))


def test_chat_handler_answers_and_clears_the_box():
    history, session, box, pending, row = ui.chat_handler("How much for 5,000 examples on gpt-4.1-mini?", [], {})
    assert box == "" and session == {}
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[0]["content"] == "How much for 5,000 examples on gpt-4.1-mini?"
    assert "$37.50" in history[1]["content"]
    assert not visible(pending) and not visible(row)


def test_empty_message_changes_nothing():
    history, session, box, pending, row = ui.chat_handler("   ", [{"role": "user", "content": "x"}], {"a": 1})
    assert history == [{"role": "user", "content": "x"}] and session == {"a": 1}


def test_proposal_shows_confirm_and_confirm_runs_it(dataset_file):
    history, session, _, pending, row = ui.chat_handler("check my data", [], {"dataset_path": str(dataset_file)})
    assert visible(pending) and visible(row) and "support.jsonl" in pending["value"]
    history, session, pending, row = ui.confirm_handler(history, session)
    assert session["report"]["n_examples"] == 24
    assert "Done" in history[-1]["content"]
    assert not visible(pending) and not visible(row)


def test_cancel_handler(dataset_file):
    _, session, _, _, _ = ui.chat_handler("check my data", [], {"dataset_path": str(dataset_file)})
    history, session, pending, row = ui.cancel_handler([], session)
    assert "Cancelled" in history[-1]["content"] and "assistant_pending" not in session
    assert not visible(row)
    assert visible(ui.pending_handler(session)[1]) is False


def test_errors_become_a_chat_message_without_the_key(monkeypatch):
    from ftassist.assistant import chat

    key = "typed-secret-0a1b2c3d4e"

    def boom(*a, **kw):
        raise RuntimeError(f"exploded near {key}")

    monkeypatch.setattr(chat, "respond", boom)
    history, session, *_ = ui.chat_handler("hello there", [], {}, key, "", "")
    assert "could not answer" in history[-1]["content"] and key not in history[-1]["content"]


def test_the_typed_key_is_never_kept():
    key = "typed-secret-9f8e7d6c5b"
    history, session, *_ = ui.chat_handler("what is qlora?", [], {}, key, "http://127.0.0.1:9/v1", "m")
    assert key not in repr(session) and key not in repr(history)
    assert "QLoRA" in history[-1]["content"]


def test_build_registers_the_named_endpoint():
    with gr.Blocks() as demo:
        state = gr.State({})
        ui.build(UIContext(session=state, demo=demo))
    endpoints = demo.get_api_info()["named_endpoints"]
    assert "/assistant_chat" in endpoints and "/assistant_confirm" in endpoints
    params = [p["parameter_name"] for p in endpoints["/assistant_chat"]["parameters"]]
    assert params[:2] == ["message", "history"] and "api_key" in params
