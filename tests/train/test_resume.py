"""Resuming a stopped run: a real tiny-random LoRA run is cancelled after a checkpoint, then goes on from
that checkpoint (through `ftassist jobs resume` and the Train tab) with its step, optimizer and schedule."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pytest

from ftassist.cli import main
from ftassist.train import jobs
from ftassist.train.events import EventWriter
from ftassist.ui import train as tab
from ftassist.usecases import training
from ftassist.usecases.context import Context, UseCaseError
from ftassist.usecases.session import Session
from job_waiting import wait_for

pytestmark = pytest.mark.usefixtures("no_stray_workers")  # tests/train/conftest.py

MAX_STEPS = 60


@pytest.fixture
def ctx() -> Context:
    return Context.open()


def _wait_for(predicate, what: str, timeout: float = 180.0):
    return wait_for(predicate, timeout, what)


def _events(ctx: Context, run_id: str, kind: str) -> list[dict]:
    return jobs.job_events(ctx.store, run_id, types=(kind,))


def _fake_run(ctx: Context, status: str, backend: str = "local") -> str:
    """A run row as the job manager leaves it, with a run folder and no checkpoint."""
    run_id = jobs.new_job_id()
    run_dir = ctx.settings.runs_dir / run_id
    run_dir.mkdir(parents=True)
    ctx.store.execute(
        "INSERT INTO jobs (id, backend, base_model, method, status, run_dir, spec_json)"
        " VALUES (?, ?, 'tiny-random', 'lora', ?, ?, '{}')", [run_id, backend, status, str(run_dir)])
    return run_id


@pytest.mark.slow
def test_a_cancelled_run_goes_on_from_its_checkpoint(ctx, chat_data, capsys):
    train, _ = chat_data
    spec = dict(base_model="tiny-random", train_file=str(train), max_steps=MAX_STEPS, save_steps=2,
                logging_steps=1, per_device_batch_size=4)
    first = training.start_run(ctx, spec)
    # Cancel once a checkpoint exists: the cancel itself saves one more, at the step it stops on.
    _wait_for(lambda: _events(ctx, first.run_id, "checkpoint"), "a first checkpoint")
    cancelled = training.cancel_run(ctx, first.run_id, timeout=30)
    assert cancelled.status == "cancelled", cancelled
    stopped_at = _events(ctx, first.run_id, "cancelled")[-1]["step"]
    assert 2 <= stopped_at < MAX_STEPS
    last = _events(ctx, first.run_id, "checkpoint")[-1]
    assert last["step"] == stopped_at  # the cancel saved the step it stopped on
    assert (Path(last["path"]) / "optimizer.pt").is_file() and (Path(last["path"]) / "scheduler.pt").is_file()
    first_lrs = {e["step"]: e["learning_rate"] for e in _events(ctx, first.run_id, "log")}

    # `ftassist jobs resume ID --json`: a new run, followed to its end like `ftassist train`.
    assert main(["jobs", "resume", first.run_id, "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["status"] == "succeeded", captured.err
    second = result["job_id"]
    assert second != first.run_id
    assert f"resumed at step {stopped_at}" in captured.err
    run = training.show_run(ctx, second)
    assert run.spec["resumed_from"] == first.run_id and run.spec["resume_from_checkpoint"] == last["path"]
    assert run.spec["max_steps"] == MAX_STEPS and run.spec["train_file"] == str(train)  # same settings, same data
    started = _events(ctx, second, "started")[-1]
    assert started["resumed_from_step"] == stopped_at
    logged = [e["step"] for e in _events(ctx, second, "log")]
    assert logged[0] == stopped_at + 1 and logged[-1] == MAX_STEPS  # it went on, not from step 0
    # The schedule was restored too: a fresh one would start warming up again from a fraction of the rate.
    resumed_lr = _events(ctx, second, "log")[0]["learning_rate"]
    assert 0.9 * first_lrs[stopped_at] < resumed_lr <= first_lrs[stopped_at]
    assert run.output_dir.startswith(run.run_dir)  # its own folder, not the stopped run's
    assert Path(run.output_dir, "adapter_config.json").is_file()
    assert Path(run.output_dir, "adapter_model.safetensors").is_file()

    # A run that finished has nothing left to train.
    with pytest.raises(UseCaseError, match="already finished"):
        training.resume_run(ctx, second)
    assert main(["jobs", "resume", second]) == 2
    assert "already finished" in capsys.readouterr().err

    # The Train tab: Resume starts a new run from the same checkpoint and makes it the session's and the list's.
    session, message, choice = tab.resume_handler(ctx, first.run_id, "", Session().selected_run(first.run_id))
    third = session.run_id
    assert third not in (first.run_id, second) and choice["value"] == third
    assert third in message and f"from step {stopped_at}" in message
    assert training.show_run(ctx, third).spec["resumed_from"] == first.run_id
    if training.show_run(ctx, third).status == "running":
        with pytest.raises(gr.Error, match="still running"):  # a running run is not resumed a second time
            tab.resume_handler(ctx, third, "", session)
        training.cancel_run(ctx, third, timeout=30)


def test_resume_is_refused_with_the_reason(ctx):
    no_checkpoint = _fake_run(ctx, "cancelled")
    with pytest.raises(UseCaseError, match="cannot be resumed.*before its first checkpoint"):
        training.resume_run(ctx, no_checkpoint)
    with pytest.raises(UseCaseError, match="already finished"):
        training.resume_run(ctx, _fake_run(ctx, "succeeded"))
    with pytest.raises(UseCaseError, match="still queued"):
        training.resume_run(ctx, _fake_run(ctx, "queued"))
    with pytest.raises(UseCaseError, match="OpenAI.*cannot be resumed from here"):
        training.resume_run(ctx, _fake_run(ctx, "failed", backend="openai"))
    with pytest.raises(UseCaseError, match="no run 'nope'"):
        training.resume_run(ctx, "nope")
    # A checkpoint event whose folder was rotated away (or deleted) does not count.
    gone = _fake_run(ctx, "interrupted")
    EventWriter(ctx.settings.runs_dir / gone).checkpoint(step=4, path=str(ctx.settings.runs_dir / "gone"))
    jobs.ingest(ctx.store, gone)
    with pytest.raises(UseCaseError, match="cannot be resumed"):
        training.resume_run(ctx, gone)
    assert main(["jobs", "resume", no_checkpoint]) == 2  # the CLI says it in one line


def test_the_tab_wires_resume_as_a_named_endpoint():
    from ftassist.ui.context import UIContext

    with gr.Blocks() as demo:
        tab.build(UIContext(session=gr.State(Session())))
    assert "resume_training" in {fn.api_name for fn in demo.fns.values()}
    with pytest.raises(gr.Error, match="Choose"):
        tab.resume_handler(Context.open(), None, "", Session())


@pytest.fixture
def hub(jobs_server, monkeypatch):
    """The Jobs/Hub stand-in as HF_ENDPOINT (it really runs each job's command here), a token in HF_TOKEN."""
    monkeypatch.setenv("HF_ENDPOINT", jobs_server.url)
    monkeypatch.setenv("HF_TOKEN", "hf_standinTokenForResume0123456789")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    return jobs_server


@pytest.mark.slow
def test_a_cancelled_hugging_face_job_goes_on_from_the_checkpoint_it_uploaded(ctx, hub, chat_data):
    train, _ = chat_data
    spec = dict(backend="hf-jobs", base_model="tiny-random", train_file=str(train), max_steps=30, save_steps=2,
                logging_steps=1, per_device_batch_size=4, hf_jobs={"namespace": "me"})
    first = training.start_run(ctx, spec)
    uploaded = _wait_for(lambda: [e for e in _events(ctx, first.run_id, "checkpoint") if e.get("hub_path")],
                         "a checkpoint uploaded by the job")[-1]
    assert uploaded["hub_path"] == f"hf://me/ftassist-{first.run_id}/last-checkpoint"
    files = hub.files[f"me/ftassist-{first.run_id}"]
    assert "last-checkpoint/optimizer.pt" in files and "last-checkpoint/trainer_state.json" in files
    assert training.cancel_run(ctx, first.run_id, timeout=30).status == "cancelled"

    second = training.resume_run(ctx, first.run_id)
    assert second.run_id != first.run_id
    run = _wait_for(lambda: (r := training.show_run(ctx, second.run_id)).status in training.FINAL_STATUSES and r,
                    "the resumed job to end")
    assert run.status == "succeeded", (run.error, run.log_tail)
    assert len(hub.created) == 2 and run.external_id != training.show_run(ctx, first.run_id).external_id  # a new job
    assert run.spec["resume_from_checkpoint"] == uploaded["hub_path"] and run.spec["resumed_from"] == first.run_id
    # The job went on from the uploaded checkpoint (the latest the job had uploaded: at or after the one seen here).
    resumed_at = next(e["resumed_from_step"] for e in _events(ctx, second.run_id, "started")
                      if e.get("resumed_from_step") is not None)
    assert uploaded["step"] <= resumed_at < 30
    logged = [e["step"] for e in _events(ctx, second.run_id, "log")]
    assert logged[0] == resumed_at + 1 and logged[-1] == 30
    assert Path(run.output_model, "adapter_model.safetensors").is_file()
