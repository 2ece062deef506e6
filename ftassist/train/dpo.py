"""The DPO recipe: the worker's steps 1-5 for objective "dpo", on preference pairs, with TRL's DPOTrainer.

Everything around it is the SFT run's: the same worker process, events file, batch/epochs/schedule,
evaluation and early stopping on validation loss, checkpoints that resume, cancel that saves, and
output folder (`ftassist.train.worker.train_local` trains, saves and reports both).

The reference model, per method, and why:
- LoRA / QLoRA, new adapter: the base with the adapter disabled (TRL's PEFT path): no second copy;
- LoRA / QLoRA from an SFT adapter (`start_from`): that adapter, trained further, and a frozen copy of it
  ("ref") as the reference, i.e. the SFT model (see `ftassist.train.lineage`);
- full: the reference log-probabilities of every pair are computed once, before the first step, by the
  model as it starts (`precompute_ref_log_probs`). A second copy would hold all the weights again on the
  GPU, and run a forward pass each step, for numbers that never change; the precomputed ones cost one
  pass over the data. A resumed run recomputes them from the start model before its checkpoint is
  loaded, so they stay the reference's.

Data: `ftassist.data.preference_pairs.load_pairs`, the Data step's own reader: every format it accepts
becomes canonical conversational pairs, rendered with the model's chat template, and a line left out is
named with the reason and fix the Data step's check gives it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftassist.data.preference_pairs import PairFile, load_pairs
from ftassist.train.events import EventWriter
from ftassist.train.spec import JobSpec
from ftassist.train.stop import StopFlag


def pair_lengths(tokenizer, pairs: list[dict[str, Any]], limit: int = 2000) -> list[int]:
    """Tokens of each pair's longer side (prompt + answer, as the chat template renders it)."""
    out = []
    for pair in pairs[:limit]:
        longest = 0
        for answer in ("chosen", "rejected"):
            ids = tokenizer.apply_chat_template(pair["prompt"] + pair[answer], tools=pair.get("tools") or None,
                                                tokenize=True, return_dict=True)["input_ids"]
            longest = max(longest, len(ids))
        out.append(longest)
    return out


def pair_texts(pairs: list[dict[str, Any]]) -> list[str]:
    """Every message's text (what a tiny-random tokenizer should learn to encode)."""
    return [m["content"] for p in pairs for key in ("prompt", "chosen", "rejected") for m in p[key]
            if isinstance(m.get("content"), str)]


def uses_tools(pair: dict[str, Any]) -> bool:
    return bool(pair.get("tools")) or any(m.get("role") == "tool" or m.get("tool_calls")
                                          for key in ("prompt", "chosen", "rejected") for m in pair[key])


