"""Proposed actions wait for a confirmation, then run through the same core functions as the tabs."""

from __future__ import annotations

import pytest

from ftassist.assistant import actions, chat, intents


def test_check_is_proposed_then_run_on_confirm(dataset_file):
    session = {"dataset_path": str(dataset_file)}
    r = intents.answer("please run the check on my dataset", session)
    assert r.pending["action"] == "check" and "support.jsonl" in r.pending["summary"]
    assert "report" not in r.session  # nothing ran yet
    text, session = chat.confirm(r.session)
    assert actions.pending(session) is None
    assert session["report"]["n_examples"] == 24 and session["report"]["error_counts"]
    assert "Done" in text and "24 valid examples" in text


def test_estimate_is_proposed_then_run_on_confirm(checked_session):
    from ftassist.plan.estimate import estimate_from_report

    session = {**checked_session, "guide": {"approach": "fine_tune", "method": "openai"}}
    r = intents.answer("make the estimate", session)
    assert r.pending["action"] == "estimate" and "preferring openai" in r.pending["summary"]
    text, session = chat.confirm(r.session)
    expected = estimate_from_report(checked_session["report"], {"prefer": "openai", "allow_network": False})
    assert session["estimate"]["id"] == expected.recommended_id
    assert session["estimate"]["kind"] == "openai"
    assert expected.recommendation in text


def test_estimate_needs_a_checked_dataset():
    r = intents.answer("make the estimate", {})
    assert r.pending is None and "check the dataset first" in r.text


@pytest.fixture
def started(monkeypatch):
    """Record start_job calls instead of launching a worker process."""
    from ftassist.train import jobs

    calls = []

    def fake_start_job(spec, *, api_key=None, job_id=None):
        problems = [p for p in spec.validate() if not p.startswith("output_dir")]
        assert not problems, problems
        calls.append((spec, api_key))
        return "job-from-assistant"

    monkeypatch.setattr(jobs, "start_job", fake_start_job)
    return calls


def test_train_is_proposed_then_started_on_confirm(dataset_file, tmp_path, started):
    valid = tmp_path / "valid.jsonl"
    valid.write_text(dataset_file.read_text().splitlines()[0] + "\n")
    session = {"clean": {"train": str(dataset_file), "valid": str(valid), "n_train": 24, "n_valid": 1}}
    r = intents.answer("start training with tiny-random for 2 epochs, 30 steps", session)
    p = r.pending
    assert p["action"] == "train"
    assert "LORA on tiny-random, 2 epochs (at most 30 steps)" in p["summary"]
    assert not started  # not before the confirmation
    text, session = chat.confirm(r.session)
    assert len(started) == 1
    spec, key = started[0]
    assert (spec.backend, spec.base_model, spec.method, spec.num_epochs, spec.max_steps) == \
        ("local", "tiny-random", "lora", 2.0, 30)
    assert spec.train_file == str(dataset_file) and spec.valid_file == str(valid)
    assert key is None
    assert session["job_id"] == "job-from-assistant" and "job-from-assistant" in text


def test_train_with_the_chosen_option_uses_its_method_and_epochs(dataset_file, started):
    session = {"dataset_path": str(dataset_file),
               "estimate": {"kind": "self_hosted", "model": "meta-llama/Llama-3.1-8B", "method": "qlora", "epochs": 4}}
    r = intents.answer("start a run with tiny-random using the chosen option", session)
    assert "unsplit" in r.pending["summary"]
    chat.confirm(r.session)
    spec = started[0][0]
    assert (spec.base_model, spec.method, spec.num_epochs, spec.valid_file) == ("tiny-random", "qlora", 4.0, None)


def test_typed_yes_confirms_and_no_cancels(dataset_file, started):
    r = intents.answer("start training", {"dataset_path": str(dataset_file)})
    assert r.pending
    no = chat.respond("no", [], r.session)
    assert no.intent == "cancel" and actions.pending(no.session) is None and not started
    r = intents.answer("start training", no.session)
    yes = chat.respond("yes", [], r.session)
    assert yes.intent == "confirm" and started and yes.session["job_id"] == "job-from-assistant"


def test_confirm_without_a_proposal_and_a_failing_action(dataset_file, monkeypatch):
    text, session = chat.confirm({})
    assert "nothing to confirm" in text
    r = intents.answer("check my data", {"dataset_path": str(dataset_file)})
    dataset_file.unlink()  # the upload vanished between the proposal and the confirmation
    text, session = chat.confirm(r.session)
    assert text.startswith("Could not check") and actions.pending(session) is None


def test_job_error_is_a_message(dataset_file, monkeypatch):
    from ftassist.train import jobs

    def refuse(spec, **kw):
        raise jobs.JobError("no API key: set OPENAI_API_KEY or enter the key, then start again.")

    monkeypatch.setattr(jobs, "start_job", refuse)
    r = intents.answer("start training", {"dataset_path": str(dataset_file)})
    text, session = chat.confirm(r.session)
    assert "no API key" in text and "job_id" not in session
