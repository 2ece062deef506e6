"""Map your fields: a file in no known format (self-instruct's seed tasks) is proposed a mapping, checked and
cleaned through it from the CLI, and the Data tab keeps the mapping for Fix & split."""

import json

import pytest

from ftassist.cli import main
from ftassist.data.check import check_path
from ftassist.data.mapping import Mapping, MappingError, apply_mapping, parse_mapping, propose_mapping
from ftassist.ui import data_tab
from ftassist.usecases.context import Context
from ftassist.usecases.session import Session

TOPICS = ["antonyms", "capital cities", "unit conversion", "sorting numbers"]
SEED_MAP = "prompt=instruction,input=instances[].input,answer=instances[].output"


def seed_tasks(n_tasks=4, per_task=3):
    """Self-instruct's seed shape: one instruction, several input/output instances."""
    return [{"id": f"seed_task_{t}", "name": TOPICS[t].replace(" ", "_"),
             "instruction": f"Task {t}: answer this question about {TOPICS[t]} in one sentence.",
             "instances": [{"input": f"Case {t}.{i}: {TOPICS[t]} example number {i * 7 + t}",
                            "output": f"The answer for case {t}.{i} is {i * 13 + t * 5}, because of {TOPICS[t]}."}
                           for i in range(per_task)],
             "is_classification": False} for t in range(n_tasks)]


@pytest.fixture
def seed_file(tmp_path):
    path = tmp_path / "seed_tasks.jsonl"
    path.write_text("".join(json.dumps(task) + "\n" for task in seed_tasks()))
    return path


def test_proposal_for_the_seed_shape(seed_file):
    proposal = propose_mapping(seed_tasks())
    assert proposal == Mapping(prompt="instruction", input="instances[].input", answer="instances[].output")
    assert proposal.text() == SEED_MAP

    report = check_path(seed_file)  # no mapping: every line fails, the report carries the proposal
    assert report.n_examples == 0 and report.errors
    assert report.proposed_mapping == proposal.to_dict() and report.mapping is None
    assert "instances[].output" in report.found_keys and "instruction" in report.found_keys
    hint = report.diagnosis[0]
    assert hint.code == "unmapped_fields" and f"--map {SEED_MAP}" in hint.hint


def test_other_names_are_proposed():
    assert propose_mapping([{"question": "Why?", "answer": "Because.", "system_prompt": "Be brief."}]) == \
        Mapping(prompt="question", answer="answer", system="system_prompt")
    assert propose_mapping([{"query": "q", "response": "r"}]) == Mapping(prompt="query", answer="response")
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert propose_mapping([{"dialog": turns}]) == Mapping(messages="dialog")
    assert propose_mapping([{"only": 1}, "not a record"]) is None


def test_apply_mapping_expands_and_reports_what_is_missing():
    task = seed_tasks(1, 2)[0]
    mapped = apply_mapping(task, parse_mapping(SEED_MAP))
    assert [m["output"] for m in mapped] == [i["output"] for i in task["instances"]]
    assert all(m["instruction"] == task["instruction"] for m in mapped)
    assert mapped[1]["input"] == task["instances"][1]["input"] and mapped[0]["name"] == task["name"]  # kept
    del task["instances"][1]["output"]
    with pytest.raises(MappingError, match="item 2 of `instances` has no `output`"):
        apply_mapping(task, parse_mapping(SEED_MAP))
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    chat = apply_mapping({"dialog": turns, "sys": "Be kind."}, parse_mapping("messages=dialog,system=sys"))
    assert chat == [{"messages": [{"role": "system", "content": "Be kind."}, *turns]}]


@pytest.mark.parametrize("text, message", [
    ("prompt=instruction", "incomplete"),
    ("promt=instruction,answer=output", "unknown role 'promt'"),
    ("prompt instruction", "is not ROLE=KEY"),
    ("prompt=a[].x,answer=b[].y", "several lists"),
    ("prompt=instruction,answer=instances[]", "name the key of each item"),
    ("prompt=a,prompt=b,answer=c", "given twice"),
])
def test_bad_mappings_say_what_is_wrong(text, message):
    with pytest.raises(MappingError, match=message):
        parse_mapping(text)


