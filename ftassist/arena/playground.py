"""Chat with one registered model, its answer streamed piece by piece (the Playground).

`models.generate` answers whole prompts in batches, which is what battles and evaluation want; a person
typing in the playground wants to see the answer arrive. `stream_reply` yields the answer's text as it is
generated, for any kind the registry knows: a local model (base, base + adapter, merged) through
transformers' `TextIteratorStreamer`, an API model or endpoint through the SDK's `stream=True`. The model
is loaded, configured and keyed exactly as `models` does it (the same cache, the same stop tokens, the same
sampling checks), so the playground shows what the arena would get.
"""

from __future__ import annotations

import threading
from typing import Any, Iterator

from ftassist.redact import scrub

from . import models

STREAM_TIMEOUT_S = 300.0  # a local generation that produces nothing for this long is reported, not waited on


def stream_reply(store, model_id: str, messages: list[dict], sampling: dict | None = None,
                 system_prompt: str | None = None) -> Iterator[str]:
    """The model's answer to `messages` (the conversation so far, ending with the user's turn), yielded in
    pieces as they are generated. A system prompt given here replaces the model's configured one.

    Raises ModelError (a ValueError) with the reason, key masked, when the model cannot answer."""
    row = models.get_model(store, model_id)
    config = dict(row["config"])
    settings = models.normalize_sampling(sampling, config.get("sampling"))
    try:
        chat = models.to_messages(messages, system_prompt or config.get("system_prompt"))
    except ValueError as exc:
        raise models.ModelError(f"Nothing to answer: {exc}.") from None
    if row["kind"] in models.API_KINDS:
        yield from _stream_api(row["kind"], config, chat, settings)
    else:
        yield from _stream_local(row["kind"], config, chat, settings, row["id"])


def _stream_local(kind: str, config: dict, messages: list[dict], settings: dict, cache_key: str) -> Iterator[str]:
    import torch
    from transformers import TextIteratorStreamer

    loaded = models.load_local(kind, config, cache_key=cache_key)
    tok = loaded.tokenizer
    enc = tok([loaded.chat_text(messages)], return_tensors="pt", truncation=True, add_special_tokens=False,
              max_length=int(config.get("max_input_tokens") or 4096))
    enc = {k: v.to(loaded.device) for k, v in enc.items()}
    streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True, timeout=STREAM_TIMEOUT_S)
    kwargs: dict[str, Any] = {"max_new_tokens": settings["max_new_tokens"], "pad_token_id": tok.pad_token_id,
                              "streamer": streamer}
    if settings["temperature"] > 0:
        kwargs.update(do_sample=True, temperature=settings["temperature"], top_p=settings["top_p"])
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if loaded.stop_ids:
        kwargs["eos_token_id"] = loaded.stop_ids
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with loaded.lock, torch.no_grad():
                if settings.get("seed") is not None:
                    torch.manual_seed(settings["seed"])
                loaded.model.generate(**enc, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, who raises it as one line
            failure.append(exc)
            streamer.end()

    worker = threading.Thread(target=run, name="playground-generate", daemon=True)
    worker.start()
    started = False
    for piece in streamer:
        if not started:  # the answer starts at its first visible character, as `generate` strips it
            piece = piece.lstrip()
            started = bool(piece)
        if piece:
            yield piece
    worker.join()
    if failure:
        exc = failure[0]
        raise models.ModelError(scrub(f"The model failed while answering: {type(exc).__name__}: {exc}", limit=500))


def _stream_api(kind: str, config: dict, messages: list[dict], settings: dict) -> Iterator[str]:
    import openai

    key, problem = models._api_key(kind, config)
    if problem:
        raise models.ModelError(f"Cannot reach {config['model']}: {problem}.")
    client = models._client(kind, config, key, max_retries=int(config.get("max_retries", models.DEFAULT_MAX_RETRIES)),
                            timeout_s=float(config.get("timeout_s", models.DEFAULT_TIMEOUT_S)))
    request = models._request(kind, config, messages, settings)
    got_any = False
    try:
        for chunk in client.chat.completions.create(**request, stream=True):
            for choice in chunk.choices or []:
                text = getattr(choice.delta, "content", None)
                if text:
                    got_any = True
                    yield text
        if not got_any:  # a server that ignores `stream` sends one JSON answer, which no stream event carries
            response = client.chat.completions.create(**request)
            text = response.choices[0].message.content or ""
            if text:
                yield text
    except openai.OpenAIError as exc:
        raise models.ModelError(scrub(f"{config['model']} did not answer: {type(exc).__name__}: {exc}",
                                      key, limit=500)) from None
