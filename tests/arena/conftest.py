"""Fixtures of the arena tests: a fake OpenAI-compatible server and a tiny local Llama.

The tiny model is built here, at test time, from a few sentences (random weights, a
byte-level BPE tokenizer with a ChatML template), so nothing is downloaded. When the
train station's `build_tiny_model` exists it is used instead, so both stay in step.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


SENTENCES = [
    "The cat sat on the mat and looked at the garden.",
    "What is the capital of France? The capital of France is Paris.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "Please summarise the report in two short sentences.",
    "A good answer is short, clear and correct.",
    "Fine-tuning adapts a pretrained model to a narrow task.",
]

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_local_tiny_model(out_dir: Path, texts: list[str]) -> Path:
    """A ~120k-parameter Llama (hidden 64, 2 layers, 4 heads) and a BPE tokenizer trained on `texts`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out_dir.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=["<pad>", "<s>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts * 3, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="<|im_end|>", pad_token="<pad>", chat_template=CHATML
    )
    fast.save_pretrained(out_dir)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny_model")
    try:
        from ftassist.train.tiny import build_tiny_model
    except ImportError:
        return build_local_tiny_model(out, SENTENCES)
    return Path(build_tiny_model(out, SENTENCES))


@pytest.fixture(scope="session")
def tiny_adapter_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A LoRA adapter on the tiny model, saved untrained but with random B so it changes outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("tiny_adapter")
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                      task_type="CAUSAL_LM")
    get_peft_model(base, lora).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    """Loaded models are cached per process; tests must not see each other's."""
    from ftassist.arena import models

    models.clear_cache()
    yield
    models.clear_cache()


@pytest.fixture
def store():
    """The test's store (its own FTASSIST_HOME): what the use cases' Context opens too."""
    from ftassist.store import get_store

    return get_store()


@pytest.fixture
def ctx(store):
    from ftassist.usecases.context import Context

    return Context.open()
