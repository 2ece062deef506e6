"""The assistant chat panel: ask in plain words, get answers grounded in your data, estimate and run.

Thin by design: every answer comes from `ftassist.assistant.chat` (intent matching, or an LLM
with the app's use cases as tools when a key is set). Actions the assistant proposes wait in
the session until the person presses Confirm. The API key box is sent with each request and
used for that request only: it is never put in the session, stored or logged.
"""

from __future__ import annotations

import logging

import gradio as gr

from ftassist.assistant import chat
from ftassist.redact import scrub
from ftassist.usecases.context import Context
from ftassist.usecases.session import Session

from .context import UIContext

log = logging.getLogger(__name__)

EXAMPLES = [
    "Should I fine-tune or use RAG for our product docs?",
    "How much for 5,000 examples on gpt-4.1-mini?",
    "Is my dataset OK?",
    "Why did my loss go up?",
    "Start training with tiny-random",
]




def _key(api_key: str | None) -> str | None:
    return (api_key or "").strip() or None


def _pending_view(session: Session):
    """(pending Markdown, Confirm/Cancel row update) for the session's pending action."""
    pending = session.pending_action
    if not pending:
        return gr.update(value="", visible=False), gr.update(visible=False)
    return (gr.update(value=f"**Waiting for your confirmation**: {pending.get('summary', '')}", visible=True),
            gr.update(visible=True))


def chat_handler(app: Context, message: str, history: list | None, session: Session | dict | None, api_key: str | None = None,
                 base_url: str | None = None, model: str | None = None):
    """Event handler (API `assistant_chat`): one question -> (history, session, cleared box, pending, buttons)."""
    history = list(history or [])
    session = Session.of(session)
    message = (message or "").strip()
    if not message:
        return (history, session, "", *_pending_view(session))
    try:
        reply = chat.respond(app, message, history, session, api_key=_key(api_key), base_url=base_url,
                             model=model)
        text, session = reply.text, reply.session
    except Exception as exc:  # noqa: BLE001 - no traceback reaches the page
        log.warning("assistant failed: %s", scrub(f"{type(exc).__name__}: {exc}", api_key))
        text = f"Sorry, I could not answer that: {scrub(exc, api_key)}"
    history += [{"role": "user", "content": message}, {"role": "assistant", "content": text}]
    return (history, session, "", *_pending_view(session))


def confirm_handler(app: Context, history: list | None, session: Session | dict | None, api_key: str | None = None):
    """Confirm button: run the pending use case; -> (history, session, pending, buttons)."""
    history = list(history or [])
    session = Session.of(session)
    try:
        text, session = chat.confirm(app, session, api_key=_key(api_key))
    except Exception as exc:  # noqa: BLE001 - no traceback reaches the page
        log.warning("assistant confirm failed: %s", scrub(f"{type(exc).__name__}: {exc}", api_key))
        session = session.proposed(None)
        text = f"Sorry, that failed: {scrub(exc, api_key)}"
    history.append({"role": "assistant", "content": text})
    return (history, session, *_pending_view(session))


def cancel_handler(history: list | None, session: Session | dict | None):
    """Cancel button: drop the pending action; -> (history, session, pending, buttons)."""
    history = list(history or [])
    text, session = chat.cancel(session)
    history.append({"role": "assistant", "content": text})
    return (history, session, *_pending_view(session))


def pending_handler(session: Session | dict | None):
    return _pending_view(Session.of(session))


def build(ctx: UIContext) -> None:
    gr.Markdown("## Ask the assistant\nPlain questions about fine-tuning, your data, the cost, or your training "
                "run. Answers use the app's own numbers; actions run only when you press **Confirm**.")
    chatbot = gr.Chatbot(label="Assistant", height=420, elem_id="assistant-chat",
                         placeholder="Ask e.g. *“How much for 5,000 examples on gpt-4.1-mini?”*")
    with gr.Row():
        box = gr.Textbox(show_label=False, placeholder="Type a question and press Enter", scale=5,
                         elem_id="assistant-input")
        send = gr.Button("Send", variant="primary", scale=1)
    pending = gr.Markdown(visible=False, elem_id="assistant-pending")
    with gr.Row(visible=False) as confirm_row:
        confirm_btn = gr.Button("Confirm", variant="primary", elem_id="assistant-confirm")
        cancel_btn = gr.Button("Cancel", elem_id="assistant-cancel")
    gr.Examples(EXAMPLES, inputs=[box], label="Try")
    with gr.Accordion("Use a language model (optional)", open=False):
        gr.Markdown("Without a key the assistant answers from the app's built-in guidance. With an OpenAI-compatible "
                    "key it uses the model, with the app's functions as tools. The key is sent with each question, "
                    "used for that request only, and never stored (OPENAI_API_KEY on the server works too).")
        api_key = gr.Textbox(label="API key", type="password", placeholder="sk-...")
        with gr.Row():
            base_url = gr.Textbox(label="Base URL (optional)", placeholder="https://api.openai.com/v1")
            model = gr.Textbox(label="Model (optional)", placeholder="gpt-4.1-mini")

    outputs = [chatbot, ctx.session, box, pending, confirm_row]
    inputs = [box, chatbot, ctx.session, api_key, base_url, model]
    send.click(ctx.bind(chat_handler), inputs, outputs, api_name="assistant_chat")
    box.submit(ctx.bind(chat_handler), inputs, outputs, api_visibility="private")
    confirm_btn.click(ctx.bind(confirm_handler), [chatbot, ctx.session, api_key], [chatbot, ctx.session, pending, confirm_row],
                      api_name="assistant_confirm")
    cancel_btn.click(cancel_handler, [chatbot, ctx.session], [chatbot, ctx.session, pending, confirm_row],
                     api_name="assistant_cancel")
    ctx.session.change(pending_handler, [ctx.session], [pending, confirm_row], api_visibility="private")
