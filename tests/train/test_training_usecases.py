"""The training use cases: the form's defaults, the run a session leads to, and the answers about runs."""

from __future__ import annotations

import time

import pytest

from ftassist.usecases import registry, training
from ftassist.usecases.context import Context, NotFound, UseCaseError
from ftassist.usecases.session import Dataset, Session, Split

pytestmark = pytest.mark.usefixtures("no_stray_workers")  # tests/train/conftest.py

OPENAI_OPTION = {"id": "openai:gpt-4.1-mini-2025-04-14", "kind": "openai", "model": "gpt-4.1-mini-2025-04-14",
                 "method": "openai_sft", "epochs": 3}
LLAMA_OPTION = {"id": "lora:meta-llama/Llama-3.1-8B:A100", "kind": "self_hosted",
                "model": "meta-llama/Llama-3.1-8B", "method": "qlora", "epochs": 2}


@pytest.fixture
def ctx() -> Context:
    return Context.open()


@pytest.fixture
def split(chat_data) -> Split:
    train, valid = chat_data
    return Split(train=str(train), valid=str(valid), folder=str(train.parent), n_train=40, n_valid=8)


def test_after_the_sample_flow_the_run_is_a_local_tiny_random_lora(ctx):
    """The bug: the form arrived with backend openai and a Llama model after the sample. Whatever was chosen
    before, the sample's option sets a coherent local tiny-random run, on the sample's split."""
    from ftassist.usecases import planning

    before = Session().chose(OPENAI_OPTION)
    session = planning.try_sample_data(ctx, before).session
    defaults = training.training_defaults(ctx, session)
    assert (defaults.backend, defaults.base_model, defaults.method) == ("local", "tiny-random", "lora")
    assert (defaults.train_file, defaults.valid_file) == (session.split.train, session.split.valid)
    assert f"{session.split.n_train:,} train" in defaults.source
    plan = training.plan_run(ctx, session)
    assert plan.spec["backend"] == "local" and plan.spec["base_model"] == "tiny-random"
    assert plan.spec["train_file"] == session.split.train and "LORA on tiny-random" in plan.summary


def test_defaults_for_an_openai_option_a_local_option_and_none(ctx, split):
    openai = training.training_defaults(ctx, Session(split=split).chose(OPENAI_OPTION))
    assert (openai.backend, openai.openai_model, openai.base_model, openai.method, openai.num_epochs) == (
        "openai", "gpt-4.1-mini-2025-04-14", "tiny-random", "lora", 3.0)
    local = training.training_defaults(ctx, Session(split=split).chose(LLAMA_OPTION))
    assert (local.backend, local.base_model, local.method, local.num_epochs) == (
        "local", "meta-llama/Llama-3.1-8B", "qlora", 2.0)
    assert local.openai_model == "gpt-4o-mini-2024-07-18"  # never the local model in the OpenAI field
    assert local.key != openai.key  # another option: the form refills
    nothing = training.training_defaults(ctx, Session(split=split))
    assert (nothing.backend, nothing.base_model, nothing.method, nothing.num_epochs) == (
        "local", "tiny-random", "lora", None)
    assert nothing.valid_file == split.valid

    unsplit = Session(dataset=Dataset(path=split.train, report={"n_examples": 40}))
    defaults = training.training_defaults(ctx, unsplit)
    assert (defaults.train_file, defaults.valid_file) == (split.train, "") and "unsplit" in defaults.source
    # Over the app's socket a session arrives as a dict: the registry makes it a Session again.
    assert registry.call(ctx, "training_defaults", {"session": unsplit.to_dict()}) == defaults

    assert training.training_defaults(ctx, Session()).train_file == ""
    with pytest.raises(UseCaseError, match="no dataset yet"):
        training.plan_run(ctx, Session())


def test_plan_run_takes_what_is_asked_over_the_defaults(ctx, split):
    session = Session(split=split).chose(LLAMA_OPTION)
    plan = training.plan_run(ctx, session, base_model="gpt-4.1-nano-2025-04-14", num_epochs=2)
    assert plan.spec["backend"] == "openai" and plan.spec["openai"] == {"model": "gpt-4.1-nano-2025-04-14",
                                                                        "n_epochs": 2}
    assert "OpenAI fine-tuning of gpt-4.1-nano-2025-04-14, 2 epochs" in plan.summary
    plan = training.plan_run(ctx, session, base_model="tiny-random", method="full", max_steps=5)
    assert (plan.spec["backend"], plan.spec["method"], plan.spec["max_steps"], plan.spec["num_epochs"]) == (
        "local", "full", 5, 2.0)
    assert "(at most 5 steps)" in plan.summary and "40 train / 8 validation" in plan.summary
    with pytest.raises(UseCaseError, match="Unknown method 'dora'"):
        training.plan_run(ctx, session, method="dora")


