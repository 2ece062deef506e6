"""The OpenAI backend through the real `openai` SDK against a local fake of the API (no network)."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest
from standins import OpenAIStandIn

from ftassist.redact import scrub
from ftassist.train import openai_ft
from ftassist.train.events import EventWriter, read_events
from ftassist.train.spec import JobSpec

KEY = "sk-test-fake-key-0123456789"


def _chat_file(path: Path, n: int) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}) + "\n")
    return str(path)


@pytest.fixture
def spec_for(tmp_path):
    def make(server: OpenAIStandIn, **openai_overrides) -> JobSpec:
        train = _chat_file(tmp_path / "train.jsonl", 12)
        valid = _chat_file(tmp_path / "valid.jsonl", 3)
        o = {
            "model": "gpt-4o-mini-2024-07-18",
            "n_epochs": 2,
            "batch_size": 1,
            "learning_rate_multiplier": 0.5,
            "suffix": "support-bot",
            "provider": "custom",
            "base_url": server.base_url,
            "poll_interval": 0.01,
        }
        o.update(openai_overrides)
        spec = JobSpec(backend="openai", train_file=train, valid_file=valid, seed=7, openai=o)
        assert spec.validate() == []
        return spec

    return make


def _run(spec, run_dir, **kw):
    writer = EventWriter(run_dir)
    result = openai_ft.run_job(spec, run_dir, writer, api_key=kw.pop("api_key", KEY), **kw)
    events, _ = read_events(run_dir)
    return result, events


def _all_text_under(path: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in Path(path).rglob("*") if p.is_file())


def test_succeeded_job_end_to_end(fake_openai, spec_for, tmp_path):
    spec = spec_for(fake_openai)
    run_dir = tmp_path / "run"
    result, events = _run(spec, run_dir)

    assert result["status"] == "succeeded"
    model = result["output_model"]
    assert model.startswith("ft:gpt-4o-mini-2024-07-18:") and ":support-bot:" in model

    # What went over the wire: two uploads with purpose fine-tune, then a supervised job.
    uploads = fake_openai.calls("POST", "/files")
    assert len(uploads) == 2
    assert all(u["form"]["purpose"] == "fine-tune" for u in uploads)
    assert uploads[0]["form"]["file"]["filename"] == "train.jsonl"
    assert uploads[0]["form"]["file"]["content"].count(b"\n") == 12
    (create,) = fake_openai.calls("POST", "/fine_tuning/jobs")
    body = create["json"]
    assert body["model"] == "gpt-4o-mini-2024-07-18"
    assert body["method"] == {
        "type": "supervised",
        "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 1, "learning_rate_multiplier": 0.5}},
    }
    assert body["suffix"] == "support-bot" and body["seed"] == 7
    assert fake_openai.files[body["validation_file"]]["obj"]["filename"] == "valid.jsonl"
    assert fake_openai.files[body["training_file"]]["obj"]["filename"] == "train.jsonl"
    assert create["headers"]["authorization"] == f"Bearer {KEY}"

    types = [e["type"] for e in events]
    assert types.count("started") == 1 and types[-1] == "finished"
    started = next(e for e in events if e["type"] == "started")
    assert started["external_id"].startswith("ftjob-") and started["device"] == "custom"
    logs = [e for e in events if e["type"] == "log"]
    assert [e["step"] for e in logs] == list(range(1, fake_openai.total_steps + 1))
    assert all(e["total_steps"] == fake_openai.total_steps for e in logs)
    assert logs[0]["loss"] > logs[-1]["loss"]
    assert logs[-1]["epoch"] == pytest.approx(2.0)
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [2, 4, 6] and all(e["eval_loss"] > 0 for e in evals)
    ckpts = [e for e in events if e["type"] == "checkpoint"]
    assert [c["step"] for c in ckpts] == [3, 6] and all(c["path"].startswith("ft:") for c in ckpts)
    finished = events[-1]
    assert finished["output_model"] == finished["output_dir"] == model
    assert finished["first_loss"] == logs[0]["loss"] and finished["final_loss"] == logs[-1]["loss"]
    assert finished["best_eval_loss"] == min(e["eval_loss"] for e in evals)
    assert any(e["type"] == "message" and "successfully completed" in e["text"] for e in events)
    assert KEY not in _all_text_under(run_dir)


def test_rate_limited_create_is_retried(fake_openai, spec_for, tmp_path):
    fake_openai.rate_limit_creates = 2
    result, events = _run(spec_for(fake_openai), tmp_path / "run")
    assert result["status"] == "succeeded"
    assert len(fake_openai.calls("POST", "/fine_tuning/jobs")) == 3
    retries = [e for e in events if e["type"] == "message" and "rate limited (429)" in e["text"]]
    assert len(retries) == 2 and retries[0]["level"] == "warning"


def test_the_sdk_retries_rate_limits_up_to_max_retries_and_never_a_quota_error(fake_openai, spec_for):
    """Retries are the openai SDK's own (`max_retries`); the hook only reports 429s and vetoes quota retries."""
    import openai

    spec_for(fake_openai)  # the files exist on the fake (create checks them)
    reported: list = []
    client = openai_ft.make_client("custom", api_key=KEY, base_url=fake_openai.base_url, max_retries=1,
                                   on_rate_limit=reported.append)
    fake_openai.rate_limit_creates = 5
    with pytest.raises(openai.RateLimitError):
        openai_ft.create_job(client, model="gpt-4o-mini-2024-07-18", training_file="file-none")
    assert len(fake_openai.calls("POST", "/fine_tuning/jobs")) == 2  # the first try and one retry
    assert reported == [429, 429]
    error = openai_ft.describe_error(openai.RateLimitError("x", response=_response(429), body={}), secrets=(KEY,))
    assert "still rate limited" in str(error)

    fake_openai.rate_limit_creates, fake_openai.quota = 0, True
    client = openai_ft.make_client("custom", api_key=KEY, base_url=fake_openai.base_url, max_retries=3,
                                   on_rate_limit=reported.append)
    with pytest.raises(openai.RateLimitError) as caught:
        openai_ft.create_job(client, model="gpt-4o-mini-2024-07-18", training_file="file-none")
    assert len(fake_openai.calls("POST", "/fine_tuning/jobs")) == 3  # one more call: a quota error is not retried
    assert reported == [429, 429]  # and not announced as a retry
    assert "out of quota" in str(openai_ft.describe_error(caught.value))


