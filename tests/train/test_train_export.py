"""Scale-out: the launch command for 1..N GPUs, run.sh, and the "run elsewhere" export with Axolotl YAML."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from ftassist.train.export import axolotl_config, export_run, launch_command, write_run_sh
from ftassist.train.spec import JobSpec


def _spec(chat_data, tmp_path, **kw) -> JobSpec:
    train, valid = chat_data
    return JobSpec(base_model="Qwen/Qwen2.5-0.5B-Instruct", train_file=str(train), valid_file=str(valid),
                   output_dir=str(tmp_path / "run" / "model"), **kw)


def test_launch_command_single_and_multi_gpu(chat_data, tmp_path):
    spec = _spec(chat_data, tmp_path)
    assert launch_command(spec, "/r", 1) == [sys.executable, "-m", "ftassist.train.worker", "/r"]
    assert launch_command(spec, "/r", 0, python="python") == ["python", "-m", "ftassist.train.worker", "/r"]
    multi = launch_command(spec, "/r", 4)
    assert multi[:2] == ["accelerate", "launch"] and "--multi_gpu" in multi
    assert multi[multi.index("--num_processes") + 1] == "4"
    assert multi[-3:] == ["-m", "ftassist.train.worker", "/r"]
    fsdp = launch_command(spec, "/r", 8, fsdp=True)
    assert "--use_fsdp" in fsdp and "--multi_gpu" not in fsdp and fsdp[fsdp.index("--num_processes") + 1] == "8"
    assert fsdp[-3:] == ["-m", "ftassist.train.worker", "/r"]
    openai = JobSpec(backend="openai", train_file="t")
    assert launch_command(openai, "/r", 8)[1:] == ["-m", "ftassist.train.worker", "/r"]


def test_the_launch_command_parses_with_accelerate(chat_data, tmp_path):
    from accelerate.commands.launch import launch_command_parser

    cmd = launch_command(_spec(chat_data, tmp_path), "/r", 2, fsdp=True)
    args = launch_command_parser().parse_args(cmd[2:])
    assert args.use_fsdp and args.num_processes == 2 and args.module
    assert args.training_script == "ftassist.train.worker" and args.training_script_args == ["/r"]


def test_run_sh_is_executable_and_holds_the_command(tmp_path):
    path = write_run_sh(tmp_path, ["accelerate", "launch", "-m", "ftassist.train.worker", "/a dir"])
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "accelerate launch -m ftassist.train.worker '/a dir'" in text
    assert path.stat().st_mode & 0o111
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0


def test_axolotl_config_mirrors_the_spec(chat_data, tmp_path):
    cfg = axolotl_config(_spec(chat_data, tmp_path, method="qlora", lora_r=8, max_seq_length=512,
                               gradient_accumulation_steps=4))
    assert cfg["base_model"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert cfg["adapter"] == "qlora" and cfg["load_in_4bit"] is True
    assert (cfg["lora_r"], cfg["lora_alpha"], cfg["lora_dropout"]) == (8, 32, 0.05)
    assert cfg["lora_target_modules"] == ["q_proj", "v_proj"] and "lora_target_linear" not in cfg
    assert cfg["sequence_len"] == 512 and cfg["sample_packing"] is True
    ds = cfg["datasets"][0]
    assert ds["type"] == "chat_template" and ds["field_messages"] == "messages"
    assert ds["roles_to_train"] == ["assistant"]
    assert cfg["test_datasets"][0]["path"].endswith("valid.jsonl")
    assert (cfg["micro_batch_size"], cfg["gradient_accumulation_steps"], cfg["learning_rate"]) == (4, 4, 2e-4)
    assert cfg["num_epochs"] == 3 and cfg["optimizer"] and cfg["lr_scheduler"] == "cosine"
    assert cfg["early_stopping_patience"] == 3

    full = axolotl_config(_spec(chat_data, tmp_path, method="full", target_modules="all-linear", packing=False))
    assert "adapter" not in full and full["load_in_4bit"] is False and full["learning_rate"] == 2e-5
    assert full["sample_packing"] is False
    lin = axolotl_config(_spec(chat_data, tmp_path, target_modules="all-linear"))
    assert lin["lora_target_linear"] is True and "lora_target_modules" not in lin


def test_export_run_makes_a_portable_folder(chat_data, tmp_path):
    run_dir = tmp_path / "run"
    spec = _spec(chat_data, tmp_path, method="lora", max_steps=50)
    spec.save(run_dir)
    out = export_run(run_dir, tmp_path / "export", num_gpus=2)
    for name in ("spec.json", "data/train.jsonl", "data/valid.jsonl", "run.sh", "README.md", "axolotl.yaml"):
        assert (out / name).is_file(), name
    assert (out / "data/train.jsonl").read_bytes() == chat_data[0].read_bytes()

    portable = JobSpec.load(out)
    assert portable.train_file == "data/train.jsonl" and portable.valid_file == "data/valid.jsonl"
    assert portable.output_dir == "output/model" and portable.max_steps == 50
    assert portable.validate(check_files=False) == []

    run_sh = (out / "run.sh").read_text()
    assert 'cd "$(dirname "$0")"' in run_sh
    assert "accelerate launch --multi_gpu --num_processes 2" in run_sh and "-m ftassist.train.worker ." in run_sh

    axo = yaml.safe_load((out / "axolotl.yaml").read_text())
    assert axo["base_model"] == spec.base_model and axo["adapter"] == "lora"
    assert axo["datasets"][0]["path"] == "data/train.jsonl" and axo["test_datasets"][0]["path"] == "data/valid.jsonl"
    assert axo["max_steps"] == 50 and axo["output_dir"] == "./output/axolotl"
    assert json.loads((out / "spec.json").read_text())["base_model"] == spec.base_model
    assert "./run.sh" in (out / "README.md").read_text()
