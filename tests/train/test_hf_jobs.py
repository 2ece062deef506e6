"""Backend hf-jobs end to end: the real huggingface_hub SDK against the Jobs/Hub stand-in, which really runs
each job's command here (the remote driver, the unchanged worker on tiny-random, the upload of the adapter)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from ftassist import config, store
from ftassist.cli import main
from ftassist.train import hf_jobs, jobs
from ftassist.train.spec import JobSpec
from job_waiting import wait_for
from tests.train.conftest import JOBS_TOKEN as TOKEN

pytestmark = [pytest.mark.usefixtures("no_stray_workers"), pytest.mark.slow]


def _chat(path: Path, n: int, assistant: bool = True) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            a, b = i % 7 + 1, i % 5 + 2
            turns = [{"role": "user", "content": f"What is {a} plus {b}?"}]
            if assistant:
                turns.append({"role": "assistant", "content": f"{a} plus {b} is {a + b}."})
            f.write(json.dumps({"messages": turns}) + "\n")
    return str(path)


@pytest.fixture
def data(tmp_path):
    return _chat(tmp_path / "train.jsonl", 16), _chat(tmp_path / "valid.jsonl", 4)


def _db():
    return store.get_store()


def _spec(data, **kw) -> JobSpec:
    train, valid = data
    kw.setdefault("max_steps", 3)
    return JobSpec(backend="hf-jobs", train_file=train, valid_file=valid, per_device_batch_size=4, logging_steps=1,
                   hf_jobs={"flavor": kw.pop("flavor", None), "namespace": "me"}, **kw)


def _wait_for(predicate, timeout=180.0, what="condition"):
    return wait_for(predicate, timeout, what)  # a remote job starts slower than a local one


def _file_events(run_dir) -> list[dict]:
    return [json.loads(line) for line in Path(run_dir, "events.jsonl").read_text().splitlines() if line.strip()]


def _everything_written(run_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in Path(run_dir).rglob("*") if p.is_file()
                     and p.suffix in (".json", ".jsonl", ".log", ".sh", ".txt", ""))


def test_a_tiny_lora_run_on_jobs_streams_its_events_back_and_lands_in_a_private_repo(hub, data):
    job_id = jobs.start_job(_db(), _spec(data), config.runs_dir())
    job = _wait_for(lambda: (j := jobs.get_job(_db(), job_id))["status"] in jobs.FINAL_STATUSES and j,
                    what="the run to end")
    run_dir = Path(job["run_dir"])
    assert job["status"] == "succeeded", (job["error"], job["log_tail"])

    # One job, created with the token as a secret and never in its environment.
    assert len(hub.created) == 1
    created = hub.created[0]
    assert created["secrets"] == {"HF_TOKEN": TOKEN}
    assert TOKEN not in json.dumps(created["environment"]) and TOKEN not in json.dumps(created["command"])
    assert created["flavor"] == "t4-small"  # no estimate for tiny-random: the cheapest GPU flavor listed live
    assert created["dockerImage"].startswith("pytorch/pytorch:") and "cuda" in created["dockerImage"]
    assert job["external_id"] == next(iter(hub.jobs))

    # The remote worker's events came back: started, log lines with losses, finished with the repo.
    events = _file_events(run_dir)
    types = [e["type"] for e in events]
    assert types.count("started") == 2  # the job created here, then training begun there
    assert all(e["external_id"] == job["external_id"] for e in events if e["type"] == "started")
    logs = [e for e in events if e["type"] == "log"]
    assert [e["step"] for e in logs][-1] == 3 and all(isinstance(e["loss"], float) for e in logs)
    assert types[-1] == "finished" and types.count("finished") == 1
    finished = events[-1]
    assert finished["hub_model_id"] == f"me/ftassist-{job_id}"
    assert job["total_steps"] == 3 and job["first_loss"] is not None and job["final_loss"] is not None
    assert jobs.progress(_db(), job_id)["fraction"] == 1.0

    # The data went to a private dataset repo; the adapter to a private model repo, and back down here.
    assert hub.repos[f"datasets/me/ftassist-{job_id}-data"]["visibility"] == "private"
    assert hub.repos[f"me/ftassist-{job_id}"]["visibility"] == "private"
    uploaded = hub.files[f"me/ftassist-{job_id}"]
    assert "adapter_config.json" in uploaded and "adapter_model.safetensors" in uploaded
    assert hub.files[f"datasets/me/ftassist-{job_id}-data"]["train.jsonl"] == Path(data[0]).read_bytes()
    local = Path(job["output_model"])
    assert local == run_dir / "model"
    assert (local / "adapter_model.safetensors").read_bytes() == uploaded["adapter_model.safetensors"]

    # The token is nowhere on disk here, nor in the database, nor in the job's logs.
    assert TOKEN not in _everything_written(run_dir)
    assert TOKEN not in json.dumps(jobs.job_events(_db(), job_id)) + json.dumps(jobs.get_job(_db(), job_id),
                                                                                 default=str)
    remote = hub.jobs[job["external_id"]]
    assert all(TOKEN not in line for _, line in remote.lines)
    assert remote.env["HF_TOKEN"] == TOKEN  # it did reach the job, as the secret


def test_cancel_kills_the_remote_job_and_ends_the_run_cancelled(hub, data):
    job_id = jobs.start_job(_db(), _spec(data, max_steps=5000, eval_steps=1000, save_steps=1000), config.runs_dir())
    _wait_for(lambda: (jobs.get_job(_db(), job_id)["last_step"] or 0) >= 1, what="a logged remote step")
    remote_id = jobs.get_job(_db(), job_id)["external_id"]
    assert hub.alive(remote_id)

    job = jobs.cancel_job(_db(), job_id, timeout=20)
    assert job["status"] == "cancelled", job
    last = jobs.job_events(_db(), job_id)[-1]
    assert last["type"] == "cancelled" and "source" not in last  # the follower said so, not the job manager
    assert hub.jobs[remote_id].stage == "CANCELED"
    deadline = time.monotonic() + 20
    while hub.alive(remote_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not hub.alive(remote_id)


def test_a_restarted_app_reattaches_to_the_remote_job_by_id(hub, data):
    job_id = jobs.start_job(_db(), _spec(data, max_steps=40, eval_steps=1000, save_steps=1000), config.runs_dir())
    _wait_for(lambda: (jobs.get_job(_db(), job_id)["last_step"] or 0) >= 1, what="a logged remote step")
    first = jobs.get_job(_db(), job_id)

    # The follower dies with the app (SIGKILL: no chance to cancel anything); the remote job goes on.
    os.killpg(first["pid"], signal.SIGKILL)
    jobs._children[job_id].wait()
    store.reset_store()
    jobs.forget_children()
    assert hub.alive(first["external_id"])

    job = _wait_for(lambda: (j := jobs.get_job(_db(), job_id))["status"] in jobs.FINAL_STATUSES and j,
                    what="the re-attached run to end")
    assert job["status"] == "succeeded", (job["error"], job["log_tail"])
    assert job["pid"] != first["pid"] and job["external_id"] == first["external_id"]
    assert len(hub.created) == 1  # the same job, found by its id: none created again
    events = jobs.job_events(_db(), job_id)
    assert any("re-attaching" in (e.get("text") or "") for e in events)
    steps = [e["step"] for e in events if e["type"] == "log"]
    assert steps == sorted(set(steps)) and steps[-1] == 40  # every step once, none twice
    assert [e["type"] for e in events].count("finished") == 1


def test_a_failing_job_reports_its_log_tail(hub, data, tmp_path):
    no_answers = _chat(tmp_path / "questions.jsonl", 8, assistant=False)
    job_id = jobs.start_job(_db(), _spec((no_answers, None)), config.runs_dir())
    job = _wait_for(lambda: (j := jobs.get_job(_db(), job_id))["status"] in jobs.FINAL_STATUSES and j,
                    what="the run to fail")
    assert job["status"] == "failed"
    assert "no usable examples" in job["error"]  # the remote worker's own reason
    assert "Data step" in job["hint"]
    assert "ValueError" in job["log_tail"]  # the remote worker.log's tail came back with it


def test_out_of_memory_names_a_bigger_flavor(hub, data):
    hub.crash_with = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    job_id = jobs.start_job(_db(), _spec(data, flavor="t4-small"), config.runs_dir())
    job = _wait_for(lambda: (j := jobs.get_job(_db(), job_id))["status"] in jobs.FINAL_STATUSES and j,
                    what="the run to fail")
    assert job["status"] == "failed"
    assert "CUDA out of memory" in job["log_tail"]
    assert "out of GPU memory" in job["error"]
    # t4-small has 16 GB: the cheapest flavor with more memory per GPU in the provider file is l4x1 (24 GB).
    assert "--flavor l4x1" in job["hint"]


def test_cli_train_on_jobs_prints_backend_and_remote_id(hub, data, capsys):
    rc = main(["train", data[0], "--valid", data[1], "--backend", "hf-jobs", "--flavor", "l4x1",
               "--namespace", "me", "--max-steps", "2", "--json", "--quiet"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    result = json.loads(out.out.strip().splitlines()[-1])
    assert result["status"] == "succeeded"
    assert result["backend"] == "hf-jobs" and result["remote_id"] == next(iter(hub.jobs))
    assert hub.created[0]["flavor"] == "l4x1"
    for key in ("job_id", "run_dir", "output_dir", "output_model", "first_loss", "final_loss"):
        assert key in result


def test_flavor_choice_fits_the_estimate_and_falls_back_to_the_provider_file(hub):
    from huggingface_hub import HfApi

    live = hf_jobs.flavors(HfApi(endpoint=hub.url, token=TOKEN))
    assert {f.name for f in live} == {"t4-small", "l4x1", "a100-large"}  # GPUs only, as listed now
    assert next(f for f in live if f.name == "l4x1").usd_per_hour == 0.8  # per minute x 60
    assert hf_jobs.pick_flavor(None, live).name == "t4-small"
    assert hf_jobs.pick_flavor(20.0, live).name == "l4x1"  # 16 GB x 0.95 is too small, 24 x 0.95 fits
    assert hf_jobs.pick_flavor(500.0, live).name == "a100-large"  # nothing fits: the most memory per GPU

    hub.hardware = None  # the list cannot be fetched: the provider file answers
    fallback = hf_jobs.flavors(HfApi(endpoint=hub.url, token=TOKEN))
    assert {f.name for f in fallback} == {f.name for f in hf_jobs.provider_flavors()} and len(fallback) > 3
    eight_b = JobSpec(base_model="meta-llama/Llama-3.1-8B-Instruct", method="qlora", max_seq_length=1024,
                      per_device_batch_size=1, lora_r=16)
    needed = hf_jobs.memory_needed_gb(eight_b)
    assert needed is not None and 5 < needed < 16
    chosen = hf_jobs.pick_flavor(needed, fallback)
    assert chosen.name == "t4-small"  # QLoRA of an 8B fits a T4, the cheapest of all
    full = hf_jobs.memory_needed_gb(JobSpec(base_model="meta-llama/Llama-3.2-1B-Instruct", method="full",
                                            per_device_batch_size=1, max_seq_length=1024))
    big = hf_jobs.pick_flavor(full, fallback)
    fitting = [f for f in fallback if f.per_gpu_gb * 0.95 >= full]
    assert big in fitting and big.usd_per_hour == min(f.usd_per_hour for f in fitting) and big.name != "t4-small"
    assert hf_jobs.bigger_flavor("a100-large", fallback).per_gpu_gb > 80


def test_no_token_is_refused_before_anything_starts(hub, data, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(hf_jobs, "resolve_token", lambda token=None: token)
    with pytest.raises(jobs.JobError, match="HF_TOKEN"):
        jobs.start_job(_db(), _spec(data), config.runs_dir())
    assert not hub.created


def test_the_train_form_and_the_spec_carry_the_flavor():
    from ftassist.ui.train import build_spec, flavor_choices

    assert ("auto: the cheapest that fits", "") in flavor_choices()
    assert any(value == "a100-large" and "$2.50/h" in label for label, value in flavor_choices())
    form = build_spec("hf-jobs", "tiny-random", "lora", 3, None, 16, 32, 2, "t.jsonl", "", "", "", "openai", "", "",
                      "", "l4x1")
    spec = JobSpec.from_dict(form)
    assert spec.backend == "hf-jobs" and spec.hf_jobs["flavor"] == "l4x1" and spec.max_steps == 2
    assert spec.hf_jobs["image"].startswith("pytorch/pytorch:")
    spec.hf_jobs["flavor"] = "h100"
    assert any("hf_jobs.flavor 'h100'" in p for p in spec.validate(check_files=False))
