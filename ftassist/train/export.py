"""Scale-out: the exact command that runs a spec, and a portable "run elsewhere" folder.

`launch_command` is what the job manager spawns: the plain worker on one GPU or CPU,
`accelerate launch` (DDP, or FSDP on request) when several GPUs are visible; the worker is the
same in every case. `export_run` packs a run so it can be repeated on another machine: spec,
data, `run.sh` with the launch command, a README, and an equivalent Axolotl YAML for people
who would rather use Axolotl there.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from ftassist.train.spec import TINY_RANDOM, JobSpec

WORKER_MODULE = "ftassist.train.worker"


def launch_command(spec: JobSpec, run_dir: str | Path, num_gpus: int = 1, *, fsdp: bool = False,
                   python: str | None = None) -> list[str]:
    """The argv that trains `spec` in `run_dir` on `num_gpus` GPUs (0 or 1: one process).

    Several GPUs: `accelerate launch --multi_gpu --num_processes N -m ftassist.train.worker RUN_DIR`
    (DDP: each GPU holds the model, the batch is split). `fsdp=True` shards the model instead
    (FSDP2, transformer-layer wrapping), for full fine-tuning of models that do not fit one GPU.
    The OpenAI backend always runs as one process.
    """
    run_dir = str(run_dir)
    py = python or sys.executable
    if num_gpus <= 1 or spec.backend != "local":
        return [py, "-m", WORKER_MODULE, run_dir]
    cmd = ["accelerate", "launch", "--num_processes", str(num_gpus), "--num_machines", "1"]
    if fsdp:
        cmd[2:2] = ["--use_fsdp", "--fsdp_version", "2"]
        cmd += [
            "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP",
            "--fsdp_state_dict_type", "FULL_STATE_DICT",
            "--fsdp_reshard_after_forward", "true",
            "--fsdp_cpu_ram_efficient_loading", "true",
        ]
    else:
        cmd.insert(2, "--multi_gpu")
    return cmd + ["-m", WORKER_MODULE, run_dir]


def write_run_sh(run_dir: str | Path, cmd: list[str], *, cd_here: bool = False) -> Path:
    """Write RUN_DIR/run.sh holding `cmd`, so the run can be repeated by hand.

    `cd_here=True` makes the script run from its own folder (for exported, relocatable runs).
    """
    path = Path(run_dir) / "run.sh"
    lines = ["#!/usr/bin/env bash", "# Repeats this training run (written by ftassist).", "set -euo pipefail"]
    if cd_here:
        lines.append('cd "$(dirname "$0")"')
    lines.append(shlex.join(cmd))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def axolotl_config(spec: JobSpec, *, train_path: str | None = None, valid_path: str | None = None,
                   output_dir: str | None = None) -> dict[str, Any]:
    """An Axolotl config equivalent to `spec` (same model, adapter, data, schedule)."""
    base = spec.base_model
    cfg: dict[str, Any] = {
        "base_model": base if base != TINY_RANDOM else "base_model",
        "tokenizer_type": "AutoTokenizer",
        "trust_remote_code": False,
        "load_in_8bit": False,
        "load_in_4bit": spec.method == "qlora",
        "strict": False,
        "chat_template": "tokenizer_default",
        "datasets": [_axolotl_dataset(train_path or spec.train_file)],
    }
    if spec.uses_adapter:
        cfg["adapter"] = spec.method  # "lora" or "qlora"
        cfg["lora_r"] = spec.lora_r
        cfg["lora_alpha"] = spec.lora_alpha
        cfg["lora_dropout"] = spec.lora_dropout
        if spec.target_modules == "all-linear":
            cfg["lora_target_linear"] = True
        else:
            cfg["lora_target_modules"] = list(spec.target_modules)
    valid = valid_path or spec.valid_file
    if valid:
        cfg["val_set_size"] = 0.0
        cfg["test_datasets"] = [dict(_axolotl_dataset(valid), split="train")]
    else:
        cfg["val_set_size"] = 0.0
    cfg["sequence_len"] = spec.max_seq_length or 2048
    packing = spec.packing is not False
    cfg["sample_packing"] = packing
    cfg["eval_sample_packing"] = packing
    cfg["pad_to_sequence_len"] = packing
    cfg["num_epochs"] = spec.num_epochs
    if spec.max_steps:
        cfg["max_steps"] = spec.max_steps
    cfg["micro_batch_size"] = spec.per_device_batch_size
    cfg["gradient_accumulation_steps"] = spec.gradient_accumulation_steps
    cfg["learning_rate"] = spec.resolved_learning_rate
    cfg["optimizer"] = "adamw_torch_fused"
    cfg["lr_scheduler"] = "cosine"
    cfg["warmup_ratio"] = 0.03
    cfg["weight_decay"] = 0.0
    cfg["bf16"] = "auto" if spec.bf16 is None else spec.bf16
    cfg["tf32"] = True
    cfg["flash_attention"] = True
    # Axolotl has no "auto": on a GPU box worth exporting to, checkpointing is the safe default.
    cfg["gradient_checkpointing"] = True if spec.gradient_checkpointing is None else spec.gradient_checkpointing
    if spec.gradient_checkpointing is not False:
        cfg["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    cfg["logging_steps"] = spec.logging_steps or 1
    if valid:
        cfg["eval_steps"] = spec.eval_steps or 0.1
        cfg["save_steps"] = spec.save_steps or cfg["eval_steps"]
        if spec.early_stopping_patience:
            cfg["early_stopping_patience"] = spec.early_stopping_patience
            cfg["load_best_model_at_end"] = True
            cfg["metric_for_best_model"] = "eval_loss"
            cfg["greater_is_better"] = False
    else:
        cfg["save_steps"] = spec.save_steps or 0.1
    cfg["save_total_limit"] = 2
    cfg["seed"] = spec.seed
    if spec.objective == "dpo":  # Axolotl's preference training; its DPO dataset types differ from SFT's
        cfg["rl"] = "dpo"
        cfg["rl_beta"] = spec.dpo_beta
    cfg["output_dir"] = output_dir or spec.output_dir or "./output"
    if spec.push_to_hub and spec.hub_model_id:
        cfg["hub_model_id"] = spec.hub_model_id
    return cfg


def _axolotl_dataset(path: str) -> dict[str, Any]:
    return {
        "path": path,
        "ds_type": "json",
        "type": "chat_template",
        "field_messages": "messages",
        "message_property_mappings": {"role": "role", "content": "content"},
        "roles_to_train": ["assistant"],
        "train_on_eos": "turn",
    }


def export_run(run_dir: str | Path, out_dir: str | Path, num_gpus: int = 1, fsdp: bool = False) -> Path:
    """Copy run `run_dir` into a self-contained folder `out_dir` that trains the same way elsewhere.

    The folder holds spec.json (paths made relative to the folder), data/, run.sh (the launch
    command, `accelerate launch` when num_gpus > 1), axolotl.yaml and README.md. A tiny-random
    base model is copied along when the run built one.
    """
    import yaml

    run_dir, out = Path(run_dir), Path(out_dir)
    spec = JobSpec.load(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    data.mkdir(exist_ok=True)
    shutil.copy2(spec.train_file, data / "train.jsonl")
    if spec.valid_file:
        shutil.copy2(spec.valid_file, data / "valid.jsonl")

    portable = JobSpec.from_dict(spec.to_dict())
    portable.train_file = "data/train.jsonl"
    portable.valid_file = "data/valid.jsonl" if spec.valid_file else None
    portable.output_dir = "output/model"
    if spec.base_model == TINY_RANDOM and (run_dir / "base_model" / "config.json").is_file():
        shutil.copytree(run_dir / "base_model", out / "base_model", dirs_exist_ok=True)
    if spec.start_from and Path(spec.start_from).is_dir():  # SFT, then DPO: the start model travels too
        shutil.copytree(spec.start_from, out / "start_from", dirs_exist_ok=True)
        portable.start_from = "start_from"
        if Path(portable.base_model).is_dir():  # a whole-model start is its own base
            portable.base_model = "start_from" if Path(portable.base_model) == Path(spec.start_from) else portable.base_model
    portable.save(out)

    cmd = launch_command(portable, ".", num_gpus, fsdp=fsdp, python="python")
    write_run_sh(out, cmd, cd_here=True)

    axo = axolotl_config(portable, train_path="data/train.jsonl",
                         valid_path="data/valid.jsonl" if spec.valid_file else None, output_dir="./output/axolotl")
    if spec.max_seq_length is None:
        axo["sequence_len"] = _resolved_seq_len(run_dir) or axo["sequence_len"]
    (out / "axolotl.yaml").write_text(
        "# Equivalent Axolotl config (written by ftassist): axolotl train axolotl.yaml\n"
        + yaml.safe_dump(axo, sort_keys=False), encoding="utf-8")
    (out / "README.md").write_text(_readme(portable, cmd, num_gpus), encoding="utf-8")
    return out


def _resolved_seq_len(run_dir: Path) -> int | None:
    """The max_seq_length the worker chose for this run (from its started event), if it ran."""
    from ftassist.train.events import read_events

    events, _ = read_events(run_dir)
    for e in events:
        if e.get("type") == "started" and isinstance(e.get("max_seq_length"), int):
            return e["max_seq_length"]
    return None


def _readme(spec: JobSpec, cmd: list[str], num_gpus: int) -> str:
    how = "several GPUs with `accelerate launch`" if cmd[0] == "accelerate" else "one GPU (or CPU)"
    return f"""# Training run: {spec.base_model} ({spec.method})

