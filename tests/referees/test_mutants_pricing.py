"""OpenAI billing, checked against hand-worked dollars: tests that kill the mutants of `ftassist/plan/pricing.py`.

Referees: the published per-1M-token prices read straight from `prices.json` (not through `load_prices`),
the cookbook's `auto` epochs rule (3 epochs, raised towards 100 example-passes, at most 25; lowered to stay
under 25,000 example-passes, at least 1) and dollar amounts worked out by hand in the comments.

Equivalent mutants (no test can tell them from the original):
- load_prices `bool(row.get("legacy", None))` and `bool(row.get("legacy", ))`: bool(None) is False, the default.
- get_price `(model or "XXXX")`: a None/blank model is unknown either way, and the message shows `model!r`.
- get_price `.split(":", )[0]` and `.split(":", 2)[0]`: the first piece of a split is the same however many follow.
- auto_epochs `n * 3 <= 100` and `n * 3 >= 25_000`: n * 3 is never exactly 100 or 25,000 for a whole n.
- resolve_epochs `n * 3 <= 100` and `n * 3 >= 25_000`: the same two boundaries in the explanation.
- billed_tokens_per_epoch `t <= limit`: a count equal to the limit bills the limit either way.
- training_cost default `epochs="AUTO"`: resolve_epochs lower-cases, so "AUTO" is `auto`.
"""

from __future__ import annotations

import json

import pytest

from ftassist.plan import pricing

TIGHT = 1e-12  # dollars are products of a few exact decimals: anything looser hides a wrong divisor


def raw_models() -> dict:
    """The price file as published, read without the code under test."""
    return json.loads(pricing.PRICES_FILE.read_text(encoding="utf-8"))["models"]


# --------------------------------------------------------------------------- the price file


def test_every_row_of_the_price_file_is_loaded_as_written():
    loaded = pricing.load_prices()
    rows = raw_models()
    assert list(loaded) == list(rows)
    for name, row in rows.items():
        price = loaded[name]
        assert price.to_dict() == {
            "model": name,
            "training": row["training"],
            "input": row["input"],
            "cached_input": row["cached_input"],
            "output": row["output"],
            "example_limit": row["example_limit"],
            "encoding": row["encoding"],
            "date": row["date"],
            "source": row["source"],
            "method": row["method"],
            "training_per_hour": row.get("training_per_hour"),
            "aliases": tuple(row["aliases"]),
            "legacy": row.get("legacy", False),
            "note": row.get("note", ""),
            "overridden": (),
        }, name
    # the rows whose optional fields matter: RFT is billed per hour, gpt-3.5 is legacy, RFT explains itself
    assert loaded["o4-mini-2025-04-16"].method == "reinforcement"
    assert loaded["gpt-3.5-turbo-0125"].legacy is True
    assert loaded["o4-mini-2025-04-16"].note.startswith("Reinforcement fine-tuning is billed per hour")


def test_a_row_without_the_optional_fields_gets_the_documented_defaults(monkeypatch):
    minimal = {"training": 2.0, "input": 1.0, "cached_input": None, "output": 4.0, "example_limit": 1000,
               "encoding": "o200k_base", "date": "2026-01", "source": "test"}
    monkeypatch.setattr(pricing, "_load_file", lambda: {"models": {"m-2026": minimal}})
    price = pricing.load_prices()["m-2026"]
    assert (price.method, price.legacy, price.note, price.aliases, price.training_per_hour) == \
        ("supervised", False, "", (), None)
    assert type(price.legacy) is bool and not price.billed_per_hour


def test_model_names_hide_legacy_rows_by_default_and_rft_on_request():
    rows = raw_models()

    def legacy(row):
        return row.get("legacy", False)

    def per_hour(row):
        return row["training"] is None and row.get("training_per_hour") is not None

    assert pricing.model_names() == [n for n, r in rows.items() if not legacy(r)]
    assert pricing.model_names() == ["gpt-4.1-nano-2025-04-14", "gpt-4.1-mini-2025-04-14", "gpt-4.1-2025-04-14",
                                     "gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06", "o4-mini-2025-04-16"]
    assert pricing.model_names(include_rft=False) == [n for n, r in rows.items() if not legacy(r) and not per_hour(r)]
    assert "o4-mini-2025-04-16" not in pricing.model_names(include_rft=False)
    assert pricing.model_names(include_legacy=True) == list(rows)
    assert pricing.model_names(include_legacy=True, include_rft=False) == \
        [n for n, r in rows.items() if not per_hour(r)]


