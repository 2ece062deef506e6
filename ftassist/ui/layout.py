"""The Blocks layout: the tabs in pipeline order, and launching the app."""

from __future__ import annotations

import os

import gradio as gr

from . import arena, data_tab, decide, estimate, leaderboard, train
from .context import UIContext

TABS = (
    ("Decide", decide),
    ("Data", data_tab),
    ("Estimate", estimate),
    ("Train", train),
    ("Arena", arena),
    ("Leaderboard", leaderboard),
)


def build_app(arena_only: bool = False) -> gr.Blocks:
    with gr.Blocks(title="ftassist: fine-tuning assistant") as demo:
        session = gr.State({})
        ctx = UIContext(session=session, arena_only=arena_only)
        if arena_only:
            gr.Markdown("# Which answer is better?\nVote blind: the models' names are shown after your vote.")
            arena.build(ctx)
        else:
            gr.Markdown("# ftassist\nFrom *should I fine-tune at all?* to *is my fine-tuned model actually better?*")
            with gr.Tabs():
                for title, module in TABS:
                    with gr.Tab(title, id=title.lower()):
                        module.build(ctx)
    return demo


def launch(host: str | None = None, port: int | None = None, arena_only: bool = False, share: bool = False) -> None:
    arena_only = arena_only or os.environ.get("FTASSIST_ARENA_ONLY", "") not in ("", "0", "false")
    if host is None:
        host = os.environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1")
    if port is None:
        port = int(os.environ.get("GRADIO_SERVER_PORT", "7860"))
    demo = build_app(arena_only=arena_only)
    demo.queue(default_concurrency_limit=8)
    demo.launch(server_name=host, server_port=port, share=share, show_error=False)
