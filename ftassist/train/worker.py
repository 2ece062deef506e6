"""The training worker: `python -m ftassist.train.worker RUN_DIR`.

One recipe, read top to bottom: load RUN_DIR/spec.json -> (tiny-random: build the model) ->
tokenizer + chat template -> data -> model (+ LoRA / 4-bit) -> TRL `SFTTrainer` -> save
(adapter or model, tokenizer, metrics.json) -> optional merge and push.

It reports only through RUN_DIR/events.jsonl (see `ftassist.train.events` for the contract);
its stdout/stderr are redirected to RUN_DIR/worker.log by whoever starts it, so it never
blocks on a pipe nobody reads. It runs unchanged under `accelerate launch` / `torchrun`: every
rank trains, only rank 0 writes events and extra files.

Choices the recipe makes (each "auto" in the spec resolved here and recorded in `started`):
- loss on assistant tokens only: the model's chat template with `{% generation %}` markers
  (TRL patches the templates it knows; a model with no template gets ChatML, or a plain-text
  template ending answers with its eos when it lacks the ChatML tokens); a template TRL cannot
  patch falls back to prompt/completion on the last assistant turn;
- no compute spent on padding: packing (best-fit decreasing, padding-free) where FlashAttention's
  variable-length kernels exist, batches of similar lengths elsewhere (see `resolve_auto`);
- bf16 where the GPU supports it, gradient checkpointing only where memory is likely tight;
- evaluation ~10 times per run (loss and perplexity), early stopping on validation loss with
  the best checkpoint kept;
- a checkpoint (with optimizer, scheduler and RNG states) at every evaluation or `save_steps`, the
  last two kept, and one more when a cancel stops the run: `spec.resume_from_checkpoint` goes on
  from one (the `resume_run` use case), its `started` event saying at which step.

Exit codes: 0 finished or cancelled (the events file says which), 1 failed, 2 invalid spec,
3 refused (QLoRA without CUDA).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftassist.train import reporting
from ftassist.train.events import EventWriter, jsonable, perplexity_of, tail_text
from ftassist.train.spec import TINY_RANDOM, JobSpec
from ftassist.train.stop import Cancelled, StopFlag

LOG_FILE = "worker.log"
QLORA_HINT = "QLoRA needs an NVIDIA GPU (bitsandbytes 4-bit); use LoRA on CPU or run on a GPU machine"
# What to do when a run ran out of memory (the worker's hint, and the job manager's for a silent death).
OOM_HINT = (
    "Lower per_device_batch_size (raise gradient_accumulation_steps to keep the effective batch), "
    "shorten max_seq_length, turn on gradient_checkpointing, or switch to LoRA/QLoRA."
)


class SetupError(Exception):
    """A problem the person can fix before training starts; carries the hint shown with it."""

    def __init__(self, reason: str, hint: str):
        super().__init__(reason)
        self.hint = hint


MODEL_HINT = ("Check the base model: a Hub id you can access (log in or set HF_TOKEN for gated models, and a "
              "network connection), a local folder with config.json, or 'tiny-random' to try the path offline.")


def check_base_model(base: str) -> None:
    """Fail fast, with a hint, on a base model that cannot be a local folder or a Hub id."""
    path = Path(base).expanduser()
    looks_local = path.exists() or base.startswith((".", "/", "~")) or base.count("/") > 1
    if looks_local:
        if not path.is_dir():
            raise SetupError(f"base model folder {base} does not exist", MODEL_HINT)
        if not (path / "config.json").is_file():
            raise SetupError(f"base model folder {base} has no config.json (not a transformers model)", MODEL_HINT)
    elif not base or any(c.isspace() for c in base):
        raise SetupError(f"base model {base!r} is not a valid Hub id", MODEL_HINT)


def _rank() -> int:
    for var in ("RANK", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def _world_size() -> int:
    v = os.environ.get("WORLD_SIZE", "1")
    return int(v) if v.isdigit() else 1


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
def _without_bitsandbytes() -> None:
    """Hide bitsandbytes from this worker when the run does not quantise: PEFT imports it whenever it is
    installed, and its import pulls in torch's compiler stack, a second of start-up for every LoRA or full run.
    A None in sys.modules makes `importlib.util.find_spec` (how PEFT and transformers ask) answer "absent"."""
    if "bitsandbytes" not in sys.modules:
        sys.modules["bitsandbytes"] = None  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print("usage: python -m ftassist.train.worker RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(argv[0]).resolve()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)  # the log tail must be current when we fail
        except (AttributeError, ValueError):
            pass
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    writer = EventWriter(run_dir, enabled=_rank() == 0)
    stop = StopFlag()
    stop.install()

    try:
        spec = JobSpec.load(run_dir)
    except (OSError, ValueError, TypeError) as e:
        writer.failed(reason=f"cannot read {run_dir / 'spec.json'}: {e}",
                      hint="Start the run from the app or `ftassist train`, which write a valid spec.json.")
        return 2

    if spec.backend == "openai":
        return _run_openai(spec, run_dir, writer)

    problems = spec.validate()
    if problems:
        writer.failed(reason="invalid spec: " + " ".join(problems), hint="Fix these settings and start again.")
        return 2
    if spec.backend == "together":
        return _run_together(spec, run_dir, writer, stop)
    if spec.backend == "hf-jobs":
        return _run_hf_jobs(spec, run_dir, writer, stop)
    if spec.method == "qlora" and not _cuda_available():
        print(f"[ftassist] refusing QLoRA: {QLORA_HINT}", flush=True)
        writer.failed(reason="QLoRA needs CUDA, and no NVIDIA GPU is visible on this machine.", hint=QLORA_HINT,
                      log_tail="")
        return 3

    if spec.method != "qlora":
        _without_bitsandbytes()
    try:
        train_local(spec, run_dir, writer, stop)
        return 0
    except Cancelled:
        writer.cancelled(step=None, output_dir=None)
        return 0
    except BaseException as e:  # noqa: BLE001 - the worker must always leave a terminal event
        if isinstance(e, KeyboardInterrupt) and stop.requested:
            writer.cancelled(step=None, output_dir=None)
            return 0
        traceback.print_exc()
        sys.stderr.flush()
        tb = traceback.format_exc()
        log_tail = tail_text(run_dir / LOG_FILE, max_lines=40) or "\n".join(tb.splitlines()[-40:])
        writer.failed(reason=_one_line(e), hint=hint_for(e), log_tail=log_tail)
        return 1


def _run_openai(spec: JobSpec, run_dir: Path, writer: EventWriter) -> int:
    """Delegate to the OpenAI backend so both backends report through the same events file."""
    try:
        from ftassist.train.openai_ft import run_job
    except ImportError as e:
        writer.failed(reason=f"the OpenAI backend is not available: {e}", hint="Reinstall ftassist.")
        return 1
    return _delegate("the OpenAI backend", lambda: run_job(spec, run_dir, writer), run_dir, writer)


def _run_together(spec: JobSpec, run_dir: Path, writer: EventWriter, stop: StopFlag) -> int:
    """Delegate to the Together backend: the same events file; the worker's stop flag cancels the remote job."""
    from ftassist.train.together_ft import run_job

    return _delegate("the Together backend", lambda: run_job(spec, run_dir, writer, stop), run_dir, writer)


