"""Estimating preference tuning (DPO): pairs counted as prompt + chosen + prompt + rejected, Together's DPO rate
(unknown unless given, never invented), OpenAI only on its DPO models, and the GPU memory and time of two sequences
per pair plus the reference model (no second copy with LoRA, a second bf16 copy for full DPO)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftassist.cli import main
from ftassist.data import tokens as tok
from ftassist.plan import estimate as est
from ftassist.plan import hardware, providers
from ftassist.usecases import planning
from ftassist.usecases.context import Context, UseCaseError

BASE = "Qwen/Qwen2.5-0.5B"
OPTIONS = {"base_models": [BASE], "methods": ["lora"], "local_gpus": [], "today": "2026-11-30",
           "allow_network": False, "epochs": 1, "objective": "dpo"}
GIB = 1024**3


def _pairs_file(path: Path) -> Path:
    rows = [{"prompt": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": f"What is {i}?"}],
             "chosen": [{"role": "assistant", "content": f"It is the number {i}, a whole number."}],
             "rejected": [{"role": "assistant", "content": "No idea."}]} for i in range(7)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# -- memory and time ------------------------------------------------------------------------------------
def test_lora_dpo_memory_is_two_sequences_and_no_second_copy():
    arch = hardware.resolve_model(BASE, allow_network=False)
    dpo = hardware.estimate_memory(arch, "lora", 512, 2, objective="dpo")
    same_tokens = hardware.estimate_memory(arch, "lora", 512, 4)  # batch x 2 sequences
    assert dpo.parts_gb == same_tokens.parts_gb and "reference" not in dpo.parts_gb
    assert dpo.objective == "dpo" and "adapter switched off, no second copy" in dpo.how
    assert "2 x 512 = 2,048 tokens a step" in dpo.how
    qlora = hardware.estimate_memory(arch, "qlora", 512, 1, objective="dpo")
    assert "reference" not in qlora.parts_gb


def test_full_dpo_holds_a_second_bf16_copy_unless_the_reference_is_precomputed():
    arch = hardware.resolve_model(BASE, allow_network=False)
    dpo = hardware.estimate_memory(arch, "full", 512, 1, objective="dpo")
    sft = hardware.estimate_memory(arch, "full", 512, 2)
    assert dpo.parts_gb["reference"] == pytest.approx(arch.params() * 2 / GIB, abs=1e-3)
    for part in ("weights", "gradients", "optimizer", "activations", "logits"):
        assert dpo.parts_gb[part] == sft.parts_gb[part]
    # the overhead is 0.75 GB + 8% of everything else, the reference included
    assert dpo.total_gb == pytest.approx(sft.total_gb + 1.08 * arch.params() * 2 / GIB, abs=0.02)
    precomputed = hardware.estimate_memory(arch, "full", 512, 1, objective="dpo", precompute_reference=True)
    assert "reference" not in precomputed.parts_gb and precomputed.total_gb == pytest.approx(sft.total_gb, abs=0.01)
    with pytest.raises(ValueError, match="Unknown objective"):
        hardware.estimate_memory(arch, "lora", objective="ppo")


def test_dpo_flops_add_the_reference_forward():
    arch = hardware.resolve_model(BASE, allow_network=False)
    p = arch.compute_params()
    flops, how = hardware.training_flops(arch, "lora", 1000, True, objective="dpo")
    assert flops == pytest.approx((4 + 2 + 2) * p * 1000) and "+ 2 DPO reference forward" in how
    full, _ = hardware.training_flops(arch, "full", 1000, False, objective="dpo")
    assert full == pytest.approx((6 + 2) * p * 1000)


# -- the table ---------------------------------------------------------------------------------------
def test_quick_pairs_price_every_path_as_dpo(monkeypatch):
    pairs = est.tokens_quick(1000, 600, pairs=True)  # 1,000 pairs of 600 tokens: two sequences of ~300
    table = est.estimate_all(pairs, {**OPTIONS, "openai_customer": True})
    assert table.inputs["objective"] == "dpo" and table.inputs["pairs"] and table.inputs["total_tokens"] == 600_000

    (together,) = [r for r in table.rows if r.kind == "together"]
    assert together.cost_usd is None and "no DPO lora rate" in together.why and together.label.startswith("DPO LoRA")
    assert together.trained_tokens == 600_000 and "--objective dpo" in together.start

    arch = hardware.resolve_model(BASE, allow_network=False)
    jobs = table.row(f"hf-jobs:lora:{BASE}:l4x1")
    mem = hardware.estimate_memory(arch, "lora", 300, 1, objective="dpo")  # seq_len: one sequence, not the pair
    assert jobs.memory_gb == mem.total_gb and table.memory[0]["seq_len"] == 300
    hours = (4 + 2 + 2) * arch.compute_params() * 600_000 / (121e12 * 0.35) / 3600
    assert jobs.hours == pytest.approx(hours + providers.jobs_startup_minutes() / 60)
    assert jobs.objective == "dpo" and "--objective dpo" in jobs.start

    openai = {r.model: r for r in table.rows if r.kind == "openai"}
    assert set(openai) == set(providers.openai_dpo_models())  # no DPO row for a model OpenAI does not tune so
    mini = openai["gpt-4.1-mini-2025-04-14"]
    assert mini.method == "openai_dpo" and mini.available
    assert mini.cost_usd == pytest.approx(600_000 * 5.00 / 1e6)  # 1 epoch x the model's training price
    assert "billed by the tokens in the training data" in mini.how["training_cost_usd"]
    assert not openai["gpt-4.1-nano-2025-04-14"].available  # shut down on 2026-10-23

    monkeypatch.setitem(providers.provider("together"), "rates_usd_per_1m_tokens",
                        {"up to 16B": {"sft": {"lora": 0.48}, "dpo": {"lora": 1.20}}})
    priced = est.estimate_all(pairs, {**OPTIONS, "epochs": 2})
    (together,) = [r for r in priced.rows if r.kind == "together"]
    assert together.cost_usd == pytest.approx(2 * 600_000 * 1.20 / 1e6) and "DPO lora" in together.how["cost_usd"]


def test_a_model_openai_does_not_tune_with_dpo_is_shown_unavailable_and_pairs_never_estimate_as_sft():
    pairs = est.tokens_quick(100, 600, pairs=True)
    table = est.estimate_all(pairs, {**OPTIONS, "openai_customer": True, "openai_models": ["gpt-4o-mini"],
                                     "include_self_hosted": False})
    (row,) = table.rows
    assert not row.available and row.why.startswith("OpenAI does not train DPO on gpt-4o-mini-2024-07-18")
    assert not est.choosable(row) and table.recommended is None
    with pytest.raises(ValueError, match="estimate them with the objective dpo"):
        est.estimate_all(pairs, {**OPTIONS, "objective": "sft"})
    with pytest.raises(ValueError, match="DPO is estimated on preference pairs"):
        est.estimate_all(est.tokens_quick(100, 600), OPTIONS)


# -- counting a pairs file ------------------------------------------------------------------------------
def test_a_pairs_file_counts_prompt_chosen_prompt_rejected(tmp_path):
    path = _pairs_file(tmp_path / "pairs.jsonl")
    result = planning.estimate_options(Context.open(), path=str(path), options={**OPTIONS, "openai_models": [
        "gpt-4.1-mini-2025-04-14"], "openai_customer": True})
    table = result.table
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    encoding = tok.get_encoding("o200k_base")
    by_hand = [tok.count_chat({"messages": r["prompt"] + r["chosen"]}, encoding)[0]
               + tok.count_chat({"messages": r["prompt"] + r["rejected"]}, encoding)[0] for r in rows]
    assert table.inputs["n_examples"] == 7 and table.inputs["total_tokens"] == sum(by_hand)
    assert table.inputs["source"] == "pairs" and "prompt + chosen + prompt + rejected" in result.counted
    openai = table.row("openai:gpt-4.1-mini-2025-04-14")
    assert openai.billing_tokens == sum(by_hand) and openai.tokens_exact


def test_a_chat_file_or_a_bad_pair_is_refused_with_its_line(tmp_path):
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "q"},
                                             {"role": "assistant", "content": "a"}]}) + "\n")
    with pytest.raises(UseCaseError, match=r"chat.jsonl line 1: this record is in chat format, but the file holds "
                                           r"preference pairs\. DPO trains on preference pairs\. give every record"):
        planning.estimate_options(Context.open(), path=str(chat), options=OPTIONS)
    with pytest.raises(UseCaseError, match="pasted pair: line 1: \"chosen\" is a list of messages but"):
        planning.estimate_options(Context.open(), use_dataset=False, n_examples=10, options=OPTIONS,
                                  example=json.dumps({"prompt": "q", "chosen": [{"role": "assistant", "content": "a"}],
                                                      "rejected": "b"}))
    pasted = planning.estimate_options(Context.open(), use_dataset=False, n_examples=10, options=OPTIONS,
                                       example=json.dumps({"prompt": "q", "chosen": "yes", "rejected": "no"}))
    assert pasted.table.inputs["n_examples"] == 10 and pasted.table.inputs["pairs"]


def test_cli_estimate_dpo_json(tmp_path, capsys, monkeypatch):
    from ftassist import config

    monkeypatch.setattr(config, "detect_hardware", lambda refresh=False: {"cuda": False, "gpus": [], "source": "none"})
    path = _pairs_file(tmp_path / "pairs.jsonl")
    assert main(["estimate", str(path), "--objective", "dpo", "--base-model", BASE, "--method", "full",
                 "--precompute-reference", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["inputs"]["objective"] == "dpo" and d["inputs"]["n_examples"] == 7
    assert all(o["objective"] == "dpo" for o in d["options"])
    assert all("reference" not in m["parts_gb"] for m in d["memory"])  # precomputed: no second copy
    assert main(["estimate", str(path), "--objective", "dpo", "--base-model", BASE, "--method", "full", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert all(m["parts_gb"]["reference"] > 0 for m in d["memory"])


# -- issue 12 leftovers: the GPUs with a peak, and catalogue rows that say where they are -------------------
def test_l40s_h200_and_rtx_pro_6000_flavors_have_hours_and_cost():
    table = est.estimate_all(est.tokens_quick(1000, 500), {**OPTIONS, "objective": "sft"})
    for flavor, peak in (("l40sx1", 362), ("h200", 989), ("rtx-pro-6000", 504)):
        row = table.row(f"hf-jobs:lora:{BASE}:{flavor}")
        assert row.hours is not None and row.cost_usd is not None, flavor
        assert f"{peak:g} TFLOPS peak" in row.how["hours"]
    assert hardware.find_gpu("l40s").memory_gb == 48 and hardware.find_gpu("H200").peak_tflops == 989


def test_catalogue_rows_say_backend_elsewhere_once_this_machine_was_looked_at():
    gpu_here = est.estimate_all(est.tokens_quick(1000, 500), {**OPTIONS, "objective": "sft",
                                                              "local_gpus": [{"name": "NVIDIA L4", "memory_gb": 24}]})
    catalogue = [r for r in gpu_here.rows if r.kind == "self_hosted" and not r.id.startswith("local:")]
    assert catalogue and all(r.backend == "elsewhere" and not r.available for r in catalogue)
    assert gpu_here.row(f"local:lora:{BASE}:NVIDIA L4").backend == "local"
    named = est.estimate_all(est.tokens_quick(1000, 500), {**OPTIONS, "objective": "sft", "gpus": ["L40S"]})
    assert named.row(f"lora:{BASE}:L40S").backend == "local"  # a GPU the person says they can use
    shown = est.display_rows(gpu_here)
    assert {row[2] for row in shown} >= {"elsewhere", "local", "hf-jobs", "together"}
