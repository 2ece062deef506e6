"""Hosted preference tuning (DPO) on Together and OpenAI, through the real SDKs against the stand-ins: the canonical
pairs go up in the provider's preference rows, the job is created with the DPO method and beta (from an earlier
job's checkpoint when start_from names one), runs, and its losses and other metrics come back as events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from standins.openai_server import TRAIN_KEY, OpenAIStandIn
from standins.together_server import BASE_MODEL, TOGETHER_KEY, TogetherStandIn

from ftassist.data.preference_pairs import PairError, pair_from_record, provider_row, read_pairs, write_provider_file
from ftassist.data.preferences import Pair
from ftassist.train import jobs, openai_ft, together_ft
from ftassist.train.events import EventWriter, read_events
from ftassist.train.spec import JobSpec
from ftassist.usecases.context import Context

OPENAI_DPO_MODEL = "gpt-4.1-mini-2025-04-14"


def _pairs(path: Path, n: int, standard: bool = False) -> str:
    """`n` canonical pairs (TRL's conversational rows), or in TRL's standard (plain string) form."""
    rows = []
    for i in range(n):
        if standard:
            rows.append({"prompt": f"question {i}", "chosen": f"a kind answer {i}", "rejected": f"a curt answer {i}"})
        else:
            rows.append({"prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": f"question {i}"}],
                         "chosen": [{"role": "assistant", "content": f"a kind answer {i}"}],
                         "rejected": [{"role": "assistant", "content": f"a curt answer {i}"}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _answer(value) -> dict:
    return value[0] if isinstance(value, list) else {"role": "assistant", "content": value}


def _expected_rows(path: str) -> list[dict]:
    """The provider rows, built here by hand from the file (not through the converter)."""
    out = []
    for line in Path(path).read_text().splitlines():
        row = json.loads(line)
        prompt = row["prompt"] if isinstance(row["prompt"], list) else [{"role": "user", "content": row["prompt"]}]
        answer = _answer
        out.append({"input": {"messages": prompt}, "preferred_output": [answer(row["chosen"])],
                    "non_preferred_output": [answer(row["rejected"])]})
    return out


def _rows(content: bytes) -> list[dict]:
    return [json.loads(line) for line in content.decode().splitlines() if line.strip()]


def _run(module, spec, run_dir, api_key):
    writer = EventWriter(run_dir)
    result = module.run_job(spec, run_dir, writer, api_key=api_key)
    events, _ = read_events(run_dir)
    return result, events


# -- Together ---------------------------------------------------------------------------------------
def _together_spec(server: TogetherStandIn, tmp_path: Path, **overrides) -> JobSpec:
    fields = dict(backend="together", base_model=BASE_MODEL, objective="dpo", dpo_beta=0.2,
                  train_file=_pairs(tmp_path / "pairs.jsonl", 9), valid_file=_pairs(tmp_path / "valid_pairs.jsonl", 3),
                  num_epochs=2, together={"base_url": server.url, "poll_interval": 0.01, "n_evals": 2})
    fields.update(overrides)
    spec = JobSpec(**fields)
    assert spec.validate() == []
    return spec


def test_together_dpo_uploads_preference_rows_and_creates_a_dpo_job(together_server, tmp_path):
    spec = _together_spec(together_server, tmp_path)
    result, events = _run(together_ft, spec, tmp_path / "run", TOGETHER_KEY)
    assert result["status"] == "succeeded", events

    stored = {f["name"]: f["content"] for f in together_server.files.values()}
    assert set(stored) == {"together_train_pairs.jsonl", "together_valid_pairs.jsonl"}
    assert _rows(stored["together_train_pairs.jsonl"]) == _expected_rows(spec.train_file)
    assert _rows(stored["together_valid_pairs.jsonl"]) == _expected_rows(spec.valid_file)

    (create,) = together_server.calls("POST", "/fine-tunes")
    body = create["json"]
    assert body["training_method"]["method"] == "dpo" and body["training_method"]["dpo_beta"] == 0.2
    assert "train_on_inputs" not in body["training_method"]
    assert body["model"] == BASE_MODEL and "from_checkpoint" not in body
    estimates = [c["json"]["training_method"] for c in together_server.calls("POST", "/fine-tunes/estimate-price")]
    assert estimates and all(m["method"] == "dpo" and m["dpo_beta"] == 0.2 for m in estimates)

    (started,) = [e for e in events if e["type"] == "started"]
    assert started["objective"] == "dpo" and started["dpo_beta"] == 0.2 and started["num_examples"] == 9
    logs = [e for e in events if e["type"] == "log"]
    assert [e["step"] for e in logs] == list(range(1, together_server.total_steps + 1))
    assert logs[0]["loss"] == pytest.approx(0.6931 / 1.3, abs=1e-4) and logs[-1]["loss"] < logs[0]["loss"]
    assert [e["rewards_accuracies"] for e in logs] == [round(min(1.0, 0.5 + 0.08 * s), 4) for s in range(1, 7)]
    assert all("rewards_margins" in e for e in logs)
    assert events[-1]["type"] == "finished" and events[-1]["output_model"] == result["output_model"]


def test_together_dpo_continues_from_an_sft_job(together_server, tmp_path):
    chat = tmp_path / "chat.jsonl"
    chat.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                     {"role": "assistant", "content": f"a{i}"}]}) + "\n"
                            for i in range(6)))
    sft = JobSpec(backend="together", base_model=BASE_MODEL, train_file=str(chat),
                  together={"base_url": together_server.url, "poll_interval": 0.01})
    first, _ = _run(together_ft, sft, tmp_path / "sft", TOGETHER_KEY)
    assert first["status"] == "succeeded"
    assert together_server.calls("POST", "/fine-tunes")[0]["json"]["training_method"]["method"] == "sft"

    spec = _together_spec(together_server, tmp_path, start_from=first["output_model"], valid_file=None)
    result, events = _run(together_ft, spec, tmp_path / "dpo", TOGETHER_KEY)
    assert result["status"] == "succeeded", events
    body = together_server.calls("POST", "/fine-tunes")[-1]["json"]
    assert body["from_checkpoint"] == first["output_model"] and "model" not in body  # a model or a checkpoint
    assert together_server.jobs[result["external_id"]]["model"] == BASE_MODEL  # it continues the SFT job's base
    (started,) = [e for e in events if e["type"] == "started"]
    assert started["from_checkpoint"] == first["output_model"]


def test_together_dpo_with_a_bad_pair_fails_on_its_line_before_any_upload(together_server, tmp_path):
    spec = _together_spec(together_server, tmp_path)
    two_answers = [{"role": "assistant", "content": "first"}, {"role": "assistant", "content": "second"}]
    with open(spec.train_file, "a", encoding="utf-8") as f:
        f.write(json.dumps({"prompt": [{"role": "user", "content": "q"}], "chosen": two_answers,
                            "rejected": [{"role": "assistant", "content": "no"}]}) + "\n")
    result, events = _run(together_ft, spec, tmp_path / "run", TOGETHER_KEY)
    assert result["status"] == "failed"
    assert events[-1]["reason"] == 'pairs.jsonl line 10: In "chosen": Messages 1 and 2 are both assistant messages'
    assert events[-1]["hint"]
    assert not together_server.calls("POST", "/files")


def test_a_chat_file_is_never_sent_as_dpo(together_server, tmp_path):
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "q"},
                                             {"role": "assistant", "content": "a"}]}) + "\n")
    spec = _together_spec(together_server, tmp_path, train_file=str(chat), valid_file=None)
    result, events = _run(together_ft, spec, tmp_path / "run", TOGETHER_KEY)
    assert result["status"] == "failed"
    assert events[-1]["reason"] == "chat.jsonl line 1: this record is in chat format, but the file holds preference pairs"
    assert not together_server.calls("POST", "/fine-tunes")


def test_together_dpo_through_the_worker(together_server, tmp_path, monkeypatch, no_stray_workers):
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    ctx = Context.open()
    run_id = jobs.start_job(ctx.store, _together_spec(together_server, tmp_path), ctx.settings.runs_dir,
                            api_key=TOGETHER_KEY)
    job = jobs.wait(ctx.store, run_id, timeout=120)
    assert job["status"] == "succeeded", (job, jobs.log_tail(ctx.store, run_id))
    (create,) = together_server.calls("POST", "/fine-tunes")
    assert create["json"]["training_method"]["method"] == "dpo"
    assert job["final_loss"] < job["first_loss"] < 0.7


# -- OpenAI -----------------------------------------------------------------------------------------
def _openai_spec(server: OpenAIStandIn, tmp_path: Path, **overrides) -> JobSpec:
    fields = dict(backend="openai", objective="dpo", dpo_beta=0.3, train_file=_pairs(tmp_path / "pairs.jsonl", 9),
                  valid_file=_pairs(tmp_path / "valid_pairs.jsonl", 3),
                  openai={"model": OPENAI_DPO_MODEL, "n_epochs": 2, "provider": "custom", "base_url": server.base_url,
                          "poll_interval": 0.01})
    fields.update(overrides)
    spec = JobSpec(**fields)
    assert spec.validate() == []
    return spec


def test_openai_dpo_uploads_preference_rows_and_creates_a_dpo_job(fake_openai, tmp_path):
    spec = _openai_spec(fake_openai, tmp_path)
    result, events = _run(openai_ft, spec, tmp_path / "run", TRAIN_KEY)
    assert result["status"] == "succeeded", events

    (create,) = fake_openai.calls("POST", "/fine_tuning/jobs")
    body = create["json"]
    assert body["model"] == OPENAI_DPO_MODEL
    assert body["method"] == {"type": "dpo", "dpo": {"hyperparameters": {
        "beta": 0.3, "n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": "auto"}}}
    train = fake_openai.files[body["training_file"]]
    assert train["obj"]["filename"] == "openai_train_pairs.jsonl"
    assert _rows(train["content"]) == _expected_rows(spec.train_file)
    assert _rows(fake_openai.files[body["validation_file"]]["content"]) == _expected_rows(spec.valid_file)

    (started,) = [e for e in events if e["type"] == "started"]
    assert started["objective"] == "dpo" and started["dpo_beta"] == 0.3
    logs = [e for e in events if e["type"] == "log"]
    assert logs[0]["loss"] == pytest.approx(0.6931 / 1.3, abs=1e-4) and logs[-1]["loss"] < logs[0]["loss"]
    assert [e["train_reward_accuracy"] for e in logs] == [round(min(1.0, 0.5 + 0.08 * s), 3) for s in range(1, 7)]
    assert "train_mean_token_accuracy" not in logs[0]
    assert [e["step"] for e in events if e["type"] == "eval"] == [2, 4, 6]
    assert events[-1]["type"] == "finished" and events[-1]["output_model"].startswith(f"ft:{OPENAI_DPO_MODEL}:")


def test_openai_dpo_continues_from_an_sft_model(fake_openai, tmp_path):
    sft_model = f"ft:{OPENAI_DPO_MODEL}:org-fake:support:abc12345"
    spec = _openai_spec(fake_openai, tmp_path, start_from=sft_model, valid_file=None)
    result, events = _run(openai_ft, spec, tmp_path / "run", TRAIN_KEY)
    assert result["status"] == "succeeded", events
    assert fake_openai.calls("POST", "/fine_tuning/jobs")[0]["json"]["model"] == sft_model


def test_openai_refuses_a_chat_file_as_preference_data_the_way_its_check_would(fake_openai, tmp_path):
    """Past our converter (a file already in OpenAI's preference shape is not ours to rewrite), the stand-in's
    check is what a wrong shape meets: the job fails with its message."""
    spec = _openai_spec(fake_openai, tmp_path, valid_file=None)
    client = openai_ft.make_client("custom", api_key=TRAIN_KEY, base_url=fake_openai.base_url)
    file_id = openai_ft.upload_file(client, spec.train_file, poll_interval=0.01)  # canonical rows, not converted
    job = openai_ft.create_job(client, model=OPENAI_DPO_MODEL, training_file=file_id, objective="dpo", beta=0.1)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "failed"
    assert "no input.messages" in client.fine_tuning.jobs.retrieve(job.id).error.message


# -- the spec ---------------------------------------------------------------------------------------
def test_spec_validation_of_hosted_dpo(tmp_path):
    pairs = _pairs(tmp_path / "pairs.jsonl", 3)
    together = dict(backend="together", base_model=BASE_MODEL, train_file=pairs)
    assert JobSpec(**together, objective="dpo").validate() == []
    assert JobSpec(**together, objective="dpo", together={"training_method": "dpo"}).validate() == []
    assert JobSpec(**together, start_from="ft-12345678-abcd:10", objective="dpo").validate() == []
    mismatch = " ".join(JobSpec(**together, objective="dpo", together={"training_method": "sft"}).validate())
    assert "together.training_method 'sft' does not match the objective 'dpo'" in mismatch
    assert "does not match the objective 'sft'" in " ".join(
        JobSpec(**together, together={"training_method": "dpo"}).validate())
    assert "unknown" in " ".join(JobSpec(**together, together={"training_method": "ppo"}).validate())
    local = " ".join(JobSpec(**together, objective="dpo", start_from=str(tmp_path)).validate())
    assert "is a local folder" in local and "ft-..." in local

    openai = dict(backend="openai", train_file=pairs, objective="dpo")
    assert JobSpec(**openai, openai={"model": OPENAI_DPO_MODEL}).validate() == []
    assert JobSpec(**openai, openai={"model": "gpt-4o-mini"}, start_from=f"ft:{OPENAI_DPO_MODEL}:o::x").validate() == []
    refused = " ".join(JobSpec(**openai, openai={"model": "gpt-4o-mini-2024-07-18"}).validate())
    assert "OpenAI trains DPO only on gpt-4.1-2025-04-14" in refused and "gpt-4o-mini-2024-07-18 cannot" in refused
    assert JobSpec(backend="openai", train_file=pairs, openai={"model": "gpt-4o-mini-2024-07-18"}).validate() == []
    folder = " ".join(JobSpec(**openai, openai={"model": OPENAI_DPO_MODEL}, start_from=str(tmp_path)).validate())
    assert "continues from a fine-tuned OpenAI model (ft:...)" in folder
    # a local run still needs start_from to be a folder that exists
    assert "does not exist" in " ".join(JobSpec(train_file=pairs, output_dir=str(tmp_path), objective="dpo",
                                                start_from=str(tmp_path / "gone")).validate())


# -- the pairs ----------------------------------------------------------------------------------------
def test_the_forms_people_have_become_the_same_provider_rows(tmp_path):
    standard = _pairs(tmp_path / "standard.jsonl", 3, standard=True)
    written = write_provider_file(standard, tmp_path / "rows.jsonl")
    assert written == 3 and _rows((tmp_path / "rows.jsonl").read_bytes()) == _expected_rows(standard)
    implicit = pair_from_record({"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],
                                 "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}]},
                                4)
    assert implicit.pair["prompt"] == [{"role": "user", "content": "q"}]
    already = pair_from_record({"input": {"messages": [{"role": "user", "content": "q"}]},
                                "preferred_output": [{"role": "assistant", "content": "good"}],
                                "non_preferred_output": [{"role": "assistant", "content": "bad"}]}, 5)
    assert already.pair == implicit.pair  # OpenAI's own rows read back to the same canonical pair


def test_refusals_name_the_line(tmp_path):
    with pytest.raises(PairError) as caught:
        pair_from_record({"messages": [{"role": "user", "content": "q"}]}, 7)
    assert str(caught.value).startswith("line 7: not a preference pair")
    with pytest.raises(PairError) as caught:
        pair_from_record({"prompt": "q", "chosen": [{"role": "assistant", "content": "a"}], "rejected": "b"}, 8)
    assert str(caught.value).startswith('line 8: "chosen" is a list of messages but')
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n{not json\n")
    with pytest.raises(PairError) as caught:
        read_pairs(broken)
    assert caught.value.line == 2 and "malformed JSON" in str(caught.value)
    answer = {"role": "assistant", "content": "a"}
    with pytest.raises(PairError, match='line 3: "chosen" must be exactly one assistant message') as caught:
        provider_row(Pair(3, {"prompt": [{"role": "user", "content": "q"}], "chosen": [answer, answer],
                              "rejected": [answer]}, "trl"))
    assert "final assistant answer" in caught.value.hint
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(Path(_pairs(tmp_path / "a.jsonl", 1)).read_text()
                     + Path(_pairs(tmp_path / "b.jsonl", 1, standard=True)).read_text())
    with pytest.raises(PairError, match="line 2: this pair is TRL preference"):
        read_pairs(mixed)
