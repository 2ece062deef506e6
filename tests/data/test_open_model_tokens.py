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


def test_has_own_tokenizer_looks_without_loading(model_folder, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from ftassist.data.tokens import has_own_tokenizer

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    assert has_own_tokenizer(str(model_folder))
    assert not has_own_tokenizer("meta-llama/Llama-3.1-8B") and not has_own_tokenizer("gpt-4o-mini")
    assert not has_own_tokenizer(None) and not has_own_tokenizer("not a model id at all")


def test_openai_models_count_exactly_with_tiktoken():
    assert is_openai_model("ft:gpt-4.1-mini-2025-04-14:org::x") and not is_openai_model("openai/gpt-oss-20b")
    assert open_model_tokenizer("gpt-4o-mini") is None
    counts, label, exact = counts_for_model([CHAT], "gpt-4o-mini")
    assert (counts, label, exact) == ([count_chat(CHAT, "o200k_base")], "o200k_base", True)
    counts, label, exact = counts_for_model([CHAT], "gpt-3.5-turbo")
    assert label == "cl100k_base" and exact


# --------------------------------------------------------------------------- wired into the check and the estimate

TOOLS_CHAT = {"messages": [{"role": "user", "content": "what is the weather"},
                           {"role": "assistant", "content": None, "tool_calls": [
                               {"id": "c1", "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city": "x"}'}}]},
                           {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                           {"role": "assistant", "content": "the weather is sunny"}],
              "tools": [{"type": "function", "function": {"name": "get_weather", "description": "the weather",
                                                          "parameters": {"type": "object", "properties": {
                                                              "city": {"type": "string"}}}}}]}


def write_jsonl(path, chats):
    import json

    path.write_text("".join(json.dumps(chat) + "\n" for chat in chats), encoding="utf-8")
    return path


def template_length(folder, chat) -> int:
    """The referee: `apply_chat_template` called directly, tools included, tool call arguments as objects."""
    import json

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    messages = []
    for message in chat["messages"]:
        message = {k: v for k, v in message.items() if k != "weight"}
        if message.get("tool_calls"):
            message["tool_calls"] = [{**c, "function": {**c["function"],
                                                        "arguments": json.loads(c["function"]["arguments"])}}
                                     for c in message["tool_calls"]]
        messages.append(message)
    ids = tokenizer.apply_chat_template(messages, tools=chat.get("tools"), tokenize=True)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


def test_the_check_counts_every_example_with_the_open_models_own_tokenizer(model_folder, tmp_path):
    from ftassist.data.check import check_path, count_tokens

    chats = [CHAT, TOOLS_CHAT, CHAT]
    path = write_jsonl(tmp_path / "chats.jsonl", chats)
    report = check_path(path, model=str(model_folder))
    expected = [template_length(model_folder, chat) for chat in chats]
    assert report.tokens.per_example == expected
    assert report.tokens.total == sum(expected)
    assert report.tokens.exact and report.tokens.encoding == f"{model_folder} tokenizer"
    assert report.tokens.per_example != [count_chat(chat)[0] for chat in chats]  # not o200k's
    counted = count_tokens(path, model=str(model_folder))  # the estimate's recount of a train split
    assert (counted.per_example, counted.exact, counted.encoding) == (expected, True, report.tokens.encoding)


def test_an_unloadable_open_model_is_counted_with_o200k_and_labelled_approximate(tmp_path):
    from ftassist.commands.data import render_text
    from ftassist.data.check import check_path, count_tokens

    path = write_jsonl(tmp_path / "chats.jsonl", [CHAT, CHAT])
    report = check_path(path, model="nobody-org/no-such-model-7b")
    assert not report.tokens.exact and report.tokens.encoding == "o200k_base"
    assert report.tokens.per_example == [count_chat(CHAT, "o200k_base")[0]] * 2
    assert not count_tokens(path, model="nobody-org/no-such-model-7b").exact
    text = render_text(report.to_dict())
    token_line = next(line for line in text.splitlines() if line.startswith("tokens"))
    assert "approximate" in token_line and token_line.count("~") == 5  # total, min, median, p95, max
    assert "nobody-org/no-such-model-7b's own tokenizer" in text
    exact_text = render_text(check_path(path, model="gpt-4o-mini").to_dict())
    assert "approximate" not in exact_text and "~" not in exact_text


def test_the_data_tab_summary_says_approximate(tmp_path):
    pytest.importorskip("gradio")
    from ftassist.data.check import check_path
    from ftassist.ui.data_tab import summary_markdown

    path = write_jsonl(tmp_path / "chats.jsonl", [CHAT])
    approximate = summary_markdown(check_path(path, model="nobody-org/no-such-model-7b").to_dict())
    assert "approximate" in approximate.lower() and "~" in approximate
    exact = summary_markdown(check_path(path, model="gpt-4o-mini").to_dict())
    assert "exact" in exact and "approximate" not in exact.lower()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from ftassist.train.tiny import build_tiny_model

    folder = tmp_path_factory.mktemp("tiny-full-model")
    return build_tiny_model(folder, ["hello world how is the weather", "the weather is sunny", "be brief"],
                            vocab_size=300)


def test_the_estimates_open_model_rows_are_exact_only_for_the_model_that_counted(tiny_model, tmp_path):
    from ftassist.data.check import check_path
    from ftassist.plan.estimate import estimate_from_report

    path = write_jsonl(tmp_path / "chats.jsonl", [CHAT, TOOLS_CHAT] * 5)
    options = {"base_models": [str(tiny_model), "meta-llama/Llama-3.1-8B"], "include_openai": True,
               "openai_models": ["gpt-4o-mini-2024-07-18"], "allow_network": False, "local_gpus": []}
    table = estimate_from_report(check_path(path, model=str(tiny_model)), options)
    open_rows = [r for r in table.rows if r.kind != "openai"]
    assert {r.tokens_exact for r in open_rows if r.model == str(tiny_model)} == {True}
    assert {r.tokens_exact for r in open_rows if r.model == "meta-llama/Llama-3.1-8B"} == {False}
    assert {r.tokens_exact for r in table.rows if r.kind == "openai"} == {False}  # not o200k counts
    assert table.inputs["open_model_tokens"] == "approximate"

    approximate = estimate_from_report(check_path(path, model="nobody-org/no-such-model-7b"), options)
    assert not any(r.tokens_exact for r in approximate.rows if r.kind != "openai")
    openai = estimate_from_report(check_path(path, model="gpt-4o-mini"), options)
    assert all(r.tokens_exact for r in openai.rows if r.kind == "openai")
    assert not any(r.tokens_exact for r in openai.rows if r.kind != "openai")

    only_tiny = estimate_from_report(check_path(path, model=str(tiny_model)), {**options, "base_models": [str(tiny_model)]})
    assert only_tiny.inputs["open_model_tokens"] == "exact"


def test_the_estimate_of_a_split_counts_the_train_file_for_the_open_base_model(tiny_model, tmp_path, monkeypatch):
    import json

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))  # Llama is not here

    from ftassist.store import Store
    from ftassist.usecases import data, planning
    from ftassist.usecases.context import Context, Settings
    from ftassist.usecases.session import Dataset, Session

    chats = [{"messages": [{"role": "user", "content": f"how is the weather {i}"},
                           {"role": "assistant", "content": "sunny " * (i % 5 + 1)}]} for i in range(20)]
    path = write_jsonl(tmp_path / "weather.jsonl", chats)
    store = Store(tmp_path / "home" / "ftassist.duckdb")
    try:
        ctx = Context(settings=Settings(data_dir=tmp_path / "home"), _store=store)
        checked = data.check_dataset(ctx, str(path))
        cleaned = data.clean_dataset(ctx, checked.path, valid_fraction=0.25, seed=1)
        session = Session().checked(Dataset(checked.path, checked.report)).split_into(data.split_of(cleaned))
        train = [json.loads(line) for line in open(cleaned.train_path)]
        options = {"include_openai": False, "allow_network": False, "local_gpus": [], "epochs": 1}

        # the base model's tokenizer is here: it counts, even beside an OpenAI model (whose rows then say "~")
        own = planning.estimate_options(ctx, session, options={
            **options, "base_models": [str(tiny_model)], "include_openai": True,
            "openai_models": ["gpt-4o-mini-2024-07-18"]})
        assert own.table.inputs["total_tokens"] == sum(template_length(tiny_model, chat) for chat in train)
        assert own.table.inputs["open_model_tokens"] == "exact" and own.counted.startswith("exact")
        assert {row.tokens_exact for row in own.table.rows if row.kind != "openai"} == {True}
        assert {row.tokens_exact for row in own.table.rows if row.kind == "openai"} == {False}

        openai = planning.estimate_options(ctx, session, options={
            **options, "base_models": ["meta-llama/Llama-3.1-8B"], "include_openai": True,
            "openai_models": ["gpt-4o-mini-2024-07-18"]})
        assert openai.table.inputs["total_tokens"] == sum(count_chat(chat, "o200k_base")[0] for chat in train)
        assert {row.tokens_exact for row in openai.table.rows if row.kind == "openai"} == {True}
        assert {row.tokens_exact for row in openai.table.rows if row.kind != "openai"} == {False}

        other = planning.estimate_options(ctx, session, options={**options, "base_models": ["meta-llama/Llama-3.1-8B"]})
        assert other.table.inputs["total_tokens"] == sum(count_chat(chat, "o200k_base")[0] for chat in train)
        assert other.table.inputs["open_model_tokens"] == "approximate" and other.counted.startswith("approximate")
        assert not any(row.tokens_exact for row in other.table.rows)
    finally:
        store.close()
