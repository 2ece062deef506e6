"""Use cases of the Playground: talk to any registered model, and keep what the talk taught.

A good answer (the model's, or the person's correction) becomes a new training example, appended as a
chat record to `<data dir>/playground/examples.jsonl`; a bad one becomes a preference pair, appended in
TRL's conversational form (`{"prompt": [...], "chosen": [...], "rejected": [...]}`, what `export_dpo`
writes and a DPO run reads) to `<data dir>/playground/preferences.jsonl`. Both files are plain JSONL the
Data step checks like any upload; the result says where they are.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ftassist.arena import models as arena_models
from ftassist.arena import playground as arena_playground

from .context import Context, NotFound, UseCaseError
from .registry import use_case

EXAMPLES_FILE = "examples.jsonl"
PREFERENCES_FILE = "preferences.jsonl"
ROLES = ("system", "user", "assistant")
_APPEND_LOCK = threading.Lock()  # two browsers saving at once each append whole lines


@dataclass(frozen=True)
class PlaygroundReply:
    model: str
    display_name: str
    text: str
    seconds: float
    sampling: dict[str, Any]


@dataclass(frozen=True)
class SavedRecord:
    """What a save appended, where, and how many records that file now holds."""

    path: str
    count: int
    record: dict[str, Any]
    message: str


# -- helpers -----------------------------------------------------------------------------------------------
def _model(ctx: Context, model: str) -> dict:
    found = arena_models.find_model(ctx.store, (model or "").strip())
    if found is None:
        raise NotFound(f"No model {model!r} in the arena: register it in the Arena tab (or `ftassist arena "
                       "add-model`) first.")
    return found


def _sampling(temperature: float, top_p: float, max_new_tokens: int, seed: int | None) -> dict[str, Any]:
    try:
        return arena_models.normalize_sampling({"temperature": temperature, "top_p": top_p,
                                                "max_new_tokens": max_new_tokens, "seed": seed})
    except arena_models.ModelError as exc:
        raise UseCaseError(str(exc)) from None


def clean_messages(messages: list[dict], *, what: str = "conversation") -> list[dict[str, str]]:
    """The conversation as plain {role, content} messages, or UseCaseError saying which one is wrong."""
    if not isinstance(messages, list) or not messages:
        raise UseCaseError(f"The {what} is empty: write a message first.")
    out = []
    for number, message in enumerate(messages, start=1):
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role not in ROLES or not isinstance(content, str):
            raise UseCaseError(f"Message {number} of the {what} needs a role ({', '.join(ROLES)}) and a text "
                               "content.")
        out.append({"role": role, "content": content})
    return out


def _prompt(messages: list[dict], system_prompt: str | None) -> list[dict[str, str]]:
    """The conversation up to the user's last turn, with the system prompt first when one was used."""
    prompt = clean_messages(messages)
    while prompt and prompt[-1]["role"] == "assistant":
        prompt.pop()  # the answer being saved, when the caller left it in
    if not prompt or prompt[-1]["role"] != "user":
        raise UseCaseError("The conversation must end with the user's message that the answer replies to.")
    if system_prompt and system_prompt.strip() and prompt[0]["role"] != "system":
        prompt.insert(0, {"role": "system", "content": system_prompt.strip()})
    return prompt


def _append(path: Path, record: dict) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _APPEND_LOCK:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        with path.open("rb") as fh:
            return sum(1 for line in fh if line.strip())


def playground_dir(ctx: Context) -> Path:
    """Where the playground's examples and preference pairs are kept (under the data dir)."""
    return ctx.settings.data_dir / "playground"


# -- talking -----------------------------------------------------------------------------------------------
def stream_reply(ctx: Context, model: str, messages: list[dict], system_prompt: str | None = None,
                 temperature: float = 0.7, top_p: float = 1.0, max_new_tokens: int = 256,
                 seed: int | None = None) -> Iterator[str]:
    """The model's answer, yielded in pieces as it is generated (the playground's streaming; front ends
    only, since a stream is no JSON result: `playground_reply` is the same answer whole)."""
    row = _model(ctx, model)
    chat = clean_messages(messages)
    settings = _sampling(temperature, top_p, max_new_tokens, seed)
    try:
        yield from arena_playground.stream_reply(ctx.store, row["id"], chat, settings, system_prompt)
    except arena_models.ModelError as exc:
        raise UseCaseError(f"{row['display_name']}: {exc}") from None


