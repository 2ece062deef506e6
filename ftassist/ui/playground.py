"""The `Playground` tab: chat with any registered model, its answer streamed, with a system prompt and the
sampling settings; side by side with a second model when asked (named, not blind: the Arena is the blind
test). A good answer can be kept as a training example, a bad one as the rejected side of a preference
pair. The answers stream through `usecases.playground.stream_reply`; saving goes through its use cases."""

from __future__ import annotations

import functools
import queue
import threading
from typing import Any, Callable, Iterator

import gradio as gr

from ftassist.usecases import arena as arena_cases
from ftassist.usecases import playground as playground_cases
from ftassist.usecases.context import Context, UseCaseError

from .context import UIContext

SIDES = ("A", "B")
_DONE = object()


def plain_history(history: list | None) -> list[dict[str, str]]:
    """A Chatbot's value as {role, content} messages with text content (Gradio hands content back as a
    list of parts)."""
    out = []
    for message in history or []:
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system"):
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        elif isinstance(content, dict):
            content = content.get("text", "")
        out.append({"role": message["role"], "content": str(content or "")})
    return out


def model_choices(app: Context):
    choices = [(m.display_name, m.id) for m in arena_cases.list_models(app)]
    return (gr.update(choices=choices, value=choices[-1][1] if choices else None),
            gr.update(choices=[("(none)", "")] + choices))


def _stream_into(app: Context, side: int, model: str, history: list[dict], settings: dict, out: queue.Queue) -> None:
    """Put (side, piece) for each piece of the answer, (side, UseCaseError) on failure, then (side, _DONE)."""
    try:
        for piece in playground_cases.stream_reply(app, model, history, **settings):
            out.put((side, piece))
    except UseCaseError as exc:
        out.put((side, exc))
    except Exception as exc:  # noqa: BLE001 - shown on the page as one line, never a traceback
        out.put((side, UseCaseError(f"The model could not answer: {type(exc).__name__}: {exc}")))
    finally:
        out.put((side, _DONE))


def _snapshot(histories: list[list[dict]], models: list[str | None]) -> tuple[Any, Any, str]:
    """What one update shows: copies of the conversations (each update stands alone), B untouched when
    nobody answers there, and the message box cleared."""
    copies = [[dict(message) for message in history] for history in histories]
    return copies[0], (copies[1] if models[1] else gr.skip()), ""


def send(app: Context, message: str, history_a: list | None, history_b: list | None, model_a: str | None,
         model_b: str | None, system_prompt: str, temperature: float, top_p: float,
         max_new_tokens: float) -> Iterator[tuple[Any, Any, str]]:
    """Add the message to both conversations and stream each model's answer into its own; yields
    (conversation A, conversation B, the cleared message box) as the answers grow."""
    if not (message or "").strip():
        raise gr.Error("Write a message first.")
    if not model_a:
        raise gr.Error("Pick a model to talk to (register models in the Arena tab).")
    settings = {"system_prompt": (system_prompt or "").strip() or None, "temperature": float(temperature),
                "top_p": float(top_p), "max_new_tokens": int(max_new_tokens)}
    models = [model_a, model_b or None]
    histories = [plain_history(history_a), plain_history(history_b)]
    answers = queue.Queue()
    running = 0
    for side, model in enumerate(models):
        if model is None:
            continue
        histories[side].append({"role": "user", "content": message})
        asked = list(histories[side])
        histories[side].append({"role": "assistant", "content": ""})
        threading.Thread(target=_stream_into, args=(app, side, model, asked, settings, answers), daemon=True,
                         name=f"playground-{SIDES[side]}").start()
        running += 1
    yield _snapshot(histories, models)
    errors = []
    while running:
        side, piece = answers.get()
        if piece is _DONE:
            running -= 1
            continue
        if isinstance(piece, UseCaseError):
            errors.append(str(piece))
            histories[side].pop()  # no empty answer left behind: the user's turn can be asked again
            continue
        histories[side][-1]["content"] += piece
        yield _snapshot(histories, models)
    for error in errors:
        gr.Warning(error)
    yield _snapshot(histories, models)


def _last_exchange(history: list | None) -> tuple[list[dict], str]:
    """(the conversation up to the last user turn, the answer to it) of one side."""
    messages = plain_history(history)
    if not messages or messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        raise gr.Error("There is no answer on that side yet: send a message first.")
    return messages[:-1], messages[-1]["content"]


