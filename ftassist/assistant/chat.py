"""One entry point for a chat turn: the LLM with tools when a key is set, intent matching otherwise.

Why a dispatcher: the UI and the API endpoint should not care which path answers. A typed
"yes"/"no" to a pending action is handled here for both paths (no model call needed), and
when the LLM cannot be reached the question is still answered from the built-in guidance,
with a note saying so (the note never contains the key).
"""

from __future__ import annotations

from . import actions, intents, llm
from .intents import Reply


def respond(message: str, history: list | None = None, session: dict | None = None, *,
            api_key: str | None = None, base_url: str | None = None, model: str | None = None,
            client=None) -> Reply:
    """Answer `message` given the chat `history` (Gradio messages) and the session dict.

    `api_key` (typed in the page; else OPENAI_API_KEY) switches on the LLM path; it is used for
    this call only and never stored. `client` lets tests inject an OpenAI client.
    """
    session = dict(session or {})
    text = intents.normalise(message)
    if actions.pending(session) and (intents._YES.fullmatch(text) or intents._NO.fullmatch(text)):
        return intents.answer(message, session, api_key=api_key)
    settings = llm.resolve_settings(api_key, base_url, model)
    if settings is None or not text:
        return intents.answer(message, session)
    try:
        return llm.chat(message, history, session, settings, client=client)
    except llm.LLMError as exc:
        reply = intents.answer(message, session)
        reply.text = (f"_The language model could not answer ({exc}); this answer comes from the app's built-in "
                      f"guidance._\n\n{reply.text}")
        return reply


def confirm(session: dict | None, api_key: str | None = None) -> tuple[str, dict]:
    """Run the pending action (the Confirm button)."""
    return actions.execute(session, api_key=api_key)


def cancel(session: dict | None) -> tuple[str, dict]:
    """Drop the pending action (the Cancel button)."""
    return actions.cancel(session)
