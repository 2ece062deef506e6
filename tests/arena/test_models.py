"""The model registry and `generate`: against the fake API server and a tiny local model."""

from __future__ import annotations

import json

import pytest

from ftassist.arena import models
from ftassist.arena.models import ModelError


# -- registry -----------------------------------------------------------------------------


def test_add_list_get_remove(fake_llm, tiny_model_dir, store):
    api_id = models.add_model(store, "openai_compatible", "Local vLLM", {"base_url": fake_llm.base_url + "/", "model": "base"})
    hf_id = models.add_model(store, "hf", "Tiny base", {"model": str(tiny_model_dir)})
    assert api_id == "local-vllm" and hf_id == "tiny-base"
    listed = {m["id"]: m for m in models.list_models(store)}
    assert set(listed) == {api_id, hf_id}
    assert listed[api_id]["kind"] == "openai_compatible"
    assert listed[api_id]["config"]["base_url"] == fake_llm.base_url  # trailing slash trimmed
    assert models.get_model(store, "tiny base")["id"] == hf_id  # by display name too
    assert models.remove_model(store, api_id)["votes_kept"] == 0
    with pytest.raises(ModelError, match="No model"):
        models.remove_model(store, api_id)
    assert [m["id"] for m in models.list_models(store)] == [hf_id]
    with pytest.raises(ModelError, match="No model"):
        models.get_model(store, api_id)
    # the removed model's row stays (marked), its name is free again, its id is never reused
    assert [m["id"] for m in models.list_models(store, include_removed=True) if m["removed_at"]] == [api_id]
    assert models.add_model(store, "hf", "Local vLLM", {"model": "org/x"}) == "local-vllm-2"


@pytest.mark.parametrize(
    "kind, config, match",
    [
        ("gguf", {"model": "x"}, "Unknown model kind"),
        ("openai", {}, "needs model"),
        ("openai_compatible", {"model": "m"}, "needs base_url"),
        ("openai_compatible", {"base_url": "localhost:8000", "model": "m"}, "http"),
        ("openai", {"model": "gpt-4o-mini", "api_key": "sk-abc"}, "never stores API keys"),
        ("openai", {"model": "gpt-4o-mini", "api_key_env": "sk-proj-0123456789abcdefghij"}, "never stores API keys"),
        ("openai", {"model": "gpt-4o-mini", "api_key_env": "not a name"}, "NAME of an environment variable"),
        ("openai", {"model": "gpt-4o-mini", "temprature": 0.2}, "Unknown config key"),
        ("openai", {"model": "gpt-4o-mini", "max_concurrency": 0}, "max_concurrency"),
        ("hf_adapter", {"base_model": "x", "adapter_dir": "/nonexistent/adapter"}, "No LoRA adapter"),
        ("hf", {"model": "m", "sampling": {"temperature": 5}}, "temperature"),
    ],
)
def test_validation_errors(kind, config, match, store):
    with pytest.raises(ModelError, match=match):
        models.add_model(store, kind, "m", config)
    assert models.list_models(store) == []


def test_duplicate_name_and_blank_name(store):
    models.add_model(store, "openai", "GPT mini", {"model": "gpt-4o-mini"})
    with pytest.raises(ModelError, match="already registered"):
        models.add_model(store, "openai", "gpt MINI", {"model": "gpt-4o-mini"})
    with pytest.raises(ModelError, match="display name"):
        models.add_model(store, "openai", "  ", {"model": "gpt-4o-mini"})


def test_no_key_reaches_the_database(monkeypatch, store):
    monkeypatch.setenv("MY_KEY", "sk-secret-value-123456789")
    models.add_model(store, "openai", "ft model", {"model": "ft:gpt-4o-mini:org::abc", "api_key_env": "MY_KEY"})
    from ftassist.store import get_store

    dump = json.dumps(get_store().query("SELECT * FROM arena_models"), default=str)
    assert "MY_KEY" in dump and "sk-secret" not in dump


