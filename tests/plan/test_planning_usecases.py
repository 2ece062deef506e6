"""The Decide and Estimate use cases and the sample run: the estimate prices the train split (what
training sees), the advice becomes the session's Decision, and the sample sets up every step."""

from __future__ import annotations

import json

import pytest

from ftassist.data.tokens import count_chat
from ftassist.store import Store
from ftassist.usecases import data, planning, registry
from ftassist.usecases.context import Context, Settings, UseCaseError
from ftassist.usecases.session import Dataset, Decision, Session

OPENAI_ONLY = {"openai_models": ["gpt-4o-mini-2024-07-18"], "include_self_hosted": False, "epochs": 1}


@pytest.fixture
def ctx(tmp_path):
    store = Store(tmp_path / "home" / "ftassist.duckdb")
    yield Context(settings=Settings(data_dir=tmp_path / "home"), _store=store)
    store.close()


def _chat(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"Where is parcel {i}? " + "please " * (i % 7)},
                         {"role": "assistant", "content": f"Parcel {i} leaves the depot tomorrow."}]}


def _checked_and_split(ctx, tmp_path) -> tuple[Session, list[str]]:
    """40 records: 36 distinct examples, 2 exact duplicates and 2 invalid records; 25% held out."""
    lines = [json.dumps(_chat(i)) for i in range(36)]
    lines += [json.dumps(_chat(3)), json.dumps(_chat(4)), '{"messages": []}', '{"text": 1}']
    path = tmp_path / "parcels.jsonl"
    path.write_text("\n".join(lines) + "\n")
    checked = data.check_dataset(ctx, str(path))
    cleaned = data.clean_dataset(ctx, checked.path, valid_fraction=0.25, seed=1)
    session = Session().checked(Dataset(checked.path, checked.report)).split_into(data.split_of(cleaned))
    return session, open(cleaned.train_path).read().splitlines()


def test_the_estimate_prices_the_train_split_not_the_raw_records(ctx, tmp_path):
    session, train_lines = _checked_and_split(ctx, tmp_path)
    assert session.dataset.n_examples == 38 and session.split.n_train == len(train_lines) == 27
    result = registry.call(ctx, "estimate_options", {"session": session.to_dict(), "options": OPENAI_ONLY})
    inputs = result.table.inputs
    assert inputs["n_examples"] == len(train_lines) and inputs["source"] == "train split"
    expected = sum(count_chat(json.loads(line), "o200k_base")[0] for line in train_lines)  # counted apart
    assert inputs["total_tokens"] == expected == result.table.rows[0].billing_tokens
    assert "train split, 27 examples" in result.counted and "9 validation examples are held out" in result.counted
    assert result.counted in result.table.notes  # the table says which counts it used
    # unticking "use the dataset" goes back to the numbers given
    quick = planning.estimate_options(ctx, session, use_dataset=False, n_examples=100, avg_tokens=50,
                                      options=OPENAI_ONLY)
    assert quick.table.inputs["n_examples"] == 100 and quick.table.inputs["source"] == "quick"


def test_without_a_split_the_checked_report_is_used_and_its_errors_are_said(ctx, tmp_path):
    session, _ = _checked_and_split(ctx, tmp_path)
    unsplit = Session().checked(session.dataset)
    result = planning.estimate_options(ctx, unsplit, options=OPENAI_ONLY)
    assert result.table.inputs["n_examples"] == 38 and result.table.inputs["source"] == "report"
    assert result.warnings == ["2 record(s) have errors; the estimate covers the 38 valid examples"]


def test_a_dataset_path_is_checked_and_recorded(ctx, tmp_path):
    path = tmp_path / "few.jsonl"
    path.write_text("".join(json.dumps(_chat(i)) + "\n" for i in range(5)))
    result = planning.estimate_options(ctx, path=str(path), options=OPENAI_ONLY)
    assert result.table.inputs["n_examples"] == 5 and result.table.inputs["exact"] is True
    assert [d.path for d in data.list_datasets(ctx)] == [str(path)]
    with pytest.raises(UseCaseError, match="not both"):
        planning.estimate_options(ctx, path=str(path), n_examples=5, avg_tokens=10)