def save_example(app: Context, side: str, history_a: list | None, history_b: list | None, corrected: str,
                 system_prompt: str) -> str:
    """Keep that side's answer (or the corrected one written below it) as a training example."""
    prompt, answer = _last_exchange(history_a if side == "A" else history_b)
    try:
        saved = playground_cases.save_playground_example(app, prompt, (corrected or "").strip() or answer,
                                                         system_prompt=(system_prompt or "").strip() or None)
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    return saved.message


def save_rejected(app: Context, side: str, history_a: list | None, history_b: list | None, corrected: str,
                  system_prompt: str) -> str:
    """Keep that side's answer as rejected; the better one is the corrected answer, else the other side's."""
    prompt, rejected = _last_exchange(history_a if side == "A" else history_b)
    chosen = (corrected or "").strip()
    if not chosen:
        other = plain_history(history_b if side == "A" else history_a)
        if other and other[-1]["role"] == "assistant" and other[:-1] == prompt:
            chosen = other[-1]["content"]
    try:
        saved = playground_cases.save_rejected_answer(app, prompt, rejected, chosen,
                                                      system_prompt=(system_prompt or "").strip() or None)
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    return saved.message


def streaming(ctx: UIContext, handler: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """`ctx.bind(handler)` that is itself a generator function: Gradio streams a handler's updates only when
    `inspect.isgeneratorfunction` says so, which a plain wrapper returning the generator hides."""
    bound = ctx.bind(handler)

    @functools.wraps(bound)
    def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
        yield from bound(*args, **kwargs)

    return stream


def clear() -> tuple[list, list, str, str]:
    return [], [], "", ""


def build(ctx: UIContext) -> None:
    gr.Markdown("Talk to any registered model. Pick a second model to see both answer side by side (named, not "
                "blind: vote blind in the Arena). Keep a good answer as a training example, or a bad one as a "
                "rejected answer for preference tuning.")
    with gr.Row():
        model_a = gr.Dropdown(choices=[], label="Model", interactive=True, elem_id="play-model-a")
        model_b = gr.Dropdown(choices=[], label="Side by side with (optional)", interactive=True,
                              elem_id="play-model-b")
        refresh = gr.Button("Refresh the models", size="sm", scale=0)
    system_prompt = gr.Textbox(label="System prompt (optional)", lines=2, elem_id="play-system")
    with gr.Row():
        temperature = gr.Slider(0, 2, value=0.7, step=0.05, label="Temperature")
        top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Top p")
        max_new_tokens = gr.Slider(8, 2048, value=256, step=8, label="Longest answer (tokens)")
    with gr.Row():
        chat_a = gr.Chatbot(label="A", height=420, elem_id="play-chat-a")
        chat_b = gr.Chatbot(label="B", height=420, elem_id="play-chat-b")
    message = gr.Textbox(label="Message", lines=2, placeholder="Ask something, then press Send",
                         elem_id="play-message")
    with gr.Row():
        send_button = gr.Button("Send", variant="primary", elem_id="play-send")
        clear_button = gr.Button("Clear")
    with gr.Accordion("Keep this answer", open=False, elem_id="play-keep"):
        with gr.Row():
            side = gr.Radio(choices=list(SIDES), value="A", label="Which side's last answer")
            corrected = gr.Textbox(label="Better answer (optional): your correction", lines=3)
        with gr.Row():
            good = gr.Button("Save as a training example")
            bad = gr.Button("Save as a rejected answer (preference pair)")
        saved = gr.Markdown(elem_id="play-saved")

    refresh.click(ctx.bind(model_choices), None, [model_a, model_b], api_visibility="private")
    if ctx.demo is not None:
        ctx.demo.load(ctx.bind(model_choices), None, [model_a, model_b], api_visibility="private")
    inputs = [message, chat_a, chat_b, model_a, model_b, system_prompt, temperature, top_p, max_new_tokens]
    send_button.click(streaming(ctx, send), inputs, [chat_a, chat_b, message], api_name="playground_send")
    message.submit(streaming(ctx, send), inputs, [chat_a, chat_b, message], api_visibility="private")
    clear_button.click(clear, None, [chat_a, chat_b, message, corrected], api_visibility="private")
    keep_inputs = [side, chat_a, chat_b, corrected, system_prompt]
    good.click(ctx.bind(save_example), keep_inputs, saved, api_name="save_playground_example")
    bad.click(ctx.bind(save_rejected), keep_inputs, saved, api_name="save_rejected_answer")