def _from_run(store, run, name):
    kind, config = models.run_model_config(run)
    return models.add_model(store, kind, name, config)


def test_model_from_run_local_adapter_and_openai(tmp_path, tiny_adapter_dir, tiny_model_dir, store):
    run = tmp_path / "run1"
    run.mkdir()
    (run / "spec.json").write_text(json.dumps({"backend": "local", "base_model": str(tiny_model_dir), "method": "lora"}))
    (run / "events.jsonl").write_text(
        json.dumps({"type": "started"}) + "\n" + json.dumps({"type": "finished", "output_dir": str(tiny_adapter_dir)}) + "\n"
    )
    model_id = _from_run(store, run, "tuned")
    row = models.get_model(store, model_id)
    assert row["kind"] == "hf_adapter"
    assert row["config"]["adapter_dir"] == str(tiny_adapter_dir.resolve())
    assert row["config"]["base_model"] == str(tiny_model_dir)

    oa = tmp_path / "run2"
    oa.mkdir()
    (oa / "spec.json").write_text(json.dumps({"backend": "openai", "base_model": "gpt-4o-mini-2024-07-18"}))
    (oa / "events.jsonl").write_text(json.dumps({"type": "finished", "output_dir": "ft:gpt-4o-mini:acme::x1"}))
    row = models.get_model(store, _from_run(store, oa, "oa"))
    assert row["kind"] == "openai" and row["config"]["model"] == "ft:gpt-4o-mini:acme::x1"

    # a tiny-random run: the worker built the base model inside the run folder
    import shutil

    tr = tmp_path / "run4"
    shutil.copytree(tiny_model_dir, tr / "base_model")
    shutil.copytree(tiny_adapter_dir, tr / "output")
    (tr / "spec.json").write_text(json.dumps({"backend": "local", "base_model": "tiny-random",
                                              "output_dir": str(tr / "output")}))
    (tr / "events.jsonl").write_text(json.dumps({"type": "finished", "output_dir": str(tr / "output")}) + "\n")
    row = models.get_model(store, _from_run(store, tr, "tiny tuned"))
    assert row["kind"] == "hf_adapter" and row["config"]["base_model"] == str((tr / "base_model").resolve())
    out = models.generate(store, row["id"], ["Hi"], {"temperature": 0, "max_new_tokens": 3})
    assert out[0]["error"] is None

    unfinished = tmp_path / "run3"
    unfinished.mkdir()
    (unfinished / "spec.json").write_text("{}")
    with pytest.raises(ModelError, match="not finished"):
        models.run_model_config(unfinished)


# -- API generation ---------------------------------------------------------------------------


def test_generate_api_concurrent_and_sampling_stored(fake_llm, store):
    fake_llm.delay_s = 0.15
    model_id = models.add_model(store,
        "openai_compatible", "base", {"base_url": fake_llm.base_url, "model": "base", "max_concurrency": 3}
    )
    prompts = [f"question {i}" for i in range(9)] + [[{"role": "system", "content": "Be brief."},
                                                      {"role": "user", "content": "chat prompt"}]]
    out = models.generate(store, model_id, prompts, {"temperature": 0.2, "max_new_tokens": 32, "seed": 7})
    assert len(out) == 10 and all(r["error"] is None for r in out)
    assert out[0]["text"].startswith("Answer to 'question 0'")
    assert out[9]["text"].startswith("Answer to 'chat prompt'")
    assert out[0]["sampling"] == {"temperature": 0.2, "top_p": 1.0, "max_new_tokens": 32, "seed": 7}
    assert 2 <= fake_llm.max_in_flight <= 3  # concurrent, but within the limit
    sent = fake_llm.requests[0]
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 32 and sent["seed"] == 7
    # deterministic per model name: another model answers differently, the same model the same
    other = models.add_model(store, "openai_compatible", "tuned", {"base_url": fake_llm.base_url, "model": "tuned"})
    again = models.generate(store, model_id, ["question 0"])[0]["text"]
    assert again == out[0]["text"] != models.generate(store, other, ["question 0"])[0]["text"]