def dataset_rows(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pairs as DPOTrainer's rows: tools, when any pair has some, as JSON text on every row (TRL reads it so),
    since Arrow would make one schema of every pair's different tool definitions."""
    if not any(pair.get("tools") for pair in pairs):
        return [{key: pair[key] for key in ("prompt", "chosen", "rejected")} for pair in pairs]
    return [{"prompt": pair["prompt"], "chosen": pair["chosen"], "rejected": pair["rejected"],
             "tools": json.dumps(pair["tools"]) if pair.get("tools") else None} for pair in pairs]


def reference_of(spec: JobSpec, start) -> str:
    """The reference model in words (recorded in the `started` event)."""
    if start is not None and start.kind == "adapter" and spec.uses_adapter:
        return "the start adapter, frozen (the SFT model)"
    if spec.uses_adapter:
        return "the base with the adapter off" + (" (the start model)" if start is not None else "")
    return "log-probabilities precomputed from the model as it starts"


def build_dpo_trainer(spec: JobSpec, run_dir: Path, writer: EventWriter, stop: StopFlag):
    """Data, base model, tokenizer/template, model (+LoRA/4-bit), DPOTrainer: a `worker.Prepared`."""
    import torch
    from transformers import AutoConfig, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from datasets import Dataset
    from ftassist.train.spec import preset_max_seq_length
    from ftassist.train.worker import (
        SetupError, _world_size, assemble_trainer, describe_device, load_model, lora_config,
        percentile, prepare_tokenizer, renders_tools, resolve_auto, resolve_base, tokenizer_source,
        trainer_arguments,
    )

    cuda = torch.cuda.is_available()

    # 1. Data
    from ftassist.data.load import LoadError

    try:
        train = load_pairs(spec.train_file)
        valid = load_pairs(spec.valid_file) if spec.valid_file else PairFile()
    except LoadError as exc:
        raise SetupError(str(exc), "Give a file of preference pairs the Data step reads (JSONL, JSON, CSV or "
                                   "Parquet); `ftassist check FILE` says what is wrong with it.") from None
    if not train.pairs:
        raise SetupError(f"no usable preference pairs in {spec.train_file} "
                         f"({train.problem_text() or 'the file is empty'})", train.hint)
    for name, read in (("training", train), ("validation", valid)):
        if read.problems:
            writer.message(f"left out {len(read.problems)} {name} lines that are not preference pairs: "
                           f"{read.problem_text()}", level="warning")

    # 2. Base model folder (tiny-random built from the pairs' texts; a start_from run's own base)
    base, start = resolve_base(spec, run_dir, writer, lambda: pair_texts(train.pairs + valid.pairs))
    stop.check()

    # 3. Tokenizer and chat template (the start model's, when it saved one), sequence length
    writer.message(f"loading tokenizer and model {spec.base_model}")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(base, start))
    prepare_tokenizer(tokenizer)  # a model with no chat template gets the one SFT runs get
    if not renders_tools(tokenizer.chat_template):
        # A template that cannot write tools or tool calls out would prefer answers it cannot see.
        kept = [pair for pair in train.pairs if not uses_tools(pair)]
        dropped = len(train.pairs) - len(kept)
        valid.pairs = [pair for pair in valid.pairs if not uses_tools(pair)]
        if dropped:
            if not kept:
                raise SetupError("every training pair uses tools, and this model's chat template cannot write "
                                 "tool calls", "Pick a base model whose chat template supports tools (Qwen2.5, "
                                 "Llama 3.1 and later), or leave tools out of the pairs.")
            writer.message(f"left out {dropped} training pairs that use tools: this model's chat template cannot "
                           "write tool calls", level="warning")
        train.pairs = kept
    lengths = pair_lengths(tokenizer, train.pairs)
    p95, longest = percentile(lengths, 95), max(lengths)
    context = getattr(AutoConfig.from_pretrained(base), "max_position_embeddings", None)
    if spec.max_seq_length:
        max_len = min(spec.max_seq_length, context) if context else spec.max_seq_length
    else:  # fit the longest pair unless it is an outlier (over 1.5x the p95): then the p95
        max_len = preset_max_seq_length(longest if longest <= 1.5 * p95 else p95, context)
    too_long = sum(1 for n in lengths if n > max_len)
    if too_long:
        writer.message(f"{too_long} training pairs are longer than max_seq_length={max_len} tokens: their answers "
                       "are cut at the end; set max_seq_length to keep them whole", level="warning")
    stop.check()

    # 4. Model
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    model, _ = load_model(spec, base, start, cuda=cuda, bf16_ok=bf16_ok)
    n_params = sum(p.numel() for p in model.parameters())
    stop.check()
    # TRL's DPO batches are padded (its padding-free mode is off in this version): no packing here.
    auto = resolve_auto(spec, cuda=cuda, bf16_ok=bf16_ok, n_params=n_params, seq_len=max_len)
    auto.update(packing=False, batching="padded")
    lr = spec.resolved_learning_rate
    peft_config = lora_config(spec, start)

    # 5. Datasets (conversational preference rows) and the trainer
    train_ds = Dataset.from_list(dataset_rows(train.pairs))
    eval_ds = Dataset.from_list(dataset_rows(valid.pairs)) if valid.pairs else None
    has_eval = eval_ds is not None
    early = bool(has_eval and spec.early_stopping_patience)
    args = DPOConfig(
        **trainer_arguments(spec, run_dir, cuda=cuda, auto=auto, lr=lr, has_eval=has_eval, early=early),
        beta=float(spec.dpo_beta),
        max_length=max_len,
        precompute_ref_log_probs=spec.method == "full",
        train_sampling_strategy="random",
        dataset_num_proc=None,
    )
    started_fields: dict[str, Any] = dict(
        num_examples=len(train.pairs),
        method=spec.method,
        base_model=spec.base_model,
        device=describe_device(),
        backend="local",
        num_valid_examples=len(valid.pairs),
        max_seq_length=max_len,
        token_p95=p95,
        token_max=longest,
        learning_rate=lr,
        loss_on="preference",
        objective="dpo",
        dpo_beta=float(spec.dpo_beta),
        reference=reference_of(spec, start),
        world_size=_world_size(),
        total_params=n_params,
        **auto,
    )
    return assemble_trainer(DPOTrainer, spec, writer, stop, started_fields=started_fields, start=start, early=early,
                            tokenizer=tokenizer, base=base, auto=auto, model=model, args=args,
                            train_dataset=train_ds, eval_dataset=eval_ds, peft_config=peft_config)
