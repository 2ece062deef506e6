"""`ftassist train` and `ftassist jobs`: real workers, the final JSON line, the OpenAI path end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from standins import OpenAIStandIn

from ftassist import config, store
from ftassist.cli import main
from ftassist.train import jobs

KEY = "sk-test-fake-key-0123456789"
ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("no_stray_workers")  # tests/train/conftest.py


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def _alpaca(path: Path, n: int = 30) -> Path:
    """A raw (non-chat) dataset: the CLI must convert and split it through the Data step."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            a, b = i % 10, i // 10 + 1
            f.write(json.dumps({"instruction": f"Add {a} and {b}.", "input": "", "output": f"{a} + {b} = {a + b}."}) + "\n")
    return path


def _chat(path: Path, n: int = 12) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                             {"role": "assistant", "content": f"a{i}"}]}) + "\n")
    return path


@pytest.mark.slow
def test_train_json_tiny_run_from_a_raw_dataset(tmp_path, capsys):
    raw = _alpaca(tmp_path / "raw.jsonl")
    out_dir = tmp_path / "my-adapter"
    rc = main(["train", str(raw), "--base-model", "tiny-random", "--method", "lora", "--max-steps", "3",
               "--out", str(out_dir), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    result = _last_json(captured.out)
    assert result["status"] == "succeeded"
    assert result["output_dir"] == str(out_dir) and (out_dir / "adapter_config.json").is_file()
    assert isinstance(result["first_loss"], float) and isinstance(result["final_loss"], float)
    assert result["final_loss"] < result["first_loss"]
    assert "step 3/3" in captured.err  # progress went to stderr, the JSON alone to stdout's last line
    # The raw file was converted and split by the Data step before training.
    spec = json.loads(Path(result["run_dir"], "spec.json").read_text())
    assert Path(spec["train_file"]).parent.parent == config.data_dir() / "prepared"
    assert spec["valid_file"] and Path(spec["valid_file"]).is_file()
    first = json.loads(Path(spec["train_file"]).read_text().splitlines()[0])
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]

    assert main(["jobs", "--json"]) == 0
    listed = _last_json(capsys.readouterr().out)
    assert [(j["id"], j["status"]) for j in listed] == [(result["job_id"], "succeeded")]
    assert main(["jobs", "show", result["job_id"], "--json"]) == 0
    shown = _last_json(capsys.readouterr().out)
    assert shown["progress"]["step"] == 3 and shown["log_tail"]
    assert main(["jobs", "cancel", result["job_id"]]) == 2  # already ended: one clear line
    assert "already ended" in capsys.readouterr().err


def _openai_args(server: OpenAIStandIn, data: Path, *extra: str) -> list[str]:
    return ["train", str(data), "--backend", "openai", "--base-model", "gpt-4o-mini-2024-07-18",
            "--provider", "custom", "--base-url", server.base_url, "--suffix", "cli-test", "--epochs", "2",
            "--poll-interval", "0.05", "--valid", str(data), "--json", *extra]


def _files_text(folder: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in Path(folder).rglob("*") if p.is_file())


def test_train_openai_backend_through_the_worker(fake_openai, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    data = _chat(tmp_path / "chat.jsonl")
    rc = main(_openai_args(fake_openai, data))
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    result = _last_json(captured.out)
    assert result["status"] == "succeeded"
    assert result["output_model"].startswith("ft:gpt-4o-mini-2024-07-18:") and ":cli-test:" in result["output_model"]
    assert result["first_loss"] > result["final_loss"]
    (create,) = fake_openai.calls("POST", "/fine_tuning/jobs")
    assert create["json"]["method"]["supervised"]["hyperparameters"]["n_epochs"] == 2
    assert create["headers"]["authorization"] == f"Bearer {KEY}"  # the worker got the key from its environment
    job = jobs.get_job(store.get_store(), result["job_id"])
    assert job["external_id"] in fake_openai.jobs
    assert job["output_model"] == result["output_model"]
    # The key is nowhere on disk: not in the run folder, not in DuckDB.
    store.reset_store()
    assert KEY.encode() not in _files_text(Path(result["run_dir"]))
    assert KEY.encode() not in _files_text(config.data_dir())


def test_train_detach_then_cancel_cancels_the_remote_job(fake_openai, tmp_path, capsys, monkeypatch):
    """SIGTERM to the worker (cancel) -> the OpenAI job is cancelled remotely, the run ends cancelled."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    fake_openai.total_steps = 100000
    fake_openai.steps_per_poll = 1
    data = _chat(tmp_path / "chat.jsonl")
    assert main(_openai_args(fake_openai, data, "--detach")) == 0
    started = _last_json(capsys.readouterr().out)
    assert started["status"] == "running" and started["pid"]
    deadline = time.monotonic() + 60
    while not fake_openai.calls("GET", "/events") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert main(["jobs", "cancel", started["job_id"], "--json"]) == 0
    job = _last_json(capsys.readouterr().out)
    assert job["status"] == "cancelled"
    assert fake_openai.calls("POST", "/cancel")
    assert jobs.job_events(store.get_store(), started["job_id"])[-1]["type"] == "cancelled"


@pytest.mark.slow
def test_train_while_the_app_runs_goes_through_the_app(running_app, tmp_path, capsys):
    """The app holds the database: the CLI's run is created and started BY THE APP (it lists it at once),
    and `jobs` / `jobs show` ask the app, so they report the run as it really ended."""
    data = _chat(tmp_path / "chat.jsonl", n=16)
    rc = main(["train", str(data), "--valid", str(data), "--max-steps", "3", "--logging-steps", "1", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    result = _last_json(captured.out)
    assert result["status"] == "succeeded" and result["final_loss"] is not None
    assert set(result) == {"status", "job_id", "run_dir", "output_dir", "output_model", "first_loss", "final_loss",
                           "best_eval_loss", "error", "hint", "backend", "remote_id"}
    assert (result["backend"], result["remote_id"]) == ("local", None)
    runs = running_app.call("list_runs")  # the app's own view of its database
    assert [(r["id"], r["status"]) for r in runs] == [(result["job_id"], "succeeded")]
    with pytest.raises(store.StoreLockedError):  # and the CLI never opened the database itself
        store.get_store()

    assert main(["jobs", "--json"]) == 0
    assert [(j["id"], j["status"]) for j in _last_json(capsys.readouterr().out)] == [(result["job_id"], "succeeded")]
    assert main(["jobs", "show", result["job_id"], "--json"]) == 0
    shown = _last_json(capsys.readouterr().out)
    assert shown["status"] == "succeeded" and shown["last_step"] == shown["total_steps"] == 3
    assert shown["progress"]["fraction"] == 1.0 and shown["output_model"] == result["output_model"]


def test_jobs_cancel_goes_through_the_app(running_app, fake_openai, tmp_path, capsys, monkeypatch):
    """A detached run the app started, cancelled with `ftassist jobs cancel`: the app stops its worker, which
    cancels the remote job; the key the CLI passed reached the worker and was written nowhere."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # only this shell has the key: the app's worker gets it from the CLI
    fake_openai.total_steps = 100000
    fake_openai.steps_per_poll = 1
    data = _chat(tmp_path / "chat.jsonl")
    assert main(_openai_args(fake_openai, data, "--detach")) == 0
    started = _last_json(capsys.readouterr().out)
    assert started["status"] == "running" and started["pid"]
    assert [r["id"] for r in running_app.call("list_runs")] == [started["job_id"]]
    deadline = time.monotonic() + 60
    while not fake_openai.calls("GET", "/events") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fake_openai.calls("POST", "/fine_tuning/jobs")[0]["headers"]["authorization"] == f"Bearer {KEY}"
    assert main(["jobs", "cancel", started["job_id"], "--json"]) == 0
    assert _last_json(capsys.readouterr().out)["status"] == "cancelled"
    assert fake_openai.calls("POST", "/cancel")
    shown = running_app.call("show_run", {"run_id": started["job_id"]})
    assert shown["status"] == "cancelled"
    assert main(["jobs", "cancel", started["job_id"]]) == 2
    assert "already ended" in capsys.readouterr().err
    assert KEY.encode() not in _files_text(Path(started["run_dir"]))


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    data = _chat(tmp_path / "chat.jsonl")
    assert main(["train", str(data), "--backend", "openai", "--method", "qlora", "--valid", str(data)]) == 2
    assert "leave --method as lora" in capsys.readouterr().err
    assert main(["train", str(data), "--epochs", "-1", "--valid", str(data)]) == 2
    assert "num_epochs must be a positive number" in capsys.readouterr().err
    assert main(["jobs", "show", "nope"]) == 2
    assert main(["jobs", "--json"]) == 0 and _last_json(capsys.readouterr().out) == []


def test_jobs_command_in_a_fresh_process(tmp_path):
    """`python -m ftassist jobs --json` prints a JSON list (the real entry point, no import side effects)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), FTASSIST_HOME=str(tmp_path / "home"))
    proc = subprocess.run([sys.executable, "-m", "ftassist", "jobs", "--json"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