def _run_hf_jobs(spec: JobSpec, run_dir: Path, writer: EventWriter, stop: StopFlag) -> int:
    """Delegate to the Hugging Face Jobs backend: this recipe on a rented GPU, its events copied back here."""
    from ftassist.train.hf_jobs import run_job

    return _delegate("the Hugging Face Jobs backend", lambda: run_job(spec, run_dir, writer, stop), run_dir, writer)


def _delegate(name: str, call, run_dir: Path, writer: EventWriter) -> int:
    """Run a remote backend's `run_job` (it returns a summary dict; the events file, and so the exit code,
    says how the run ended); whatever happens, the run ends with exactly one terminal event."""
    try:
        call()
    except BaseException as e:  # noqa: BLE001
        traceback.print_exc()
        if writer.terminal is None:
            writer.failed(reason=_one_line(e), hint=hint_for(e),
                          log_tail=tail_text(run_dir / LOG_FILE) or traceback.format_exc()[-4000:])
        return 1
    if writer.terminal is None:  # the backend returned without saying how it ended
        writer.failed(reason=f"{name} stopped without a result", hint="See worker.log.",
                      log_tail=tail_text(run_dir / LOG_FILE))
        return 1
    return 1 if writer.terminal == "failed" else 0


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    msg = text[0] if text else ""
    if isinstance(e, SetupError):
        return msg[:500]
    return f"{type(e).__name__}: {msg}"[:500] if msg else type(e).__name__


def hint_for(e: BaseException) -> str:
    """What the person can do about `e` (shown next to the reason)."""
    if isinstance(e, SetupError):
        return e.hint
    text = f"{type(e).__name__} {e}".lower()
    if "out of memory" in text or "outofmemory" in text or isinstance(e, MemoryError):
        return OOM_HINT
    if "bitsandbytes" in text:
        return QLORA_HINT
    if any(s in text for s in ("is not a valid model identifier", "repository not found", "does not appear to have",
                               "we couldn't connect", "offline mode", "can't load", "gated repo", "401 client")):
        return MODEL_HINT
    if "no usable" in text or "jsondecodeerror" in text or "messages" in text:
        return "Check the training data in the Data step (each line: {\"messages\": [...]} with an assistant turn)."
    if "nan" in text and "loss" in text:
        return "The loss diverged: lower the learning rate."
    return "See the log tail below; worker.log in the run folder has the full log."


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
_ROLES = ("system", "user", "assistant", "tool")


class Chat(list):
    """A conversation: its messages (a list, as chat templates take them) and the tools it offers."""

    tools: list[dict] | None = None


def load_chat_jsonl(path: str | Path) -> tuple[list[Chat], int]:
    """Conversations from a chat JSONL (`{"messages": [{role, content}...]}` per line) and how many lines were skipped.

    Kept: role and content; an assistant turn's `tool_calls` and a tool turn's `tool_call_id`;
    the line's `tools`; and `"weight": 0` on the assistant turns OpenAI's format marks as not
    to be learned. Other keys (`name`, `function_call`) would make templates disagree. A
    conversation must contain an assistant turn with weight 1 (an answer or a tool call) to
    teach anything.
    """
    convs: list[Chat] = []
    skipped = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                msgs = Chat()
                for m in obj["messages"]:
                    if not isinstance(m, dict) or m.get("role") not in _ROLES:
                        continue
                    msg = {"role": m["role"], "content": m.get("content") or ""}
                    if m["role"] == "assistant":
                        if isinstance(m.get("tool_calls"), list) and m["tool_calls"]:
                            msg["tool_calls"] = m["tool_calls"]
                        if m.get("weight", 1) == 0:
                            msg["weight"] = 0
                    elif m["role"] == "tool" and isinstance(m.get("tool_call_id"), str):
                        msg["tool_call_id"] = m["tool_call_id"]
                    msgs.append(msg)
                if isinstance(obj.get("tools"), list) and obj["tools"]:
                    msgs.tools = obj["tools"]
            except (ValueError, KeyError, TypeError, AttributeError):
                skipped += 1
                continue
            if any(_trained(m) and (m["content"] or m.get("tool_calls")) for m in msgs):
                convs.append(msgs)
            else:
                skipped += 1
    return convs, skipped


