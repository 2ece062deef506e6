"""Exact tokens for open models: their own tokenizer and chat template when it loads offline,
otherwise o200k counts that say they are approximate."""

from __future__ import annotations

import pytest

from ftassist.data.tokens import (
    count_chat,
    count_chat_with_tokenizer,
    counts_for_model,
    is_openai_model,
    open_model_tokenizer,
)

pytest.importorskip("transformers")

CHAT = {"messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "hello world, how is the weather"},
                     {"role": "assistant", "content": "the weather is sunny", "weight": 1}]}
PARTS = {"messages": [{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": [{"type": "text", "text": "hello world, how is the weather"}]},
                      {"role": "assistant", "content": [{"type": "text", "text": "the weather is sunny"}], "weight": 1}]}


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    from ftassist.train.tiny import build_tokenizer

    tokenizer = build_tokenizer(["hello world how is the weather", "the weather is sunny", "be brief"], vocab_size=300)
    folder = tmp_path_factory.mktemp("tiny-model")
    tokenizer.save_pretrained(folder)
    return folder


def rendered_length(folder, messages) -> int:
    """The referee: the tokenizer's own chat template, rendered to text and encoded."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_a_local_open_model_counts_with_its_own_tokenizer_and_template(model_folder):
    counts, label, exact = counts_for_model([CHAT, PARTS], str(model_folder))
    assert exact and label.endswith("tokenizer")
    plain = [{k: v for k, v in m.items() if k != "weight"} for m in CHAT["messages"]]
    expected_total = rendered_length(model_folder, plain)
    tokenizer = open_model_tokenizer(str(model_folder))
    expected_answer = len(tokenizer.encode("the weather is sunny", add_special_tokens=False))
    assert counts == [(expected_total, expected_answer), (expected_total, expected_answer)]
    assert counts[0] != count_chat(CHAT)  # not o200k's figure: the tokenizers differ


def test_tool_calls_render_through_the_template(model_folder):
    tokenizer = open_model_tokenizer(str(model_folder))
    chat = {"messages": [{"role": "user", "content": "weather?"},
                         {"role": "assistant", "content": None, "tool_calls": [
                             {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "x"}'}}]},
                         {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                         {"role": "assistant", "content": "sunny"}]}
    counted = count_chat_with_tokenizer(chat, tokenizer)
    assert counted is not None and counted[1] > len(tokenizer.encode("sunny", add_special_tokens=False))


def test_an_open_model_without_its_tokenizer_counts_with_o200k_and_says_approximate():
    counts, label, exact = counts_for_model([CHAT], "nobody-org/no-such-model-7b")
    assert (counts, label, exact) == ([count_chat(CHAT, "o200k_base")], "o200k_base", False)


def test_openai_models_count_exactly_with_tiktoken():
    assert is_openai_model("ft:gpt-4.1-mini-2025-04-14:org::x") and not is_openai_model("openai/gpt-oss-20b")
    assert open_model_tokenizer("gpt-4o-mini") is None
    counts, label, exact = counts_for_model([CHAT], "gpt-4o-mini")
    assert (counts, label, exact) == ([count_chat(CHAT, "o200k_base")], "o200k_base", True)
    counts, label, exact = counts_for_model([CHAT], "gpt-3.5-turbo")
    assert label == "cl100k_base" and exact