def test_check_and_clean_with_map_from_the_cli(seed_file, tmp_path, capsys):
    assert main(["check", str(seed_file), "--json", "--map", SEED_MAP]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_records"] == 4 and report["n_examples"] == 12  # one example per instance
    assert report["errors"] == [] and report["format"] == "instruction"
    assert report["mapping"] == parse_mapping(SEED_MAP).to_dict()
    assert sorted(set(report["tokens"]["lines"])) == [1, 2, 3, 4]  # each example keeps its source line

    out = tmp_path / "split"
    assert main(["clean", str(seed_file), "--out", str(out), "--map", SEED_MAP, "--valid-fraction", "0"]) == 0
    capsys.readouterr()
    assert main(["check", str(out / "train.jsonl"), "--json"]) == 0  # the written file checks clean as it is
    cleaned = json.loads(capsys.readouterr().out)
    assert cleaned["n_examples"] == 12 and cleaned["errors"] == [] and cleaned["format"] == "chat"
    first = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    task = seed_tasks()[0]
    assert first["messages"][0]["content"] == f"{task['instruction']}\n\n{task['instances'][0]['input']}"
    assert first["messages"][1]["content"] == task["instances"][0]["output"]


def test_bad_map_is_one_line_error(seed_file, capsys):
    assert main(["check", str(seed_file), "--map", "prompt=instruction,anser=x"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown role 'anser'" in err and "\n" not in err and "Traceback" not in err


def test_a_record_the_mapping_does_not_fit_is_an_error_at_its_line(tmp_path):
    tasks = seed_tasks()
    del tasks[2]["instances"]
    path = tmp_path / "seed.jsonl"
    path.write_text("".join(json.dumps(task) + "\n" for task in tasks))
    report = check_path(path, mapping=SEED_MAP)
    assert [(e.line, e.code) for e in report.errors if e.line] == [(3, "mapping_failed")]
    assert "has no `instances`" in report.errors[0].message and report.n_examples == 9


def test_data_tab_keeps_the_mapping_and_fix_and_split_uses_it(seed_file):
    app = Context.open()
    no_progress = lambda *a, **k: None  # noqa: E731
    session, *_ = data_tab.check_dataset(app, str(seed_file), "", None, Session(), progress=no_progress)
    group, *fields = data_tab.mapping_panel(session)
    assert group["visible"] is True
    assert [f["value"] for f in fields] == ["instruction", "instances[].input", "instances[].output",
                                            data_tab.NOT_MAPPED, data_tab.NOT_MAPPED, data_tab.NOT_MAPPED]
    assert "instances[].output" in fields[0]["choices"]
    preview = json.loads(data_tab.mapping_preview(app, session, *(f["value"] for f in fields)))
    assert len(preview) == 3 and preview[0]["output"] == seed_tasks()[0]["instances"][0]["output"]

    with pytest.raises(Exception, match="incomplete"):  # a mapping without an answer is refused, clearly
        data_tab.check_with_mapping(app, session, "instruction", None, data_tab.NOT_MAPPED, None,
                                    progress=no_progress)
    session, summary, *_ = data_tab.check_with_mapping(app, session, *(f["value"] for f in fields),
                                                       progress=no_progress)
    assert session.dataset.mapping == parse_mapping(SEED_MAP).to_dict()
    assert session.dataset.n_examples == 12 and "12 valid examples" in summary
    assert Session.from_dict(session.to_dict()).dataset.mapping == session.dataset.mapping  # survives a reload
    # Train has no file to read until Fix & split writes the mapped records in a known format
    from ftassist.ui import train as train_tab
    from ftassist.usecases import training

    assert session.training_files is None and "field mapping" in train_tab.gate_message(session)
    assert training.training_defaults(app, session).train_file == ""

    session, message, files = data_tab.fix_and_split(app, 0.25, 1, session, progress=no_progress)
    assert session.split.n_train + session.split.n_valid == 12 and "dropped 0 invalid" in message
    assert training.training_defaults(app, session).train_file == session.split.train


def _pair_records() -> list[dict]:
    return [{"question": f"What is {i} + {i}?", "good": f"It is {2 * i}.", "bad": f"It is {2 * i + 1}.",
             "persona": "You are a careful tutor.", "topic": "sums"} for i in range(12)]


def test_a_preference_dataset_under_other_names_is_mapped_to_pairs(tmp_path, capsys):
    """`chosen=`/`rejected=` make preference pairs: proposed from the keys, checked and cleaned as pairs, a record
    without one side reported at its line, and what Fix & split writes checks again as pairs with no error."""
    rows = _pair_records()
    del rows[4]["bad"]
    path = tmp_path / "prefs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    unmapped = check_path(path)
    proposal = Mapping(**unmapped.proposed_mapping)
    assert proposal == Mapping(prompt="question", chosen="good", rejected="bad", system="persona")
    assert "--map prompt=question,system=persona,chosen=good,rejected=bad" in unmapped.diagnosis[0].hint

    assert main(["check", str(path), "--json", "--map", proposal.text()]) == 1  # an error: line 5
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "preference" and report["n_examples"] == 11 and report["mapping"] == proposal.to_dict()
    assert [(e["line"], e["code"]) for e in report["errors"] if e["line"]] == [(5, "mapping_failed")]
    assert "has no `bad`" in report["errors"][0]["message"] and "good" in report["found_keys"]

    out = tmp_path / "split"
    assert main(["clean", str(path), "--out", str(out), "--map", proposal.text(), "--valid-fraction", "0"]) == 0
    capsys.readouterr()
    first = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    assert first == {"prompt": [{"role": "system", "content": "You are a careful tutor."},
                                {"role": "user", "content": "What is 0 + 0?"}],
                     "chosen": [{"role": "assistant", "content": "It is 0."}],
                     "rejected": [{"role": "assistant", "content": "It is 1."}]}
    again = check_path(out / "train.jsonl")
    assert again.format == "preference" and again.n_examples == 11 and again.errors == []


def test_pair_roles_as_plain_texts_and_bad_pair_mappings():
    mapped = apply_mapping({"q": "Hi?", "yes": "Hello.", "no": "Go away.", "id": 7},
                           parse_mapping("prompt=q,chosen=yes,rejected=no"))
    assert mapped == [{"id": 7, "prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."}]
    turns = [{"role": "assistant", "content": "Hello."}]
    mapped = apply_mapping({"q": "Hi?", "yes": turns, "no": "Go away."}, parse_mapping("prompt=q,chosen=yes,rejected=no"))
    assert mapped[0]["chosen"] == turns and mapped[0]["rejected"] == [{"role": "assistant", "content": "Go away."}]
    with pytest.raises(MappingError, match="both answers"):
        parse_mapping("prompt=q,chosen=yes")
    with pytest.raises(MappingError, match="not answer= or messages="):
        parse_mapping("prompt=q,answer=a,chosen=yes,rejected=no")
    with pytest.raises(MappingError, match="one pair per record"):
        parse_mapping("prompt=q,chosen=answers[].good,rejected=answers[].bad")


def test_data_tab_maps_a_preference_dataset_with_its_chosen_and_rejected_fields(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in _pair_records()))
    app = Context.open()
    no_progress = lambda *a, **k: None  # noqa: E731
    session, *_ = data_tab.check_dataset(app, str(path), "", None, Session(), progress=no_progress)
    group, *fields = data_tab.mapping_panel(session)
    values = [f["value"] for f in fields]
    assert group["visible"] is True and dict(zip(data_tab.MAPPED_ROLES, values)) == {
        "prompt": "question", "input": data_tab.NOT_MAPPED, "answer": data_tab.NOT_MAPPED, "system": "persona",
        "chosen": "good", "rejected": "bad"}
    preview = json.loads(data_tab.mapping_preview(app, session, *values))
    assert preview[0]["chosen"] == [{"role": "assistant", "content": "It is 0."}]
    session, summary, *_ = data_tab.check_with_mapping(app, session, *values, progress=no_progress)
    assert session.dataset.mapping == {"prompt": "question", "system": "persona", "chosen": "good", "rejected": "bad"}
    assert session.dataset.n_examples == 12 and "12 valid preference pairs" in summary
    # the Estimate reads the dataset through its mapping before it is split: the pairs' counts are the check's
    from ftassist.usecases import planning

    estimate = planning.estimate_options(app, session=session, options={
        "base_models": ["Qwen/Qwen2.5-0.5B"], "methods": ["lora"], "local_gpus": [], "today": "2026-11-30",
        "allow_network": False, "epochs": 1, "objective": "dpo"})
    assert estimate.table.inputs["n_examples"] == 12
    assert estimate.table.inputs["total_tokens"] == session.report["tokens"]["total"]
    session, message, files = data_tab.fix_and_split(app, 0.25, 1, session, progress=no_progress)
    assert session.split.n_train + session.split.n_valid == 12 and "dropped 0 invalid" in message
