"""The Playground: a streamed answer (the same text the arena's generation gives), side by side with an API
model, and what a person keeps: a training example, a preference pair."""

from __future__ import annotations

import json

import gradio as gr
import pytest

from ftassist.arena import models
from ftassist.ui import playground
from ftassist.usecases import arena as arena_cases
from ftassist.usecases import registry
from ftassist.usecases.context import Context, UseCaseError
from ftassist.usecases.playground import save_rejected_answer

SYSTEM = "Answer briefly."
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """The project's tiny-random Llama, its tokenizer learnt from many words (the shipped general questions),
    so that a sampled answer has spaces and streams in several pieces (a streamer flushes at word ends)."""
    from ftassist.arena import metrics
    from ftassist.train.tiny import build_tiny_model

    texts = [m["content"] for example in metrics.forgetting_examples() for m in example["messages"]]
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), texts * 3)


@pytest.fixture
def app(ftassist_home):
    models.clear_cache()
    yield Context.open()
    models.clear_cache()


@pytest.fixture
def tiny(app, tiny_dir):
    return arena_cases.register_model(app, "hf", "tiny", {"model": str(tiny_dir)}).id


def _send(app, a, b=None, history_a=None, history_b=None, message=QUESTION, tokens=24, temperature=1.0):
    """Every update of one Send. Sampled (seed 0): the random tiny model's greedy answer is empty."""
    return list(playground.send(app, message, history_a or [], history_b or [], a, b or "", SYSTEM, temperature, 1.0,
                                tokens))


def test_the_answer_streams_and_is_the_arenas_answer(app, tiny):
    updates = _send(app, tiny)
    first, last = updates[0][0], updates[-1][0]
    assert first == [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ""}]
    assert updates[-1][2] == "" and updates[-1][1] is not None  # the message box is cleared
    answer = last[-1]["content"]
    expected = models.generate(app.store, tiny, [[{"role": "system", "content": SYSTEM},
                                                  {"role": "user", "content": QUESTION}]],
                               {"temperature": 1.0, "max_new_tokens": 24, "seed": 0})[0]["text"]
    assert answer.strip() == expected and expected
    # it grew piece by piece: every update's text is a prefix of the next one's
    texts = [u[0][-1]["content"] for u in updates]
    assert all(later.startswith(earlier) for earlier, later in zip(texts, texts[1:]))
    assert len(set(texts)) >= 3, texts  # empty, then at least one piece before the whole answer
    # the next turn carries the conversation (Gradio hands content back as parts: both shapes read the same)
    parts = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in last]
    again = _send(app, tiny, history_a=parts, message="And of Spain?", tokens=4)[-1][0]
    assert [m["role"] for m in again] == ["user", "assistant", "user", "assistant"] and again[0] == last[0]


def test_side_by_side_with_an_api_model(app, tiny, fake_llm):
    fake_llm.answers["base"] = "Paris, of course."
    api = arena_cases.register_model(app, "openai_compatible", "api", {"base_url": fake_llm.base_url,
                                                                        "model": "base"}).id
    history_a, history_b, _ = _send(app, tiny, api)[-1]
    assert history_b[-1] == {"role": "assistant", "content": "Paris, of course."}
    assert history_a[-1]["role"] == "assistant" and history_a[0] == history_b[0]
    sent = fake_llm.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": SYSTEM} and sent["temperature"] == 1.0

    # the bad answer (A) kept as rejected, the other side's as chosen: TRL's conversational preference row
    message = playground.save_rejected(app, "A", history_a, history_b, "", SYSTEM)
    path = app.settings.data_dir / "playground" / "preferences.jsonl"
    assert str(path) in message
    row = json.loads(path.read_text(encoding="utf-8").splitlines()[-1])
    assert row == {"prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
                   "chosen": [{"role": "assistant", "content": "Paris, of course."}],
                   "rejected": [{"role": "assistant", "content": history_a[-1]["content"]}]}


def test_a_failing_model_is_one_warning_not_a_traceback(app, fake_llm):
    api = arena_cases.register_model(app, "openai_compatible", "flaky", {"base_url": fake_llm.base_url,
                                                                          "model": "base", "max_retries": 0}).id
    fake_llm.status = 500
    history_a, _, _ = _send(app, api)[-1]
    assert history_a == [{"role": "user", "content": QUESTION}]  # no empty answer left behind


def test_saving_a_good_answer_as_a_training_example(app, tiny):
    history_a, _, _ = _send(app, tiny, tokens=6)[-1]
    message = playground.save_example(app, "A", history_a, [], "", SYSTEM)
    path = app.settings.data_dir / "playground" / "examples.jsonl"
    assert f"example 1 in {path}" in message
    playground.save_example(app, "A", history_a, [], "The capital of France is Paris.", SYSTEM)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows[0]["messages"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION},
                                   {"role": "assistant", "content": history_a[-1]["content"].strip()}]
    assert rows[1]["messages"][-1] == {"role": "assistant", "content": "The capital of France is Paris."}
    # the file is a chat dataset the Data step accepts as it is
    from ftassist.usecases import data

    checked = data.check_dataset(app, str(path))
    assert checked.report["n_examples"] == 2  # no record refused (only "too few examples" for the file as a whole)
    assert [e for e in checked.report["errors"] if e["line"]] == []


def test_what_cannot_be_saved_is_refused_with_what_to_do(app, tiny):
    with pytest.raises(gr.Error, match="no answer on that side"):
        playground.save_example(app, "B", [], [], "", "")
    history_a, _, _ = _send(app, tiny, tokens=4)[-1]
    with pytest.raises(gr.Error, match="needs the better answer"):
        playground.save_rejected(app, "A", history_a, [], "", "")
    with pytest.raises(UseCaseError, match="same as the rejected"):
        save_rejected_answer(app, history_a[:-1], "same", "same")
    with pytest.raises(UseCaseError, match="end with the user's message"):
        save_rejected_answer(app, [{"role": "assistant", "content": "hi"}], "bad", "good")
    with pytest.raises(UseCaseError, match="Message 1"):
        save_rejected_answer(app, [{"role": "robot", "content": "hi"}], "bad", "good")
    assert not (app.settings.data_dir / "playground" / "preferences.jsonl").exists()


def test_playground_reply_through_the_registry(app, fake_llm):
    fake_llm.answers["tuned"] = lambda messages: f"{len(messages)} messages seen"
    arena_cases.register_model(app, "openai_compatible", "Tuned API", {"base_url": fake_llm.base_url,
                                                                       "model": "tuned"})
    reply = registry.to_jsonable(registry.call(app, "playground_reply", {
        "model": "Tuned API", "messages": [{"role": "user", "content": "hi"}], "system_prompt": "Be kind.",
        "temperature": 0.3, "max_new_tokens": 20}))
    assert reply["text"] == "2 messages seen" and reply["model"] == "tuned-api"
    assert reply["sampling"]["temperature"] == 0.3 and reply["sampling"]["max_new_tokens"] == 20
    with pytest.raises(UseCaseError, match="No model"):
        registry.call(app, "playground_reply", {"model": "nobody", "messages": [{"role": "user", "content": "x"}]})


def test_the_page_streams_the_send_handler(app):
    """Gradio streams only a generator function: the Send handler on the page is one, whatever wraps it."""
    import inspect

    from ftassist.ui import layout

    demo = layout.build_app(app=app)
    sends = [f for f in demo.fns.values() if f.api_name == "playground_send"]
    assert len(sends) == 1 and inspect.isgeneratorfunction(sends[0].fn)
    assert "message" in inspect.signature(sends[0].fn).parameters  # Gradio still sees the handler's inputs
