"""The `Estimate` tab (filled in by its issue)."""

from __future__ import annotations

import gradio as gr

from .context import UIContext


def build(ctx: UIContext) -> None:
    gr.Markdown("This step is coming soon.")
