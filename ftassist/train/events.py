"""The events file: how a training run reports to the app (the job manager's contract).

Each run folder has `events.jsonl`, append-only, one JSON object per line. The writer (the
worker, or the OpenAI backend running inside it) flushes and fsyncs every event, so a crash
or a SIGKILL loses nothing already reported. The reader (`read_events`) returns only complete
lines and a byte offset to resume from, so a line being written right now is picked up on the
next call, never half-parsed. Only the main process writes (rank 0 under `accelerate launch`).

Every event has:
    type   one of the types below
    ts     float, Unix time (seconds) when it was written

Event types and their fields (a field may be null when unknown):
    started     pid (int), total_steps (int|null), num_examples (int), method ("lora"|"qlora"|"full"),
                base_model (str), device (str, e.g. "cpu", "cuda:0 (NVIDIA H100)", "openai");
                optional (local): backend, num_valid_examples, max_seq_length, token_p95, token_max,
                learning_rate, loss_on ("assistant"|"last_assistant_turn"), packing (bool),
                batching ("packed"|"length-grouped"), bf16, gradient_checkpointing, world_size,
                total_params, trainable_params; (OpenAI): external_id (the provider's job id);
                (a resumed run) resumed_from_step (int: the checkpoint's step, where it goes on),
                resumed_from_checkpoint (str), resumed_from (str: the run it continues)
    log         step (int), total_steps (int|null), epoch (float|null), loss (float|null),
                learning_rate (float|null), tokens_per_s (float|null, since the previous log),
                eta_s (float|null), grad_norm (float|null); optional num_tokens (cumulative),
                mean_token_accuracy
    eval        step (int), eval_loss (float), perplexity (float|null); optional mean_token_accuracy
    checkpoint  step (int), path (str: a checkpoint folder, or an OpenAI checkpoint model id);
                optional hub_path (str: `hf://REPO/PATH`, the copy a Hugging Face Jobs run uploaded)
    finished    output_dir (str: adapter/model folder, or the `ft:` model id for OpenAI),
                final_loss (float|null), first_loss (float|null), best_eval_loss (float|null),
                metrics (dict), optional merged_dir (str), optional hub_url (str)
    failed      reason (str, one line), hint (str: what to do), log_tail (str: last log lines)
    cancelled   step (int|null), output_dir (str|null: where the partial model was saved)
    message     text (str), level ("info"|"warning"|"error") - free-form notes (e.g. OpenAI job events)

A run ends with exactly one of finished / failed / cancelled. A run whose events stop without
one of them died (killed, out of memory): the job manager marks it failed.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

EVENTS_FILE = "events.jsonl"
EVENT_TYPES = ("started", "log", "eval", "checkpoint", "finished", "failed", "cancelled", "message")
TERMINAL_TYPES = ("finished", "failed", "cancelled")


def events_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / EVENTS_FILE


def jsonable(value: Any) -> Any:
    """JSON-safe: NaN/inf become null (json would write invalid `NaN`), numpy/torch scalars become numbers,
    anything else unknown its text (the worker's metrics hold library objects)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy / torch scalar
        try:
            return jsonable(value.item())
        except (TypeError, ValueError, RuntimeError):  # not a scalar after all
            pass
    if isinstance(value, Path):
        return str(value)
    return str(value)


class EventWriter:
    """Appends events to RUN_DIR/events.jsonl, one durable line each.

    `enabled=False` makes every call a no-op (non-zero ranks under accelerate).
    """

    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.run_dir = Path(run_dir)
        self.path = events_path(self.run_dir)
        self.enabled = enabled
        self._lock = threading.Lock()
        self.terminal: str | None = None  # type of the terminal event written, if any

    def write(self, type: str, **fields: Any) -> dict[str, Any]:
        event = {"type": type, "ts": time.time(), **jsonable(fields)}
        if not self.enabled:
            return event
        line = json.dumps(event, ensure_ascii=False, allow_nan=False) + "\n"
        with self._lock:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # Open per event: cheap at our rate (a few per second at most), and nothing is held
            # open across a fork or a crash.
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            if type in TERMINAL_TYPES:
                self.terminal = type
        return event

    # Named helpers: they document the fields each type carries.
    def started(self, *, pid: int, total_steps: int | None, num_examples: int, method: str,
                base_model: str, device: str, **extra: Any) -> dict:
        return self.write("started", pid=pid, total_steps=total_steps, num_examples=num_examples,
                          method=method, base_model=base_model, device=device, **extra)

    def log(self, *, step: int, total_steps: int | None = None, epoch: float | None = None,
            loss: float | None = None, learning_rate: float | None = None, tokens_per_s: float | None = None,
            eta_s: float | None = None, grad_norm: float | None = None, **extra: Any) -> dict:
        return self.write("log", step=step, total_steps=total_steps, epoch=epoch, loss=loss,
                          learning_rate=learning_rate, tokens_per_s=tokens_per_s, eta_s=eta_s,
                          grad_norm=grad_norm, **extra)

    def eval(self, *, step: int, eval_loss: float, perplexity: float | None = None, **extra: Any) -> dict:
        if perplexity is None and eval_loss is not None:
            perplexity = perplexity_of(eval_loss)
        return self.write("eval", step=step, eval_loss=eval_loss, perplexity=perplexity, **extra)

    def checkpoint(self, *, step: int, path: str) -> dict:
        return self.write("checkpoint", step=step, path=str(path))

    def finished(self, *, output_dir: str, final_loss: float | None, first_loss: float | None,
                 best_eval_loss: float | None = None, metrics: dict | None = None, **extra: Any) -> dict:
        return self.write("finished", output_dir=str(output_dir), final_loss=final_loss, first_loss=first_loss,
                          best_eval_loss=best_eval_loss, metrics=metrics or {}, **extra)

    def failed(self, *, reason: str, hint: str = "", log_tail: str = "") -> dict:
        return self.write("failed", reason=reason, hint=hint, log_tail=log_tail)

    def cancelled(self, *, step: int | None, output_dir: str | None) -> dict:
        return self.write("cancelled", step=step, output_dir=None if output_dir is None else str(output_dir))

    def message(self, text: str, level: str = "info") -> dict:
        return self.write("message", text=text, level=level)


def perplexity_of(loss: float | None) -> float | None:
    """exp(loss), null when it would overflow or the loss is unknown."""
    if loss is None or not math.isfinite(loss):
        return None
    return math.exp(loss) if loss < 700 else None


def read_events(run_dir: str | Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Events from byte `offset` on, and the offset to pass next time.

    Only complete (newline-terminated) lines are consumed; a line being written stays for the
    next call. A corrupt complete line (should not happen) is skipped rather than blocking the
    rest. A missing file gives ([], offset).
    """
    path = events_path(run_dir)
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    events: list[dict[str, Any]] = []
    for raw in data[: end + 1].splitlines():
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict):
            events.append(obj)
    return events, offset + end + 1


def last_terminal(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The finished/failed/cancelled event among `events`, if any (the last one wins)."""
    for e in reversed(events):
        if e.get("type") in TERMINAL_TYPES:
            return e
    return None


def tail_text(path: str | Path, max_lines: int = 40, max_bytes: int = 64_000) -> str:
    """The last lines of a (log) file, for `failed` events and the UI; '' when unreadable."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-max_lines:])

