"""The real app wiring: the chat panel served by Gradio and called over HTTP by its API name."""

from __future__ import annotations

import gradio as gr
import pytest

from ftassist.ui import assistant as ui
from ftassist.ui.context import UIContext
from ftassist.usecases.session import Session


@pytest.fixture
def app():
    with gr.Blocks() as demo:
        state = gr.State(Session())
        ui.build(UIContext(session=state, demo=demo))
    demo.queue()
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    yield url
    demo.close()


def test_assistant_chat_endpoint(app):
    from gradio_client import Client

    client = Client(app, verbose=False)
    history, box = client.predict("How much for 5,000 examples on gpt-4.1-mini?", [], "", "", "",
                                  api_name="/assistant_chat")[:2]
    assert box == ""
    last = history[-1]
    text = last["content"] if isinstance(last["content"], str) else " ".join(
        c.get("text", "") for c in last["content"] if isinstance(c, dict))
    assert "$37.50" in text