def _trained(m: dict[str, Any]) -> bool:
    return m["role"] == "assistant" and m.get("weight", 1) != 0


def _untrained(m: dict[str, Any]) -> bool:
    """An assistant turn marked `"weight": 0`: context, not a lesson."""
    return m["role"] == "assistant" and m.get("weight", 1) == 0


def plain(conv: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as a template reads them: everything but the training-only `weight`."""
    return [{k: v for k, v in m.items() if k != "weight"} for m in conv]


def has_untrained_turns(conv: list[dict[str, Any]]) -> bool:
    return any(map(_untrained, conv))


def uses_tools(conv: list[dict[str, Any]]) -> bool:
    return bool(getattr(conv, "tools", None)) or any(m["role"] == "tool" or "tool_calls" in m for m in conv)


def renders_tools(chat_template: str | None) -> bool:
    """Whether a chat template writes out tool calls (else it would silently drop them)."""
    return bool(chat_template) and "tool_calls" in chat_template


def to_prompt_completion(conv: list[dict[str, Any]]) -> dict[str, Any]:
    """Split at the last assistant turn to learn: TRL then trains on that turn only (completion-only loss).

    Turns after it (weight 0) teach nothing and are dropped.
    """
    last = max(i for i, m in enumerate(conv) if _trained(m))
    conv = plain(conv)
    return {"prompt": conv[:last], "completion": [conv[last]]}


def tokenize_weighted(tokenizer, conv: list[dict[str, Any]], chat_template: str) -> tuple[dict[str, list[int]], bool]:
    """Token ids and the assistant mask of `conv`, with its weight-0 assistant turns masked out.

    Rendered exactly as TRL renders a conversation for assistant-only loss; each run of masked
    tokens is one `{% generation %}` block, i.e. one assistant turn, in order. When the runs do
    not match the turns one to one (a template that merges turns), every assistant turn stays
    trained rather than guess, and the flag (False) says so.
    """
    out = tokenizer.apply_chat_template(plain(conv), chat_template=chat_template, tools=getattr(conv, "tools", None),
                                        tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    if not has_untrained_turns(conv):  # rendered here for its tools: nothing to mask out
        return {"input_ids": ids, "assistant_masks": mask}, True
    runs: list[tuple[int, int]] = []
    for i, bit in enumerate(mask):
        if bit and (i == 0 or not mask[i - 1]):
            runs.append((i, i + 1))
        elif bit:
            runs[-1] = (runs[-1][0], i + 1)
    turns = [m for m in conv if m["role"] == "assistant"]
    if len(runs) != len(turns):
        return {"input_ids": ids, "assistant_masks": mask}, False
    for (start, end), m in zip(runs, turns):
        if _untrained(m):
            mask[start:end] = [0] * (end - start)
    return {"input_ids": ids, "assistant_masks": mask}, True


def token_lengths(tokenizer, convs: list[list[dict[str, str]]], limit: int = 2000) -> list[int]:
    out = []
    for conv in convs[:limit]:
        ids = tokenizer.apply_chat_template(plain(conv), tools=getattr(conv, "tools", None), tokenize=True,
                                            return_dict=True)["input_ids"]
        out.append(len(ids))
    return out


def percentile(values: list[int], q: float) -> int:
    if not values:
        return 0
    s = sorted(values)
    return s[min(len(s) - 1, int(math.ceil(q / 100 * len(s))) - 1)]


# --------------------------------------------------------------------------------------------
# Tokenizer and chat template
# --------------------------------------------------------------------------------------------
def prepare_tokenizer(tokenizer) -> str:
    """Make sure the tokenizer can render chats for assistant-only loss; returns the loss mode.

    "assistant_only": the template has (or TRL can add) `{% generation %}` markers; a model with
    no template gets ChatML (or a plain-text template when it lacks the ChatML tokens: adding
    tokens would mean resizing embeddings and training them). "last_turn": a template TRL cannot
    patch, so train on the last assistant turn as a prompt/completion pair.
    """
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    from ftassist.train.tiny import CHATML_TRAINING_TEMPLATE, IM_END, IM_START, PLAIN_TRAINING_TEMPLATE

    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        vocab = tokenizer.get_vocab()
        chatml = IM_START in vocab and IM_END in vocab
        tokenizer.chat_template = CHATML_TRAINING_TEMPLATE if chatml else PLAIN_TRAINING_TEMPLATE
    if has_generation_markers(tokenizer.chat_template):
        return "assistant_only"
    try:
        get_training_chat_template(tokenizer)  # TRL swaps it in itself when it knows this template
        return "assistant_only"
    except ValueError:
        return "last_turn"


# --------------------------------------------------------------------------------------------
# The trainer callback: events, ETA, tokens/s, graceful stop
# --------------------------------------------------------------------------------------------
# What a DPO run logs beyond its loss, and what DPO users watch: the implicit rewards (beta x the policy's
# log-probability ratio to the reference) of the chosen and rejected answers, their margin, and how often the
# chosen one wins (preference accuracy). Evaluation logs the same with the `eval_` prefix.
PREFERENCE_METRICS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


def preference_fields(logs: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The preference metrics present in a trainer log (`prefix` "eval_" for an evaluation's)."""
    return {prefix + name: float(logs[prefix + name]) for name in PREFERENCE_METRICS
            if isinstance(logs.get(prefix + name), (int, float))}


def make_events_callback(writer: EventWriter, stop: StopFlag, started_fields: dict[str, Any]):
    from transformers import TrainerCallback

    dpo = started_fields.get("objective") == "dpo"

    class EventsCallback(TrainerCallback):
        """Turns trainer logs into events; turns a stop request into should_training_stop."""

        def __init__(self) -> None:
            self.t0 = time.time()
            self.last_t = self.t0
            self.last_tokens = 0.0
            self.first_loss: float | None = None
            self.last_loss: float | None = None
            self.best_eval: float | None = None
            self.tokens_per_s: list[float] = []
            self.start_step = 0
            self.preference: dict[str, float] = {}  # DPO: the last logged rewards, train and eval

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = self.last_t = time.time()
            self.start_step = state.global_step  # past 0 when resumed: the checkpoint's step was restored
            resumed = {"resumed_from_step": state.global_step} if started_fields.get("resumed_from_checkpoint") else {}
            writer.started(pid=os.getpid(), total_steps=state.max_steps, **started_fields, **resumed)

        def _stop_requested(self) -> bool:
            flag = stop.requested
            if _world_size() > 1:  # every rank must stop at the same step or DDP hangs
                import torch
                import torch.distributed as dist

                if dist.is_available() and dist.is_initialized():
                    dev = "cuda" if torch.cuda.is_available() else "cpu"
                    t = torch.tensor([1.0 if flag else 0.0], device=dev)
                    dist.all_reduce(t, op=dist.ReduceOp.MAX)
                    flag = bool(t.item() > 0)
                    stop.requested = stop.requested or flag
            return flag

        def on_step_end(self, args, state, control, **kw):
            if self._stop_requested():
                # A checkpoint of this very step (optimizer, scheduler and step included): `resume_run` goes on
                # from it, so a cancel loses no training.
                control.should_training_stop = True
                control.should_evaluate = False
                control.should_save = True
            return control

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            if "loss" not in logs:
                return
            now = time.time()
            tokens = float(logs.get("num_tokens") or 0.0)
            tps = (tokens - self.last_tokens) / (now - self.last_t) if tokens and now > self.last_t else None
            self.last_t, self.last_tokens = now, tokens or self.last_tokens
            if tps:
                self.tokens_per_s.append(tps)
            step = state.global_step
            elapsed = now - self.t0
            done = step - self.start_step  # this process's steps: a resumed run's earlier ones took no time here
            eta = elapsed / done * (state.max_steps - step) if done > 0 and state.max_steps else None
            loss = float(logs["loss"])
            if self.first_loss is None and math.isfinite(loss):
                self.first_loss = loss
            self.last_loss = loss if math.isfinite(loss) else self.last_loss
            rewards = preference_fields(logs)
            self.preference.update(rewards)
            writer.log(step=step, total_steps=state.max_steps, epoch=logs.get("epoch", state.epoch), loss=loss,
                       learning_rate=logs.get("learning_rate"), tokens_per_s=tps, eta_s=eta,
                       grad_norm=logs.get("grad_norm"), num_tokens=tokens or None,
                       mean_token_accuracy=logs.get("mean_token_accuracy"), **rewards)

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            loss = (metrics or {}).get("eval_loss")
            if loss is None:
                return
            loss = float(loss)
            if math.isfinite(loss) and (self.best_eval is None or loss < self.best_eval):
                self.best_eval = loss
            if dpo:  # a preference loss is no language-model loss: no perplexity
                rewards = preference_fields(metrics or {}, "eval_")
                self.preference.update(rewards)
                writer.write("eval", step=state.global_step, eval_loss=loss, perplexity=None, **rewards)
                return
            writer.eval(step=state.global_step, eval_loss=loss, perplexity=perplexity_of(loss),
                        mean_token_accuracy=(metrics or {}).get("eval_mean_token_accuracy"))

        def on_save(self, args, state, control, **kw):
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            writer.checkpoint(step=state.global_step, path=str(path))

    return EventsCallback()


# --------------------------------------------------------------------------------------------
# The recipe
# --------------------------------------------------------------------------------------------
def describe_device() -> str:
    import torch

    if torch.cuda.is_available():
        i = torch.cuda.current_device()
        return f"cuda:{i} ({torch.cuda.get_device_name(i)})"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_auto(spec: JobSpec, *, cuda: bool, bf16_ok: bool, n_params: int, seq_len: int,
                 varlen_attention: bool = False) -> dict[str, Any]:
    """Turn the spec's None ("auto") switches into decisions, with the reasoning in one place."""
    bf16 = (cuda and bf16_ok) if spec.bf16 is None else spec.bf16
    if spec.gradient_checkpointing is None:
        # Recomputing activations costs ~30% speed; pay it only where memory is the constraint:
        # 4-bit runs (chosen because memory is short), big models, or long batches on a GPU.
        big = n_params > 3e9 or seq_len * spec.per_device_batch_size > 32_768
        gc = cuda and (spec.method == "qlora" or big)
    else:
        gc = spec.gradient_checkpointing
    # Packing (best-fit decreasing, padding-free) flattens a batch into one row: with FlashAttention's
    # variable-length kernels each example attends only to itself, so no FLOP is wasted. Without
    # them (CPU, SDPA) attention runs densely over the whole row under a block mask, many times
    # the work of the examples themselves; there, batches of similar lengths (dynamic padding)
    # remove most padding instead.
    packing = varlen_attention if spec.packing is None else spec.packing
    return {"bf16": bool(bf16), "gradient_checkpointing": bool(gc), "packing": bool(packing),
            "batching": "packed" if packing else "length-grouped"}


@dataclass
class Prepared:
    """Everything `build_trainer` set up, for `train_local` (and the benchmark) to run."""

    trainer: Any
    events: Any  # the EventsCallback
    tokenizer: Any
    base: str  # the base model's folder or Hub id as loaded
    auto: dict[str, Any]
    started_fields: dict[str, Any]
    early: bool


def resolve_base(spec: JobSpec, run_dir: Path, writer: EventWriter, texts) -> tuple[str, Any]:
    """The folder or Hub id the run's model loads from, and its start model (`lineage.StartModel`) if any.

    A whole-model start is the base itself. An adapter start goes on the base it was trained on: the spec's
    base model, or for tiny-random (built per run from its own texts) that run's very model, copied into this
    run folder so the run stands alone and the Arena finds its base where it finds every tiny run's.
    Otherwise tiny-random is built here from `texts()` (the training texts).
    """
    import shutil

    from ftassist.train.lineage import StartError, inspect_start

    start = None
    if spec.start_from:
        try:
            start = inspect_start(spec.start_from)
        except StartError as exc:
            raise SetupError(str(exc), "Give the output folder of a finished local run, or its id, as start_from.") from None
    base = spec.base_model
    base_dir = run_dir / "base_model"
    if start is not None and start.kind == "model":
        base = start.folder
    elif base == TINY_RANDOM and start is not None:
        source = Path(start.adapter_base or "")
        if not (base_dir / "config.json").is_file() and not (source / "config.json").is_file():
            raise SetupError(f"the adapter in {start.folder} was trained on a tiny-random model that is gone "
                             f"({start.adapter_base})", "Start from a run whose folder is still complete.")
        if _rank() == 0 and not (base_dir / "config.json").is_file():
            shutil.copytree(source, base_dir, dirs_exist_ok=True)
        _barrier()
        base = str(base_dir)
    elif base == TINY_RANDOM:
        if not (base_dir / "config.json").is_file():
            from ftassist.train.tiny import build_tiny_model

            if _rank() == 0:
                writer.message("building the tiny-random model from the training texts")
                build_tiny_model(base_dir, texts(), seed=spec.seed)
            _barrier()
        base = str(base_dir)
    check_base_model(base)
    if start is not None:
        writer.message(f"starting from {start.folder} ("
                       + ("its LoRA adapter, trained further" if start.kind == "adapter" else "a whole model") + ")")
    return base, start


def tokenizer_source(base: str, start) -> str:
    """Where the tokenizer comes from: the start model's folder when it saved one (with the chat template its
    run trained with), else the base."""
    if start is not None and (Path(start.folder) / "tokenizer_config.json").is_file():
        return start.folder
    return base


def load_model(spec: JobSpec, base: str, start, *, cuda: bool, bf16_ok: bool):
    """The model to train and whether FlashAttention's variable-length kernels are on.

    QLoRA: 4-bit NF4 weights; LoRA: frozen weights in bf16 where supported; full: fp32 master weights.
    An adapter start's adapter is put on, trainable (the run trains it further; see `ftassist.train.lineage`).
    """
    import torch
    from transformers import AutoModelForCausalLM

    want_bf16 = (cuda and bf16_ok) if spec.bf16 is None else spec.bf16
    model_kwargs: dict[str, Any] = {}
    if spec.method == "qlora":
        from transformers import BitsAndBytesConfig

        model_kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if bf16_ok else torch.float16,
        )
        model_kwargs["dtype"] = torch.bfloat16 if bf16_ok else torch.float16
        if os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true"):
            # FSDP shards parameters of one dtype: store the 4-bit weights in the compute dtype.
            model_kwargs["quantization_config"].bnb_4bit_quant_storage = model_kwargs["dtype"]
        else:
            model_kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    elif spec.method == "lora":
        # Frozen base weights can live in bf16 (half the memory); adapters stay fp32 (PEFT autocasts).
        model_kwargs["dtype"] = torch.bfloat16 if want_bf16 else torch.float32
    else:
        model_kwargs["dtype"] = torch.float32  # full: fp32 master weights, bf16 autocast in the trainer
    varlen = bool(cuda and _has_flash_attn() and want_bf16)
    if varlen:
        model_kwargs["attn_implementation"] = "flash_attention_2"
    model = AutoModelForCausalLM.from_pretrained(base, **model_kwargs)
    if start is not None and start.kind == "adapter":
        from peft import PeftModel

        if spec.method == "full":  # every weight learns: the adapter becomes part of them
            model = PeftModel.from_pretrained(model, start.folder).merge_and_unload()
        else:
            model = PeftModel.from_pretrained(model, start.folder, is_trainable=True)
    return model, varlen