def test_a_pasted_example_and_the_refusals(ctx, tmp_path):
    example = json.dumps(_chat(1))
    result = planning.estimate_options(ctx, example=example, n_examples=10, options=OPENAI_ONLY)
    assert result.table.inputs["total_tokens"] == 10 * count_chat(_chat(1), "o200k_base")[0]
    with pytest.raises(UseCaseError, match="Nothing to estimate"):
        planning.estimate_options(ctx, Session())
    with pytest.raises(UseCaseError, match="Unknown estimate option"):
        planning.estimate_options(ctx, n_examples=5, avg_tokens=10, options={"colour": "red"})
    with pytest.raises(UseCaseError, match="Unknown GPU"):
        planning.estimate_options(ctx, n_examples=5, avg_tokens=10, options={"gpus": ["Voodoo2"]})
    session, _ = _checked_and_split(ctx, tmp_path)
    gone = Session().checked(session.dataset).split_into(session.split)
    (tmp_path / "gone").mkdir()
    import shutil

    shutil.move(session.split.train, tmp_path / "gone" / "train.jsonl")
    with pytest.raises(UseCaseError, match="is gone: split the dataset again"):
        planning.estimate_options(ctx, gone)


def test_the_decided_method_is_preferred(ctx):
    session = Session().decided(Decision(answers={}, approach="fine_tune", method="qlora"))
    result = planning.estimate_options(ctx, session, n_examples=1000, avg_tokens=500,
                                       options={"base_models": ["Qwen/Qwen2.5-0.5B"], "gpus": ["T4"],
                                                "allow_network": False})
    assert result.prefer == "qlora" and result.recommended["method"] == "qlora"
    assert result.table.recommended.method == "qlora"


def test_prices_replace_the_file_prices_of_every_listed_model(ctx):
    result = planning.estimate_options(ctx, n_examples=10, avg_tokens=100, options={
        "openai_models": ["gpt-4o-mini-2024-07-18", "gpt-4.1-mini-2025-04-14"], "include_self_hosted": False,
        "prices": {"output": 2.4, "input": None}})
    # each note says the price was overridden (and, while they run, when the model shuts down)
    assert [row.note.split("; ")[0] for row in result.table.rows] == ["price overridden: output"] * 2


def test_recommend_approach_gives_the_sessions_decision(ctx):
    answers = {"style_or_format": True, "tried_prompting": True, "n_examples": 2000, "hardware": "consumer_gpu"}
    advice = registry.call(ctx, "recommend_approach", {"answers": answers})
    decision = advice.decision
    assert (decision.approach, decision.method) == ("fine_tune", "qlora")
    assert decision.answers["hardware"] == "consumer_gpu" and decision.answers["budget"] == "medium"  # defaults filled
    assert decision.headline == "Fine-tuning (SFT), with QLoRA (4-bit)" and decision.recommendation["method"] == "qlora"
    assert decision.recommendation["objective"] == "sft" and decision.recommendation["then_objective"] is None
    assert advice.markdown.startswith("### Fine-tuning (SFT), with QLoRA")
    assert Session().decided(decision).decision == decision
    report = {"n_examples": 40, "errors": [{"line": 3}], "checklist": []}
    fixed = planning.recommend_approach(ctx, answers, report=report).decision
    assert fixed.recommendation["facts"]["n_examples"] == 40 and fixed.headline.startswith("Fix the data first")
    with pytest.raises(UseCaseError, match="Unknown answer.*colour"):
        planning.recommend_approach(ctx, {"colour": "red"})
    with pytest.raises(UseCaseError, match="budget must be one of"):
        planning.recommend_approach(ctx, {"budget": "infinite"})


def test_try_sample_data_checks_splits_estimates_and_chooses_a_tiny_run(ctx):
    before = Session().decided(Decision(answers={}, approach="fine_tune", method="lora")).selected_run("run-1")
    result = registry.call(ctx, "try_sample_data", {"session": before.to_dict()})
    session = result.session
    assert session.sample is True and session.decision == before.decision and session.run_id == "run-1"
    assert session.dataset.path.startswith(str(ctx.settings.uploads_dir))
    assert session.dataset.n_examples == result.n_examples == 60 and session.dataset.n_errors == 0
    split = session.split
    train_lines = open(split.train).read().splitlines()
    assert split.n_train + split.n_valid == 60 and split.n_valid > 0 and len(train_lines) == split.n_train
    option = session.option
    assert option["model"] == "tiny-random" and option["method"] == "lora" and option["id"] == "lora:tiny-random:cpu"
    # its costs are those of the train split, counted apart
    assert option["billing_tokens"] == sum(count_chat(json.loads(line), "o200k_base")[0] for line in train_lines)
    assert session.training_files == (split.train, split.valid)
    assert [d.path for d in data.list_datasets(ctx)] == [session.dataset.path]  # the sample's check is recorded


def test_a_missing_sample_is_one_clear_refusal(ctx, monkeypatch, tmp_path):
    monkeypatch.setattr(planning, "SAMPLE_PATH", tmp_path / "missing.jsonl")
    with pytest.raises(UseCaseError, match="sample dataset is missing"):
        planning.try_sample_data(ctx)
