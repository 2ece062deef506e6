"""Memory, time and model resolution, checked against published figures and real model classes."""

from __future__ import annotations

import json

import pytest

from ftassist.plan import hardware

TOLERANCE = 0.25  # stated tolerance against rule-of-thumb published figures


def _mem(model: str, method: str, **kw) -> float:
    kw.setdefault("seq_len", 1024)
    kw.setdefault("batch_size", 1)
    return hardware.estimate_memory(hardware.resolve_model(model), method, **kw).total_gb


@pytest.mark.parametrize("method, published_gb", [("full", 120), ("lora", 16), ("qlora", 6)])
def test_llama_factory_7b_figures(method, published_gb):
    # LLaMA-Factory README: 7B needs ~120 GB full (bf16 AMP, Adam), ~16 GB LoRA, ~6 GB QLoRA 4-bit.
    got = _mem("mistralai/Mistral-7B-v0.3", method)
    assert abs(got - published_gb) / published_gb <= TOLERANCE, (method, got)


def test_8b_qlora_fits_24gb_full_does_not():
    arch = hardware.resolve_model("meta-llama/Llama-3.1-8B")
    gpus = hardware.gpu_catalogue()
    qlora = hardware.estimate_memory(arch, "qlora", seq_len=1024)
    full = hardware.estimate_memory(arch, "full", seq_len=1024)
    lora = hardware.estimate_memory(arch, "lora", seq_len=1024)
    for name in ("RTX 4090", "L4", "A10G"):
        assert hardware.fits(qlora, gpus[name])
        assert not hardware.fits(full, gpus[name])
    assert not hardware.fits(full, gpus["H100 80GB"])  # 8B full FT with Adam needs > 80 GB
    assert not hardware.fits(qlora, hardware.GPU("tiny", 4, 10, 0.1))
    assert full.total_gb > 16 * 8  # at least 16 bytes per parameter
    assert qlora.total_gb < lora.total_gb < full.total_gb


def test_70b_qlora_fits_80gb_and_llama_factory_scaling():
    # LLaMA-Factory: QLoRA 4-bit ~ x/2 GB (70B: ~35-48 GB) -> fits an 80 GB card, not a 40 GB one.
    arch = hardware.resolve_model("meta-llama/Llama-3.3-70B-Instruct")
    mem = hardware.estimate_memory(arch, "qlora", seq_len=1024)
    gpus = hardware.gpu_catalogue()
    assert hardware.fits(mem, gpus["A100 80GB"]) and not hardware.fits(mem, gpus["A100 40GB"])
    assert 35 <= mem.total_gb <= 35 * (1 + TOLERANCE) + 5


def test_gradient_checkpointing_and_batch_change_activations():
    arch = hardware.resolve_model("meta-llama/Llama-3.2-1B")
    on = hardware.estimate_memory(arch, "lora", seq_len=2048, gradient_checkpointing=True)
    off = hardware.estimate_memory(arch, "lora", seq_len=2048, gradient_checkpointing=False)
    big = hardware.estimate_memory(arch, "lora", seq_len=2048, batch_size=4, gradient_checkpointing=True)
    assert off.parts_gb["activations"] > 5 * on.parts_gb["activations"]
    assert big.parts_gb["activations"] == pytest.approx(4 * on.parts_gb["activations"], rel=0.01)
    assert big.parts_gb["logits"] == pytest.approx(4 * on.parts_gb["logits"], rel=0.01)
    assert "checkpointing" in on.how
    with pytest.raises(ValueError):
        hardware.estimate_memory(arch, "prefix", seq_len=10)


def test_catalogue_param_counts_match_published():
    for name, arch in hardware.catalogue().items():
        assert arch.params_b_published, name
        assert arch.params() / 1e9 == pytest.approx(arch.params_b_published, rel=0.02), name


def _transformers_count(config) -> int:
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3", "gemma2", "mistral", "phi3"])
def test_param_formula_matches_transformers(family):
    # Small versions of each architecture on the meta device: our formula must equal the real class.
    import transformers as tf

    common = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=96, vocab_size=300)
    config = {
        "llama": lambda: tf.LlamaConfig(**common, tie_word_embeddings=False),
        "qwen2": lambda: tf.Qwen2Config(**common, tie_word_embeddings=True),
        "qwen3": lambda: tf.Qwen3Config(**common, head_dim=32, tie_word_embeddings=False),
        "gemma2": lambda: tf.Gemma2Config(**common, head_dim=32),
        "mistral": lambda: tf.MistralConfig(**common, tie_word_embeddings=False),
        "phi3": lambda: tf.Phi3Config(**common, tie_word_embeddings=False, pad_token_id=0),
    }[family]()
    arch = hardware.arch_from_config(config.to_dict(), name=family)
    assert arch.params() == _transformers_count(config)


