"""The no-key assistant: each intent answers from the app's own functions and the session."""

from __future__ import annotations

import pytest

from ftassist.formatting import format_money

from ftassist.assistant import intents
from ftassist.plan import estimate as est
from ftassist.usecases.session import Session


@pytest.mark.parametrize("message, intent", [
    ("Should I fine-tune or use RAG for our product docs?", "decide"),
    ("do we need to fine-tune at all, or just prompt?", "decide"),
    ("How much for 5,000 examples on gpt-4.1-mini?", "cost"),
    ("what would it cost to train on 2k rows with QLoRA", "cost"),
    ("Why did my loss go up?", "loss"),
    ("is my model overfitting? the validation loss keeps rising", "loss"),
    ("Is my dataset OK?", "data"),
    ("what's wrong with my data, any errors?", "data"),
    ("how is my training going?", "job_status"),
    ("what is catastrophic forgetting?", "topic"),
    ("explain qlora", "topic"),
    ("please run the check on my dataset", "action_check"),
    ("make the estimate", "action_estimate"),
    ("start training with tiny-random", "action_train"),
    ("LoRA or QLoRA?", "method"),
    ("which method should we use?", "method"),
    ("what is qlora?", "topic"),
    ("help", "help"),
    ("what's the weather in Paris?", "unknown"),
])
def test_classify(message, intent):
    assert intents.classify(message)[0] == intent


def test_entities():
    t = intents.normalise("How much for 5k examples on GPT 4.1 mini with 800 tokens each, 2 epochs?")
    assert intents.find_n_examples(t) == 5000
    assert intents.find_tokens(t) == 800
    assert intents.find_epochs(t) == 2
    assert intents.find_openai_model(t) == "gpt-4.1-mini"
    t = intents.normalise("1,200 conversations on gpt-4.1 and 3.5m rows")
    assert intents.find_n_examples(t) == 1200
    assert intents.find_openai_model(t) == "gpt-4.1"  # not gpt-4.1-mini / nano
    assert intents.find_open_model(intents.normalise("LoRA on Qwen2.5-7B please")) == "Qwen/Qwen2.5-7B"


def test_decide_rag_for_product_docs(ctx):
    r = intents.answer(ctx, "Should I fine-tune or use RAG for our product docs?", Session())
    assert r.intent == "decide"
    assert "Retrieval (RAG)" in r.text
    assert "docs" in r.text  # says what it read from the question
    call = r.tool_calls[0]
    assert call["name"] == "advise_approach" and call["arguments"] == {"needs_current_info": True}
    assert call["result"]["approach"] == "rag"


def test_decide_style_with_private_data_and_gpu(ctx):
    r = intents.answer(ctx, "We want our brand voice in replies, data is confidential, we have an RTX 4090 and "
                       "300 examples. Fine-tune or RAG?", Session())
    res = r.tool_calls[0]["result"]
    assert res["approach"] == "fine_tune" and res["method"] == "qlora"
    assert res["answers_used"] == {"style_or_format": True, "data_can_leave": False, "hardware": "consumer_gpu",
                                   "n_examples": 300}


def test_cost_question_gives_the_estimate_codes_figure(ctx):
    r = intents.answer(ctx, "how much for 5,000 examples on gpt-4.1-mini?", Session())
    assert r.intent == "cost"
    table = est.estimate_all(est.tokens_quick(5000, 500),
                             {"openai_models": ["gpt-4.1-mini-2025-04-14"], "include_self_hosted": False,
                              "allow_network": False})
    expected = table.rows[0].cost_usd
    assert expected == pytest.approx(37.5)  # 5,000 x 500 tokens x 3 epochs x $5 / 1M
    assert f"${expected:,.2f}" in r.text
    assert "500 tokens per example" in r.text and "default" in r.text
    assert "with 800 tokens each" in r.text  # how to change the assumption


def test_cost_question_uses_the_checked_datasets_mean(ctx, checked_session):
    per = checked_session.report["tokens"]["per_example"]
    mean = round(sum(per) / len(per))
    r = intents.answer(ctx, "How much for 5,000 examples on gpt-4o-mini?", checked_session)
    expected = est.estimate_all(est.tokens_quick(5000, mean), {"openai_models": ["gpt-4o-mini"],
                                                                "include_self_hosted": False}).rows[0].cost_usd
    assert f"${expected:,.2f}" in r.text
    assert f"{mean:,} tokens per example" in r.text and "mean of your checked dataset" in r.text


def test_cost_question_without_a_number_uses_the_exact_report(ctx, checked_session):
    r = intents.answer(ctx, "what would fine-tuning cost on gpt-4.1-nano?", checked_session)
    expected = est.estimate_from_report(checked_session.report,
                                        {"openai_models": ["gpt-4.1-nano"], "include_self_hosted": False})
    assert format_money(expected.rows[0].cost_usd) in r.text
    assert "24 examples" in r.text and "Assumed" in r.text


def test_cost_question_for_self_hosted_qlora(ctx):
    r = intents.answer(ctx, "how much would QLoRA on Qwen2.5-7B cost for 2000 examples?", Session())
    rows = r.tool_calls[0]["result"]["rows"]
    assert rows and all("qlora:Qwen/Qwen2.5-7B" in row["id"] for row in rows)
    assert "QLoRA" in r.text and "min" in r.text  # time too