def _response(status: int):
    import httpx2

    return httpx2.Response(status, request=httpx2.Request("POST", "http://x/v1/fine_tuning/jobs"))


def test_failed_job_error_is_shown_as_is(fake_openai, spec_for, tmp_path):
    fake_openai.fail_job = True
    result, events = _run(spec_for(fake_openai), tmp_path / "run")
    assert result["status"] == "failed"
    failed = events[-1]
    assert failed["type"] == "failed"
    assert failed["reason"] == "The job failed due to an invalid training file. Line 3: missing assistant message."
    assert failed["code"] == "invalid_training_file" and failed["param"] == "training_file"
    assert "Data step" in failed["hint"]
    assert not [e for e in events if e["type"] in ("finished", "cancelled")]


def test_invalid_key_message_and_key_never_written(fake_openai, spec_for, tmp_path, monkeypatch):
    bad = "sk-wrong-key-abcdefghijklmnop"
    run_dir = tmp_path / "run"
    result, events = _run(spec_for(fake_openai), run_dir, api_key=bad)
    assert result["status"] == "failed"
    assert events[-1]["reason"] == "the API key was rejected: check OPENAI_API_KEY"
    # The fake echoes the key in its 401 message, as OpenAI does: it must not reach any file.
    assert bad in json.dumps(fake_openai.calls()[-1]["headers"])
    assert bad not in _all_text_under(run_dir)
    assert bad not in result["error"]


def test_quota_error_is_clear_and_not_retried(fake_openai, spec_for, tmp_path):
    fake_openai.quota = True
    result, events = _run(spec_for(fake_openai), tmp_path / "run")
    assert result["status"] == "failed"
    assert "out of quota" in events[-1]["reason"] and events[-1]["code"] == "insufficient_quota"
    assert len(fake_openai.calls("POST", "/fine_tuning/jobs")) == 1


