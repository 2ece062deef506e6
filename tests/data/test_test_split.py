"""The test split: Fix & split holds it out (by default 10% from 200 examples up, none below) by the same groups
as validation, so no near-copy and no preference prompt is on two sides; the session keeps it (old sessions
still load), training never names it, and the Evaluate step measures on it by default and says so."""

from __future__ import annotations

import json

import pytest

from ftassist.cli import main
from ftassist.data import clean as cleaning
from ftassist.data.preferences import iter_pairs
from ftassist.data.load import iter_records
from ftassist.ui import data_tab
from ftassist.usecases import arena as arena_cases
from ftassist.usecases import data, evaluation
from ftassist.usecases.context import Context, UseCaseError
from ftassist.usecases.session import Session

quiet = {"progress": lambda *a, **k: None}


def _chats(path, n: int, copies_every: int | None = 3):
    """`n` examples, and a near-copy (other case and punctuation) of every `copies_every`-th one (None: none)."""
    rows = [{"messages": [{"role": "user", "content": f"What is item {i}?"},
                          {"role": "assistant", "content": f"Item {i} is a {['cat', 'dog'][i % 2]}."}]}
            for i in range(n)]
    rows += [{"messages": [{"role": "system", "content": "Be brief."},
                           {"role": "user", "content": f"what IS item {i}"},
                           {"role": "assistant", "content": f"item {i} is a {['cat', 'dog'][i % 2]}!"}]}
             for i in range(0, n, copies_every or n + 1) if copies_every]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8").read().splitlines() if line.strip()]


def _groups(path) -> set[bytes]:
    return {cleaning.group_key(row) for row in _lines(path)}


def test_the_test_split_keeps_near_copies_on_one_side_and_leaves_validation_as_it_was(tmp_path):
    source = _chats(tmp_path / "chats.jsonl", 90)
    result = cleaning.clean_file(source, tmp_path / "with", valid_fraction=0.1, test_fraction=0.2, seed=5)
    assert result.n_test == 24 and result.n_kept == 120 and result.test_path == tmp_path / "with" / "test.jsonl"
    assert (result.n_train, result.n_valid, result.n_test) == tuple(
        len(_lines(p)) for p in (result.train_path, result.valid_path, result.test_path))
    train, valid, test = (_groups(p) for p in (result.train_path, result.valid_path, result.test_path))
    assert not (train & test or valid & test or train & valid)  # a near-copy never straddles two splits
    assert result.test_path in result.files and len(_lines(result.all_path)) == 120
    # adding a test split never moves validation: the same seed draws the same validation examples
    without = cleaning.clean_file(source, tmp_path / "without", valid_fraction=0.1, seed=5)
    assert without.n_test == 0 and without.test_path is None and not (tmp_path / "without" / "test.jsonl").exists()
    assert open(without.valid_path).read() == open(result.valid_path).read()
    # the same seed, the same test split; another seed, another
    again = cleaning.clean_file(source, tmp_path / "again", valid_fraction=0.1, test_fraction=0.2, seed=5)
    assert open(again.test_path).read() == open(result.test_path).read()
    other = cleaning.clean_file(source, tmp_path / "other", valid_fraction=0.1, test_fraction=0.2, seed=6)
    assert open(other.test_path).read() != open(result.test_path).read()
    # written again into the same folder with no test split, the old one is gone (Evaluate would read it)
    cleaning.clean_file(source, tmp_path / "with", valid_fraction=0.1, test_fraction=0, seed=5)
    assert not (tmp_path / "with" / "test.jsonl").exists()


def test_by_default_a_test_split_only_from_200_examples(tmp_path):
    small = cleaning.clean_file(_chats(tmp_path / "small.jsonl", 150, copies_every=None), tmp_path / "small",
                                test_fraction=None)
    assert small.n_test == 0 and small.test_fraction == 0 and small.n_train + small.n_valid == 150
    big = cleaning.clean_file(_chats(tmp_path / "big.jsonl", 200, copies_every=None), tmp_path / "big",
                              test_fraction=None)
    assert (big.n_train, big.n_valid, big.n_test, big.test_fraction) == (160, 20, 20, 0.1)
    # the station's own default (what `ftassist train FILE` splits with) holds nothing out
    assert cleaning.clean_file(tmp_path / "big.jsonl", tmp_path / "plain").n_test == 0


def test_a_preference_prompt_is_never_on_two_sides(tmp_path):
    rows = [{"prompt": [{"role": "user", "content": f"Prompt {i % 40}"}],
             "chosen": [{"role": "assistant", "content": f"A good answer {i}."}],
             "rejected": [{"role": "assistant", "content": f"bad {i}"}]} for i in range(120)]
    source = tmp_path / "pairs.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    result = cleaning.clean_file(source, tmp_path / "out", valid_fraction=0.1, test_fraction=0.2, seed=3)
    assert result.kind == "preference" and result.n_test == 24 and result.n_kept == 120

    def prompts(path) -> set[bytes]:
        return {cleaning.pair_group_key(p.pair) for p in iter_pairs(iter_records(path), lambda issue: None)}

    train, valid, test = (prompts(p) for p in (result.train_path, result.valid_path, result.test_path))
    assert test and not (train & test or valid & test or train & valid)


