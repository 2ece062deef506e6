"""The QLoRA memory estimate, term by term, against the arithmetic its docstring claims, done here by hand."""

from __future__ import annotations

import json

import pytest

from ftassist.plan import hardware

GIB = 1024**3


def llama_8b_shape() -> dict:
    """Read straight from the catalogue file, not through ModelArch."""
    return json.loads(hardware.MODELS_FILE.read_text(encoding="utf-8"))["models"]["meta-llama/Llama-3.1-8B"]


def test_the_8b_shape_counts_to_its_published_size():
    s = llama_8b_shape()
    assert (s["layers"], s["hidden"], s["intermediate"], s["vocab"], s["heads"], s["kv_heads"]) == \
        (32, 4096, 14336, 128256, 32, 8) and s["tied"] is False
    # hand-worked: per layer q 4096^2 + k,v 4096x1024 each + o 4096^2 + gate/up/down 3 x 4096x14336
    per_layer_linear = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336
    assert per_layer_linear == 218_103_808
    total = 32 * per_layer_linear + 2 * 128256 * 4096 + 32 * 2 * 4096 + 4096
    assert total == 8_030_261_248 == hardware.resolve_model("meta-llama/Llama-3.1-8B").params()


@pytest.mark.parametrize("seq_len,batch,checkpointing,rank", [(1024, 1, True, 16), (2048, 4, False, 64)])
def test_qlora_8b_memory_is_exactly_its_documented_arithmetic(seq_len, batch, checkpointing, rank):
    s = llama_8b_shape()
    layers, h, i, vocab = s["layers"], s["hidden"], s["intermediate"], s["vocab"]
    head_dim = h // s["heads"]
    q_dim, kv_dim = s["heads"] * head_dim, s["kv_heads"] * head_dim
    shapes = [(h, q_dim), (h, kv_dim), (h, kv_dim), (q_dim, h), (h, i), (h, i), (i, h)]  # one layer's linears

    quantised = layers * sum(a * b for a, b in shapes)  # the decoder's linear weights: NF4
    kept_16bit = 2 * vocab * h + layers * 2 * h + h  # embeddings + lm_head (untied), 2 norms a layer, final norm
    nf4_double_quant_bits = 4 + 8 / 64 + 32 / (64 * 256)  # 4.127 bits per quantised weight
    weights = quantised * nf4_double_quant_bits / 8 + kept_16bit * 2 + max(a * b for a, b in shapes) * 2
    lora = layers * sum(rank * (a + b) for a, b in shapes)  # rank-r A and B on every linear
    gradients = lora * 4  # fp32
    optimizer = lora * (4 + 8)  # fp32 adapter weights + Adam's two fp32 moments
    tokens = seq_len * batch
    per_layer = 4 * h + 3 * q_dim + 3 * kv_dim + 4 * i + (5 * h + q_dim + i)  # + LoRA dropout's input copies
    activations = tokens * ((layers * h + per_layer) if checkpointing else layers * per_layer) * 2
    logits = tokens * vocab * 12
    subtotal = weights + gradients + optimizer + activations + logits
    overhead = 0.75 * GIB + 0.08 * subtotal
    expected = {"weights": weights, "gradients": gradients, "optimizer": optimizer, "activations": activations,
                "logits": logits, "overhead": overhead}

    arch = hardware.resolve_model("meta-llama/Llama-3.1-8B")
    est = hardware.estimate_memory(arch, "qlora", seq_len=seq_len, batch_size=batch,
                                   gradient_checkpointing=checkpointing, lora_rank=rank)
    assert est.parts_gb == pytest.approx({k: v / GIB for k, v in expected.items()}, abs=6e-4)
    assert est.total_gb == pytest.approx(sum(expected.values()) / GIB, abs=6e-3)
    if (seq_len, batch, checkpointing, rank) == (1024, 1, True, 16):
        # worked by hand: 6.98B NF4 weights 3.353 GiB + 1.05B bf16 (embeddings, head, norms) 1.958 GiB + one
        # dequantised 4096x14336 matrix 0.109 GiB; 41.9M adapter params x 16 bytes 0.625 GiB; activations
        # 0.502 GiB; logits 1.468 GiB; + 0.75 GiB + 8%: 9.41 GiB, which fits a 24 GB card as published figures say
        assert est.parts_gb["weights"] == pytest.approx(5.420, abs=1e-3)
        assert est.parts_gb["gradients"] + est.parts_gb["optimizer"] == pytest.approx(0.625, abs=1e-3)
        assert est.total_gb == pytest.approx(9.41, abs=0.01) and hardware.fits(est, hardware.find_gpu("RTX 4090"))
