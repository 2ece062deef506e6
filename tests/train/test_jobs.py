"""The job manager: real tiny-random workers started, followed, cancelled, killed, re-found after a restart."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from ftassist import config, store
from ftassist.train import jobs
from ftassist.train.events import EventWriter
from ftassist.train.spec import JobSpec
from job_waiting import wait_for


def _write_chat(path: Path, n: int, seed: int = 0) -> str:
    import random

    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            a, b = rng.randint(1, 9), rng.randint(1, 9)
            f.write(json.dumps({"messages": [
                {"role": "user", "content": f"What is {a} plus {b}?"},
                {"role": "assistant", "content": f"{a} plus {b} is {a + b}."},
            ]}) + "\n")
    return str(path)


@pytest.fixture
def data(tmp_path):
    return _write_chat(tmp_path / "train.jsonl", 32), _write_chat(tmp_path / "valid.jsonl", 6, seed=1)


pytestmark = pytest.mark.usefixtures("no_stray_workers")  # tests/train/conftest.py


def _db():
    """This process's store (the job manager is given it, as the app gives it its own)."""
    return store.get_store()


def _spec(data, **kw) -> JobSpec:
    train, valid = data
    kw.setdefault("max_steps", 4)
    return JobSpec(train_file=train, valid_file=valid, per_device_batch_size=4, logging_steps=1, **kw)