def test_fractions_that_leave_nothing_to_train_on_are_refused(tmp_path):
    source = _chats(tmp_path / "chats.jsonl", 30)
    with pytest.raises(ValueError, match="test_fraction"):
        cleaning.clean_file(source, tmp_path / "out", valid_fraction=0.5, test_fraction=0.5)
    ctx = Context.open(reads_any_file=True)
    with pytest.raises(UseCaseError, match="test fraction must be at least 0"):
        data.clean_dataset(ctx, str(source), valid_fraction=0.6, test_fraction=0.4)
    with pytest.raises(UseCaseError, match="test fraction"):
        data.clean_dataset(ctx, str(source), test_fraction=-0.1)


def test_the_session_keeps_the_test_split_and_training_never_names_it(ftassist_home, tmp_path):
    ctx = Context.open()
    source = _chats(tmp_path / "chats.jsonl", 60)
    result = data.clean_dataset(ctx, str(source), test_fraction=0.25, seed=1)
    split = data.split_of(result)
    assert split.test == str(result.test_path) and split.n_test == result.n_test == 20
    session = Session().split_into(split)
    assert Session.from_dict(json.loads(json.dumps(session.to_dict()))).split == split
    assert str(result.test_path) not in session.training_files
    test_rows = {json.dumps(r, sort_keys=True) for r in _lines(split.test)}
    trained = {json.dumps(r, sort_keys=True) for path in session.training_files for r in _lines(path)}
    assert test_rows and not test_rows & trained
    # a session stored before the test split existed still loads, with none
    old = {"split": {"train": split.train, "valid": split.valid, "folder": split.folder, "n_train": 40,
                     "n_valid": 20}}
    loaded = Session.from_dict(old).split
    assert loaded.test is None and loaded.n_test == 0 and loaded.n_train == 40
    # no test split asked: none in the session
    assert data.split_of(data.clean_dataset(ctx, str(source), test_fraction=0)).test is None


def test_fix_and_split_on_the_page_and_the_command_say_the_test_split(ftassist_home, tmp_path, capsys):
    ctx = Context.open(reads_any_file=False)
    upload = ctx.settings.uploads_dir / "chats.jsonl"
    _chats(upload, 60)
    session, *_ = data_tab.check_dataset(ctx, str(upload), "", None, Session(), **quiet)
    session, message, files = data_tab.fix_and_split(ctx, 0.1, 42, session, "0.2", **quiet)
    assert session.split.n_test == 16 and session.split.test in files
    assert "**16 test**" in message and "never trained on" in message
    session, message, files = data_tab.fix_and_split(ctx, 0.1, 42, session, "auto", **quiet)
    assert session.split.test is None and "test" not in message  # 80 examples: too few for one by default
    source = _chats(tmp_path / "mine.jsonl", 60)
    assert main(["clean", str(source), "--out", str(tmp_path / "out"), "--test-fraction", "0.25"]) == 0
    printed = capsys.readouterr().out
    assert ", 20 test;" in printed and f"test: {tmp_path / 'out' / 'test.jsonl'}" in printed
    assert main(["clean", str(source), "--out", str(tmp_path / "out"), "--test-fraction", "0.95"]) == 2
    assert "test fraction" in capsys.readouterr().err


def test_the_evaluate_step_measures_on_the_test_split_and_says_so(ftassist_home, tmp_path, fake_llm):
    ctx = Context.open()
    result = data.clean_dataset(ctx, str(_chats(tmp_path / "chats.jsonl", 30, copies_every=None)),
                                test_fraction=0.2)
    session = Session().split_into(data.split_of(result))
    for model in ("base", "tuned"):
        arena_cases.register_model(ctx, "openai_compatible", f"api {model}", {"base_url": fake_llm.base_url,
                                                                               "model": model})
    evaluated = evaluation.evaluate_models(ctx, ["api base", "api tuned"], session=session, rounds=50)
    assert evaluated.data == str(result.test_path) and evaluated.n_examples == result.n_test == 6
    assert evaluated.data_source.startswith("the test split") and "never seen in training" in evaluated.data_source
    asked = {r["messages"][-1]["content"] for r in fake_llm.requests}
    tested = {row["messages"][0]["content"] for row in _lines(result.test_path)}
    assert tested <= asked  # the models were asked the test split's questions
    history = evaluation.evaluation_history(ctx, limit=5)
    assert history[0].data_source == evaluated.data_source
