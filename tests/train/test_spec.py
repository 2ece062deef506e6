"""JobSpec: presets, validation messages, round trip through spec.json."""

from __future__ import annotations

import json

import pytest

from ftassist.train.spec import JobSpec, preset_max_seq_length, presets


def _valid(tmp_path, **kw) -> JobSpec:
    train = tmp_path / "train.jsonl"
    train.write_text('{"messages": []}\n')
    kw.setdefault("output_dir", str(tmp_path / "out"))
    return JobSpec(train_file=str(train), **kw)


def test_defaults_are_the_documented_presets(tmp_path):
    s = _valid(tmp_path)
    assert s.validate() == []
    assert (s.backend, s.method, s.num_epochs, s.lora_r, s.lora_alpha, s.lora_dropout) == ("local", "lora", 3, 16, 32, 0.05)
    assert s.target_modules == ["q_proj", "v_proj"] and s.seed == 42 and s.max_seq_length is None
    assert JobSpec(base_model="org/m", method="lora").resolved_learning_rate == 2e-4
    assert JobSpec(base_model="org/m", method="qlora").resolved_learning_rate == 2e-4
    assert JobSpec(base_model="org/m", method="full").resolved_learning_rate == 2e-5
    assert JobSpec(base_model="org/m", learning_rate=1e-3).resolved_learning_rate == 1e-3
    assert presets("full")["learning_rate"] == 2e-5 and "lora_r" not in presets("full")
    assert presets("qlora")["gradient_checkpointing"] is True
    with pytest.raises(ValueError, match="unknown method"):
        presets("dpo")


@pytest.mark.parametrize("tokens,context,expected", [
    (None, None, 1024), (0, None, 1024), (10, None, 64), (100, None, 128), (512, None, 512), (513, None, 1024),
    (1025, None, 1088), (3000, None, 3008), (5000, 2048, 2048), (300, 256, 256),
])
def test_preset_max_seq_length(tokens, context, expected):
    assert preset_max_seq_length(tokens, context) == expected


def test_validation_lists_every_problem_with_a_fix(tmp_path):
    s = JobSpec(backend="gpu", method="dora", train_file=str(tmp_path / "nope.jsonl"), output_dir="",
                num_epochs=0, learning_rate=5, lora_r=0, target_modules="q_proj", max_seq_length=8,
                per_device_batch_size=0, eval_steps=-1, packing="yes", push_to_hub=True)
    problems = s.validate()
    text = "\n".join(problems)
    for needle in ("backend 'gpu'", "method 'dora'", "does not exist", "output_dir is missing", "num_epochs",
                   "learning_rate must be between 0 and 1", "max_seq_length", "per_device_batch_size",
                   "eval_steps", "packing must be", "hub_model_id"):
        assert needle in text, needle
    assert all(p.endswith((".", ")")) for p in problems)
    lora = JobSpec(train_file="t", output_dir="o", lora_r=0, target_modules="q_proj")
    text = "\n".join(lora.validate(check_files=False))
    assert "lora_r" in text and "'all-linear'" in text
    assert JobSpec(train_file="t", output_dir="o", target_modules="all-linear").validate(check_files=False) == []
    assert "merge_adapter only applies" in "".join(
        JobSpec(train_file="t", output_dir="o", method="full", merge_adapter=True).validate(check_files=False))
    assert any("train_file is missing" in p for p in JobSpec(output_dir="o").validate())


def test_openai_settings_are_validated(tmp_path):
    s = _valid(tmp_path, backend="openai", output_dir="")
    assert s.validate() == []  # no output_dir or base model needed for OpenAI
    s.openai.update(provider="azure", n_epochs=0, suffix="x" * 65, learning_rate_multiplier=-1)
    text = "\n".join(s.validate())
    for needle in ("azure_endpoint", "api_version", "openai.n_epochs", "suffix", "learning_rate_multiplier"):
        assert needle in text, needle
    s.openai = {"provider": "custom"}
    assert any("base_url" in p for p in s.validate())
    # a partial openai dict is completed with the defaults
    assert JobSpec(backend="openai", train_file="t", openai={"n_epochs": 2}).openai["model"]


def test_round_trip_through_spec_json(tmp_path):
    s = _valid(tmp_path, method="full", num_epochs=2, packing=False, target_modules="all-linear",
               openai={"n_epochs": 4})
    path = s.save(tmp_path / "run")
    assert path.name == "spec.json"
    raw = json.loads(path.read_text())
    assert raw["method"] == "full" and raw["openai"]["n_epochs"] == 4 and raw["openai"]["model"]
    loaded = JobSpec.load(tmp_path / "run")
    assert loaded == JobSpec.from_dict(s.to_dict())
    assert loaded.to_dict() == s.to_dict()
    assert JobSpec.load(path) == loaded
    # unknown keys (a newer spec file) are ignored rather than fatal
    assert JobSpec.from_dict({**raw, "future_field": 1}).method == "full"