def test_generate_api_retries_429_through_the_sdk(fake_llm, store):
    fake_llm.fail_first_429 = 2
    model_id = models.add_model(store, "openai_compatible", "base", {"base_url": fake_llm.base_url, "model": "base",
                                                                    "max_concurrency": 1})
    out = models.generate(store, model_id, ["hello"])
    assert out[0]["error"] is None  # the SDK's own retries (default 2) got past two 429s
    assert len(fake_llm.requests) == 3
    fake_llm.fail_first_429 = 1
    once = models.add_model(store, "openai_compatible", "no retry", {"base_url": fake_llm.base_url, "model": "base",
                                                                      "max_retries": 0})
    out = models.generate(store, once, ["hello"])
    assert "RateLimitError" in out[0]["error"] and out[0]["text"] == ""


def test_generate_api_one_failing_prompt_keeps_the_others(fake_llm, store):
    fake_llm.fail_marker = "BOOM"
    model_id = models.add_model(store, "openai_compatible", "base", {"base_url": fake_llm.base_url, "model": "base",
                                                             "max_retries": 1})
    out = models.generate(store, model_id, ["one", "BOOM please", "three", "", [{"role": "assistant", "content": "x"}]])
    assert [r["error"] is None for r in out] == [True, False, True, False, False]
    assert "InternalServerError (after 1 retries)" in out[1]["error"] and out[1]["text"] == ""
    assert "bad prompt" in out[3]["error"] and "bad prompt" in out[4]["error"]
    assert out[2]["text"].startswith("Answer to 'three'")


def test_generate_openai_without_key_says_which_variable(monkeypatch, store):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model_id = models.add_model(store, "openai", "gpt", {"model": "gpt-4o-mini"})
    out = models.generate(store, model_id, ["a", "b"])
    assert all("OPENAI_API_KEY is not set" in r["error"] for r in out)


def test_generate_openai_kind_against_fake_server(fake_llm, monkeypatch, store):
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test-0000")
    model_id = models.add_model(store, "openai", "ft", {"model": "tuned", "base_url": fake_llm.base_url,
                                                "api_key_env": "TEST_OPENAI_KEY"})
    out = models.generate(store, model_id, ["hi"], {"max_new_tokens": 16})
    assert out[0]["error"] is None
    assert fake_llm.requests[0]["max_completion_tokens"] == 16  # OpenAI's current parameter name


def test_bad_sampling_raises(store):
    model_id = models.add_model(store, "openai", "gpt", {"model": "gpt-4o-mini"})
    with pytest.raises(ModelError, match="Unknown sampling"):
        models.generate(store, model_id, ["a"], {"temp": 1})


# -- local generation ----------------------------------------------------------------------------


def test_generate_local_batched_deterministic(tiny_model_dir, store):
    model_id = models.add_model(store, "hf", "tiny", {"model": str(tiny_model_dir)})
    prompts = ["What is the capital of France?", "Hi", [{"role": "user", "content": "Summarise the report."}], ""]
    greedy = {"temperature": 0, "max_new_tokens": 6, "seed": 0}
    out = models.generate(store, model_id, prompts, greedy, batch_size=3)
    assert len(out) == 4
    assert [r["error"] is None for r in out] == [True, True, True, False]
    assert all(isinstance(r["text"], str) for r in out)
    assert out[0]["sampling"] == {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 6, "seed": 0}
    # left padding: a prompt's answer does not depend on its batch-mates
    alone = models.generate(store, model_id, [prompts[1]], greedy)[0]["text"]
    assert alone == out[1]["text"]
    # sampling with a seed is repeatable
    sampled = {"temperature": 1.0, "max_new_tokens": 6, "seed": 3}
    a = [r["text"] for r in models.generate(store, model_id, prompts[:2], sampled)]
    b = [r["text"] for r in models.generate(store, model_id, prompts[:2], sampled)]
    assert a == b


