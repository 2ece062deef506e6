"""What the tabs share: the application's context and the person's session."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

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

    def bind(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """`handler(app, ...)` as the Gradio handler `(...)`: the app's context passed explicitly.

        Not `functools.partial`: Gradio reads a handler's type hints (`evt: gr.SelectData`) and
        signature, which a partial hides; the wrapper keeps both, less the `app` parameter."""
        app = self.app

        @functools.wraps(handler)
        def bound(*args: Any, **kwargs: Any) -> Any:
            return handler(app, *args, **kwargs)

        signature = inspect.signature(handler)
        bound.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
        bound.__annotations__ = {k: v for k, v in handler.__annotations__.items() if k != "app"}
        return bound