def test_cost_question_without_examples_or_data_asks_for_the_number(ctx):
    r = intents.answer(ctx, "how much does gpt-4.1-mini cost?", Session())
    assert "$5 per 1M training tokens" in r.text
    assert "How many examples?" in r.text


def test_loss_question_on_an_overfitting_job(ctx, overfit_job):
    r = intents.answer(ctx, "why did my loss go up?", Session(run_id=overfit_job))
    assert r.intent == "loss"
    text = r.text
    assert "overfitting" in text.lower()
    assert "1.100 at step 40" in text and "1.450 at step 100" in text  # validation rose, with numbers
    assert "1.440" in text and "0.600" in text  # while train loss fell (at the best step, and last)
    assert "Early stopping" in text and "step 40" in text
    assert "Fewer epochs" in text and "More and more varied examples" in text


def test_loss_question_finds_the_latest_job_without_a_session(ctx, overfit_job):
    r = intents.answer(ctx, "why is my validation loss increasing?", Session())
    assert "job-overfit" in r.text and "overfitting" in r.text.lower()


def test_loss_question_on_a_spiking_run(ctx, job_inserter):
    job_inserter("job-spike", [(1, 2.0), (2, 1.6), (3, 1.4), (4, 2.6), (5, 1.3)], [],
               spec={"backend": "local", "base_model": "tiny-random", "method": "lora", "learning_rate": 0.001})
    r = intents.answer(ctx, "my training loss spiked, why?", Session(run_id="job-spike"))
    assert "spiked to 2.600 at step 4" in r.text
    assert "0.001" in r.text and "0.0005" in r.text  # halve this run's learning rate


def test_loss_question_without_a_job_explains_the_curves(ctx):
    r = intents.answer(ctx, "why did my loss go up?", Session())
    assert "no training run yet" in r.text
    assert "Validation loss rising while training loss falls" in r.text


def test_data_question_uses_the_session_report(ctx, checked_session):
    r = intents.answer(ctx, "Is my dataset OK?", checked_session)
    assert r.intent == "data"
    assert "**24 valid examples** out of 25 records" in r.text
    assert "1 error(s)" in r.text and "(lines 5)" in r.text
    assert "Checklist" in r.text
    assert "Fix & split" in r.text  # what to do next


def test_data_question_without_a_checked_dataset_says_where_to_check(ctx):
    r = intents.answer(ctx, "is my data good?", Session())
    assert r.pending is None and "No dataset has been checked" in r.text and "Data" in r.text


def test_unknown_question_lists_what_it_can_do(ctx):
    r = intents.answer(ctx, "what's the weather in Paris?", Session())
    assert r.intent == "unknown"
    for part in ("RAG", "How much for 5,000 examples", "Why did my loss go up?", "Is my dataset OK?",
                 "Start training", "Catastrophic forgetting".lower()):
        assert part.lower() in r.text.lower()


def test_topic_answer(ctx):
    r = intents.answer(ctx, "What is catastrophic forgetting?", Session())
    assert "Pitfall: catastrophic forgetting" in r.text and "LoRA" in r.text


def test_answer_does_not_change_the_callers_session(ctx, checked_session):
    before = checked_session.to_dict()
    r = intents.answer(ctx, "check my data", checked_session)
    assert r.pending and checked_session.to_dict() == before  # sessions are values: a proposal makes a new one


def test_cost_question_for_one_gpu(ctx):
    r = intents.answer(ctx, "how long will training take on an H100 for 2000 examples?", Session())
    rows = r.tool_calls[0]["result"]["rows"]
    assert rows and all(row["id"].endswith(":H100 80GB") for row in rows)
    assert "min on one H100 80GB" in r.text


def test_comparing_two_openai_models(ctx):
    r = intents.answer(ctx, "gpt-4o-mini vs gpt-4.1-nano for 3000 examples?", Session())
    assert r.intent == "cost"
    assert "**$13.50** to fine-tune **gpt-4o-mini-2024-07-18**" in r.text  # 3,000 x 500 x 3 x $3 / 1M
    assert "**$6.75** to fine-tune **gpt-4.1-nano-2025-04-14**" in r.text  # ... x $1.5 / 1M
    assert "500 tokens per example" in r.text
    r = intents.answer(ctx, "Should I use gpt-4o-mini or gpt-4.1-mini?", Session())
    assert r.intent == "cost" and "$3 per 1M" in r.text and "$5 per 1M" in r.text and "how many examples" in r.text


def test_thanks(ctx):
    assert "welcome" in intents.answer(ctx, "thanks!", Session()).text


def test_job_status_of_the_session_run(ctx, overfit_job):
    r = intents.answer(ctx, "how is my training going?", Session(run_id=overfit_job))
    assert r.intent == "job_status"
    assert "`job-overfit`: **succeeded**" in r.text
    r = intents.answer(ctx, "status of my run?", Session())
    assert "most recent run" in r.text


def test_no_job_status(ctx):
    assert "No training run yet" in intents.answer(ctx, "how is my training going?", Session()).text
