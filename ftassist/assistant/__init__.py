"""The chat assistant: a thin adapter whose tools are the application's use cases.

- `chat.respond(ctx, message, history, session, api_key=..., base_url=..., model=...)`: one turn;
- `intents`: the no-key path (intent matching; calls the same use cases);
- `llm`: the LLM path (OpenAI-compatible chat completions; `tools` made from the use cases);
- `tools`: which use cases are offered (registered with `assistant=True`), their schemas, arguments;
- `actions`: a use case registered with `confirm=True` is proposed and runs only on Confirm;
- `knowledge`, `loss`: the guidance texts and the loss-curve rules (pure data and functions, read
  by `ftassist.usecases.assistance`).
No gradio here: the UI is `ftassist.ui.assistant`.
"""
