"""The chat assistant: answers grounded in the app's guidance and the person's data, estimate and job.

- `chat.respond(message, history, session, api_key=..., base_url=..., model=...)`: one turn;
- `intents`: the no-key path (intent matching, the same functions as the tabs);
- `llm`: the LLM path (OpenAI-compatible chat completions with `tools`);
- `tools`: the functions both paths call, and their JSON schemas;
- `actions`: proposals the person confirms (check, estimate, start a run);
- `knowledge`, `loss`: the guidance texts and the loss-curve rules.
No gradio here: the UI is `ftassist.ui.assistant`.
"""