def test_refusals_are_sentences_and_the_key_is_never_in_them(ctx, split, monkeypatch):
    with pytest.raises(UseCaseError, match="does not exist"):
        training.start_run(ctx, {"train_file": "/no/such.jsonl"})
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(UseCaseError, match="OPENAI_API_KEY"):
        training.start_run_from_session(ctx, Session(split=split).chose(OPENAI_OPTION))
    assert training.list_runs(ctx) == []
    for call in (lambda: training.show_run(ctx, "nope"), lambda: training.cancel_run(ctx, "nope"),
                 lambda: training.loss_points(ctx, "nope"), lambda: training.show_run(ctx)):
        with pytest.raises(NotFound):
            call()
    assert training.run_summary(ctx, None) == training.RunSummary(run_id=None)
    assert training.run_view(ctx).run is None


@pytest.mark.slow
def test_a_run_from_the_session_is_followed_to_its_end(ctx, split):
    started = training.start_run_from_session(ctx, Session(split=split), max_steps=3)
    assert started.status == "running" and started.pid
    deadline = time.monotonic() + 120
    while (run := training.show_run(ctx, started.run_id)).status == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run.status == "succeeded", run.log_tail
    assert run.last_step == run.total_steps == 3 and run.progress.fraction == 1.0
    assert run.spec["max_steps"] == 3 and run.spec["base_model"] == "tiny-random"
    summary = training.run_summary(ctx, started.run_id)
    assert (summary.status, summary.fraction, summary.output_model) == ("succeeded", 1.0, run.output_model)
    points = training.loss_points(ctx, started.run_id)
    assert [p.step for p in points if p.series == "train"] == [1, 2, 3]
    assert all(p.epoch is not None for p in points if p.series == "train")  # the assistant reads epochs
    view = training.run_view(ctx)  # no run named: the most recent one
    assert view.run.id == started.run_id and [r.id for r in view.runs] == [started.run_id]
    with pytest.raises(UseCaseError, match="already ended"):
        training.cancel_run(ctx, started.run_id)
    assert registry.to_jsonable(run)["progress"]["step"] == 3  # what the CLI gets over the socket


def test_a_run_planned_on_a_rented_gpu_keeps_the_local_recipe(ctx, tmp_path):
    from ftassist.usecases import training
    from ftassist.usecases.session import Session, Split

    train_file = tmp_path / "train.jsonl"
    train_file.write_text("{}\n")
    session = Session().split_into(Split(str(train_file), None, str(tmp_path), 1, 0))
    plan = training.plan_run(ctx, session, base_model="Qwen/Qwen2.5-0.5B", method="lora", backend="hf-jobs")
    assert plan.spec["backend"] == "hf-jobs" and plan.spec["method"] == "lora"
    assert plan.spec["base_model"] == "Qwen/Qwen2.5-0.5B" and "Hugging Face Jobs" in plan.summary


def test_a_jobs_or_together_option_prefills_its_backend_model_and_flavor(ctx, tmp_path):
    from ftassist.usecases import training
    from ftassist.usecases.session import Session, Split

    train_file = tmp_path / "train.jsonl"
    train_file.write_text("{}\n")
    split = Session().split_into(Split(str(train_file), None, str(tmp_path), 1, 0))
    jobs = training.training_defaults(ctx, split.chose({"id": "hf-jobs:lora:Qwen/Qwen2.5-0.5B:l4x1", "kind": "hf_jobs",
                                                        "model": "Qwen/Qwen2.5-0.5B", "method": "qlora",
                                                        "flavor": "l4x1", "epochs": 2}))
    assert (jobs.backend, jobs.base_model, jobs.method, jobs.flavor, jobs.num_epochs) == (
        "hf-jobs", "Qwen/Qwen2.5-0.5B", "qlora", "l4x1", 2.0)
    hosted = training.training_defaults(ctx, split.chose({"id": "together:full:m", "kind": "together", "model": "m",
                                                          "method": "full", "flavor": "ignored"}))
    assert (hosted.backend, hosted.base_model, hosted.method, hosted.flavor) == ("together", "m", "full", "")