Exported by ftassist so the same run can be repeated on another machine.

- `spec.json`: the complete job spec (base model, method, hyperparameters, data paths relative to this folder).
- `data/`: the training{' and validation' if spec.valid_file else ''} data (chat JSONL, one `{{"messages": [...]}}` per line).
- `run.sh`: the exact command, here for {how}.
- `axolotl.yaml`: an equivalent Axolotl config, if you prefer Axolotl: `axolotl train axolotl.yaml`.

## Run it

```bash
pip install ftassist            # or this project's checkout: pip install -e .
./run.sh
```

Progress is appended to `events.jsonl` (one JSON object per line: started, log, eval, checkpoint,
finished/failed/cancelled); the model is saved to `output/model`. To use another number of GPUs,
edit `--num_processes` in run.sh, or run `accelerate launch --multi_gpu --num_processes N -m
ftassist.train.worker .` from this folder (`--use_fsdp --fsdp_version 2` to shard a large model).
Stop a run with Ctrl-C or SIGTERM: it saves what it has and writes a `cancelled` event.
"""


# -- take the model home: merged weights, Ollama, vLLM, GGUF, the Hub ---------------------------------
# These write files from a model folder (or a base + adapter pair) and touch no database: the
# `export_model` use case (ftassist/usecases/exporting.py) decides what the model is.

# Tokens that end a turn in the common chat formats: Ollama must stop on them, or it keeps talking.
TURN_END_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>")
# Ollama's own (Go template) forms of the chat formats we can recognise in a Jinja chat template.
OLLAMA_TEMPLATES = {
    "chatml": (
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
    ),
    "llama3": (
        "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
        "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
}
# vLLM accepts these values of --max-lora-rank only; the adapter's rank is rounded up to one.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
GGUF_CONVERTER = "convert_hf_to_gguf.py"
GGUF_MISSING = (
    "GGUF export needs llama.cpp's converter (convert_hf_to_gguf.py), which no package on PyPI provides "
    "(the `gguf` package only reads and writes GGUF files). Get it with "
    "`git clone https://github.com/ggml-org/llama.cpp` and `pip install -r llama.cpp/requirements.txt`, "
    "then set LLAMA_CPP_DIR to that folder (or put convert_hf_to_gguf.py on PATH) and export again."
)


def merge_model(base: str, adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """Merge a LoRA adapter into its base and save the result (weights + tokenizer) in `out_dir`."""
    from ftassist.train.worker import merge_adapter

    return merge_adapter(base, Path(adapter_dir), Path(out_dir))


def chat_format(chat_template: str | None) -> str | None:
    """The chat format a Jinja chat template writes ("chatml", "llama3"), or None when not one we know."""
    if not chat_template:
        return None
    if "<|im_start|>" in chat_template and "<|im_end|>" in chat_template:
        return "chatml"
    if "<|start_header_id|>" in chat_template and "<|eot_id|>" in chat_template:
        return "llama3"
    return None


def stop_tokens(tokenizer_dir: str | Path) -> list[str]:
    """The tokens generation should stop on: the tokenizer's eos and the turn-end tokens it knows."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    vocab = tokenizer.get_vocab()
    stops = [tokenizer.eos_token] if tokenizer.eos_token else []
    stops += [t for t in TURN_END_TOKENS if t in vocab]
    return list(dict.fromkeys(stops))