def test_key_from_environment(fake_openai, spec_for, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    spec = spec_for(fake_openai, provider="openai")
    run_dir = tmp_path / "run"
    result = openai_ft.run_job(spec, run_dir, EventWriter(run_dir))
    assert result["status"] == "succeeded"
    assert KEY not in _all_text_under(run_dir)


def test_missing_key_is_a_clear_failure(spec_for, fake_openai, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    spec = spec_for(fake_openai, provider="openai")
    run_dir = tmp_path / "run"
    result = openai_ft.run_job(spec, run_dir, EventWriter(run_dir))
    assert result["status"] == "failed"
    assert "OPENAI_API_KEY" in result["error"]
    assert not fake_openai.calls()


def test_stop_cancels_the_remote_job(fake_openai, spec_for, tmp_path):
    fake_openai.total_steps = 1000
    fake_openai.steps_per_poll = 1
    spec = spec_for(fake_openai)
    run_dir = tmp_path / "run"
    writer = EventWriter(run_dir)
    stop = threading.Event()

    def stopper():
        deadline = time.time() + 20
        while time.time() < deadline:
            if any(e["type"] == "log" for e in read_events(run_dir)[0]):
                break
            time.sleep(0.02)
        stop.set()

    threading.Thread(target=stopper, daemon=True).start()
    result = openai_ft.run_job(spec, run_dir, writer, api_key=KEY, should_stop=stop.is_set)
    assert result["status"] == "cancelled"
    assert fake_openai.calls("POST", "/cancel")
    job = fake_openai.jobs[result["external_id"]]
    assert job["status"] == "cancelled"
    events, _ = read_events(run_dir)
    assert events[-1]["type"] == "cancelled" and events[-1]["step"] >= 1


def test_sigterm_in_main_thread_cancels(fake_openai, spec_for, tmp_path):
    """The worker's stop signal: SIGTERM while run_job polls -> remote cancel, handler restored."""
    fake_openai.total_steps = 1000
    fake_openai.steps_per_poll = 1
    spec = spec_for(fake_openai, poll_interval=0.05)
    run_dir = tmp_path / "run"
    before = signal.getsignal(signal.SIGTERM)
    def signal_once_the_job_runs():  # not on a fixed timer: under load the upload alone can take longer
        deadline = time.monotonic() + 30
        while not fake_openai.jobs and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        signal.raise_signal(signal.SIGTERM)

    threading.Thread(target=signal_once_the_job_runs, daemon=True).start()
    result = openai_ft.run_job(spec, run_dir, EventWriter(run_dir), api_key=KEY)
    assert result["status"] == "cancelled"
    assert fake_openai.calls("POST", "/cancel")
    assert signal.getsignal(signal.SIGTERM) == before


def test_suffix_validation():
    assert openai_ft.validate_suffix("  my-model_v1.2 ") == "my-model_v1.2"
    assert openai_ft.validate_suffix("") is None
    with pytest.raises(openai_ft.OpenAIBackendError, match="at most 64"):
        openai_ft.validate_suffix("x" * 65)
    with pytest.raises(openai_ft.OpenAIBackendError, match="letters, digits"):
        openai_ft.validate_suffix("has:colon")


def test_scrub_removes_keys():
    """The backend masks keys with the one shared helper (its API errors may echo the key)."""
    assert openai_ft.scrub is scrub
    text = "Incorrect API key provided: sk-abcdef1234567890. Also sk-proj-XYZxyz123456789."
    out = openai_ft.scrub(text, "sk-abcdef1234567890")
    assert "sk-abcdef1234567890" not in out and "XYZxyz123456789" not in out


def test_azure_client_uses_azure_url_shape(fake_openai, spec_for, tmp_path):
    spec = spec_for(fake_openai, provider="azure", base_url=None, azure_endpoint=fake_openai.url, api_version="2024-10-21")
    assert spec.validate() == []
    run_dir = tmp_path / "run"
    result, events = _run(spec, run_dir)
    assert result["status"] == "succeeded"
    calls = fake_openai.calls()
    assert calls and all(c["path"].startswith("/openai/") for c in calls)
    assert all(c["query"].get("api-version") == "2024-10-21" for c in calls)
    assert all(c["headers"].get("api-key") == KEY and "authorization" not in c["headers"] for c in calls)
    assert {c["route"] for c in calls} >= {"/files", "/fine_tuning/jobs"}
    assert events[-1]["type"] == "finished"


def test_azure_key_from_environment(monkeypatch, fake_openai):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    client = openai_ft.make_client("azure", azure_endpoint=fake_openai.url, api_version="2024-10-21")
    assert openai_ft.list_remote_jobs(client) == []
    assert fake_openai.calls()[-1]["path"] == "/openai/fine_tuning/jobs"
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    with pytest.raises(openai_ft.OpenAIBackendError, match="AZURE_OPENAI_API_KEY"):
        openai_ft.make_client("azure", azure_endpoint=fake_openai.url, api_version="2024-10-21")