def lora_config(spec: JobSpec, start):
    """The new LoRA adapter to train (None for full fine-tuning, or when an adapter start is trained further)."""
    if not spec.uses_adapter or (start is not None and start.kind == "adapter"):
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=spec.lora_r,
        lora_alpha=spec.lora_alpha,
        lora_dropout=spec.lora_dropout,
        target_modules=spec.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )


def trainer_arguments(spec: JobSpec, run_dir: Path, *, cuda: bool, auto: dict[str, Any], lr: float,
                      has_eval: bool, early: bool) -> dict[str, Any]:
    """The TrainingArguments both recipes (SFT and DPO) share: schedule, batch, precision, evaluation ~10 times
    a run with early stopping on validation loss, checkpoints that can be resumed, no reporting."""
    # Ratios (< 1) are fractions of the total steps in transformers: ~10 evals, ~50 log points.
    eval_steps = spec.eval_steps or 0.1
    save_steps = spec.save_steps or eval_steps
    if early and float(save_steps) % float(eval_steps):
        save_steps = eval_steps  # load_best_model_at_end needs saves aligned with evals
    return dict(
        output_dir=str(run_dir / "checkpoints"),
        num_train_epochs=float(spec.num_epochs),
        max_steps=spec.max_steps or -1,
        learning_rate=lr,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,
        weight_decay=0.0,
        optim="adamw_torch_fused" if cuda else "adamw_torch",
        per_device_train_batch_size=spec.per_device_batch_size,
        per_device_eval_batch_size=spec.per_device_batch_size,
        gradient_accumulation_steps=spec.gradient_accumulation_steps,
        activation_checkpointing=auto["gradient_checkpointing"],  # transformers 5 name of gradient_checkpointing
        activation_checkpointing_kwargs={"use_reentrant": False} if auto["gradient_checkpointing"] else None,
        bf16=auto["bf16"],
        fp16=False,
        logging_steps=spec.logging_steps or 0.02,
        logging_first_step=True,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=2,
        save_only_model=False,  # with the optimizer, scheduler and RNG states, so a stopped run can resume
        load_best_model_at_end=early,
        metric_for_best_model="eval_loss" if early else None,
        greater_is_better=False if early else None,
        seed=spec.seed,
        data_seed=spec.seed,
        report_to=reporting.report_to(spec.report_to)[0],
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=cuda,
        push_to_hub=False,
    )


