"""OpenAI billing: auto epochs at the cookbook's edges, per-example clipping, overrides, inference."""

from __future__ import annotations

import json

import pytest

from ftassist.plan import pricing


@pytest.mark.parametrize(
    "n, expected",
    [(1, 25), (5, 20), (33, 3), (34, 3), (8_333, 3), (8_334, 2), (100_000, 1), (12_500, 2), (25_001, 1)],
)
def test_auto_epochs_edges(n, expected):
    assert pricing.auto_epochs(n) == expected


def test_resolve_epochs_explains_and_validates():
    value, how = pricing.resolve_epochs("auto", 5)
    assert value == 20 and "min(25, 100 // 5)" in how
    value, how = pricing.resolve_epochs(None, 100_000)
    assert value == 1 and "max(1, 25,000 // 100,000)" in how
    assert pricing.resolve_epochs("4", 10)[0] == 4
    for bad in ("zero", 0, 51, "-1"):
        with pytest.raises(ValueError):
            pricing.resolve_epochs(bad, 10)


def test_seed_example_four_dollars_per_epoch():
    # 1,000 examples x 500 tokens at $0.008 per 1K tokens ($8 per 1M) = $4 per epoch
    price = pricing.get_price("gpt-3.5-turbo")
    assert price.training == 8.0
    cost = pricing.training_cost([500] * 1000, price, epochs=1)
    assert cost.billing_tokens == 500_000
    assert cost.training_cost_usd == pytest.approx(4.0)
    cost3 = pricing.training_cost([500] * 1000, price, epochs="auto")
    assert cost3.epochs == 3 and cost3.trained_tokens == 1_500_000
    assert cost3.training_cost_usd == pytest.approx(12.0)
    assert "$4.00 per epoch" in cost3.how["training_cost_usd"]


def test_per_example_limit_clipping():
    price = pricing.get_price("gpt-4.1-nano-2025-04-14")  # limit 32,768
    per_example = [100, 32_768, 40_000, 1_000_000]
    assert pricing.billed_tokens_per_epoch(per_example, price.example_limit) == 100 + 32_768 * 3
    cost = pricing.training_cost(per_example, price, epochs=2)
    assert cost.clipped_examples == 2
    assert cost.trained_tokens == 2 * (100 + 32_768 * 3)
    assert "2 example(s) over the 32,768-token limit" in cost.how["billing_tokens"]
    # gpt-3.5's smaller limit clips more
    assert pricing.get_price("gpt-3.5-turbo-1106").example_limit == 16_385


def test_price_overrides():
    price = pricing.get_price("gpt-4o-mini", {"training": 1.0, "output": None, "input": ""})
    assert price.training == 1.0 and price.output == 1.20 and price.input == 0.30
    assert price.overridden == ("training",)
    cost = pricing.training_cost([50_000] * 20, price, epochs=1)
    assert cost.training_cost_usd == pytest.approx(1.0)
    assert "overridden by you" in cost.how["training_cost_usd"]
    with pytest.raises(ValueError):
        pricing.get_price("gpt-4o-mini", {"training": -1})
    with pytest.raises(ValueError):
        pricing.get_price("gpt-4o-mini", {"bogus": 1})


def test_unknown_model_and_ft_names():
    with pytest.raises(ValueError, match="--training-price"):
        pricing.get_price("my-model")
    assert pricing.get_price("ft:gpt-4.1-mini-2025-04-14:org::abc").model == "gpt-4.1-mini-2025-04-14"


def test_rft_is_billed_per_hour_not_per_token():
    price = pricing.get_price("o4-mini")
    assert price.billed_per_hour and price.training is None and price.training_per_hour == 100.0
    cost = pricing.training_cost([500] * 100, price)
    assert cost.training_cost_usd is None and cost.billed_per_hour
    assert "per hour" in cost.how["training_cost_usd"]


def test_price_file_rows_are_complete():
    data = json.loads(pricing.PRICES_FILE.read_text())
    for name, row in data["models"].items():
        for key in ("training", "input", "cached_input", "output", "example_limit", "encoding", "date", "source"):
            assert key in row, (name, key)
        assert row["encoding"] in ("o200k_base", "cl100k_base")
    # figures from REFERENCE.md
    assert pricing.get_price("gpt-4.1-2025-04-14").training == 25.0
    assert pricing.get_price("gpt-4o-2024-08-06").cached_input == 1.875
    assert pricing.get_price("gpt-4.1-nano").example_limit == 32_768


def test_inference_cost():
    price = pricing.get_price("gpt-4o-mini")  # input 0.30, cached 0.15, output 1.20
    inf = pricing.inference_cost(price, 1_000_000, 300, 100)
    assert inf.monthly_usd == pytest.approx(1_000_000 * (300 * 0.30 + 100 * 1.20) / 1e6)
    cached = pricing.inference_cost(price, 1_000_000, 300, 100, cached_share=1.0)
    assert cached.monthly_usd == pytest.approx(1_000_000 * (300 * 0.15 + 100 * 1.20) / 1e6)
    assert "1,000,000 requests/month" in inf.how


def test_example_limit_for_a_target_model():
    assert pricing.example_limit_for("gpt-4.1-nano-2025-04-14") == 32_768
    assert pricing.example_limit_for("gpt-4.1-mini") == 65_536  # an alias
    assert pricing.example_limit_for("ft:gpt-4.1-nano-2025-04-14:org::abc") == 32_768  # a tuned model: its base's
    assert pricing.example_limit_for("meta-llama/Llama-3.1-8B") is None  # not an OpenAI model: no such limit
    assert pricing.example_limit_for(None) is None and pricing.example_limit_for("  ") is None
