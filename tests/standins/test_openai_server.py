"""The OpenAI stand-in itself, driven by the real `openai` SDK: what the other tests rely on it to do."""

from __future__ import annotations

import json

import openai
import pytest

from standins import OpenAIStandIn


def client(server: OpenAIStandIn, key: str = "any-key", **kw) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=server.base_url, **kw)


def test_models_and_default_answers(openai_server):
    sdk = client(openai_server)
    assert [m.id for m in sdk.models.list()] == ["base", "tuned", "judge"]
    ask = {"messages": [{"role": "user", "content": "hi"}]}
    base, tuned = (sdk.chat.completions.create(model=m, **ask).choices[0].message.content for m in ("base", "tuned"))
    assert base != tuned and "base" not in base and "tuned" not in tuned  # different, and anonymous
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="missing", **ask)
    assert openai_server.requests[0]["messages"] == ask["messages"]


def test_a_script_answers_with_tool_calls_then_text():
    with OpenAIStandIn(script=[{"tool_calls": [("estimate_cost", {"n": 5})]}, {"content": "done"}]) as server:
        sdk = client(server, key="k-123")
        first = sdk.chat.completions.create(model="anything", messages=[{"role": "user", "content": "x"}])
        call = first.choices[0].message.tool_calls[0]
        assert first.choices[0].finish_reason == "tool_calls"
        assert (call.function.name, json.loads(call.function.arguments)) == ("estimate_cost", {"n": 5})
        second = sdk.chat.completions.create(model="anything", messages=[{"role": "user", "content": "y"}])
        assert second.choices[0].message.content == "done"
        assert server.auth_headers == ["Bearer k-123"] * 2


def test_injected_errors(openai_server):
    openai_server.fail_first_429 = 2
    reply = client(openai_server, max_retries=2).chat.completions.create(
        model="base", messages=[{"role": "user", "content": "x"}])
    assert reply.choices[0].message.content and openai_server.status_log == [429, 429, 200]  # Retry-After: 0
    openai_server.quota = True
    with pytest.raises(openai.RateLimitError) as quota:
        client(openai_server, max_retries=0).chat.completions.create(model="base", messages=[])
    assert quota.value.code == "insufficient_quota"
    openai_server.expected_key = "right"
    with pytest.raises(openai.AuthenticationError) as refused:
        client(openai_server, key="wrong-key-42").models.list()
    assert "wrong-key-42" in refused.value.message  # echoed, as OpenAI's 401 does


def test_fine_tuning_job_life(fake_openai, tmp_path):
    from standins.openai_server import TRAIN_KEY

    sdk = client(fake_openai, key=TRAIN_KEY)
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": []}\n')
    uploaded = sdk.files.create(file=data.open("rb"), purpose="fine-tune")
    job = sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=uploaded.id)
    statuses = [sdk.fine_tuning.jobs.retrieve(job.id).status for _ in range(6)]
    assert statuses == ["queued", "running", "running", "running", "succeeded", "succeeded"]
    steps = [e.data["step"] for e in sdk.fine_tuning.jobs.list_events(job.id, limit=100).data if e.type == "metrics"]
    assert sorted(steps) == list(range(1, 7))
    other = sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=uploaded.id)
    assert sdk.fine_tuning.jobs.cancel(other.id).status == "cancelled"
