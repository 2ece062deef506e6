"""OpenAI turning a fine-tuning request away (its self-serve fine-tuning is winding down): the run fails with
one line that names the wind-down and where to go instead, never the API's raw words. Through the real
openai SDK against the stand-in server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from standins.openai_server import TRAIN_KEY, OpenAIStandIn, error

from ftassist.train import openai_ft
from ftassist.train.events import EventWriter, read_events
from ftassist.train.spec import JobSpec


class ClosedToNewJobs(OpenAIStandIn):
    """Files upload fine; creating the job is refused with a 400 that says fine-tuning is not available."""

    def _create_job(self, body: dict):
        return 400, error("Fine-tuning is not available for your organization. OpenAI's self-serve fine-tuning is no "
                          "longer offered to new customers.", "invalid_request_error", "fine_tuning_unavailable"), {}


def _spec(tmp_path: Path, server: OpenAIStandIn, provider: str = "openai") -> JobSpec:
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                      {"role": "assistant", "content": f"a{i}"}]}) + "\n"
                             for i in range(12)))
    spec = JobSpec(backend="openai", train_file=str(train), openai={
        "model": "gpt-4.1-mini-2025-04-14", "provider": provider, "base_url": server.base_url, "poll_interval": 0.01,
        "max_retries": 0})
    assert spec.validate() == []
    return spec


def _run(spec: JobSpec, run_dir: Path) -> tuple[dict, dict]:
    result = openai_ft.run_job(spec, run_dir, EventWriter(run_dir), api_key=TRAIN_KEY)
    events, _ = read_events(run_dir)
    return result, events[-1]


def _says_wind_down(reason: str) -> None:
    assert "\n" not in reason
    assert "winding down" in reason and "2027-01-06" in reason and "2026-05-07" in reason
    for way in ("Hugging Face Jobs", "Together AI", "local GPU"):
        assert way in reason


def test_a_403_names_the_wind_down_and_the_alternatives(tmp_path):
    with OpenAIStandIn(expected_key=TRAIN_KEY) as server:
        server.status = 403
        result, failed = _run(_spec(tmp_path, server), tmp_path / "run")
    assert result["status"] == "failed" and failed["type"] == "failed"
    _says_wind_down(failed["reason"])
    assert "insufficient permissions" not in failed["reason"]  # not the raw API error
    assert failed["code"] == "fine_tuning_unavailable" and "ftassist providers" in failed["hint"]
    assert result["error"] == failed["reason"]
    assert 403 in server.status_log


def test_a_job_create_refused_as_unavailable(tmp_path):
    with ClosedToNewJobs(expected_key=TRAIN_KEY) as server:
        result, failed = _run(_spec(tmp_path, server), tmp_path / "run")
    assert server.calls("POST", "/files")  # the upload went through; the job create was refused
    assert len(server.calls("POST", "/fine_tuning/jobs")) == 1
    assert result["status"] == "failed"
    _says_wind_down(failed["reason"])
    assert "no longer offered" not in failed["reason"]


def test_other_refusals_keep_their_own_message(tmp_path):
    import openai

    with OpenAIStandIn(expected_key=TRAIN_KEY) as server:
        client = openai_ft.make_client("openai", api_key=TRAIN_KEY, base_url=server.base_url, max_retries=0)
        with pytest.raises(openai.BadRequestError) as caught:  # a plain 400: the model is missing
            client.fine_tuning.jobs.create(model="", training_file="file-x")
        message = str(openai_ft.describe_error(caught.value, "openai"))
        assert "winding down" not in message and "refused the request (400" in message
        server.status = 403
        # a compatible server (provider "custom") is not OpenAI: its 403 is a permission error, not the wind-down
        result, failed = _run(_spec(tmp_path, server, provider="custom"), tmp_path / "run")
    assert "winding down" not in failed["reason"] and "may not do this (403)" in failed["reason"]
