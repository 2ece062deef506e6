"""The LLM path against a real local OpenAI-compatible HTTP server with scripted answers."""

from __future__ import annotations

import json
import logging

import pytest
from standins import OpenAIStandIn

from ftassist.assistant import chat, llm, tools
from ftassist.usecases.session import Decision, Session

KEY = "local-secret-7f3a9c21e5b4"


def tool_messages(body: dict) -> list[dict]:
    return [m for m in body["messages"] if m["role"] == "tool"]


def answer_from_tool_result(body: dict) -> dict:
    """The scripted model's final answer quotes the cost the tool returned (so the test sees it was fed back)."""
    result = json.loads(tool_messages(body)[-1]["content"])
    return {"content": f"Fine-tuning would cost ${result['rows'][0]['cost_usd']:.2f} ({result['assumption']})."}


@pytest.fixture
def server():
    s = OpenAIStandIn(script=[
        {"tool_calls": [("estimate_cost", {"n_examples": 5000, "model": "gpt-4.1-mini"})]},
        answer_from_tool_result,
    ]).start()
    yield s
    s.stop()


def no_key_anywhere(reply, caplog) -> None:
    assert KEY not in reply.text
    assert KEY not in repr(reply.session) and KEY not in json.dumps(reply.session.to_dict(), default=str)
    assert KEY not in json.dumps(reply.tool_calls, default=str)
    assert KEY not in caplog.text


def test_tool_call_then_final_answer(ctx, server, caplog):
    caplog.set_level(logging.DEBUG)
    reply = chat.respond(ctx, "How much for 5,000 examples on gpt-4.1-mini?", [], Session(), api_key=KEY,
                         base_url=server.base_url, model="scripted-model")
    assert reply.used_llm and reply.intent == "llm"
    assert reply.text.startswith("Fine-tuning would cost $37.50")  # the estimate code's figure, via the tool
    assert [c["name"] for c in reply.tool_calls] == ["estimate_cost"]
    assert reply.tool_calls[0]["result"]["rows"][0]["cost_usd"] == 37.5
    # what the model saw: the tools' schemas, then the tool's result
    first, second = server.requests
    assert first["model"] == "scripted-model"
    assert [t["function"]["name"] for t in first["tools"]] == list(tools.offered())
    assert first["tools"] == tools.schemas()
    assert first["messages"][0]["role"] == "system" and "No dataset checked yet" in first["messages"][0]["content"]
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "estimate_cost"
    assert '"cost_usd": 37.5' in tool_messages(second)[0]["content"]
    # the key went only into the Authorization header
    assert server.auth_headers == [f"Bearer {KEY}"] * 2
    assert all(KEY not in json.dumps(body) for body in server.requests)
    no_key_anywhere(reply, caplog)


def test_key_and_base_url_from_the_environment(ctx, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    reply = chat.respond(ctx, "How much for 5,000 examples on gpt-4.1-mini?", [], Session())
    assert reply.used_llm and "$37.50" in reply.text
    assert server.requests[0]["model"] == llm.DEFAULT_MODEL


def test_history_and_context_are_sent(ctx, server):
    history = [{"role": "user", "content": [{"type": "text", "text": "hi there"}]},
               {"role": "assistant", "content": "Hello! Ask me anything."},
               {"role": "assistant", "content": {"component": "image", "value": None}}]
    session = Session(run_id="job-1").decided(Decision(answers={"needs_current_info": True}, approach="rag",
                                                       method=None))
    chat.respond(ctx, "and the cost?", history, session, api_key=KEY, base_url=server.base_url)
    msgs = server.requests[0]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[1]["content"] == "hi there" and msgs[-1]["content"] == "and the cost?"
    assert "job-1" in msgs[0]["content"] and "rag" in msgs[0]["content"]


def test_llm_proposes_an_action_which_runs_only_on_confirm(ctx, checked_session):
    s = OpenAIStandIn(script=[{"tool_calls": [("check_dataset", {"path": checked_session.dataset.path})]},
                     {"content": "I can check your dataset for you."}]).start()
    try:
        reply = chat.respond(ctx, "can you check my upload again?", [], checked_session, api_key=KEY,
                             base_url=s.base_url)
    finally:
        s.stop()
    assert reply.session.pending_action["use_case"] == "check_dataset"
    assert reply.tool_calls[0]["result"]["proposed"] is True
    assert "Confirm" in reply.text  # the UI's button is named even when the model forgot to say so
    from ftassist.usecases import registry

    assert registry.call(ctx, "list_datasets", {}) == []  # nothing ran
    text, session = chat.confirm(ctx, reply.session)
    assert session.dataset.n_examples == 24 and len(registry.call(ctx, "list_datasets", {})) == 1


def test_iterations_are_capped(ctx):
    s = OpenAIStandIn(script=[{"tool_calls": [("explain_topic", {"topic": "overfitting"})]}]).start()
    try:
        reply = llm.chat(ctx, "loop forever", [], Session(), llm.LLMSettings(api_key=KEY, base_url=s.base_url, model="m"),
                         max_iterations=3)
    finally:
        s.stop()
    assert len(s.requests) == 3 and len(reply.tool_calls) == 3
    assert "stopped after 3 rounds" in reply.text and "Pitfall: overfitting" in reply.text


def test_bad_tool_arguments_are_reported_to_the_model(ctx):
    s = OpenAIStandIn(script=[{"tool_calls": [("estimate_cost", {"n_examples": 10, "colour": "red"})]},
                     lambda body: {"content": "Tool said: " + json.loads(tool_messages(body)[0]["content"])["error"]}])
    s.start()
    try:
        reply = chat.respond(ctx, "cost?", [], Session(), api_key=KEY, base_url=s.base_url)
    finally:
        s.stop()
    assert "unknown argument(s) colour" in reply.text


def test_a_rejected_key_falls_back_to_the_built_in_answer_without_leaking_it(ctx, caplog):
    caplog.set_level(logging.DEBUG)
    s = OpenAIStandIn(script=[{"content": "unused"}]).start()
    s.status = 401
    try:
        reply = chat.respond(ctx, "How much for 5,000 examples on gpt-4.1-mini?", [], Session(), api_key=KEY, base_url=s.base_url)
    finally:
        s.stop()
    assert not reply.used_llm and reply.intent == "cost"
    assert "could not answer" in reply.text and "401" in reply.text and "$37.50" in reply.text
    assert "Incorrect API key provided: ***" in reply.text
    no_key_anywhere(reply, caplog)


def test_unreachable_server_falls_back(ctx):
    reply = chat.respond(ctx, "what is qlora?", [], Session(), api_key=KEY, base_url="http://127.0.0.1:9/v1")
    assert not reply.used_llm and "QLoRA" in reply.text and "could not answer" in reply.text
    assert KEY not in reply.text


def test_settings_repr_hides_the_key():
    assert KEY not in repr(llm.resolve_settings(KEY, None, None))
    assert llm.resolve_settings("", None, None) is None