def _chat_template(tokenizer_dir: Path) -> str | None:
    from transformers import AutoTokenizer

    template = AutoTokenizer.from_pretrained(str(tokenizer_dir)).chat_template
    return template if isinstance(template, str) else None


def ollama_modelfile(model_dir: str | Path, *, base: str | None = None, tokenizer_dir: str | Path | None = None) -> str:
    """The text of an Ollama Modelfile: `FROM model_dir` (merged weights), or `FROM base` + `ADAPTER
    model_dir` when `base` is given (a LoRA adapter), with TEMPLATE and PARAMETER stop lines."""
    tokenizer_dir = Path(tokenizer_dir or model_dir)
    lines = ["# Ollama Modelfile written by ftassist: ollama create NAME -f Modelfile && ollama run NAME"]
    if base is not None:
        if not Path(base).is_dir():
            lines.append(f"# Ollama reads local weights only: `hf download {base} --local-dir base`, "
                         "then put that folder's path after FROM.")
        lines += [f"FROM {base}", f"ADAPTER {Path(model_dir)}"]
    else:
        lines.append(f"FROM {Path(model_dir)}")
    known = chat_format(_chat_template(tokenizer_dir))
    if known:
        lines.append(f'TEMPLATE """{OLLAMA_TEMPLATES[known]}"""')
    else:
        lines.append("# No TEMPLATE: the chat template is not one ftassist can translate; Ollama reads the "
                     "tokenizer's own when it imports the weights.")
    lines += [f'PARAMETER stop "{token}"' for token in stop_tokens(tokenizer_dir)]
    return "\n".join(lines) + "\n"