@use_case(assistant=True)
def playground_reply(ctx: Context, model: str, messages: list[dict], system_prompt: str | None = None,
                     temperature: float = 0.7, top_p: float = 1.0, max_new_tokens: int = 256,
                     seed: int | None = None) -> PlaygroundReply:
    """Ask one registered model (local, with adapter, merged, API or endpoint) to answer a conversation.

    Args:
        model: The model's id or display name.
        messages: The conversation so far, [{"role": "user", "content": "..."}, ...], ending with the user's turn.
        system_prompt: A system prompt to put first (default: the model's own, if it has one).
        temperature: Sampling temperature (0: greedy).
        top_p: Nucleus sampling (1: off).
        max_new_tokens: The longest answer, in tokens.
        seed: A seed, to repeat a sampled answer.
    """
    row = _model(ctx, model)
    start = time.perf_counter()
    text = "".join(stream_reply(ctx, row["id"], messages, system_prompt, temperature, top_p, max_new_tokens, seed))
    return PlaygroundReply(model=row["id"], display_name=row["display_name"], text=text.strip(),
                           seconds=round(time.perf_counter() - start, 3),
                           sampling=_sampling(temperature, top_p, max_new_tokens, seed))


# -- keeping what was learnt -----------------------------------------------------------------------------
@use_case(assistant=True, confirm=True)
def save_playground_example(ctx: Context, messages: list[dict], answer: str,
                            system_prompt: str | None = None) -> SavedRecord:
    """Save a good answer (the model's, or a corrected one) as a new chat training example.

    Args:
        messages: The conversation up to the user's message the answer replies to.
        answer: The answer to teach: the model's, or the person's better version.
        system_prompt: The system prompt used, put first in the example.
    """
    if not (answer or "").strip():
        raise UseCaseError("The answer to save is empty: write (or generate) the answer first.")
    record = {"messages": _prompt(messages, system_prompt) + [{"role": "assistant", "content": answer.strip()}]}
    path = playground_dir(ctx) / EXAMPLES_FILE
    count = _append(path, record)
    return SavedRecord(path=str(path), count=count, record=record,
                       message=f"Saved as training example {count} in {path}. Check it in the Data step and "
                               "add it to your training data for the next run.")


@use_case(assistant=True, confirm=True)
def save_rejected_answer(ctx: Context, messages: list[dict], rejected: str, chosen: str,
                         system_prompt: str | None = None) -> SavedRecord:
    """Save a bad answer as the rejected side of a preference pair, with the better answer as the chosen side.

    Args:
        messages: The conversation up to the user's message both answers reply to.
        rejected: The bad answer.
        chosen: The better answer: the person's correction, or the other model's answer.
        system_prompt: The system prompt used, put first in the prompt.
    """
    rejected, chosen = (rejected or "").strip(), (chosen or "").strip()
    if not rejected:
        raise UseCaseError("There is no answer to reject: generate one first.")
    if not chosen:
        raise UseCaseError("A preference pair needs the better answer: write a corrected answer, or compare "
                           "with a second model and keep its answer.")
    if chosen == rejected:
        raise UseCaseError("The better answer is the same as the rejected one: edit it before saving.")
    record = {"prompt": _prompt(messages, system_prompt), "chosen": [{"role": "assistant", "content": chosen}],
              "rejected": [{"role": "assistant", "content": rejected}]}
    path = playground_dir(ctx) / PREFERENCES_FILE
    count = _append(path, record)
    return SavedRecord(path=str(path), count=count, record=record,
                       message=f"Saved as preference pair {count} in {path} (prompt, chosen, rejected: what a "
                               "DPO run reads).")