# --------------------------------------------------------------------------- get_price and overrides


def test_an_unknown_model_lists_every_known_name_and_says_how_to_go_on():
    rows = raw_models()
    known = ", ".join(sorted({*rows, *(alias for row in rows.values() for alias in row["aliases"])}))
    with pytest.raises(ValueError) as caught:
        pricing.get_price("my-model")
    assert str(caught.value) == (f"No prices for OpenAI model 'my-model'. Known models: {known}. "
                                 "Give the price yourself with --training-price, or pick a known model.")


def test_overrides_skip_blanks_wherever_they_come_and_keep_types():
    price = pricing.get_price("gpt-4o-mini", {"input": None, "output": "", "training": "2.5", "example_limit": "1000"})
    assert price.training == 2.5 and type(price.training) is float  # not rounded down to 2
    assert price.example_limit == 1000 and type(price.example_limit) is int
    assert price.overridden == ("training", "example_limit")
    assert (price.input, price.output) == (0.30, 1.20)  # the file's, kept


@pytest.mark.parametrize("value", [0, 0.5])
def test_a_free_or_cheap_override_is_a_price_not_an_error(value):
    assert pricing.get_price("gpt-4o-mini", {"training": value}).training == value


def test_override_errors_name_the_field_and_the_fix():
    with pytest.raises(ValueError) as caught:
        pricing.get_price("gpt-4o-mini", {"bogus": 1})
    assert str(caught.value) == \
        "Unknown price field 'bogus': use one of training, input, cached_input, output, example_limit."
    with pytest.raises(ValueError) as caught:
        pricing.get_price("gpt-4o-mini", {"training": -1})
    assert str(caught.value) == "A price cannot be negative (training=-1)."


# --------------------------------------------------------------------------- epochs


@pytest.mark.parametrize("n", [0, -5])
def test_no_examples_means_the_default_three_epochs(n):
    assert pricing.auto_epochs(n) == 3


@pytest.mark.parametrize("n, value, how", [
    (1, 25, "auto epochs: 1 x 3 < 100 example-passes, so min(25, 100 // 1) = 25"),
    (10, 10, "auto epochs: 10 x 3 < 100 example-passes, so min(25, 100 // 10) = 10"),
    (100, 3, "auto epochs: 100 x 3 is between 100 and 25,000 example-passes, so the default 3"),
    (10_000, 2, "auto epochs: 10,000 x 3 > 25,000 example-passes, so max(1, 25,000 // 10,000) = 2"),
])
def test_auto_epochs_explanations(n, value, how):
    assert pricing.resolve_epochs("auto", n) == (value, how)


@pytest.mark.parametrize("spelling", ["", "  ", " Auto ", None])
def test_blank_and_any_case_auto_mean_auto(spelling):
    assert pricing.resolve_epochs(spelling, 10) == \
        (10, "auto epochs: 10 x 3 < 100 example-passes, so min(25, 100 // 10) = 10")


def test_the_explanation_for_no_examples_never_divides_by_zero():
    value, how = pricing.resolve_epochs("auto", 0)
    assert value == 3 and "// 0" not in how


def test_the_explanation_for_no_examples_is_true():
    value, how = pricing.resolve_epochs("auto", 0)
    assert value == 3 and how == "auto epochs: no examples yet, so the default 3"


def test_chosen_epochs_up_to_openais_fifty():
    assert pricing.resolve_epochs(50, 10) == (50, "epochs: 50, as chosen")
    assert pricing.resolve_epochs(" 1 ", 10) == (1, "epochs: 1, as chosen")
    with pytest.raises(ValueError) as caught:
        pricing.resolve_epochs(51, 10)
    assert str(caught.value) == "Epochs must be between 1 and 50 (OpenAI allows up to 50), not 51."
    with pytest.raises(ValueError) as caught:
        pricing.resolve_epochs("three", 10)
    assert str(caught.value) == "Epochs must be a whole number or 'auto', not 'three'."


