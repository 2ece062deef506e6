"""DPO on Hugging Face Jobs: the spec's objective, beta and start model travel to the job (the real SDK against
the Jobs/Hub stand-in, which runs the job's command here), and the remote worker trains DPO from the SFT adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftassist import config, store
from ftassist.train import hf_jobs, jobs
from ftassist.train.spec import JobSpec
from job_waiting import wait_for
from tests.train.conftest import write_jsonl
from tests.train.test_dpo import preference_rows

pytestmark = [pytest.mark.usefixtures("no_stray_workers"), pytest.mark.slow]


def _ended(job_id: str):
    return lambda: (j := jobs.get_job(store.get_store(), job_id))["status"] in jobs.FINAL_STATUSES and j


def test_dpo_on_jobs_starts_from_the_local_sft_adapter(hub, tmp_path):
    chats = write_jsonl(tmp_path / "sft.jsonl", [{"messages": r["prompt"] + r["rejected"]}
                                                 for r in preference_rows(24, 0)])
    sft_id = jobs.start_job(store.get_store(), JobSpec(train_file=str(chats), max_steps=2), config.runs_dir())
    sft = wait_for(_ended(sft_id), 180, "the SFT run")
    assert sft["status"] == "succeeded", sft["log_tail"]

    train = write_jsonl(tmp_path / "pairs.jsonl", preference_rows(24, 1))
    spec = JobSpec(backend="hf-jobs", train_file=str(train), objective="dpo", dpo_beta=0.3, max_steps=2,
                   per_device_batch_size=8, start_from=sft["output_dir"], hf_jobs={"namespace": "me"})
    remote = hf_jobs.remote_spec(spec)
    assert (remote["objective"], remote["dpo_beta"], remote["start_from"]) == ("dpo", 0.3, hf_jobs.START_FOLDER)
    job_id = jobs.start_job(store.get_store(), spec, config.runs_dir())
    job = wait_for(_ended(job_id), 240, "the DPO run on Jobs")
    assert job["status"] == "succeeded", (job["error"], job["log_tail"])

    data_files = hub.files[f"datasets/me/ftassist-{job_id}-data"]
    assert data_files[f"{hf_jobs.START_FOLDER}/adapter_model.safetensors"] == (
        Path(sft["output_dir"]) / "adapter_model.safetensors").read_bytes()
    assert f"{hf_jobs.START_BASE_FOLDER}/config.json" in data_files  # tiny-random's base went along
    events = [json.loads(line) for line in Path(job["run_dir"], "events.jsonl").read_text().splitlines()]
    started = [e for e in events if e["type"] == "started" and e.get("objective")]
    assert started and started[-1]["objective"] == "dpo" and started[-1]["dpo_beta"] == 0.3
    assert started[-1]["reference"] == "the start adapter, frozen (the SFT model)"
    logs = [e for e in events if e["type"] == "log"]
    assert logs and all("rewards/margins" in e for e in logs) and logs[0]["rewards/margins"] == 0
    assert json.loads(Path(job["output_dir"], "adapter_config.json").read_text())["r"] == 16