def test_local_folder_config(tmp_path):
    cfg = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
           "tie_word_embeddings": False, "max_position_embeddings": 131072}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    arch = hardware.resolve_model(str(tmp_path))
    assert arch.params() == hardware.resolve_model("meta-llama/Llama-3.1-8B").params()
    assert arch.source.endswith("config.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="without config.json"):
        hardware.resolve_model(str(tmp_path / "empty"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model_type": "x"}))
    with pytest.raises(ValueError, match="lacks"):
        hardware.resolve_model(str(bad))


def test_nested_text_config():
    cfg = {"model_type": "gemma3", "text_config": {"model_type": "gemma3_text", "hidden_size": 1152,
           "num_hidden_layers": 26, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256,
           "intermediate_size": 6912, "vocab_size": 262144}}
    arch = hardware.arch_from_config(cfg)
    assert arch.params() == hardware.resolve_model("google/gemma-3-1b-pt").params()


def test_hub_id_offline_gives_clear_message(monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the network itself is what fails here

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    monkeypatch.setattr("ftassist.hub_reach.hub_reachable", lambda timeout=3.0: True)  # the host answers, the file not
    with pytest.raises(ValueError, match="Could not fetch config.json of 'someone/some-model'"):
        hardware.resolve_model("someone/some-model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE"):
        hardware.resolve_model("someone/some-model")
    with pytest.raises(ValueError, match="Unknown base model"):
        hardware.resolve_model("not-a-model")


def test_hub_id_uses_downloaded_config(monkeypatch, tmp_path):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the download is faked

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24,
                                "num_attention_heads": 14, "num_key_value_heads": 2, "intermediate_size": 4864,
                                "vocab_size": 151936, "tie_word_embeddings": True}))
    calls = []

    def fake(repo_id, filename, **kwargs):
        calls.append(kwargs)
        if kwargs.get("local_files_only"):
            raise FileNotFoundError
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    monkeypatch.setattr("ftassist.hub_reach.hub_reachable", lambda timeout=3.0: True)  # as faked as the download
    arch = hardware.resolve_model("someone/qwen-clone")
    assert arch.params() == hardware.resolve_model("Qwen/Qwen2.5-0.5B").params()
    assert calls[-1]["etag_timeout"] <= 10  # a short timeout


def test_short_names_and_gpus():
    assert hardware.resolve_model("llama-3.1-8b").name == "meta-llama/Llama-3.1-8B"
    assert hardware.find_gpu("h100").name == "H100 80GB"
    assert hardware.find_gpu("a100 80gb").name == "A100 80GB"
    assert hardware.find_gpu("RTX4090").name == "RTX 4090"
    with pytest.raises(ValueError, match="Unknown GPU"):
        hardware.find_gpu("Voodoo2")
    gpus = hardware.gpu_catalogue({"L4": 0.5})
    assert gpus["L4"].usd_per_hour == 0.5 and gpus["T4"].memory_gb == 16
    assert {g.memory_gb for g in gpus.values()} == {16, 24, 40, 48, 80, 96, 141}


def test_time_from_flops():
    arch = hardware.resolve_model("meta-llama/Llama-3.1-8B")
    gpu = hardware.gpu_catalogue()["H100 80GB"]
    tokens = 10_000_000
    full = hardware.estimate_time(arch, "full", tokens, gpu, mfu=0.35, gradient_checkpointing=False)
    expected_s = 6 * arch.compute_params() * tokens / (989e12 * 0.35)
    assert full.hours == pytest.approx(expected_s / 3600)
    assert full.cost_usd == pytest.approx(full.hours * gpu.usd_per_hour)
    lora = hardware.estimate_time(arch, "lora", tokens, gpu, mfu=0.35, gradient_checkpointing=False)
    qlora = hardware.estimate_time(arch, "qlora", tokens, gpu, mfu=0.35, gradient_checkpointing=False)
    assert lora.hours == pytest.approx(full.hours * 4 / 6)
    assert qlora.hours == pytest.approx(lora.hours * hardware.QLORA_SLOWDOWN)
    gc = hardware.estimate_time(arch, "full", tokens, gpu, mfu=0.35, gradient_checkpointing=True)
    assert gc.hours == pytest.approx(full.hours * 8 / 6)
    assert "35% MFU" in full.how_hours and "$2.5/h" in full.how_cost
    with pytest.raises(ValueError):
        hardware.estimate_time(arch, "full", tokens, gpu, mfu=0)


def test_lora_param_formula_matches_peft():
    import torch
    import transformers as tf
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    config = tf.Qwen3Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                            head_dim=32, intermediate_size=96, vocab_size=300, tie_word_embeddings=False)
    with torch.device("meta"):
        model = get_peft_model(AutoModelForCausalLM.from_config(config),
                               LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert hardware.arch_from_config(config.to_dict()).lora_params(4) == trainable


def test_an_unreachable_hub_is_said_at_once_not_after_the_clients_retries(tmp_path, monkeypatch):
    """The probe answers before the Hub client's half a minute of retries: its own message says so."""
    import socket

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{port}")  # as HF_ENDPOINT at start
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ValueError, match=r"Could not reach the Hugging Face Hub to read someone/not-cached's config\.json"):
        hardware.resolve_model("someone/not-cached")
