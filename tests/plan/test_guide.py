"""The decision guide: one case per rule row, and a check that no row is left untested."""

from __future__ import annotations

from datetime import date

import pytest

from ftassist.plan import guide
from ftassist.plan.guide import Answers, recommend

STYLE = dict(style_or_format=True, tried_prompting=True)
CUSTOMER = dict(openai_customer=True)
TODAY = date(2026, 11, 30)  # OpenAI still takes jobs from its active customers (until 2027-01-06)
REPORT = {"n_examples": 800, "n_errors": 0, "failing": [], "warning": []}

# rule id -> (answers, report summary or None, expected approach, expected method, expected where)
CASES = {
    "both_facts_and_style": (dict(needs_current_info=True, **STYLE, n_examples=500), None, "both", "lora", "hf-jobs"),
    "rag_for_facts": (dict(needs_current_info=True), None, "rag", None, None),
    "too_few_examples": (dict(**STYLE, n_examples=5), None, "prompt_engineering", None, None),
    "nothing_to_teach": (dict(n_examples=1000), None, "prompt_engineering", None, None),
    "prompt_not_tried": (dict(style_or_format=True, n_examples=50), None, "prompt_engineering", None, None),
    "fine_tune": (dict(**STYLE, n_examples=1000), None, "fine_tune", "lora", "hf-jobs"),
    "private_no_gpu": (dict(**STYLE, n_examples=1000, data_can_leave=False), None, "fine_tune", "qlora", "local"),
    "openai_customer_no_gpu": (dict(**STYLE, **CUSTOMER, n_examples=1000), None, "fine_tune", "openai", "openai"),
    "hosted_full_big_data": (dict(**STYLE, n_examples=20_000, budget="high"), None, "fine_tune", "full", "together"),
    "rented_gpu_no_gpu": (dict(**STYLE, n_examples=1000, hardware="none"), None, "fine_tune", "lora", "hf-jobs"),
    "full_big_data": (dict(**STYLE, n_examples=20_000, hardware="multi_gpu", budget="high"), None, "fine_tune", "full",
                      "local"),
    "lora_datacenter": (dict(**STYLE, n_examples=1000, hardware="datacenter_gpu"), None, "fine_tune", "lora", "local"),
    "qlora_consumer": (dict(**STYLE, n_examples=1000, hardware="consumer_gpu"), None, "fine_tune", "qlora", "local"),
    "few_steers_from_full": (dict(**STYLE, n_examples=40, hardware="multi_gpu", budget="high"), None, "fine_tune",
                             "lora", "local"),
    "openai_closed": (dict(**STYLE, n_examples=1000), None, "fine_tune", "lora", "hf-jobs"),
    "together_alternative": (dict(**STYLE, n_examples=1000), None, "fine_tune", "lora", "hf-jobs"),
    "low_budget_openai": (dict(**STYLE, **CUSTOMER, n_examples=1000, budget="low"), None, "fine_tune", "openai",
                          "openai"),
    "low_budget_rented": (dict(**STYLE, n_examples=1000, budget="low"), None, "fine_tune", "lora", "hf-jobs"),
    "scale_small_model": (dict(high_volume=True, n_examples=1000), None, "fine_tune", "lora", "hf-jobs"),
    "from_report": (dict(**STYLE), REPORT, "fine_tune", "lora", "hf-jobs"),
    "fix_data_first": (dict(**STYLE), {**REPORT, "n_errors": 3}, "fine_tune", "lora", "hf-jobs"),
    "poor_data": (dict(**STYLE), {**REPORT, "failing": ["balanced"]}, "fine_tune", "lora", "hf-jobs"),
    "data_warnings": (dict(**STYLE), {**REPORT, "warning": ["diverse"]}, "fine_tune", "lora", "hf-jobs"),
    "overfitting": (dict(**STYLE, n_examples=40), None, "fine_tune", "lora", "hf-jobs"),
    "forgetting": (dict(**STYLE, domain_terminology=True, n_examples=1000), None, "fine_tune", "lora", "hf-jobs"),
    "model_shutdown": (dict(**STYLE, **CUSTOMER, n_examples=1000), None, "fine_tune", "openai", "openai"),
    "wrong_use_case": (dict(needs_current_info=True), None, "rag", None, None),
    "privacy": (dict(**STYLE, n_examples=1000, data_can_leave=False, hardware="consumer_gpu"), None, "fine_tune",
                "qlora", "local"),
    "unknown_size": (dict(**STYLE), None, "fine_tune", "lora", "hf-jobs"),
    "sft": (dict(**STYLE, n_examples=1000), None, "fine_tune", "lora", "hf-jobs"),
    "dpo_ready": (dict(**STYLE, n_examples=1000, has_preference_data=True, model_does_task=True), None, "fine_tune",
                  "lora", "hf-jobs"),
    "sft_before_dpo": (dict(**STYLE, n_examples=1000, has_preference_data=True), None, "fine_tune", "lora", "hf-jobs"),
    "dpo_needs_pairs": (dict(**STYLE, n_examples=1000, model_does_task=True), None, "fine_tune", "lora", "hf-jobs"),
}


def test_every_rule_has_a_case():
    assert set(CASES) == guide.all_rule_ids()


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_branch(rule_id):
    answers, summary, approach, method, where = CASES[rule_id]
    rec = recommend(Answers(**answers), summary, today=TODAY)
    assert rule_id in rec.rule_ids
    assert rec.approach == approach
    assert rec.method == method
    assert rec.where == where
    assert rec.to_dict()["where"] == where  # what the session's Decision keeps
    assert rec.reasons and all("\n" not in r and "{" not in r for r in rec.reasons)  # one line each, all filled in
    for p in rec.pitfalls:
        assert p.name and p.remedy and "{" not in p.remedy


