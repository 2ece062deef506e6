"""Training throughput: the project's local recipe vs a plain `SFTTrainer` with default settings.

Both train the same model with the same LoRA config on the same chat data for one epoch, in
one process; the figure is tokens per second, counting real (non-padding) tokens only (TRL's
own `num_tokens` count). The recipe is `ftassist.train.worker.build_trainer`, i.e. exactly
what the app runs: packing (best-fit decreasing, padding-free), assistant-only loss, gradient
checkpointing only where memory is tight, bf16 where supported. The baseline is
`SFTTrainer(model, SFTConfig(...defaults...), peft_config=...)`: no packing (each batch padded to
its longest example), TRL's default gradient checkpointing. Both use the same precision. A third
row (plain, checkpointing off) separates the effect of packing from that of checkpointing.

    python bench/bench_train.py                      # CPU, tiny-random (a few hundred thousand params)
    python bench/bench_train.py --model-size 0.5b    # GPU: Llama-arch ~0.5B random weights, bf16, LoRA, MFU

Goal: recipe / plain >= 1.5x.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# dense bf16 peak FLOP/s by GPU name fragment (vendor datasheets, without sparsity)
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10G": 125e12,
             "A10": 125e12, "RTX 4090": 165e12, "RTX 3090": 71e12, "V100": 125e12, "T4": 65e12}

WORDS = ("the model learns to answer questions about data training loss token batch gradient adapter layer "
         "weight value small large fast slow good better best question answer example chat user assistant "
         "system python paris water sun cat star language number memory speed time").split()


def make_data(path: Path, n: int, median_words: int, max_words: int, seed: int = 0) -> list[str]:
    """Chat JSONL whose answer lengths follow a log-normal law (real data is long-tailed)."""
    rng = random.Random(seed)
    texts, lines = [], []
    for _ in range(n):
        q = " ".join(rng.choices(WORDS, k=rng.randint(5, 20))) + "?"
        k = int(min(max_words, max(3, rng.lognormvariate(math.log(median_words), 0.8))))
        a = " ".join(rng.choices(WORDS, k=k)) + "."
        texts += [q, a]
        lines.append(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return texts


def build_base(size: str, out: Path, texts: list[str]) -> Path:
    if size == "tiny":
        from ftassist.train.tiny import build_tiny_model

        return build_tiny_model(out, texts)
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftassist.train.tiny import build_tokenizer

    tok = build_tokenizer(texts, vocab_size=32768)
    cfg = LlamaConfig(vocab_size=32768, hidden_size=1024, intermediate_size=5120, num_hidden_layers=24,
                      num_attention_heads=16, num_key_value_heads=8, max_position_embeddings=4096,
                      tie_word_embeddings=False, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _tokens(trainer) -> float:
    n = getattr(trainer, "_total_train_tokens", 0)
    if not n:
        for rec in reversed(trainer.state.log_history):
            if rec.get("num_tokens"):
                return float(rec["num_tokens"])
    return float(n)


def _timed_train(trainer) -> dict:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.train()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    tokens = _tokens(trainer)
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    # tokens per CPU-second: on a shared CPU box, wall time depends on the neighbours' load
    return {"tokens": tokens, "seconds": secs, "tokens_per_s": tokens / secs, "steps": trainer.state.global_step,
            "cpu_seconds": cpu, "tokens_per_cpu_s": tokens / cpu if cpu else None, "peak_gib": peak}


def run_recipe(base: Path, train: Path, work: Path, batch: int, max_steps: int | None) -> dict:
    from ftassist.train.events import EventWriter
    from ftassist.train.spec import JobSpec
    from ftassist.train.worker import StopFlag, build_trainer

    spec = JobSpec(base_model=str(base), train_file=str(train), output_dir=str(work / "recipe"), num_epochs=1,
                   per_device_batch_size=batch, max_steps=max_steps, save_steps=10**9, logging_steps=10,
                   early_stopping_patience=None)
    prep = build_trainer(spec, work / "recipe_run", EventWriter(work / "recipe_run", enabled=False), StopFlag())
    out = _timed_train(prep.trainer)
    out.update({k: prep.started_fields[k] for k in ("max_seq_length", "packing", "gradient_checkpointing", "bf16")})
    out["total_params"] = prep.started_fields["total_params"]
    del prep
    return out


def run_plain(base: Path, train: Path, work: Path, batch: int, max_steps: int | None, bf16: bool,
              checkpointing: bool | None = None) -> dict:
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    kwargs = dict(output_dir=str(work / "plain"), num_train_epochs=1, per_device_train_batch_size=batch,
                  learning_rate=2e-4, report_to="none", save_strategy="no", bf16=bf16, disable_tqdm=True)
    if max_steps:
        kwargs["max_steps"] = max_steps
    if checkpointing is not None:
        kwargs["gradient_checkpointing"] = checkpointing
    args = SFTConfig(**kwargs)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16 if bf16 else torch.float32)
    tok = AutoTokenizer.from_pretrained(base)
    ds = load_dataset("json", data_files=str(train), split="train")
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=lora)
    out = _timed_train(trainer)
    out["gradient_checkpointing"] = bool(args.gradient_checkpointing)
    out["max_seq_length"] = args.max_length
    out["packing"] = False
    del trainer, model
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-size", choices=["tiny", "0.5b"], default="tiny")
    ap.add_argument("--examples", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--max-steps", type=int, default=None, help="cap each run (default: one epoch)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs per configuration; the best counts")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default 1 on CPU: the same for both, and steady on a shared box)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cuda = torch.cuda.is_available()
    if a.threads or not cuda:
        torch.set_num_threads(a.threads or 1)
    if a.model_size == "0.5b" and not cuda:
        print("--model-size 0.5b needs a CUDA GPU", file=sys.stderr)
        return 2
    tiny = a.model_size == "tiny"
    n = a.examples or (512 if tiny else 2000)
    batch = a.batch or (4 if tiny else 8)
    bf16 = cuda and torch.cuda.is_bf16_supported()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train = work / "train.jsonl"
        texts = make_data(train, n, median_words=40 if tiny else 150, max_words=300 if tiny else 1200)
        base = build_base(a.model_size, work / "base", texts)
        # warm-up (lazy imports, allocator, kernels) so that no row pays for being first
        run_plain(base, train, work, batch, 2, bf16, checkpointing=False)
        run_recipe(base, train, work, batch, 2)
        runs = {
            "plain SFTTrainer (defaults)": lambda: run_plain(base, train, work, batch, a.max_steps, bf16),
            "plain, checkpointing off": lambda: run_plain(base, train, work, batch, a.max_steps, bf16, checkpointing=False),
            "ftassist recipe": lambda: run_recipe(base, train, work, batch, a.max_steps),
        }
        rows: dict[str, dict] = {}
        # Interleaved repeats, best of each: other processes on a shared box only ever slow a run down.
        for _ in range(a.repeats):
            for name, fn in runs.items():
                r = fn()
                gc.collect()
                prev = rows.get(name)
                best = r if prev is None or r["tokens_per_s"] > prev["tokens_per_s"] else prev
                # the best wall-clock run and, separately, the best CPU-time figure
                cpu = max((x["tokens_per_cpu_s"] or 0) for x in (r, prev) if x)
                rows[name] = {**best, "tokens_per_cpu_s": cpu}

    recipe, plain = rows["ftassist recipe"], rows["plain SFTTrainer (defaults)"]
    ratio = recipe["tokens_per_s"] / plain["tokens_per_s"]
    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    result = {"device": device, "model_size": a.model_size, "examples": n, "batch": batch, "rows": rows,
              "ratio": ratio, "ratio_vs_plain_no_checkpointing": recipe["tokens_per_s"] / rows["plain, checkpointing off"]["tokens_per_s"]}
    if cuda:
        peak = next((v for k, v in PEAK_BF16.items() if k in device), None)
        n_params = recipe["total_params"]
        # LoRA: forward 2N + backward through activations 2N (no weight gradients for frozen weights)
        flops_per_token = 4 * n_params
        for row in rows.values():
            row["mfu"] = row["tokens_per_s"] * flops_per_token / peak if peak else None
    print(f"device: {device}  model: {a.model_size}  examples: {n}  per-device batch: {batch}  "
          f"best of {a.repeats} interleaved runs  torch threads: {torch.get_num_threads()}")
    print(f"{'run':32} {'tokens/s':>10} {'tok/cpu-s':>10} {'tokens':>9} {'secs':>7} {'steps':>6} {'seq':>5} "
          f"{'pack':>5} {'ckpt':>5}" + ("  mfu    peak GiB" if cuda else ""))
    for name, r in rows.items():
        line = (f"{name:32} {r['tokens_per_s']:10.0f} {r['tokens_per_cpu_s'] or 0:10.0f} {r['tokens']:9.0f} "
                f"{r['seconds']:7.1f} {r['steps']:6d} "
                f"{r['max_seq_length']!s:>5} {r['packing']!s:>5} {r['gradient_checkpointing']!s:>5}")
        if cuda:
            line += f"  {r['mfu'] or 0:.1%}  {r['peak_gib'] or 0:.1f}"
        print(line)
    print(f"ratio recipe / plain SFTTrainer defaults: {ratio:.2f}x (goal >= 1.5x)")
    print(f"ratio recipe / plain with checkpointing off: {result['ratio_vs_plain_no_checkpointing']:.2f}x")
    if not cuda:
        cpu_ratio = recipe["tokens_per_cpu_s"] / plain["tokens_per_cpu_s"]
        result["ratio_per_cpu_second"] = cpu_ratio
        print(f"ratio per CPU-second (insensitive to other load on the box): {cpu_ratio:.2f}x")
    if a.json:
        print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
