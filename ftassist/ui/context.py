"""What the tabs share: the per-session state that hands one step's result to the next."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr


@dataclass
class UIContext:
    """Passed to every tab's `build`.

    `session` is a `gr.State` holding a plain dict with the keys the stations fill in:
      "report": the DataReport of the checked dataset (as a dict),
      "dataset_path": the uploaded file's path, "clean": {"train": path, "valid": path, ...},
      "estimate": the chosen option, "job_id": the last started job.
    A tab reads what the earlier steps left and adds its own key; it never removes others'.
    """

    session: gr.State
    demo: gr.Blocks | None = None  # the whole page, for `ctx.demo.load(...)` handlers run on page open
    arena_only: bool = False