def build_trainer(spec: JobSpec, run_dir: Path, writer: EventWriter, stop: StopFlag) -> Prepared:
    """Steps 1-5 of the recipe: data, base model, tokenizer/template, model (+LoRA/4-bit), SFTTrainer
    (DPOTrainer on preference pairs for objective "dpo": `ftassist.train.dpo`)."""
    if spec.objective == "dpo":
        from ftassist.train.dpo import build_dpo_trainer

        return build_dpo_trainer(spec, run_dir, writer, stop)
    import torch
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from datasets import Dataset

    cuda = torch.cuda.is_available()

    # 1. Data
    train_convs, skipped = load_chat_jsonl(spec.train_file)
    valid_convs, _ = load_chat_jsonl(spec.valid_file) if spec.valid_file else ([], 0)
    if not train_convs:
        raise ValueError(f"no usable examples in {spec.train_file} (each line needs messages with an assistant turn)")
    if skipped:
        writer.message(f"skipped {skipped} training lines without a usable conversation", level="warning")

    # 2. Base model folder (tiny-random is built here, from the training texts; a start_from run's own base)
    base, start = resolve_base(spec, run_dir, writer,
                               lambda: [m["content"] for c in train_convs + valid_convs for m in c])
    stop.check()

    # 3. Tokenizer, template, sequence length
    writer.message(f"loading tokenizer and model {spec.base_model}")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(base, start))
    template_mode = prepare_tokenizer(tokenizer)
    training_template = None
    if template_mode == "assistant_only":
        from trl.chat_template_utils import get_training_chat_template, has_generation_markers

        training_template = (tokenizer.chat_template if has_generation_markers(tokenizer.chat_template)
                             else get_training_chat_template(tokenizer))
    if not renders_tools(training_template):
        # A template that cannot write tool calls out would teach empty answers where the calls were.
        kept = [c for c in train_convs if not uses_tools(c)]
        dropped = len(train_convs) - len(kept)
        valid_convs = [c for c in valid_convs if not uses_tools(c)]
        if dropped:
            if not kept:
                raise SetupError("every training conversation uses tools, and this model's chat template "
                                 "cannot write tool calls",
                                 "Pick a base model whose chat template supports tools (Qwen2.5, Llama 3.1 and "
                                 "later), or leave tools out of the data.")
            writer.message(f"left out {dropped} training conversations that use tools: this model's chat "
                           "template cannot write tool calls", level="warning")
        train_convs = kept
    lengths = token_lengths(tokenizer, train_convs)
    p95, longest = percentile(lengths, 95), max(lengths)
    stop.check()

    # 4. Model
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(base)
    context = getattr(config, "max_position_embeddings", None)
    if spec.max_seq_length:
        max_len = min(spec.max_seq_length, context) if context else spec.max_seq_length
    else:
        from ftassist.train.spec import preset_max_seq_length

        # Fit the longest example unless it is an outlier (over 1.5x the p95): then the p95.
        max_len = preset_max_seq_length(longest if longest <= 1.5 * p95 else p95, context)
    too_long = sum(1 for n in lengths if n > max_len)
    if too_long:
        writer.message(f"{too_long} training examples are longer than max_seq_length={max_len} tokens and will be "
                       "truncated; set max_seq_length to keep them whole", level="warning")
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    model, varlen = load_model(spec, base, start, cuda=cuda, bf16_ok=bf16_ok)
    n_params = sum(p.numel() for p in model.parameters())
    stop.check()

    auto = resolve_auto(spec, cuda=cuda, bf16_ok=bf16_ok, n_params=n_params, seq_len=max_len,
                        varlen_attention=varlen)
    lr = spec.resolved_learning_rate
    peft_config = lora_config(spec, start)

    # 5. Datasets in the shape TRL expects (conversational)
    pretokenized = False
    untrained_turns = sum(_untrained(m) for c in train_convs for m in c)
    if template_mode == "assistant_only" and any(has_untrained_turns(c) or uses_tools(c)
                                                 for c in train_convs + valid_convs):
        # Weight-0 turns (TRL would mask every assistant turn) and tools (per-conversation lists
        # Arrow would flatten into one schema): render and mask here, the way TRL would.
        train_rows, eval_rows, unmatched = [], [], 0
        for convs, rows in ((train_convs, train_rows), (valid_convs, eval_rows)):
            for c in convs:
                row, matched = tokenize_weighted(tokenizer, c, training_template)
                unmatched += not matched
                if 1 in row["assistant_masks"]:
                    rows.append(row)
        if unmatched:
            writer.message(f"{unmatched} conversations: the chat template does not mark each assistant turn apart, "
                           "so their weight-0 turns are trained on too", level="warning")
        if untrained_turns:
            writer.message(f"{untrained_turns} assistant turns have weight 0: kept as context, not learned")
        train_ds = Dataset.from_list(train_rows)
        eval_ds = Dataset.from_list(eval_rows) if eval_rows else None
        pretokenized = True
    elif template_mode == "assistant_only":
        train_ds = Dataset.from_list([{"messages": plain(c)} for c in train_convs])
        eval_ds = Dataset.from_list([{"messages": plain(c)} for c in valid_convs]) if valid_convs else None
    else:
        writer.message("the base model's chat template has no assistant markers TRL can add: training on the "
                       "last assistant turn of each conversation", level="warning")
        train_ds = Dataset.from_list([to_prompt_completion(c) for c in train_convs])
        eval_ds = Dataset.from_list([to_prompt_completion(c) for c in valid_convs]) if valid_convs else None

    has_eval = eval_ds is not None and len(eval_ds) > 0
    early = bool(has_eval and spec.early_stopping_patience)
    args = SFTConfig(
        **trainer_arguments(spec, run_dir, cuda=cuda, auto=auto, lr=lr, has_eval=has_eval, early=early),
        max_length=max_len,
        packing=auto["packing"],
        packing_strategy="bfd",
        train_sampling_strategy="random" if auto["packing"] else "group_by_length",
        # Pre-tokenized rows carry their own assistant_masks, which TRL turns into labels as they are.
        assistant_only_loss=template_mode == "assistant_only" and not pretokenized,
        completion_only_loss=None if template_mode == "assistant_only" else True,
        dataset_num_proc=None,
    )
    started_fields = dict(
        num_examples=len(train_convs),
        method=spec.method,
        base_model=spec.base_model,
        device=describe_device(),
        backend="local",
        num_valid_examples=len(valid_convs),
        max_seq_length=max_len,
        token_p95=p95,
        token_max=longest,
        learning_rate=lr,
        loss_on="assistant" if template_mode == "assistant_only" else "last_assistant_turn",
        untrained_turns=untrained_turns,
        world_size=_world_size(),
        total_params=n_params,
        objective="sft",
        **auto,
    )
    return assemble_trainer(SFTTrainer, spec, writer, stop, started_fields=started_fields, start=start, early=early,
                            tokenizer=tokenizer, base=base, auto=auto, model=model, args=args,
                            train_dataset=train_ds, eval_dataset=eval_ds, peft_config=peft_config)