def test_generate_local_tokens_count(tiny_model_dir):
    """max_new_tokens bounds the answer (the tiny model never stops early by itself reliably)."""
    loaded = models.load_local("hf", models.validate_config("hf", {"model": str(tiny_model_dir)}))
    text = models.generate_with_config("hf", {"model": str(tiny_model_dir)}, ["Hi"],
                                       {"temperature": 0, "max_new_tokens": 5})[0]["text"]
    assert len(loaded.tokenizer(text, add_special_tokens=False)["input_ids"]) <= 6


def test_generate_with_lora_adapter(tiny_model_dir, tiny_adapter_dir, store):
    base = models.add_model(store, "hf", "tiny", {"model": str(tiny_model_dir)})
    tuned = models.add_model(store, "hf_adapter", "tiny+lora", {"base_model": str(tiny_model_dir),
                                                         "adapter_dir": str(tiny_adapter_dir)})
    loaded = models.load_registered(store, tuned)
    assert type(loaded.model).__name__.startswith("Peft")
    prompts = ["What is the capital of France?", "Water boils at"]
    greedy = {"temperature": 0, "max_new_tokens": 8}
    out_t = models.generate(store, tuned, prompts, greedy)
    out_b = models.generate(store, base, prompts, greedy)
    assert all(r["error"] is None for r in out_t + out_b)
    assert [r["text"] for r in out_t] == [r["text"] for r in models.generate(store, tuned, prompts, greedy)]

    import torch

    base_loaded = models.load_registered(store, base)
    enc = base_loaded.tokenizer(["Water boils at"], return_tensors="pt")
    with torch.no_grad():
        diff = (loaded.model(**enc).logits - base_loaded.model(**enc).logits).abs().max().item()
    assert diff > 1e-4  # the adapter is really applied


def test_local_cache_is_lru_of_two(tiny_model_dir, tiny_adapter_dir):
    cfg = {"model": str(tiny_model_dir)}
    first = models.load_local("hf", cfg, cache_key="a")
    assert models.load_local("hf", cfg, cache_key="a") is first
    models.load_local("hf", cfg, cache_key="b")
    models.load_local("hf", cfg, cache_key="c")
    assert len(models._CACHE) == 2
    assert models.load_local("hf", cfg, cache_key="a") is not first  # evicted, loaded again


def test_local_model_that_cannot_load_fails_each_prompt(tmp_path):
    missing = tmp_path / "nothing"
    out = models.generate_with_config("hf", {"model": str(missing)}, ["a", "b"])
    assert len(out) == 2 and all(r["error"] for r in out)


def test_errors_never_carry_the_key(fake_llm, store, monkeypatch):
    fake_llm.expected_key = "the-right-key-0000"
    monkeypatch.setenv("ARENA_TEST_KEY", "a-wrong-key-1234")  # the server's 401 quotes the key it got
    model_id = models.add_model(store, "openai_compatible", "keyed", {"base_url": fake_llm.base_url, "model": "base",
                                                                     "api_key_env": "ARENA_TEST_KEY"})
    error = models.generate(store, model_id, ["hi"])[0]["error"]
    assert "AuthenticationError" in error and "Incorrect API key provided: ***" in error
    assert "a-wrong-key-1234" not in error


def test_config_sampling_is_the_default_and_call_overrides(fake_llm, store):
    model_id = models.add_model(store, "openai_compatible", "base", {"base_url": fake_llm.base_url, "model": "base",
                                                             "sampling": {"temperature": 0.1, "max_new_tokens": 64}})
    assert models.generate(store, model_id, ["a"])[0]["sampling"]["temperature"] == 0.1
    out = models.generate(store, model_id, ["a"], {"temperature": 0.9})[0]["sampling"]
    assert out["temperature"] == 0.9 and out["max_new_tokens"] == 64


def test_list_endpoint_models(fake_llm):
    assert models.list_endpoint_models(fake_llm.base_url) == ["base", "judge", "tuned"]
    with pytest.raises(ModelError, match="Could not list"):
        models.list_endpoint_models("http://127.0.0.1:9/v1", timeout_s=2)