# --------------------------------------------------------------------------- billed tokens


def test_without_a_limit_every_token_is_billed_and_none_is_clipped():
    assert pricing.billed_tokens_per_epoch([1, 20, 300], None) == 321
    assert pricing.billed_tokens_per_epoch(iter([5, 7]), None) == 12  # any iterable, once
    assert pricing.n_clipped([10**9], None) == 0
    assert pricing.n_clipped([], None) == 0


# --------------------------------------------------------------------------- training cost


def test_training_cost_worked_by_hand_with_one_clipped_example():
    row = raw_models()["gpt-4.1-mini-2025-04-14"]  # $5.00 per 1M training tokens, 65,536 tokens per example
    assert (row["training"], row["example_limit"]) == (5.00, 65_536)
    price = pricing.get_price("gpt-4.1-mini")
    cost = pricing.training_cost([1_000, 70_000, 65_536, 200], price)  # auto epochs
    # billed per epoch: 1,000 + 65,536 (70,000 clipped) + 65,536 + 200 = 132,272
    # 4 examples x 3 = 12 < 100 example-passes, so min(25, 100 // 4) = 25 epochs; 25 x 132,272 = 3,306,800
    # 3,306,800 x $5 / 1M = $16.534, of which $0.66136 per epoch
    assert cost.training_cost_usd == pytest.approx(16.534, rel=TIGHT)
    assert cost.to_dict() == {
        "model": "gpt-4.1-mini-2025-04-14",
        "epochs": 25,
        "billing_tokens": 132_272,
        "trained_tokens": 3_306_800,
        "training_cost_usd": cost.training_cost_usd,
        "price_per_1m": 5.0,
        "clipped_examples": 1,
        "billed_per_hour": False,
        "how": {
            "epochs": "auto epochs: 4 x 3 < 100 example-passes, so min(25, 100 // 4) = 25",
            "billing_tokens": "sum over 4 examples of min(tokens, 65,536) = 132,272; "
                              "1 example(s) over the 65,536-token limit count as 65,536",
            "trained_tokens": "25 epochs x 132,272 = 3,306,800",
            "training_cost_usd": "3,306,800 tokens x $5 per 1M = $16.53 ($0.66 per epoch) "
                                 "(gpt-4.1-mini-2025-04-14, 2025-10, https://openai.com/api/pricing (fine-tuning section))",
        },
    }


def test_a_billion_token_epoch_to_the_cent():
    price = pricing.get_price("gpt-4.1")  # $25.00 per 1M, limit 65,536
    cost = pricing.training_cost([65_536] * 16_000, price, epochs=1)
    # 16,000 x 65,536 = 1,048,576,000 tokens, none over the limit; x $25 / 1M = $26,214.40
    assert cost.billing_tokens == 1_048_576_000 and cost.clipped_examples == 0
    assert cost.training_cost_usd == pytest.approx(26_214.40, rel=TIGHT)
    assert cost.how["billing_tokens"] == ("sum over 16,000 examples of min(tokens, 65,536) = 1,048,576,000; "
                                          "no example is over the 65,536-token limit")
    assert cost.how["training_cost_usd"].startswith(
        "1,048,576,000 tokens x $25 per 1M = $26,214.40 ($26,214.40 per epoch) (gpt-4.1-2025-04-14, 2025-10, ")


def test_the_epochs_follow_the_whole_split_when_only_a_sample_was_counted():
    price = pricing.get_price("gpt-4o-mini")  # $3.00 per 1M
    cost = pricing.training_cost([100, 300], price, epochs="auto", n_examples=10_000)
    # 10,000 examples x 3 > 25,000, so max(1, 25,000 // 10,000) = 2 epochs of the 400 counted tokens
    assert (cost.epochs, cost.trained_tokens) == (2, 800)
    assert cost.training_cost_usd == pytest.approx(800 * 3.00 / 1e6, rel=TIGHT)
    assert cost.how["billing_tokens"].startswith("sum over 10,000 examples of min(tokens, 65,536) = 400")


