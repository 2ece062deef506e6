"""Pushing the finished model to the Hub: through the real huggingface_hub SDK, against a local stand-in."""

from __future__ import annotations

import pytest
from standins import HubStandIn

from ftassist.train.events import EventWriter, read_events
from ftassist.train.spec import JobSpec
from ftassist.train.worker import push_to_hub

TOKEN = "hf_THISisAsecretWRITEtoken123"


@pytest.fixture
def hub(monkeypatch):
    server = HubStandIn()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    yield server
    server.close()


def _model_folder(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 64)
    return folder


def _messages(run_dir) -> list[str]:
    events, _ = read_events(run_dir)
    return [e["text"] for e in events if e["type"] == "message"]


def test_the_model_folder_lands_in_a_private_repo(tmp_path, hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    folder = _model_folder(tmp_path)
    spec = JobSpec(push_to_hub=True, hub_model_id="me/tiny-support-bot")
    url = push_to_hub(spec, folder, EventWriter(tmp_path))
    assert url == f"{hub.url}/me/tiny-support-bot"
    created = hub.repos["me/tiny-support-bot"]
    assert created.get("visibility") == "private" or created.get("private") is True
    assert hub.files["me/tiny-support-bot"] == {p.name: p.read_bytes() for p in folder.iterdir()}
    assert set(hub.auth) == {f"Bearer {TOKEN}"}
    assert f"pushed to {url}" in _messages(tmp_path)


def test_no_token_skips_and_a_failed_push_is_a_warning_without_the_token(tmp_path, hub, monkeypatch):
    folder = _model_folder(tmp_path)
    spec = JobSpec(push_to_hub=True, hub_model_id="me/tiny-support-bot")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    assert push_to_hub(spec, folder, EventWriter(tmp_path)) is None
    assert any("set HF_TOKEN" in m for m in _messages(tmp_path)) and not hub.requests

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.fail_commits = True
    assert push_to_hub(spec, folder, EventWriter(tmp_path)) is None  # the run still counts as finished
    failed = [m for m in _messages(tmp_path) if m.startswith("push_to_hub failed")]
    assert len(failed) == 1 and "403" in failed[0]
    assert TOKEN not in (tmp_path / "events.jsonl").read_text()
