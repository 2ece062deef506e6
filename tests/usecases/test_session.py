"""The typed session: transitions clear what they make stale; old stored dicts still load."""

from __future__ import annotations

import json

from gradio.utils import deep_hash

from ftassist.usecases.session import Dataset, Decision, Session, Split

REPORT = {"n_examples": 40, "errors": [{"line": 3}], "warnings": []}


def _split(train="t.jsonl") -> Split:
    return Split(train=train, valid="v.jsonl", folder="clean/x", n_train=36, n_valid=4)


def test_a_new_dataset_drops_the_old_split_and_option_but_keeps_the_decision_and_run():
    decision = Decision(answers={"style_or_format": True}, approach="fine_tune", method="lora")
    session = (Session().decided(decision).checked(Dataset("a.jsonl", REPORT)).split_into(_split())
               .chose({"id": "lora:x:T4"}).selected_run("run1"))
    again = session.checked(Dataset("a.jsonl", dict(REPORT, n_examples=41)))  # the same file checked again
    assert again.split == session.split and again.option == session.option
    other = session.checked(Dataset("b.jsonl", REPORT))
    assert other.split is None and other.option is None
    assert other.decision == decision and other.run_id == "run1"
    assert session.split is not None  # transitions never change the session they start from


def test_training_files_prefer_the_split_and_skip_an_empty_validation_file():
    assert Session().training_files is None
    checked = Session().checked(Dataset("a.jsonl", REPORT))
    assert checked.training_files == ("a.jsonl", None)
    assert checked.split_into(_split()).training_files == ("t.jsonl", "v.jsonl")
    no_valid = Split(train="t.jsonl", valid="v.jsonl", folder="f", n_train=5, n_valid=0)
    assert checked.split_into(no_valid).training_files == ("t.jsonl", None)


def test_a_dataset_of_several_sources_trains_only_from_its_split():
    sources = [{"name": "a.jsonl", "path": "a.jsonl"}, {"name": "b.csv", "path": "b.csv"}]
    combined = Session().checked(Dataset("a.jsonl", dict(REPORT, sources=sources)))
    assert combined.training_files is None  # not the first file alone
    assert combined.split_into(_split()).training_files == ("t.jsonl", "v.jsonl")


def test_registered_models_are_unique_newest_last():
    session = Session().registered_model("m1").registered_model("m2").registered_model("m1")
    assert session.model_ids == ("m2", "m1")
    assert session.forgot_model("m2").model_ids == ("m1",)


def test_round_trip_through_json():
    session = (Session().decided(Decision({"budget": "low"}, "both", None, "RAG and fine-tuning"))
               .checked(Dataset("a.jsonl", REPORT, "gpt-4.1-mini")).split_into(_split())
               .chose({"id": "x", "cost_usd": 1.5}).selected_run("r").registered_model("m")
               .proposed({"use_case": "start_run", "arguments": {}}))
    text = json.dumps(session.to_dict())
    assert Session.from_dict(json.loads(text)) == session


def test_the_first_versions_dict_is_read():
    old = {"guide": {"approach": "fine_tune", "method": "qlora", "reasons": ["r"]},
           "report": {"n_examples": 7, "model": "gpt-4.1-mini"}, "dataset_path": "/up/a.jsonl",
           "clean": {"train": "/c/train.jsonl", "valid": "/c/valid.jsonl", "dir": "/c", "n_train": 6, "n_valid": 1},
           "estimate": {"id": "e1"}, "job_id": "j9", "sample": True, "job": {"status": "running"}}
    session = Session.from_dict(old)
    assert session.decision.approach == "fine_tune" and session.decision.method == "qlora"
    assert session.dataset == Dataset("/up/a.jsonl", old["report"], "gpt-4.1-mini")
    assert session.split == Split("/c/train.jsonl", "/c/valid.jsonl", "/c", 6, 1)
    assert session.option == {"id": "e1"} and session.run_id == "j9" and session.sample


def test_malformed_parts_are_dropped_not_raised():
    session = Session.from_dict({"dataset": {"path": "a"}, "split": "nonsense", "model_ids": ["m", 3],
                                 "option": [1], "run_id": 5})
    assert session == Session(model_ids=("m",))
    assert Session.of(None) == Session() and Session.of([1, 2]) == Session()
    same = Session(run_id="r")
    assert Session.of(same) is same


def test_gradio_sees_a_change_by_content():
    """Gradio hashes a gr.State's value to decide whether its .change listeners fire."""
    a = Session().checked(Dataset("a.jsonl", REPORT))
    assert deep_hash(a) == deep_hash(Session.from_dict(a.to_dict()))
    assert deep_hash(a) != deep_hash(a.selected_run("r"))
