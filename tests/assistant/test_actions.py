"""A use case registered with confirm=True is proposed, runs only on Confirm, and runs as the registry runs it."""

from __future__ import annotations

import functools

import pytest

from ftassist.assistant import actions, chat, intents
from ftassist.usecases import planning, registry
from ftassist.usecases.session import Session, Split


def test_a_confirm_use_case_is_proposed_not_run(ctx, dataset_file, monkeypatch):
    ran = []
    case = registry.get("check_dataset")
    assert case.confirm

    def spy(*args, **kwargs):
        ran.append(kwargs)
        return case.function(*args, **kwargs)

    functools.update_wrapper(spy, case.function)  # the same signature and docstring
    monkeypatch.setitem(registry.USE_CASES, "check_dataset", registry.UseCase(case.name, spy, case.summary, True, True))
    outcome = actions.use(ctx, "check_dataset", {"path": str(dataset_file)}, Session())
    assert not ran and outcome.session.pending_action["use_case"] == "check_dataset"
    assert outcome.session.pending_action["arguments"] == {"path": str(dataset_file)}
    assert "Confirm" in outcome.result["text"]
    text, session = actions.confirm(ctx, outcome.session)
    assert ran == [{"path": str(dataset_file)}] and session.dataset.n_examples == 24


def test_check_is_proposed_then_run_on_confirm(ctx, checked_session):
    r = intents.answer(ctx, "please run the check on my dataset", checked_session)
    assert r.pending["use_case"] == "check_dataset" and "support.jsonl" in r.pending["summary"]
    assert r.session.dataset == checked_session.dataset  # nothing ran yet
    text, session = chat.confirm(ctx, r.session)
    assert session.pending_action is None
    assert session.dataset.n_examples == 24 and session.dataset.report["error_counts"]
    listed = registry.call(ctx, "list_datasets", {})  # it ran as the Data tab runs it: remembered
    assert [d.n_examples for d in listed] == [24]
    assert "Done" in text and "24 valid examples" in text


def test_the_estimate_is_the_estimate_steps(ctx, checked_session):
    from ftassist.usecases.session import Decision

    session = checked_session.decided(Decision(answers={}, approach="fine_tune", method="openai"))
    r = intents.answer(ctx, "make the estimate", session)
    expected = planning.estimate_options(ctx, session)
    assert expected.prefer == "openai" and expected.table.recommendation in r.text
    assert r.pending is None


def test_estimate_needs_a_checked_dataset(ctx):
    r = intents.answer(ctx, "make the estimate", Session())
    assert r.pending is None and "Check the dataset first" in r.text


@pytest.fixture
def started(monkeypatch):
    """Record the runs the training use case would start instead of launching a worker process."""
    from ftassist.usecases import training

    calls = []

    def fake_start_run(ctx, spec, api_key=None):
        calls.append((spec, api_key))
        return training.RunStarted(run_id="run-from-assistant", status="running", run_dir="/tmp/r", output_dir=None,
                                   pid=None, message="started")

    monkeypatch.setattr(training, "start_run", fake_start_run)
    return calls


def split_session(dataset_file, tmp_path) -> Session:
    valid = tmp_path / "valid.jsonl"
    valid.write_text(dataset_file.read_text().splitlines()[0] + "\n")
    return Session().split_into(Split(train=str(dataset_file), valid=str(valid), folder=str(tmp_path), n_train=24,
                                      n_valid=1))


def test_train_is_proposed_then_started_on_confirm(ctx, dataset_file, tmp_path, started):
    session = split_session(dataset_file, tmp_path)
    r = intents.answer(ctx, "start training with tiny-random for 2 epochs, 30 steps", session)
    p = r.pending
    assert p["use_case"] == "start_run_from_session"
    assert "LORA on tiny-random, 2 epochs (at most 30 steps)" in p["summary"]
    assert not started  # not before the confirmation
    text, session = chat.confirm(ctx, r.session, api_key="sk-typed-0123456789")
    spec, key = started[0]
    assert (spec["backend"], spec["base_model"], spec["method"], spec["num_epochs"], spec["max_steps"]) == \
        ("local", "tiny-random", "lora", 2.0, 30)
    assert spec["train_file"] == str(dataset_file) and spec["valid_file"].endswith("valid.jsonl")
    assert key == "sk-typed-0123456789"  # handed to the run, and never kept
    assert "sk-typed" not in repr(session.to_dict()) and "sk-typed" not in text
    assert session.run_id == "run-from-assistant" and "Done" in text


def test_typed_yes_confirms_and_no_cancels(ctx, dataset_file, tmp_path, started):
    r = intents.answer(ctx, "start training", split_session(dataset_file, tmp_path))
    assert r.pending
    no = chat.respond(ctx, "no", [], r.session)
    assert no.intent == "cancel" and no.session.pending_action is None and not started
    r = intents.answer(ctx, "start training", no.session)
    yes = chat.respond(ctx, "yes", [], r.session)
    assert yes.intent == "confirm" and started and yes.session.run_id == "run-from-assistant"


def test_training_needs_data_first(ctx, started):
    r = intents.answer(ctx, "start training with tiny-random", Session())
    assert r.pending is None and "no dataset yet" in r.text and not started


def test_confirm_without_a_proposal_and_a_failing_action(ctx, checked_session, dataset_file):
    text, session = chat.confirm(ctx, Session())
    assert "nothing to confirm" in text
    r = intents.answer(ctx, "check my data", checked_session)
    dataset_file.unlink()  # the file vanished between the proposal and the confirmation
    text, session = chat.confirm(ctx, r.session)
    assert text.startswith("Could not run it") and session.pending_action is None
    assert session.dataset == checked_session.dataset


def test_cancel(ctx, checked_session):
    r = intents.answer(ctx, "check my data", checked_session)
    text, session = chat.cancel(r.session)
    assert "Cancelled" in text and session.pending_action is None
    assert "nothing waiting" in chat.cancel(session)[0]
