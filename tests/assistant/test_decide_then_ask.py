"""The conversation that went wrong: the Decide step recommends fine-tuning, then "LoRA or QLoRA?".

The assistant answered "prompt engineering first" because it ignored the Decide answers of the same
session. The referee is the Decide step's own use case (`recommend_approach`) on the same answers.
"""

from __future__ import annotations

import json

import pytest
from standins import OpenAIStandIn

from ftassist.assistant import chat
from ftassist.usecases import planning
from ftassist.usecases.session import Decision, Session

DECIDE_ANSWERS = {"style_or_format": True, "n_examples": 800, "hardware": "consumer_gpu", "data_can_leave": False,
                  "tried_prompting": True}


@pytest.fixture
def decided(ctx) -> Session:
    """The session as the Decide tab leaves it: its recommendation kept as the session's decision."""
    advice = planning.recommend_approach(ctx, DECIDE_ANSWERS)
    assert (advice.decision.approach, advice.decision.method) == ("fine_tune", "qlora")
    return Session().decided(advice.decision)


def test_without_a_key_the_method_follows_the_decide_answers(ctx, decided):
    reply = chat.respond(ctx, "LoRA or QLoRA?", [], decided)
    assert reply.intent == "method"
    assert "Prompt engineering first" not in reply.text
    assert "For you: **QLoRA**" in reply.text and "Decide step" in reply.text
    call = reply.tool_calls[0]
    assert call["result"]["approach"] == "fine_tune" and call["result"]["method"] == "qlora"
    assert set(call["result"]["from_decide_step"]) >= set(DECIDE_ANSWERS)


def test_a_restated_answer_overrides_only_itself(ctx, decided):
    reply = chat.respond(ctx, "LoRA or QLoRA? we now have an A100", [], decided)
    result = reply.tool_calls[0]["result"]
    assert result["answers_used"]["hardware"] == "datacenter_gpu" and result["method"] == "lora"
    assert result["answers_used"]["style_or_format"] is True  # the rest still from the Decide step


def test_without_a_decision_the_same_question_gets_the_cautious_default(ctx):
    reply = chat.respond(ctx, "LoRA or QLoRA?", [], Session())
    assert "Prompt engineering first" in reply.text and "no fine-tuning method yet" in reply.text


def test_with_the_llm_the_tool_starts_from_the_decide_answers(ctx, decided):
    """The LLM passes no answers (the person restated none): the tool still answers for this person."""
    server = OpenAIStandIn(script=[
        {"tool_calls": [("advise_approach", {})]},
        lambda body: {"content": "Use " + json.loads([m for m in body["messages"] if m["role"] == "tool"][-1]
                                                     ["content"])["method"]},
    ]).start()
    try:
        reply = chat.respond(ctx, "LoRA or QLoRA?", [], decided, api_key="k-0123456789", base_url=server.base_url)
    finally:
        server.stop()
    assert reply.used_llm and reply.text == "Use qlora"
    system = server.requests[0]["messages"][0]["content"]
    assert "Decide step recommended: fine_tune (method qlora)" in system
    offered = {t["function"]["name"] for t in server.requests[0]["tools"]}
    assert "advise_approach" in offered and "recommend_approach" not in offered


def test_saying_you_are_an_openai_customer_is_heard(ctx, monkeypatch):
    import datetime

    from ftassist.plan import providers
    from ftassist.usecases import assistance

    monkeypatch.setattr(providers, "today", lambda: datetime.date(2026, 11, 30))  # before OpenAI's last day

    no_gpu = Session().decided(Decision({"hardware": "none", "data_can_leave": True, "style_or_format": True,
                                         "n_examples": 800}, "fine_tune", "lora"))
    before = assistance.advise_approach(ctx, no_gpu)
    after = assistance.advise_approach(ctx, no_gpu, openai_customer=True)
    assert "openai" not in (before.method or "") and "OpenAI" not in before.headline
    assert after.method == "openai" and "2027-01-06" in after.headline
