"""What the tabs share: the application's context and the person's session."""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from ftassist.usecases.context import Context


@dataclass
class UIContext:
    """Passed to every tab's `build`.

    `app` is the application layer's context (the store and the settings) that every handler hands
    to the use cases. `session` is a `gr.State` holding the person's `ftassist.usecases.Session`:
    a tab reads what earlier steps left and returns a new Session made by one of its transitions.
    """

    session: gr.State
    demo: gr.Blocks | None = None  # the whole page, for `ctx.demo.load(...)` handlers run on page open
    arena_only: bool = False
    app: Context = field(default_factory=Context.open)