def test_a_training_price_overridden_to_zero_costs_nothing():
    price = pricing.get_price("gpt-4o-mini", {"training": 0})
    cost = pricing.training_cost([1_000] * 10, price, epochs=2)
    assert cost.training_cost_usd == 0.0 and cost.price_per_1m == 0.0
    assert cost.how["training_cost_usd"] == \
        "20,000 tokens x $0 per 1M = $0.00 ($0.00 per epoch) (gpt-4o-mini-2024-07-18, 2025-10, overridden by you)"


def test_reinforcement_fine_tuning_explains_why_there_is_no_token_price():
    cost = pricing.training_cost([500] * 100, pricing.get_price("o4-mini"), epochs=1)
    assert (cost.model, cost.training_cost_usd, cost.price_per_1m) == ("o4-mini-2025-04-16", None, None)
    assert cost.how["training_cost_usd"] == ("o4-mini-2025-04-16 is reinforcement fine-tuning, billed $100 per hour "
                                             "of training time, not per token: no token-based estimate is possible")


# --------------------------------------------------------------------------- inference cost


def test_inference_cost_with_half_the_input_cached():
    price = pricing.get_price("gpt-4o-mini")  # input $0.30, cached $0.15, output $1.20 per 1M
    inference = pricing.inference_cost(price, 1_000, 2_000, 500, cached_share=0.5)
    # input rate 0.5 x 0.30 + 0.5 x 0.15 = $0.225; (2,000 x 0.225 + 500 x 1.20) / 1M = $0.00105 x 1,000 = $1.05
    assert inference.monthly_usd == pytest.approx(1.05, rel=TIGHT)
    assert inference.to_dict() == {
        "requests_per_month": 1_000, "avg_input_tokens": 2_000, "avg_output_tokens": 500,
        "monthly_usd": inference.monthly_usd,
        "how": "1,000 requests/month x (2,000 input tokens x $0.3/1M (50% of input at the cached $0.15)"
               " + 500 output tokens x $1.2/1M) = $1.05/month",
    }


def test_inference_cost_without_caching_says_nothing_about_it():
    inference = pricing.inference_cost(pricing.get_price("gpt-4o-mini"), 1_000, 2_000, 500)
    # (2,000 x 0.30 + 500 x 1.20) / 1M x 1,000 = $1.20
    assert inference.monthly_usd == pytest.approx(1.20, rel=TIGHT)
    assert inference.how == ("1,000 requests/month x (2,000 input tokens x $0.3/1M"
                             " + 500 output tokens x $1.2/1M) = $1.20/month")


@pytest.mark.parametrize("share, dollars", [(1.5, 0.90), (-0.5, 1.20)])
def test_the_cached_share_is_held_between_none_and_all(share, dollars):
    # all cached: (2,000 x 0.15 + 500 x 1.20) / 1M x 1,000 = $0.90; none: $1.20
    inference = pricing.inference_cost(pricing.get_price("gpt-4o-mini"), 1_000, 2_000, 500, cached_share=share)
    assert inference.monthly_usd == pytest.approx(dollars, rel=TIGHT)


def test_a_model_without_a_cached_price_bills_cached_input_at_the_input_price():
    inference = pricing.inference_cost(pricing.get_price("gpt-3.5-turbo"), 1_000, 2_000, 500, cached_share=1.0)
    # input $3.00 (no cached price), output $6.00: (2,000 x 3 + 500 x 6) / 1M x 1,000 = $9.00
    assert inference.monthly_usd == pytest.approx(9.0, rel=TIGHT)


@pytest.mark.parametrize("input_price, output_price", [(None, 5.0), (5.0, None)])
def test_a_model_without_an_inference_price_gets_no_figure(input_price, output_price):
    price = pricing.ModelPrice(model="custom", training=1.0, input=input_price, cached_input=None,
                               output=output_price, example_limit=1000, encoding="o200k_base", date="2026-01",
                               source="test")
    inference = pricing.inference_cost(price, 1_000, 2_000, 500)
    assert inference.to_dict() == {"requests_per_month": 1_000, "avg_input_tokens": 2_000, "avg_output_tokens": 500,
                                   "monthly_usd": None, "how": "no inference price for custom"}
