"""The chat panel's handlers, called directly, and the panel's wiring (named API endpoint)."""

from __future__ import annotations

import gradio as gr

from ftassist.ui import assistant as ui
from ftassist.ui.context import UIContext
from ftassist.usecases.session import Session


def visible(update) -> bool:
    return bool(update.get("visible"))


def test_chat_handler_answers_and_clears_the_box(ctx):
    history, session, box, pending, row = ui.chat_handler(ctx, "How much for 5,000 examples on gpt-4.1-mini?", [], None)
    assert box == "" and session == Session()
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[0]["content"] == "How much for 5,000 examples on gpt-4.1-mini?"
    assert "$37.50" in history[1]["content"]
    assert not visible(pending) and not visible(row)


def test_empty_message_changes_nothing(ctx):
    given = Session(run_id="run-1")
    history, session, box, pending, row = ui.chat_handler(ctx, "   ", [{"role": "user", "content": "x"}], given)
    assert history == [{"role": "user", "content": "x"}] and session == given


def test_proposal_shows_confirm_and_confirm_runs_it(ctx, checked_session):
    history, session, _, pending, row = ui.chat_handler(ctx, "check my data", [], checked_session.to_dict())
    assert isinstance(session, Session)  # a stored dict comes back as the typed session
    assert visible(pending) and visible(row) and "support.jsonl" in pending["value"]
    history, session, pending, row = ui.confirm_handler(ctx, history, session)
    assert session.dataset.n_examples == 24 and session.pending_action is None
    assert "Done" in history[-1]["content"]
    assert not visible(pending) and not visible(row)


def test_cancel_handler(ctx, checked_session):
    _, session, _, _, _ = ui.chat_handler(ctx, "check my data", [], checked_session)
    assert session.pending_action
    history, session, pending, row = ui.cancel_handler([], session)
    assert "Cancelled" in history[-1]["content"] and session.pending_action is None
    assert not visible(row)
    assert visible(ui.pending_handler(session)[1]) is False


def test_errors_become_a_chat_message_without_the_key(ctx, monkeypatch):
    from ftassist.assistant import chat

    key = "typed-secret-0a1b2c3d4e"

    def boom(*a, **kw):
        raise RuntimeError(f"exploded near {key}")

    monkeypatch.setattr(chat, "respond", boom)
    history, session, *_ = ui.chat_handler(ctx, "hello there", [], None, key, "", "")
    assert "could not answer" in history[-1]["content"] and key not in history[-1]["content"]


def test_the_typed_key_is_never_kept(ctx, checked_session, monkeypatch):
    from ftassist.usecases import training

    given = []
    monkeypatch.setattr(training, "start_run", lambda ctx, spec, api_key=None: given.append(api_key) or
                        training.RunStarted("run-9", "running", "/tmp/r", None, None, "started"))
    key = "typed-secret-9f8e7d6c5b"
    history, session, *_ = ui.chat_handler(ctx, "what is qlora?", [], None, key, "http://127.0.0.1:9/v1", "m")
    assert key not in repr(session.to_dict()) and key not in repr(history)
    assert "QLoRA" in history[-1]["content"]
    history, session, *_ = ui.chat_handler(ctx, "start training with tiny-random", [], checked_session, key)
    history, session, *_ = ui.confirm_handler(ctx, history, session, key)
    assert given == [key] and session.run_id == "run-9"  # used for the request that needed it...
    assert key not in repr(session.to_dict()) and key not in repr(history)  # ...and kept nowhere


def test_build_registers_the_named_endpoint():
    with gr.Blocks() as demo:
        state = gr.State(Session())
        ui.build(UIContext(session=state, demo=demo))
    endpoints = demo.get_api_info()["named_endpoints"]
    assert "/assistant_chat" in endpoints and "/assistant_confirm" in endpoints
    params = [p["parameter_name"] for p in endpoints["/assistant_chat"]["parameters"]]
    assert params[:2] == ["message", "history"] and "api_key" in params