def assemble_trainer(trainer_class, spec: JobSpec, writer: EventWriter, stop: StopFlag, *,
                     started_fields: dict[str, Any], start, early: bool, tokenizer, base: str,
                     auto: dict[str, Any], **trainer_kwargs: Any) -> Prepared:
    """The last step both recipes (SFT and DPO) share: early stopping and the events callback, the started
    event's record of where the run starts from, the trainer itself, and its trainable parameters."""
    from transformers import EarlyStoppingCallback

    callbacks: list[Any] = []
    if early:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=spec.early_stopping_patience))
    if start is not None:
        started_fields.update(start_from=start.folder)
    if spec.resume_from_checkpoint:
        started_fields.update(resumed_from_checkpoint=spec.resume_from_checkpoint, resumed_from=spec.resumed_from)
    events = make_events_callback(writer, stop, started_fields)
    callbacks.append(events)
    stop.check()

    trainer = trainer_class(processing_class=tokenizer, callbacks=callbacks, **trainer_kwargs)
    if spec.uses_adapter:
        started_fields["trainable_params"] = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    stop.check()
    return Prepared(trainer, events, tokenizer, base, auto, started_fields, early)


def train_local(spec: JobSpec, run_dir: Path, writer: EventWriter, stop: StopFlag) -> None:
    """Train per `spec`, writing events; raises Cancelled/exceptions for main() to report."""
    output_dir = Path(spec.output_dir).resolve()
    is_main = _rank() == 0
    missing = reporting.report_to(spec.report_to)[1]
    if missing and is_main:
        writer.message(f"report_to {', '.join(missing)}: not installed here, so this run reports only to its events "
                       f"file (pip install {' '.join(reporting.INTEGRATIONS[n] for n in missing)}).", level="warning")
    prep = build_trainer(spec, run_dir, writer, stop)
    trainer, events, tokenizer, base, auto, started_fields, early = (
        prep.trainer, prep.events, prep.tokenizer, prep.base, prep.auto, prep.started_fields, prep.early)

    # 6. Train
    result = trainer.train(resume_from_checkpoint=spec.resume_from_checkpoint or None)
    step = trainer.state.global_step

    # 7. Save (also when cancelled: "saves what it has")
    output_dir.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(output_dir))
    if is_main:
        tokenizer.save_pretrained(str(output_dir))
        # DPO from an adapter keeps its reference as a second adapter, "ref": the result is the trained one alone.
        reference_copy = output_dir / "ref"
        if spec.objective == "dpo" and (reference_copy / "adapter_config.json").is_file():
            import shutil

            shutil.rmtree(reference_copy)
        if spec.start_from:
            point_adapter_at(output_dir, base)
    if stop.requested:
        writer.cancelled(step=step, output_dir=str(output_dir))
        return

    best_eval = trainer.state.best_metric if early else events.best_eval
    metrics: dict[str, Any] = dict(result.metrics)
    metrics.update(
        first_loss=events.first_loss,
        final_loss=events.last_loss,
        best_eval_loss=best_eval,
        best_eval_perplexity=perplexity_of(best_eval) if spec.objective == "sft" else None,
        best_checkpoint=trainer.state.best_model_checkpoint,
        steps=step,
        total_steps=trainer.state.max_steps,
        stopped_early=bool(early and step < trainer.state.max_steps),
        tokens_per_s=(events.last_tokens / result.metrics["train_runtime"])
        if events.last_tokens and result.metrics.get("train_runtime") else None,
        num_tokens=events.last_tokens or None,
        base_model=spec.base_model,
        base_model_path=base,
        method=spec.method,
        **{k: v for k, v in started_fields.items() if k not in ("device", "num_examples", "method", "base_model")},
        **events.preference,
    )
    extra: dict[str, Any] = dict(events.preference)  # DPO: the last reward margin and preference accuracy
    if is_main:
        (output_dir / "metrics.json").write_text(json.dumps(jsonable(metrics), indent=2) + "\n", encoding="utf-8")
        if spec.merge_adapter and spec.uses_adapter:
            writer.message("merging the adapter into the base model")
            extra["merged_dir"] = str(merge_adapter(base, output_dir, run_dir / "merged", bf16=auto["bf16"]))
        if spec.push_to_hub:
            url = push_to_hub(spec, Path(extra.get("merged_dir") or output_dir), writer)
            if url:
                extra["hub_url"] = url
    writer.finished(output_dir=str(output_dir), final_loss=events.last_loss, first_loss=events.first_loss,
                    best_eval_loss=best_eval, metrics=jsonable(metrics), step=step, **extra)