def test_forty_examples_steer_away_from_full():
    rec = recommend(Answers(**STYLE, hardware="multi_gpu", budget="high"),
                    {"n_examples": 40, "n_errors": 0, "failing": [], "warning": []})
    assert rec.method == "lora"
    assert any("40 examples are too few for full fine-tuning" in r for r in rec.reasons)
    assert "overfitting" in rec.rule_ids


def test_failing_checklist_says_fix_data_first():
    rec = recommend(Answers(**STYLE, n_examples=1000),
                    {"n_examples": 500, "n_errors": 0, "failing": ["consistent"], "warning": []})
    assert rec.fix_data_first
    assert rec.reasons[0].startswith("Fix the data first")
    assert rec.headline().startswith("Fix the data first")
    assert rec.facts["n_examples"] == 500  # the report's count replaces the answer
    assert "Poor data" in rec.to_markdown()


def test_report_object_and_dict_are_summarised():
    from ftassist.data.report import ChecklistItem, DataReport, Issue

    report = DataReport(path="x.jsonl", n_records=12, n_examples=10, format="chat",
                        errors=[Issue(3, "missing_content", "empty")],
                        checklist=[ChecklistItem("balanced", "Balanced", "fail", "one class"),
                                   ChecklistItem("diverse", "Diverse", "warn", "near duplicates")])
    for source in (report, report.to_dict()):
        s = guide.summarize_report(source)
        assert s == {"n_examples": 10, "n_errors": 1, "failing": ["balanced"], "warning": ["diverse"]}
    rec = recommend(Answers(**STYLE), report)
    assert rec.fix_data_first and rec.facts["data_errors"] == 1


def test_tuning_pitfalls_not_shown_for_rag():
    rec = recommend(Answers(needs_current_info=True, n_examples=40, hardware="datacenter_gpu"))
    ids = {p.id for p in rec.pitfalls}
    assert "wrong_use_case" in ids and "overfitting" not in ids and "forgetting" not in ids


def test_bad_answers_and_parsing():
    with pytest.raises(ValueError):
        Answers(budget="infinite")
    with pytest.raises(ValueError):
        Answers(hardware="abacus")
    with pytest.raises(ValueError):
        Answers(n_examples=-1)
    q = {q.key: q for q in guide.QUESTIONS}
    assert guide.parse_answer(q["style_or_format"], "Y") is True
    assert guide.parse_answer(q["n_examples"], "1,200") == 1200
    assert guide.parse_answer(q["n_examples"], "") is None
    assert guide.parse_answer(q["hardware"], "2") == "consumer_gpu"
    assert guide.parse_answer(q["budget"], "high") == "high"
    with pytest.raises(ValueError, match="y or n"):
        guide.parse_answer(q["style_or_format"], "maybe")
    with pytest.raises(ValueError):
        guide.parse_answer(q["hardware"], "9")
    assert Answers.from_dict({"style_or_format": True, "ignored": 1}).style_or_format


# -- the objective: SFT, DPO, or SFT first -------------------------------------------------------------
def test_preference_tuning_when_the_model_already_does_the_task_and_there_are_pairs():
    rec = recommend(Answers(has_preference_data=True, model_does_task=True, n_examples=2000), today=TODAY)
    assert rec.approach == "fine_tune"  # preference data alone is something to teach: no "nothing to teach"
    assert (rec.objective, rec.then_objective) == ("dpo", None)
    assert rec.headline() == "Fine-tuning (DPO preference tuning), with LoRA on a rented GPU (Hugging Face Jobs)"
    assert "dpo_ready" in rec.rule_ids and any("gap between them" in r for r in rec.reasons)
    assert rec.to_dict()["objective"] == "dpo"


def test_sft_comes_first_when_the_model_cannot_do_the_task_yet():
    rec = recommend(Answers(**STYLE, has_preference_data=True, model_does_task=False, n_examples=2000), today=TODAY)
    assert (rec.objective, rec.then_objective) == ("sft", "dpo")
    assert "(SFT, then DPO preference tuning)" in rec.headline()
    assert any("Train SFT first" in r for r in rec.reasons)


def test_no_pairs_means_sft_even_for_a_model_that_works_and_the_objective_is_named_only_when_tuning():
    works = recommend(Answers(**STYLE, model_does_task=True, n_examples=2000), today=TODAY)
    assert works.objective == "sft" and any("collect pairs" in r for r in works.reasons)
    plain = recommend(Answers(**STYLE, n_examples=2000), today=TODAY)
    assert plain.objective == "sft" and "sft" in plain.rule_ids and plain.headline().startswith("Fine-tuning (SFT)")
    rag = recommend(Answers(needs_current_info=True, has_preference_data=True, model_does_task=True), today=TODAY)
    assert rag.approach == "both" and rag.objective == "dpo"  # facts by retrieval, preferences by DPO
    prompting = recommend(Answers(n_examples=1000), today=TODAY)
    assert prompting.objective is None and prompting.approach == "prompt_engineering"


def test_the_assistant_can_quote_when_to_use_dpo():
    from ftassist.plan import knowledge

    (first, *_) = knowledge.search("should I use DPO or SFT with my preference pairs?")
    assert first.id == "sft_or_dpo" and "SFT, then DPO" in first.text
