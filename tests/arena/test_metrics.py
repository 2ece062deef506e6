"""Automatic metrics: loss/perplexity on a tiny model, ROUGE-L/BLEU/exact match on known texts."""

from __future__ import annotations

import json
import math

import pytest

from ftassist.arena import metrics, models

VALID = [
    {"messages": [{"role": "user", "content": "What is the capital of France?"},
                  {"role": "assistant", "content": "The capital of France is Paris."}]},
    {"messages": [{"role": "system", "content": "Answer briefly."},
                  {"role": "user", "content": "At what temperature does water boil?"},
                  {"role": "assistant", "content": "One hundred degrees Celsius."}]},
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                  {"role": "user", "content": "Summarise the report."},
                  {"role": "assistant", "content": "A good answer is short."}]},
]


@pytest.fixture
def valid_file(tmp_path):
    path = tmp_path / "valid.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in VALID) + "\n", encoding="utf-8")
    return path


def test_loss_and_perplexity_tiny_model(tiny_model_dir, store):
    model_id = models.add_model(store, "hf", "tiny", {"model": str(tiny_model_dir)})
    out = metrics.loss_and_perplexity(models.load_registered(store, model_id), VALID)
    assert out["n_examples"] == 3 and out["n_skipped"] == 0
    assert math.isfinite(out["loss"]) and out["loss"] > 0
    assert out["perplexity"] == pytest.approx(math.exp(out["loss"]))
    # a random model is near-uniform over its vocabulary: loss close to log(V)
    vocab = len(models.load_registered(store, model_id).tokenizer)
    assert abs(out["loss"] - math.log(vocab)) < 1.5

    # only assistant tokens are scored: their count is what the template spans hold
    loaded = models.load_registered(store, model_id)
    text, spans = metrics._assistant_spans(loaded, VALID[2]["messages"])
    assert [text[a:b] for a, b in spans] == ["Hello.<|im_end|>", "A good answer is short.<|im_end|>"]
    # batching does not change the figure
    one_by_one = metrics.loss_and_perplexity(loaded, VALID, batch_size=1)
    assert one_by_one["loss"] == pytest.approx(out["loss"], rel=1e-4)
    assert one_by_one["n_tokens"] == out["n_tokens"]


def test_api_model_has_no_loss(fake_llm, store):
    api = models.add_model(store, "openai_compatible", "api", {"base_url": fake_llm.base_url, "model": "base"})
    with pytest.raises(models.ModelError, match="need a local model"):
        models.load_registered(store, api)


