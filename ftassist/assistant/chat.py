"""One entry point for a chat turn: the LLM with tools when a key is set, intent matching otherwise.

Why a dispatcher: the UI (and any other caller) should not care which path answers. A typed
"yes"/"no" to a pending action is handled here for both paths (no model call needed), and
when the LLM cannot be reached the question is still answered from the app's use cases by the
intent matcher, with a note saying so (the note never contains the key).
"""

from __future__ import annotations

from ftassist.usecases.context import Context
from ftassist.usecases.session import Session

from . import actions, intents, llm
from .intents import Reply


def respond(ctx: Context, message: str, history: list | None = None, session: Session | dict | None = None, *,
            api_key: str | None = None, base_url: str | None = None, model: str | None = None,
            client=None) -> Reply:
    """Answer `message` given the chat `history` (Gradio messages) and the person's session.

    `api_key` (typed in the page; else OPENAI_API_KEY) switches on the LLM path; it is used for
    this call only and never stored. `client` lets tests inject an OpenAI client.
    """
    session = Session.of(session)
    text = intents.normalise(message)
    if session.pending_action and (intents.YES.fullmatch(text) or intents.NO.fullmatch(text)):
        return intents.answer(ctx, message, session, api_key=api_key)
    settings = llm.resolve_settings(api_key, base_url, model)
    if settings is None or not text:
        return intents.answer(ctx, message, session)
    try:
        return llm.chat(ctx, message, history, session, settings, client=client)
    except llm.LLMError as exc:
        reply = intents.answer(ctx, message, session)
        reply.text = (f"_The language model could not answer ({exc}); this answer comes from the app's built-in "
                      f"guidance._\n\n{reply.text}")
        return reply


def confirm(ctx: Context, session: Session | dict | None, api_key: str | None = None) -> tuple[str, Session]:
    """Run the pending action (the Confirm button)."""
    return actions.confirm(ctx, Session.of(session), api_key=api_key)


def cancel(session: Session | dict | None) -> tuple[str, Session]:
    """Drop the pending action (the Cancel button)."""
    return actions.cancel(Session.of(session))