def _gone(pid: int) -> bool:
    """The process exited (a zombie not yet reaped by its parent counts as gone)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _events_in_file(run_dir) -> list[dict]:
    return [json.loads(line) for line in Path(run_dir, "events.jsonl").read_text().splitlines() if line.strip()]


# -- real workers ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_queue_a_killed_worker_then_the_next_job_runs_to_completion(data):
    """Two local jobs: the second waits; the first is SIGKILLed (as the OOM killer would) and is
    marked failed with its log tail and a hint; the queue moves on and the second trains to the end."""
    first = jobs.start_job(_db(), _spec(data, max_steps=5000, eval_steps=1000, save_steps=1000), config.runs_dir())
    second = jobs.start_job(_db(), _spec(data, seed=7), config.runs_dir())
    assert jobs.get_job(_db(), first)["status"] == "running"
    assert jobs.get_job(_db(), second)["status"] == "queued"  # one local job at a time
    run_dir = Path(jobs.get_job(_db(), first)["run_dir"])
    assert run_dir.parent == config.runs_dir()
    assert (run_dir / "spec.json").is_file() and (run_dir / "run.sh").is_file()
    assert "ftassist.train.worker" in (run_dir / "run.sh").read_text()

    wait_for(lambda: (jobs.get_job(_db(), first)["last_step"] or 0) >= 1, what="a logged step")
    os.killpg(jobs.get_job(_db(), first)["pid"], signal.SIGKILL)
    killed = wait_for(lambda: (j := jobs.get_job(_db(), first))["status"] != "running" and j, what="failure")
    assert killed["status"] == "failed"
    # What is known, no more: the signal and the memory last measured, not a guess of "out of memory".
    assert "SIGKILL" in killed["error"] and "out of memory" not in killed["error"]
    assert "the worker used" in killed["error"] and "dmesg" in killed["hint"]
    assert killed["log_tail"].strip()  # the last lines of worker.log
    assert jobs.job_events(_db(), first)[-1]["source"] == "job manager"
    assert killed["last_step"] >= 1  # what was logged before the kill is kept
    assert (run_dir / "worker.log").stat().st_size > 0  # the worker's output went to its log file

    done = jobs.wait(_db(), second, timeout=180, interval=0.2)  # the queue moved on
    assert done["status"] == "succeeded", done
    run_dir2 = Path(done["run_dir"])
    # Everything the worker wrote is in DuckDB, once, in order.
    in_file = _events_in_file(run_dir2)
    in_db = jobs.job_events(_db(), second)
    assert [e["type"] for e in in_db] == [e["type"] for e in in_file]
    assert in_db[-1]["type"] == "finished"
    out = Path(done["output_dir"])
    assert out == run_dir2 / "model" and (out / "adapter_config.json").is_file()
    assert done["output_model"] == str(out)
    assert done["first_loss"] > done["final_loss"]  # the loss falls
    assert done["last_step"] == done["total_steps"] == 4
    points = jobs.loss_points(_db(), second)
    assert {p["series"] for p in points} == {"train", "validation"}
    assert [p["step"] for p in points if p["series"] == "train"][0] == 1
    prog = jobs.progress(_db(), second)
    assert prog["fraction"] == 1.0 and prog["step"] == 4
    assert [j["id"] for j in jobs.list_jobs(_db())] == [second, first]


@pytest.mark.slow
def test_restart_finds_a_live_worker_again_then_cancel_mid_run(data):
    job_id = jobs.start_job(_db(), _spec(data, max_steps=5000, eval_steps=1000, save_steps=1000), config.runs_dir())
    wait_for(lambda: (jobs.get_job(_db(), job_id)["last_step"] or 0) >= 2, what="a few logged steps")
    seen_before = len(jobs.job_events(_db(), job_id))

    # The app goes away: its DB connection and its handles on child processes.
    store.reset_store()
    jobs.forget_children()
    jobs.tick(_db())
    assert jobs.get_job(_db(), job_id)["status"] == "running"  # found again: the pid is alive and is our worker
    assert len(jobs.job_events(_db(), job_id)) >= seen_before

    # Cancel mid-run, through the pid alone (the worker is not this process's child any more).
    job = jobs.cancel_job(_db(), job_id, timeout=20)
    assert job["status"] == "cancelled", job
    assert job["last_step"] < 5000
    assert _gone(job["pid"])
    last = jobs.job_events(_db(), job_id)[-1]
    assert last["type"] == "cancelled" and "source" not in last  # the worker said so itself: no hard kill
    assert Path(last["output_dir"], "adapter_config.json").is_file()  # it saved what it had
    run_dir = jobs.get_job(_db(), job_id)["run_dir"]
    in_file = _events_in_file(run_dir)
    assert len(jobs.job_events(_db(), job_id)) == len(in_file)  # nothing lost, nothing twice
    assert [e["ts"] for e in jobs.job_events(_db(), job_id)] == [e["ts"] for e in in_file]


# -- without a worker: fabricated run folders ------------------------------------------------------
def _fake_running_job(data, pid: int, events: list[dict], log_text: str = "") -> str:
    """A job row marked running whose run folder holds `events` (as a worker would have left it)."""
    job_id = jobs.new_job_id()
    run_dir = config.runs_dir() / job_id
    spec = _spec(data, output_dir=str(run_dir / "model"))
    spec.save(run_dir)
    writer = EventWriter(run_dir)
    for e in events:
        writer.write(e.pop("type"), **e)
    (run_dir / "worker.log").write_text(log_text)
    store.get_store().execute(
        "INSERT INTO jobs (id, backend, base_model, method, status, run_dir, pid, spec_json)"
        " VALUES (?, 'local', 'tiny-random', 'lora', 'running', ?, ?, '{}')",
        [job_id, str(run_dir), pid],
    )
    return job_id


def _dead_pid() -> int:
    import subprocess

    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_a_dead_worker_is_marked_failed_and_its_events_kept(data):
    job_id = _fake_running_job(
        data, _dead_pid(),
        [{"type": "started", "pid": 1, "total_steps": 10, "num_examples": 32, "method": "lora",
          "base_model": "tiny-random", "device": "cpu"},
         {"type": "log", "step": 1, "loss": 2.5}, {"type": "log", "step": 2, "loss": 2.0}],
        log_text="step 2\nRuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB\n",
    )
    jobs.tick(_db())  # what the app does on start: its workers of before are not its children
    assert jobs.get_job(_db(), job_id)["status"] == "failed"
    job = jobs.get_job(_db(), job_id)
    assert job["error"] == jobs.OOM_REASON and "CUDA out of memory" in job["log_tail"]
    assert job["last_step"] == 2 and job["first_loss"] == 2.5 and job["final_loss"] == 2.0
    assert [e["type"] for e in jobs.job_events(_db(), job_id)] == ["started", "log", "log", "failed"]


def test_a_run_from_before_a_reboot_is_marked_interrupted(data, monkeypatch):
    import psutil

    job_id = _fake_running_job(data, _dead_pid(), [{"type": "log", "step": 1, "loss": 2.5}])
    monkeypatch.setattr(psutil, "boot_time", lambda: time.time() + 60)
    jobs.tick(_db())
    assert jobs.get_job(_db(), job_id)["status"] == "interrupted"
    assert "restarted" in jobs.get_job(_db(), job_id)["error"]


def test_final_event_wins_over_a_dead_process(data):
    job_id = _fake_running_job(
        data, _dead_pid(),
        [{"type": "log", "step": 1, "loss": 2.5},
         {"type": "finished", "output_dir": "/x/model", "final_loss": 1.5, "first_loss": 2.5, "metrics": {}}],
    )
    jobs.ingest(_db())
    job = jobs.get_job(_db(), job_id)
    assert job["status"] == "succeeded" and job["output_dir"] == "/x/model" and job["final_loss"] == 1.5


def test_ingest_takes_only_complete_lines_and_resumes(data):
    job_id = _fake_running_job(data, os.getpid(), [{"type": "log", "step": 1, "loss": 2.5}])
    run_dir = Path(jobs.get_job(_db(), job_id)["run_dir"])
    # Our own pid is alive but is not a worker of this run folder: treated as gone. Use a child's handle.
    import subprocess

    sleeper = subprocess.Popen(["sleep", "30"])
    jobs._children[job_id] = sleeper
    try:
        with open(run_dir / "events.jsonl", "a") as f:
            f.write('{"type": "log", "step": 2, "lo')  # a line being written right now
        assert jobs.ingest(_db()) == 1
        with open(run_dir / "events.jsonl", "a") as f:
            f.write('ss": 2.0, "ts": 1.0}\n')
        assert jobs.ingest(_db()) == 1
        assert [e["step"] for e in jobs.job_events(_db(), job_id)] == [1, 2]
        assert jobs.ingest(_db()) == 0
        assert jobs.get_job(_db(), job_id)["status"] == "running"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_recycled_pid_is_not_taken_for_the_worker(data):
    job_id = _fake_running_job(data, os.getpid(), [])  # alive, but it is pytest, not a worker
    jobs.ingest(_db())
    assert jobs.get_job(_db(), job_id)["status"] == "failed"


def test_cancel_a_queued_job_and_unknown_ids(data):
    job_id = jobs.new_job_id()
    store.get_store().execute(
        "INSERT INTO jobs (id, backend, base_model, method, status, run_dir) VALUES (?, 'local', 'x', 'lora', 'queued', ?)",
        [job_id, str(config.runs_dir() / job_id)])
    assert jobs.cancel_job(_db(), job_id)["status"] == "cancelled"
    with pytest.raises(jobs.JobError, match="no job"):
        jobs.cancel_job(_db(), "nope")


def test_start_job_rejects_a_bad_spec_and_a_missing_key(data, monkeypatch):
    with pytest.raises(jobs.JobError, match="train_file"):
        jobs.start_job(_db(), JobSpec(train_file="/no/such.jsonl"), config.runs_dir())
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    spec = JobSpec(backend="openai", train_file=data[0])
    with pytest.raises(jobs.JobError, match="OPENAI_API_KEY"):
        jobs.start_job(_db(), spec, config.runs_dir())
    assert jobs.list_jobs(_db()) == []


def test_accelerate_launch_with_several_gpus(tmp_path):
    spec = JobSpec(train_file="t.jsonl", output_dir=str(tmp_path / "model"))
    cmd = jobs.worker_command(spec, tmp_path, num_gpus=4)
    assert "launch" in " ".join(cmd[:3]) and "accelerate" in " ".join(cmd[:3])
    assert cmd[cmd.index("--num_processes") + 1] == "4"
    assert cmd[-3:] == ["-m", "ftassist.train.worker", str(tmp_path)]
    assert jobs.worker_command(spec, tmp_path, num_gpus=1)[1:] == ["-m", "ftassist.train.worker", str(tmp_path)]
    openai_spec = JobSpec(backend="openai", train_file="t.jsonl")
    assert jobs.worker_command(openai_spec, tmp_path, num_gpus=4)[1:] == ["-m", "ftassist.train.worker", str(tmp_path)]


def test_ingest_loop_follows_without_a_browser(data):
    job_id = _fake_running_job(data, _dead_pid(), [{"type": "log", "step": 1, "loss": 2.5}])
    jobs.start_ingest_loop(_db(), interval=0.05)
    deadline = time.monotonic() + 10
    while jobs.get_job(_db(), job_id)["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)  # nobody else calls ingest here: only the loop
    assert jobs.get_job(_db(), job_id)["status"] == "failed"
    assert jobs.start_ingest_loop(_db()) is jobs._loop["thread"]  # idempotent