def test_text_metrics_identical_and_partial():
    same = metrics.text_metrics(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert same["rouge_l"] == pytest.approx(1.0) and same["bleu"] == pytest.approx(100.0)
    # hand-checked: LCS("the cat sat", "the cat sat on the mat") = 3 tokens -> P = 1, R = 3/6, F = 2/3
    partial = metrics.text_metrics(["the cat sat"], ["the cat sat on the mat"])
    assert partial["rouge_l"] == pytest.approx(2 / 3)
    # BLEU: all n-grams of the hypothesis match (precisions 1) but brevity penalty exp(1 - 6/3) applies;
    # with 3 tokens there is no 4-gram, so sacrebleu's default (no smoothing for zero counts) gives 0
    assert partial["bleu"] == pytest.approx(0.0)
    four = metrics.text_metrics(["the cat sat on"], ["the cat sat on the mat"])
    assert four["bleu"] == pytest.approx(100 * math.exp(1 - 6 / 4), rel=1e-3)
    none = metrics.text_metrics(["dog"], ["the cat sat on the mat"])
    assert none["rouge_l"] == 0.0 and none["bleu"] == 0.0
    with pytest.raises(ValueError, match="pair up"):
        metrics.text_metrics(["a"], [])


def test_exact_match_normalised():
    out = metrics.exact_match_accuracy(["Positive.", " the NEGATIVE", "neutral", "positive"],
                                       ["positive", "negative", "positive", "Positive!"])
    assert out == {"accuracy": 0.75, "correct": 3, "n": 4}
    assert metrics.looks_like_labels(["positive", "negative", "positive", "negative"])
    assert not metrics.looks_like_labels(["The capital of France is Paris.", "One hundred degrees Celsius."])


def test_forgetting_check_shape(tiny_model_dir, tiny_adapter_dir, store):
    base = models.add_model(store, "hf", "tiny", {"model": str(tiny_model_dir)})
    tuned = models.add_model(store, "hf_adapter", "tiny+lora", {"base_model": str(tiny_model_dir),
                                                         "adapter_dir": str(tiny_adapter_dir)})
    base, tuned = models.load_registered(store, base), models.load_registered(store, tuned)
    out = metrics.forgetting_check(base, tuned)
    assert out["n_texts"] == len(metrics.general_texts()) >= 30
    assert out["n_tokens"] > 100
    for key in ("base_perplexity", "tuned_perplexity", "ratio"):
        assert math.isfinite(out[key]) and out[key] > 0
    assert out["ratio"] == pytest.approx(out["tuned_perplexity"] / out["base_perplexity"])
    assert out["base_perplexity"] != out["tuned_perplexity"]  # the adapter changes the model
    assert isinstance(out["forgot"], bool)
    same = metrics.forgetting_check(base, base, ["A short plain sentence about the weather."])
    assert same["ratio"] == pytest.approx(1.0) and same["forgot"] is False


def test_evaluate_models_combines_everything(tiny_model_dir, tiny_adapter_dir, valid_file, store):
    base = models.add_model(store, "hf", "tiny", {"model": str(tiny_model_dir)})
    tuned = models.add_model(store, "hf_adapter", "tiny+lora", {"base_model": str(tiny_model_dir),
                                                         "adapter_dir": str(tiny_adapter_dir)})
    out = metrics.evaluate(store, [base, tuned], valid_file, max_examples=2,
                           sampling={"temperature": 0, "max_new_tokens": 8},
                           general=["The river rose after the rain."])
    assert out["n_examples"] == 2 and out["n_scored"] == 2 and out["labels"] is False
    for r in out["models"]:
        assert math.isfinite(r["loss"]) and r["perplexity"] == pytest.approx(math.exp(r["loss"]))
        assert 0.0 <= r["rouge_l"] <= 1.0 and 0.0 <= r["bleu"] <= 100.0
        assert r["n_generated"] == 2 and len(r["predictions"]) == 2
    first, second = out["models"]
    assert "forgetting" not in first  # the first model is the base the others are compared with
    forgetting = second["forgetting"]
    assert forgetting["ratio"] == pytest.approx(forgetting["tuned_perplexity"] / forgetting["base_perplexity"])
    assert out["sampling"]["temperature"] == 0.0


def test_evaluate_models_api_labels(fake_llm, tmp_path, store):
    rows = [{"messages": [{"role": "user", "content": f"review {i}"}, {"role": "assistant", "content": lab}]}
            for i, lab in enumerate(["positive", "negative", "positive", "negative"])]
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    fake_llm.answers["tuned"] = lambda msgs: "Positive."
    base = models.add_model(store, "openai_compatible", "base", {"base_url": fake_llm.base_url, "model": "base"})
    tuned = models.add_model(store, "openai_compatible", "tuned", {"base_url": fake_llm.base_url, "model": "tuned"})
    out = metrics.evaluate(store, [base, tuned], path)
    assert out["labels"] is True
    by_model = {r["model"]: r for r in out["models"]}
    assert by_model[tuned]["exact_match"] == 0.5 and by_model[base]["exact_match"] == 0.0
    assert by_model[tuned]["loss"] is None and "API model" in by_model[tuned]["note"]
    # API models have no perplexity, but the forgetting check still compares their general answers
    forgetting = by_model[tuned]["forgetting"]
    assert forgetting["ratio"] is None and forgetting["n_prompts"] == len(metrics.forgetting_examples())
    assert "forgetting" not in by_model[base]


def test_load_examples_points_at_the_bad_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(VALID[0]) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        metrics.load_examples(path)
