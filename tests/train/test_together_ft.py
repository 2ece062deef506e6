"""The Together AI backend through the real `together` SDK against a local stand-in of its API (no network)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from standins.together_server import BASE_MODEL, PRICE_PER_1M, TOGETHER_KEY, TogetherStandIn

from ftassist import config, store
from ftassist.cli import main
from ftassist.formatting import format_money
from ftassist.plan import providers
from ftassist.train import jobs, together_ft
from ftassist.train.events import EventWriter, read_events
from ftassist.train.spec import JobSpec
from ftassist.train.stop import StopFlag
from ftassist.usecases import arena
from ftassist.usecases.context import Context

KEY = TOGETHER_KEY


def _chat_file(path: Path, n: int) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"messages": [{"role": "user", "content": f"question {i}"},
                                             {"role": "assistant", "content": f"answer number {i}"}]}) + "\n")
    return str(path)


@pytest.fixture
def spec_for(tmp_path):
    def make(server: TogetherStandIn, **spec_overrides) -> JobSpec:
        fields = dict(backend="together", base_model=BASE_MODEL, train_file=_chat_file(tmp_path / "train.jsonl", 12),
                      valid_file=_chat_file(tmp_path / "valid.jsonl", 3), num_epochs=2, learning_rate=1e-4,
                      lora_r=16, lora_alpha=32, seed=7,
                      together={"base_url": server.url, "poll_interval": 0.01, "suffix": "support-bot", "n_evals": 3})
        fields.update(spec_overrides)
        spec = JobSpec(**fields)
        assert spec.validate() == []
        return spec

    return make


def _run(spec, run_dir, stop=None, **kw):
    writer = EventWriter(run_dir)
    result = together_ft.run_job(spec, run_dir, writer, stop, api_key=kw.pop("api_key", KEY), **kw)
    events, _ = read_events(run_dir)
    return result, events


def _text_under(path: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in Path(path).rglob("*") if p.is_file())


def _words(path: str) -> int:
    return len(Path(path).read_text(encoding="utf-8").split())


def _terminal(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] in ("finished", "failed", "cancelled")]


# -- the job, end to end ------------------------------------------------------------------------
def test_succeeded_job_maps_the_spec_and_reports_the_events_contract(together_server, spec_for, tmp_path):
    spec = spec_for(together_server)
    result, events = _run(spec, tmp_path / "run")
    assert result["status"] == "succeeded", events

    # Both files went up through the SDK's upload (302 -> PUT -> preprocess) and passed the server's check.
    uploads = together_server.calls("POST", "/files")
    assert [u["form"]["file_name"] for u in uploads] == ["train.jsonl", "valid.jsonl"]
    assert all(u["form"]["purpose"] == "fine-tune" for u in uploads)
    stored = {f["name"]: f["content"] for f in together_server.files.values()}
    assert stored["train.jsonl"] == Path(spec.train_file).read_bytes()
    assert together_server.calls("GET", "/fine-tunes/models/limits")[0]["query"] == {"model_name": BASE_MODEL}

    (create,) = together_server.calls("POST", "/fine-tunes")
    body = create["json"]
    assert body["model"] == BASE_MODEL and body["n_epochs"] == 2 and body["learning_rate"] == 1e-4
    assert body["training_type"] == {"type": "Lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
                                     "lora_trainable_modules": "all-linear"}
    assert body["n_evals"] == 3 and body["suffix"] == "support-bot" and body["random_seed"] == 7
    assert body["training_method"]["method"] == "sft"
    assert together_server.files[body["validation_file"]]["name"] == "valid.jsonl"
    assert create["headers"]["authorization"] == f"Bearer {KEY}"

    # Together's own estimate, as a message, computed from what the stand-in charges.
    tokens = 2 * _words(spec.train_file) + 3 * _words(spec.valid_file)
    estimate = [e["text"] for e in events if e["type"] == "message" and e["text"].startswith("Together's estimate")]
    assert estimate == [f"Together's estimate: {format_money(tokens * PRICE_PER_1M / 1e6)} for "
                        f"{2 * _words(spec.train_file):,} training + {3 * _words(spec.valid_file):,} evaluation tokens"]

    job = together_server.jobs[result["external_id"]]
    (started,) = [e for e in events if e["type"] == "started"]
    assert started["external_id"] == job["id"] and started["backend"] == "together" and started["num_examples"] == 12
    logs = [e for e in events if e["type"] == "log"]
    assert [e["step"] for e in logs] == list(range(1, together_server.total_steps + 1))
    assert [e["loss"] for e in logs] == [round(2.0 / (1 + 0.5 * s), 4) for s in range(1, 7)]
    assert all(e["total_steps"] == together_server.total_steps for e in logs)
    assert [e["step"] for e in events if e["type"] == "eval"] == [2, 4, 6]
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [3, 6]
    (finished,) = _terminal(events)
    assert finished["type"] == "finished"
    assert finished["output_model"] == finished["output_dir"] == job["model_output_name"] == result["output_model"]
    assert finished["first_loss"] == logs[0]["loss"] and finished["final_loss"] == logs[-1]["loss"]
    assert finished["inference_base_url"] == together_server.url + "/v1"
    assert [e["type"] for e in events].index("started") < [e["type"] for e in events].index("log")


def test_full_fine_tuning_and_no_validation_file(together_server, spec_for, tmp_path):
    spec = spec_for(together_server, method="full", valid_file=None, learning_rate=None)
    result, events = _run(spec, tmp_path / "run")
    assert result["status"] == "succeeded", events
    body = together_server.calls("POST", "/fine-tunes")[0]["json"]
    assert body["training_type"] == {"type": "Full"}
    assert body["learning_rate"] == 1e-5  # not given: Together's default
    assert not body.get("validation_file") and not body.get("n_evals")
    assert not [e for e in events if e["type"] == "eval"]


def test_succeeded_job_through_the_worker_is_registered_in_the_arena(together_server, spec_for, monkeypatch,
                                                                    no_stray_workers):
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)  # the session's key reaches the worker, not ours
    ctx = Context.open()
    run_id = jobs.start_job(ctx.store, spec_for(together_server), ctx.settings.runs_dir, api_key=KEY)
    job = jobs.wait(ctx.store, run_id, timeout=120)
    assert job["status"] == "succeeded", (job, jobs.log_tail(ctx.store, run_id))
    remote = together_server.jobs[job["external_id"]]
    assert job["output_model"] == remote["model_output_name"] and job["base_model"] == BASE_MODEL
    assert job["final_loss"] < job["first_loss"] and job["best_eval_loss"] is not None

    monkeypatch.setenv("TOGETHER_API_KEY", KEY)  # the arena reads the key by its name, when it calls
    model = arena.register_run_model(ctx, run_id)
    assert model.kind == "openai_compatible"
    assert model.config["base_url"] == together_server.url + "/v1"
    assert model.config["model"] == remote["model_output_name"]
    assert model.config["api_key_env"] == "TOGETHER_API_KEY"
    assert together_server.calls("GET", "/models")[-1]["headers"]["authorization"] == f"Bearer {KEY}"

    # The key is nowhere on disk: not in the run folder, not in DuckDB.
    run_dir = Path(job["run_dir"])
    store.reset_store()
    assert KEY.encode() not in _text_under(run_dir)
    assert KEY.encode() not in _text_under(config.data_dir())


def test_run_model_config_of_a_together_run_honours_an_inference_url(tmp_path):
    from ftassist.arena.models import run_model_config

    JobSpec(backend="together", base_model=BASE_MODEL, train_file="t.jsonl",
            together={"inference_base_url": "https://proxy.example/v1"}).save(tmp_path)
    EventWriter(tmp_path).finished(output_dir="user/m-1", output_model="user/m-1", final_loss=None, first_loss=None,
                                   inference_base_url="http://ignored/v1")
    assert run_model_config(tmp_path) == ("openai_compatible", {
        "base_url": "https://proxy.example/v1", "model": "user/m-1", "api_key_env": "TOGETHER_API_KEY",
        "run_dir": str(tmp_path.resolve())})


# -- refusals and failures ---------------------------------------------------------------------
def test_a_file_refused_by_togethers_check_is_one_clear_failure(together_server, spec_for, tmp_path):
    together_server.refuse_file = "Line 3: the conversation has no assistant message"
    result, events = _run(spec_for(together_server), tmp_path / "run")
    (failed,) = _terminal(events)
    assert failed["type"] == "failed" and result["status"] == "failed"
    assert failed["reason"] == ("train.jsonl was refused by Together's check (INVALID_FORMAT): Line 3: the "
                                "conversation has no assistant message")
    assert "\n" not in failed["reason"] and "ftassist check" in failed["hint"]
    assert not together_server.calls("POST", "/fine-tunes")


def test_a_file_refused_by_the_sdks_format_check_never_leaves_the_machine(together_server, spec_for, tmp_path):
    spec = spec_for(together_server)
    with open(spec.train_file, "a", encoding="utf-8") as f:
        f.write("this line is not JSON\n")
    result, events = _run(spec, tmp_path / "run")
    (failed,) = _terminal(events)
    assert failed["type"] == "failed"
    assert failed["reason"] == ("train.jsonl was refused by the format check: Error parsing json payload. "
                                "Unexpected format on line 13.")
    assert not together_server.calls("POST", "/files")


def test_a_failed_job_ends_with_togethers_reason(together_server, spec_for, tmp_path):
    together_server.fail_job = "Training failed: the loss became NaN at step 1"
    result, events = _run(spec_for(together_server), tmp_path / "run")
    (failed,) = _terminal(events)
    assert failed["type"] == "failed" and failed["reason"] == together_server.fail_job
    assert failed["external_id"] == result["external_id"] in together_server.jobs


def test_an_unknown_model_fails_before_any_upload(together_server, spec_for, tmp_path):
    together_server.unknown_models.add(BASE_MODEL)
    result, events = _run(spec_for(together_server), tmp_path / "run")
    (failed,) = _terminal(events)
    assert failed["reason"].startswith("Together does not know this (404): Model ") and "supported-models" in failed["hint"]
    assert not together_server.calls("POST", "/files")


def test_rate_limits_are_retried_by_the_sdk_and_reported(together_server, spec_for, tmp_path):
    together_server.rate_limit_next = 3
    result, events = _run(spec_for(together_server), tmp_path / "run")
    assert result["status"] == "succeeded", events
    assert together_server.status_log.count(429) == 3
    warnings = [e["text"] for e in events if e["type"] == "message" and e["level"] == "warning"]
    assert sum(w.startswith("rate limited by Together (429)") for w in warnings) == 3


def test_rate_limits_beyond_max_retries_fail_clearly(together_server, spec_for, tmp_path):
    together_server.rate_limit_next = 10
    spec = spec_for(together_server, together={"base_url": together_server.url, "poll_interval": 0.01, "max_retries": 1})
    result, events = _run(spec, tmp_path / "run")
    (failed,) = _terminal(events)
    assert failed["reason"].startswith("still rate limited after several retries (429)")
    assert len(together_server.calls("GET", "/fine-tunes/models/limits")) == 2  # the first try and one retry


def test_stop_cancels_the_remote_job(together_server, spec_for, tmp_path):
    together_server.total_steps, together_server.steps_per_poll = 1000, 1
    stop = StopFlag(external=lambda: any(j["_step"] >= 2 for j in together_server.jobs.values()))
    result, events = _run(spec_for(together_server), tmp_path / "run", stop=stop)
    assert result["status"] == "cancelled"
    (cancelled,) = _terminal(events)
    assert cancelled["type"] == "cancelled" and cancelled["step"] >= 1
    assert together_server.calls("POST", "/cancel")
    assert together_server.jobs[result["external_id"]]["status"] == "cancelled"


def test_cancel_through_the_job_manager_cancels_the_remote_job(together_server, spec_for, no_stray_workers):
    together_server.total_steps, together_server.steps_per_poll = 100000, 1
    ctx = Context.open()
    run_id = jobs.start_job(ctx.store, spec_for(together_server), ctx.settings.runs_dir, api_key=KEY)
    deadline = time.monotonic() + 60
    while not any(j["status"] == "running" for j in together_server.jobs.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    job = jobs.cancel_job(ctx.store, run_id, timeout=30)
    assert job["status"] == "cancelled", jobs.log_tail(ctx.store, run_id)
    assert together_server.calls("POST", "/cancel")
    (remote,) = together_server.jobs.values()
    assert remote["status"] == "cancelled"


def test_a_rejected_key_is_a_clear_failure_and_never_written(together_server, spec_for, tmp_path):
    bad = "together-wrong-key-9876543210"
    run_dir = tmp_path / "run"
    spec = spec_for(together_server)
    spec.save(run_dir)
    result, events = _run(spec, run_dir, api_key=bad)
    (failed,) = _terminal(events)
    assert "TOGETHER_API_KEY" in failed["reason"] and failed["code"] == "invalid_api_key"
    assert bad in together_server.calls()[-1]["headers"]["authorization"]  # it was sent, and the 401 quoted it
    assert bad.encode() not in _text_under(run_dir)


def test_errors_that_quote_the_key_are_scrubbed():
    import httpx
    import together

    response = httpx.Response(400, request=httpx.Request("POST", "http://x/v1/fine-tunes"))
    exc = together.BadRequestError("bad", response=response, body={"error": {"message": f"key {KEY} may not"}})
    err = together_ft.describe_error(exc, secrets=(KEY,))
    assert KEY not in str(err) and "***" in str(err) and str(err).startswith("Together refused the request (400)")


def test_missing_key_fails_before_any_request(together_server, spec_for, tmp_path, monkeypatch):
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    result, events = _run(spec_for(together_server), tmp_path / "run", api_key=None)
    (failed,) = _terminal(events)
    assert failed["reason"].startswith("no API key: set TOGETHER_API_KEY")
    assert not together_server.calls()


# -- the CLI -----------------------------------------------------------------------------------
def test_cli_train_together_json_line(together_server, tmp_path, capsys, monkeypatch, no_stray_workers):
    monkeypatch.setenv("TOGETHER_API_KEY", KEY)
    data = Path(_chat_file(tmp_path / "chat.jsonl", 12))
    rc = main(["train", str(data), "--backend", "together", "--base-model", BASE_MODEL, "--base-url",
               together_server.url, "--epochs", "2", "--lora-r", "8", "--suffix", "cli", "--poll-interval", "0.05",
               "--valid", str(data), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    result = json.loads(captured.out.strip().splitlines()[-1])
    (remote,) = together_server.jobs.values()
    assert result["status"] == "succeeded" and result["backend"] == "together"
    assert result["remote_id"] == remote["id"]
    assert result["output_model"] == remote["model_output_name"]
    assert {"job_id", "run_dir", "output_dir", "first_loss", "final_loss", "best_eval_loss", "error", "hint"} <= set(result)
    body = together_server.calls("POST", "/fine-tunes")[0]["json"]
    assert body["n_epochs"] == 2 and body["training_type"]["lora_r"] == 8 and body["suffix"] == "cli"
    spec = json.loads((Path(result["run_dir"]) / "spec.json").read_text())
    assert spec["backend"] == "together" and "key" not in json.dumps(spec["together"]).lower()
    store.reset_store()
    assert KEY.encode() not in _text_under(Path(result["run_dir"]))
    assert KEY.encode() not in _text_under(config.data_dir())


def test_cli_together_needs_a_base_model(tmp_path, capsys, no_stray_workers):
    data = _chat_file(tmp_path / "chat.jsonl", 4)
    assert main(["train", data, "--backend", "together", "--valid", data]) == 2
    assert "--base-model is required with --backend together" in capsys.readouterr().err


# -- the spec and the form ----------------------------------------------------------------------
def test_spec_validation_of_a_together_run(tmp_path):
    train = _chat_file(tmp_path / "t.jsonl", 2)
    assert JobSpec(backend="together", base_model=BASE_MODEL, train_file=train).validate() == []
    problems = " ".join(JobSpec(backend="together", train_file=train, method="qlora", num_epochs=1.5,
                                together={"suffix": "x" * 41, "training_method": "dpo"}).validate())
    for words in ("not a local model", "not 'qlora'", "whole number", "at most 40 characters",
                  "'dpo' does not match the objective 'sft'"):
        assert words in problems
    assert JobSpec.from_dict(JobSpec(backend="together", together={"n_evals": 2}).to_dict()).together["n_evals"] == 2


def test_the_train_form_builds_a_together_spec():
    from ftassist.ui.train import build_spec

    spec = build_spec("together", BASE_MODEL, "lora", 2, 1e-4, 8, 16, None, "t.jsonl", "", "", "bot", "openai",
                      "", "", "")
    assert spec["backend"] == "together" and spec["base_model"] == BASE_MODEL and spec["together"] == {"suffix": "bot"}
    assert spec["num_epochs"] == 2 and spec["lora_r"] == 8 and "openai" not in spec


# -- the price ----------------------------------------------------------------------------------
def test_together_cost_by_hand():
    # 3 epochs x 1.2M training tokens + 4 evals x 150k validation tokens = 4.2M tokens; at $0.48/1M: $2.016
    bill = providers.together_cost(1_200_000, 3, 8, valid_tokens=150_000, n_evals=4, rate_usd_per_1m=0.48)
    assert bill.billed_tokens == 4_200_000 and bill.bracket == "up to 16B"
    assert bill.usd == pytest.approx(2.016)


def test_together_cost_reads_the_rate_of_the_bracket_and_says_when_it_is_unknown(monkeypatch):
    facts = json.loads(json.dumps(providers.load()))
    facts["together"]["rates_usd_per_1m_tokens"] = {"69-100B": {"sft": {"lora": 2.5, "full": 9.0}}}
    monkeypatch.setattr(providers, "load", lambda: facts)
    bill = providers.together_cost(1_000_000, 2, 70, method="full")
    assert (bill.bracket, bill.rate_usd_per_1m, bill.usd) == ("69-100B", 9.0, pytest.approx(18.0))
    unknown = providers.together_cost(1_000_000, 2, 8)
    assert unknown.usd is None and unknown.billed_tokens == 2_000_000 and "no SFT lora rate" in unknown.reason
    assert providers.together_bracket(16) == "up to 16B" and providers.together_bracket(16.5) == "16.1-69B"
    with pytest.raises(ValueError):
        providers.together_cost(-1, 1, 8, rate_usd_per_1m=1.0)

