"""`tiny-random`: a Llama-architecture model small enough to train on a laptop CPU in seconds.

It exists so the whole Train path (worker, events, adapter, merge, arena) runs offline: the
app's demo and the tests use it. The weights are random and the tokenizer is trained on the
run's own training texts in well under a second, so nothing is downloaded, and the same texts
and seed give the same model.

Also home of the chat templates the worker gives a base model that has none, both with
`{% generation %}` markers so TRL can mask the loss to assistant tokens: ChatML when the
tokenizer has its tokens, else a plain-text one ending answers with the tokenizer's eos.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"

def _training_template(start: str, end: str, stop: str, sep: str) -> str:
    """A chat template with `{% generation %}` around each assistant turn, tools included.

    A turn is `start(role)` + content + `end`; the assistant's turn, its tool calls and its
    stop token (`stop`) sit inside the generation block, so the model learns to call tools
    and to stop (TRL checks the latter: is_chat_template_stop_token_trained). Tools, when a
    conversation offers some, are listed in the system turn and calls are written as
    `<tool_call>{"name": ..., "arguments": ...}</tool_call>`, the convention of Qwen and
    Hermes; tool results come back in `tool` turns.
    """
    return (
        "{%- if tools %}"
        "{{- " + start.format(role="system") + " }}"
        "{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] + '\\n\\n' }}{%- endif %}"
        "{{- '# Tools\\nYou may call these functions:\\n<tools>' }}"
        "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
        "{{- '\\n</tools>\\nTo call one, answer <tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call>.' }}"
        "{{- " + end + " }}"
        "{%- endif %}"
        "{%- for message in messages %}"
        "{%- if not (tools and loop.first and message['role'] == 'system') %}"
        "{{- " + start.format(role="' + message['role'] + '") + " }}"
        "{%- if message['role'] == 'assistant' %}"
        "{%- generation %}{{- message['content'] or '' }}"
        "{%- for call in message.tool_calls or [] %}"
        "{%- set fn = call.function if call.function is defined else call %}"
        "{{- '<tool_call>{\"name\": \"' + fn.name + '\", \"arguments\": ' }}"
        "{{- fn.arguments if fn.arguments is string else fn.arguments | tojson }}"
        "{{- '}</tool_call>' }}"
        "{%- endfor %}"
        "{{- " + stop + " }}{%- endgeneration %}"
        "{{- " + sep + " }}"
        "{%- else %}"
        "{{- (message['content'] or '') + " + end + " }}"
        "{%- endif %}"
        "{%- endif %}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- " + start.format(role="assistant") + " }}{%- endif %}"
    )


# ChatML when the tokenizer has its tokens.
CHATML_TRAINING_TEMPLATE = _training_template(
    start="'<|im_start|>{role}\\n'", end="'<|im_end|>\\n'", stop="'<|im_end|>'", sep="'\\n'")

# For a base model with no template and no ChatML tokens: plain-text role headers, and the
# tokenizer's own end-of-sequence token (which the model already knows) closes each answer, so
# no token has to be added and no embedding resized.
PLAIN_TRAINING_TEMPLATE = _training_template(
    start="'### {role}:\\n'", end="'\\n\\n'", stop="eos_token", sep="'\\n\\n'")

TINY_CONFIG = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)


def texts_from_jsonl(path: str | Path, limit: int = 20_000) -> list[str]:
    """The message contents of a chat JSONL file (what the tokenizer should learn to encode)."""
    texts: list[str] = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= limit:
                break
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            for m in obj.get("messages", []) if isinstance(obj, dict) else []:
                if isinstance(m, dict) and isinstance(m.get("content"), str):
                    texts.append(m["content"])
    return texts


def build_tokenizer(texts: Iterable[str], vocab_size: int = 2048):
    """A byte-level BPE tokenizer trained on `texts` (any text stays encodable: no unknown bytes)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = [PAD, BOS, EOS, UNK, IM_START, IM_END]
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = [t for t in texts if t] or ["hello world"]
    tok.train_from_iterator(texts, trainer=trainer)
    # End of turn is end of sequence (as in Qwen's tokenizers): generation stops after an answer.
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=IM_END,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=[IM_START, EOS],
    )
    fast.chat_template = CHATML_TRAINING_TEMPLATE
    return fast


def build_tiny_model(out_dir: str | Path, texts: Iterable[str], seed: int = 42, vocab_size: int = 2048) -> Path:
    """Write a random-weight Llama (a few hundred thousand parameters) and its tokenizer to `out_dir`.

    The end-of-sequence token is `<|im_end|>` (tokenizer and model agree), so generation stops at
    the end of an assistant turn.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(texts, vocab_size=vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TINY_CONFIG,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
