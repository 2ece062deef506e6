"""The Playground streams an API model's answer: the real `openai` SDK reads the stand-in's server-sent events
(`stream: true`), and the page's conversation grows a word at a time, in one request (no fallback)."""

from __future__ import annotations

import time

import openai
import pytest

from ftassist.arena import models
from ftassist.ui import playground
from ftassist.usecases import arena as arena_cases
from ftassist.usecases.context import Context

ANSWER = "Paris is the capital of France, and has been for centuries."
PAUSE_S = 0.1  # between two events the stand-in sends


@pytest.fixture
def app(ftassist_home):
    models.clear_cache()
    yield Context.open()
    models.clear_cache()


def test_the_playground_streams_an_api_models_answer_in_pieces(app, fake_llm):
    fake_llm.answers["base"] = ANSWER
    fake_llm.stream_pause_s = PAUSE_S
    api = arena_cases.register_model(app, "openai_compatible", "api", {"base_url": fake_llm.base_url,
                                                                        "model": "base"}).id
    texts, arrived = [], []
    for history_a, _, _ in playground.send(app, "Where is Paris?", [], [], api, "", "", 0.0, 1.0, 64):
        if history_a[-1]["role"] == "assistant" and (not texts or history_a[-1]["content"] != texts[-1]):
            texts.append(history_a[-1]["content"])
            arrived.append(time.monotonic())
    assert texts[-1] == ANSWER
    pieces = fake_llm.stream_chunks[-1]
    assert len(pieces) == len(ANSWER.split()) and "".join(pieces) == ANSWER
    grown = [t for t in texts if t]
    assert len(grown) >= len(pieces) // 2, texts  # the page showed the answer growing, not once whole
    assert all(later.startswith(earlier) for earlier, later in zip(texts, texts[1:]))
    # the pieces came as they were sent, PAUSE_S apart, not buffered into one reply
    assert arrived[-1] - arrived[texts.index(grown[0])] >= 0.5 * PAUSE_S * (len(pieces) - 1)
    # one request, streamed: the SDK read the events, so no plain request followed
    assert [r.get("stream") for r in fake_llm.requests] == [True]


def test_the_stand_in_streams_as_openai_does(fake_llm):
    """The chunks the SDK parses: the role, the text a word at a time, the finish reason, the usage when asked."""
    fake_llm.answers["tuned"] = "one two  three "
    sdk = openai.OpenAI(api_key="any", base_url=fake_llm.base_url)
    chunks = list(sdk.chat.completions.create(model="tuned", messages=[{"role": "user", "content": "count"}],
                                              stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].object == "chat.completion.chunk"
    text = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert text == ["one", " two", "  three", " "]
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"] and chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3
    whole = sdk.chat.completions.create(model="tuned", messages=[{"role": "user", "content": "count"}])
    assert whole.choices[0].message.content == "".join(text)  # streamed or not, the same answer


def test_streamed_tool_calls_reach_the_sdk():
    from standins import OpenAIStandIn

    with OpenAIStandIn(script=[{"tool_calls": [("estimate_cost", {"n": 5})]}]) as server:
        sdk = openai.OpenAI(api_key="any", base_url=server.base_url)
        chunks = list(sdk.chat.completions.create(model="any", messages=[{"role": "user", "content": "x"}],
                                                  stream=True))
    calls = [call for c in chunks if c.choices for call in (c.choices[0].delta.tool_calls or [])]
    assert [(call.index, call.function.name, call.function.arguments) for call in calls] == \
        [(0, "estimate_cost", '{"n": 5}')]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
