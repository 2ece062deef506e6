"""report_to: an integration is used only when its package is installed; a missing one is said, not raised."""

from __future__ import annotations

import importlib.util
import json

import pytest

from ftassist.train import reporting


def test_only_installed_integrations_are_reported_to():
    installed = {name for name in reporting.INTEGRATIONS if importlib.util.find_spec(name) is not None}
    value, missing = reporting.report_to(["tensorboard", "trackio"])
    assert (value if value != "none" else []) == [n for n in ("tensorboard", "trackio") if n in installed]
    assert missing == [n for n in ("tensorboard", "trackio") if n not in installed]
    assert reporting.report_to(None) == ("none", [])
    assert reporting.report_to("none") == ("none", [])


def test_an_unknown_integration_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="tensorboard or trackio"):
        reporting.report_to(["wandb"])


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is a dev requirement")
def test_a_run_reports_to_tensorboard(tmp_path):
    """report_to reaches the trainer: a tiny run leaves TensorBoard event files whose scalars include the loss."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ftassist.train.spec import JobSpec
    from ftassist.train.worker import main

    train = tmp_path / "train.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(8)]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_dir = tmp_path / "run"
    JobSpec(train_file=str(train), output_dir=str(run_dir / "model"), max_steps=2, per_device_batch_size=4,
            report_to=["tensorboard"], early_stopping_patience=None).save(run_dir)
    assert main([str(run_dir)]) == 0
    event_files = list(run_dir.rglob("events.out.tfevents.*"))
    assert event_files, "no TensorBoard event file was written"
    tags = set()
    for path in event_files:
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    assert any("loss" in tag for tag in tags), tags


def test_the_spec_refuses_an_unknown_integration():
    from ftassist.train.spec import JobSpec

    problems = JobSpec(train_file="t.jsonl", output_dir="o", report_to=["wandb"]).validate(check_files=False)
    assert any("report_to 'wandb' is unknown" in p for p in problems), problems
    assert JobSpec(train_file="t.jsonl", output_dir="o", report_to=["tensorboard"]).validate(check_files=False) == []