def point_adapter_at(adapter_dir: Path, base: str) -> None:
    """Record `base` as the base of the adapter in `adapter_dir`: an adapter trained further from another run's
    keeps that run's record, while its base is the one this run loaded (for tiny-random, its own copy)."""
    config_path = adapter_dir / "adapter_config.json"
    if not config_path.is_file():
        return
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("base_model_name_or_path") != base:
        config["base_model_name_or_path"] = base
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _barrier() -> None:
    if _world_size() > 1:
        try:
            from accelerate import PartialState

            PartialState().wait_for_everyone()
        except Exception:  # noqa: BLE001 - best effort: ranks will still find the folder
            pass


def _has_flash_attn() -> bool:
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None


def merge_adapter(base: str, adapter_dir: Path, merged_dir: Path, bf16: bool = False) -> Path:
    """Reload the base in full precision (never merge into 4-bit weights), apply the adapter, merge, save."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.bfloat16 if bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(merged_dir))
    tokenizer.save_pretrained(str(merged_dir))
    return merged_dir


def push_to_hub(spec: JobSpec, folder: Path, writer: EventWriter) -> str | None:
    """Upload `folder` to spec.hub_model_id when HF_TOKEN is set; a failure is a warning, not a failed run."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if not token:
        writer.message("push_to_hub skipped: set HF_TOKEN to a write token to upload the model", level="warning")
        return None
    try:
        from ftassist.train.export import push_folder

        url = push_folder(folder, spec.hub_model_id, private=True, token=token)
        writer.message(f"pushed to {url}")
        return url
    except Exception as e:  # noqa: BLE001 - never include the token in the message
        writer.message(f"push_to_hub failed: {_one_line(e)}", level="warning")
        return None


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy's: the recipes (train/dpo.py) raise the imported
    # module's SetupError, which only its own `hint_for` recognises (else their fix is lost).
    from ftassist.train.worker import main as imported_main

    sys.exit(imported_main())