def vllm_rank(rank: int) -> int:
    """The smallest --max-lora-rank vLLM accepts that holds an adapter of rank `rank`."""
    for allowed in VLLM_LORA_RANKS:
        if allowed >= rank:
            return allowed
    return rank


def vllm_command(model_dir: str | Path, *, base: str | None = None, name: str = "finetuned",
                 rank: int | None = None) -> list[str]:
    """The `vllm serve` argv: the merged folder as is, or the base with the adapter as LoRA module `name`."""
    if base is None:
        return ["vllm", "serve", str(model_dir)]
    return ["vllm", "serve", base, "--enable-lora", "--lora-modules", f"{name}={model_dir}",
            "--max-lora-rank", str(vllm_rank(rank or 16))]


def write_serve_sh(out_dir: str | Path, cmd: list[str]) -> Path:
    """OUT/serve.sh holding `cmd` (an OpenAI-compatible server on port 8000)."""
    path = Path(out_dir) / "serve.sh"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n# Serves the fine-tuned model with vLLM (written by ftassist).\n"
                    f"set -euo pipefail\n{shlex.join(cmd)}\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def gguf_converter() -> Path | None:
    """llama.cpp's HF -> GGUF converter: in $LLAMA_CPP_DIR, or on PATH; None when neither has it."""
    import os

    folder = os.environ.get("LLAMA_CPP_DIR")
    if folder and (Path(folder).expanduser() / GGUF_CONVERTER).is_file():
        return Path(folder).expanduser() / GGUF_CONVERTER
    found = shutil.which(GGUF_CONVERTER)
    return Path(found) if found else None


def convert_to_gguf(model_dir: str | Path, outfile: str | Path, converter: Path, outtype: str = "f16") -> Path:
    """Run llama.cpp's converter on a (merged) transformers folder; RuntimeError with its output on failure."""
    import subprocess

    cmd = [sys.executable, str(converter), str(model_dir), "--outfile", str(outfile), "--outtype", outtype]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not Path(outfile).is_file():
        tail = (done.stderr or done.stdout or "").strip().splitlines()[-5:]
        raise RuntimeError(f"{GGUF_CONVERTER} failed (exit {done.returncode}): " + " | ".join(tail))
    return Path(outfile)


def push_folder(folder: str | Path, repo_id: str, *, private: bool = True, token: str | None = None) -> str:
    """Upload `folder` to the Hub repo `repo_id` (created private unless asked), returning its URL."""
    import os

    from huggingface_hub import HfApi

    # HF_ENDPOINT (a mirror or a private Hub) is read now, not when huggingface_hub was imported.
    api = HfApi(token=token, endpoint=os.environ.get("HF_ENDPOINT") or None)
    url = str(api.create_repo(repo_id, private=private, exist_ok=True))
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="Upload fine-tuned model (ftassist)")
    return url
