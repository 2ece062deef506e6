"""Preference pairs (DPO data) in the Data step: detection, validation with lines, conversions that
round-trip, the pair checks, clean and split by prompt, the use cases, the CLI and the Data tab."""

import json
import subprocess
import sys

import gradio as gr
import pytest

from ftassist.data import preferences
from ftassist.data.check import check_path, count_tokens
from ftassist.data.clean import clean_file
from ftassist.data.formats import detect_format, to_chat
from ftassist.data.load import iter_records
from ftassist.data.preferences import (
    export_pair,
    is_preference,
    iter_pairs,
    pair_format,
    to_pair,
    write_pairs,
)
from ftassist.store import Store
from ftassist.ui import data_tab
from ftassist.usecases import data
from ftassist.usecases.context import Context, Settings, UseCaseError
from ftassist.usecases.session import Session

SYSTEM = {"role": "system", "content": "You are a terse assistant."}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def canonical(i, chosen=None, rejected=None):
    return {"prompt": [user(f"Question {i} about billing?")],
            "chosen": [assistant(chosen if chosen is not None else f"Answer {i}: see the billing page.")],
            "rejected": [assistant(rejected if rejected is not None else f"No idea about {i}.")]}


def write_jsonl(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def openai_row(i, chosen=None, rejected=None):
    pair = canonical(i, chosen, rejected)
    return {"input": {"messages": pair["prompt"]}, "preferred_output": pair["chosen"],
            "non_preferred_output": pair["rejected"]}


@pytest.fixture
def ctx(tmp_path):
    home = tmp_path / "home"
    yield Context(settings=Settings(data_dir=home), _store=Store(home / "ftassist.duckdb"))


@pytest.fixture
def app_ctx(tmp_path, monkeypatch):
    """The app's context: it reads only the data dir, Gradio's upload folder and the sample."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    home = tmp_path / "home"
    yield Context(settings=Settings(data_dir=home), _store=Store(home / "ftassist.duckdb"), reads_any_file=False)


# --------------------------------------------------------------------------- detection


def test_pairs_are_recognised_before_the_chat_formats_they_look_like():
    sharegpt_pair = {"conversations": [{"from": "human", "value": "hi"}], "chosen": {"from": "gpt", "value": "a"},
                     "rejected": {"from": "gpt", "value": "b"}}
    trl_with_completion = {"prompt": "p", "completion": "c", "chosen": "a", "rejected": "b"}
    for record, fmt in ((sharegpt_pair, "sharegpt"), (trl_with_completion, "trl"), (openai_row(1), "openai_dpo"),
                        ({"chosen": [user("q"), assistant("a")], "rejected": [user("q"), assistant("b")]}, "trl")):
        assert detect_format(record) == "preference" and is_preference(record)
        assert pair_format(record) == fmt
    assert detect_format({"conversations": [{"from": "human", "value": "hi"}]}) == "sharegpt"
    assert detect_format({"prompt": "p", "completion": "c"}) == "completion"
    assert detect_format({"messages": []}) == "chat" and not is_preference({"messages": []})
    with pytest.raises(ValueError, match="preference pair"):
        to_chat(openai_row(1), "preference")


# --------------------------------------------------------------------------- validation with lines


def test_every_format_is_validated_with_its_line_and_a_fix(tmp_path):
    rows = [
        openai_row(0),
        {"input": {"messages": [user("q")]}, "preferred_output": [user("not an answer")],
         "non_preferred_output": [assistant("b")]},
        {"input": {"messages": [user("q")]}, "preferred_output": [assistant("a")]},
        {"input": {"messages": [user("q")]}, "preferred_output": [assistant("a"), assistant("b")],
         "non_preferred_output": [assistant("c")]},
        {"input": "q", "preferred_output": [assistant("a")], "non_preferred_output": [assistant("b")]},
    ]
    path = write_jsonl(tmp_path / "dpo.jsonl", rows)
    issues = []
    pairs = list(iter_pairs(iter_records(path), issues.append))
    assert [pair.line for pair in pairs] == [1]
    by_line = {(issue.line, issue.code) for issue in issues}
    assert {(2, "invalid_preference_side"), (3, "missing_field"), (4, "invalid_preference_side"),
            (5, "invalid_preference_side")} <= by_line
    assert all(issue.hint for issue in issues)
    missing = next(issue for issue in issues if issue.line == 3)
    assert "non_preferred_output" in missing.message and "non_preferred_output" in missing.hint

    trl = [
        {"prompt": [user("q")], "chosen": [assistant("a")], "rejected": [assistant("b")]},
        {"prompt": "q", "chosen": [assistant("a")], "rejected": [assistant("b")]},  # text and messages mixed
        {"chosen": "completely", "rejected": "different"},  # implicit, but nothing shared
        {"prompt": [user("q")], "chosen": [assistant("a")]},  # no rejected: still a pair, told what is missing
        {"prompt": [user("q")], "chosen": [{"role": "robot", "content": "a"}], "rejected": [assistant("b")]},
    ]
    issues = []
    pairs = list(iter_pairs(iter_records(write_jsonl(tmp_path / "trl.jsonl", trl)), issues.append))
    assert [pair.line for pair in pairs] == [1]
    codes = {(issue.line, issue.code) for issue in issues}
    assert {(2, "mixed_pair_styles"), (3, "no_shared_prompt"), (5, "unrecognized_role")} <= codes
    assert (4, "missing_field") in codes  # only `chosen`: told which side is missing
    assert any(issue.line == 4 and '"rejected"' in issue.message for issue in issues)

    sharegpt = [
        {"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "a"},
         "rejected": {"from": "gpt", "value": "b"}},
        {"conversations": [{"from": "human", "value": "q"}], "chosen": "a", "rejected": {"from": "gpt", "value": "b"}},
        {"conversations": [{"from": "alien", "value": "q"}], "chosen": {"from": "gpt", "value": "a"},
         "rejected": {"from": "gpt", "value": "b"}},
    ]
    issues = []
    pairs = list(iter_pairs(iter_records(write_jsonl(tmp_path / "sharegpt.jsonl", sharegpt)), issues.append))
    assert [pair.line for pair in pairs] == [1]
    codes = {(issue.line, issue.code) for issue in issues}
    assert {(2, "invalid_preference_side"), (3, "unrecognized_role")} <= codes
    assert any(issue.line == 3 and issue.message.startswith('In "conversations"') for issue in issues)


def test_a_file_keeps_one_shape_of_pairs(tmp_path):
    rows = [{"prompt": "q1", "chosen": "a", "rejected": "b"},
            {"prompt": [user("q2")], "chosen": [assistant("a")], "rejected": [assistant("b")]},
            {"messages": [user("q"), assistant("a")]}]
    issues = []
    pairs = list(iter_pairs(iter_records(write_jsonl(tmp_path / "mixed.jsonl", rows)), issues.append))
    assert [pair.line for pair in pairs] == [1]
    assert [(issue.line, issue.code) for issue in issues] == [(2, "mixed_formats"), (3, "mixed_formats")]
    assert "from line 1" in issues[0].message and "chat format" in issues[1].message


# --------------------------------------------------------------------------- conversions


def test_every_format_converts_to_the_canonical_pair():
    expected = {"prompt": [SYSTEM, user("Hi?")], "chosen": [assistant("Hello!")], "rejected": [assistant("Go away.")]}
    openai = {"input": {"messages": [SYSTEM, user("Hi?")]}, "preferred_output": [assistant("Hello!")],
              "non_preferred_output": [assistant("Go away.")]}
    trl = dict(expected)
    implicit = {"chosen": [SYSTEM, user("Hi?"), assistant("Hello!")],
                "rejected": [SYSTEM, user("Hi?"), assistant("Go away.")]}
    sharegpt = {"system": SYSTEM["content"], "conversations": [{"from": "human", "value": "Hi?"}],
                "chosen": {"from": "gpt", "value": "Hello!"}, "rejected": {"from": "gpt", "value": "Go away."}}
    for record in (openai, trl, implicit, sharegpt):
        assert to_pair(record) == expected, record
    # TRL's plain text, prompt implicit: the shared beginning, the space before the answers left with them
    assert to_pair({"chosen": "The sky is blue.", "rejected": "The sky is green."}) == {
        "prompt": [user("The sky is")], "chosen": [assistant(" blue.")], "rejected": [assistant(" green.")]}
    assert to_pair({"prompt": "Q", "chosen": "a", "rejected": "b"})["prompt"] == [user("Q")]
    # the same whole conversation on both sides: two equal answers (the identical check's), never two empty ones
    same = to_pair({"chosen": [user("q"), assistant("a")], "rejected": [user("q"), assistant("a")]})
    assert same == {"prompt": [user("q")], "chosen": [assistant("a")], "rejected": [assistant("a")]}


def test_exports_round_trip_through_the_canonical_pair():
    with_tools = {"prompt": [SYSTEM, user("Weather?")], "chosen": [assistant("Sunny.")],
                  "rejected": [assistant("Ask someone else.")], "tools": TOOLS}
    plain = canonical(3)
    for fmt in ("trl", "openai_dpo", "sharegpt", "trl_implicit"):
        exported = export_pair(with_tools, fmt)
        assert is_preference(exported) and to_pair(json.loads(json.dumps(exported))) == with_tools, fmt
    assert to_pair(export_pair(plain, "trl_standard")) == plain
    with pytest.raises(ValueError, match="one user message"):
        export_pair(with_tools, "trl_standard")  # plain text has no place for a system prompt
    with pytest.raises(ValueError, match="unknown pair format"):
        export_pair(plain, "alpaca")


def test_write_pairs_skips_what_a_format_cannot_hold(tmp_path):
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]}
    pairs = [canonical(1), {"prompt": [user("q")], "chosen": [call], "rejected": [assistant("no")]}]
    assert write_pairs(pairs, tmp_path / "s.json", "sharegpt") == 1  # ShareGPT answers are text
    assert write_pairs(pairs, tmp_path / "o.jsonl", "openai_dpo") == 2
    written = json.loads((tmp_path / "s.json").read_text())
    assert written[0]["chosen"] == {"from": "gpt", "value": "Answer 1: see the billing page."}
    back = [to_pair(json.loads(line)) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert back == pairs


# --------------------------------------------------------------------------- the checks


def _checked_file(tmp_path):
    rows = [openai_row(i) for i in range(12)]
    rows.append(openai_row(0))  # line 13: the pair of line 1 again
    rows.append(openai_row(1, chosen="No idea about 1.", rejected="Answer 1: see the billing page."))  # 14 vs 2
    rows.append(openai_row(20, chosen="Same.", rejected="Same."))  # 15
    rows.append(openai_row(21, chosen="  ", rejected="Something."))  # 16
    rows.append('{"input": ')  # 17: broken JSON
    return write_jsonl(tmp_path / "pairs.jsonl", rows)


def test_the_check_judges_pairs_with_their_lines(tmp_path):
    report = check_path(_checked_file(tmp_path), model="gpt-4.1-mini-2025-04-14")
    assert report.format == "preference" and report.is_preference
    assert report.n_records == 17 and report.n_examples == 16
    summary = report.preference
    assert (summary.format, summary.n_pairs) == ("openai_dpo", 16)
    assert summary.identical_lines == [15] and summary.empty_lines == [16]
    assert summary.duplicate_lines == [[13, 1]] and summary.contradiction_lines == [[14, 2]]
    assert [error.line for error in report.errors] == [17]  # only the broken line is an error
    warned = {(warning.line, warning.code) for warning in report.warnings}
    assert {(13, "duplicate_pair"), (14, "contradictory_pair"), (15, "identical_pair"),
            (16, "empty_pair_side")} <= warned
    assert not any("assistant" in error.message for error in report.errors)  # no chat error per record
    items = {item.id: item for item in report.checklist}
    assert items["pair_identical"].evidence[0]["line"] == 15
    assert items["pair_empty"].status == "fail" and items["pair_empty"].details["lines"] == [16]
    assert items["pair_duplicates"].status == "warn" and items["pair_contradictions"].details["pairs"] == [[14, 2]]
    assert {"accurate", "lengths", "sensitive"} <= set(items) and "no_contradictions" not in items
    # tokens per pair: both conversations it trains on
    tokens = report.tokens
    assert len(tokens.per_example) == 16 and tokens.lines[:2] == [1, 2]
    assert all(total > answer > 0 for total, answer in zip(tokens.per_example, tokens.assistant_per_example))
    assert json.loads(json.dumps(report.to_dict()))["preference"]["n_pairs"] == 16


def test_length_bias_is_measured_and_explained(tmp_path):
    rows = [openai_row(i, chosen=f"A careful, complete and long answer to question {i}.", rejected="Short.")
            for i in range(12)]
    report = check_path(write_jsonl(tmp_path / "long.jsonl", rows))
    item = next(item for item in report.checklist if item.id == "pair_length_bias")
    length = report.preference.length
    assert length["compared"] == 12 and length["chosen_longer_share"] == 1.0 and length["median_ratio"] > 5
    assert item.status == "fail" and "DPO learns" in item.summary and "longer" in item.summary
    assert item.evidence and item.evidence[0]["line"] in range(1, 13)

    balanced = [openai_row(i, chosen="x" * (20 + (i % 2) * 10), rejected="y" * 25) for i in range(12)]
    item = next(item for item in check_path(write_jsonl(tmp_path / "even.jsonl", balanced)).checklist
                if item.id == "pair_length_bias")
    assert item.status == "pass" and "50%" in item.summary


def test_a_chat_file_with_a_pair_inside_says_so_at_its_line(tmp_path):
    chats = [{"messages": [user(f"q{i}"), assistant(f"a{i}")]} for i in range(11)]
    chats.insert(5, openai_row(1))
    report = check_path(write_jsonl(tmp_path / "chats.jsonl", chats))
    assert report.format == "chat" and report.preference is None
    assert [(error.line, error.code) for error in report.errors] == [(6, "mixed_formats")]


def test_the_split_of_pairs_is_counted_as_pairs(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [canonical(i) for i in range(5)])
    stats = count_tokens(path)
    assert len(stats.per_example) == 5 and stats.lines == [1, 2, 3, 4, 5]
    report = check_path(path)
    assert stats.per_example == report.tokens.per_example


# --------------------------------------------------------------------------- clean


def test_clean_drops_pairs_that_cannot_teach_and_keeps_each_prompt_on_one_side(tmp_path):
    rows = []
    for i in range(30):  # 10 prompts, three pairs each (several answers ranked per prompt)
        rows.append(canonical(i // 3, chosen=f"Answer {i // 3}, variant {i % 3}.", rejected=f"Nope {i}."))
    rows.append(canonical(0, chosen="Answer 0, variant 0.", rejected="Nope 0."))  # 31: copy of line 1
    rows.append(canonical(50, chosen="Same", rejected=" Same "))  # 32: the same after trimming
    rows.append(canonical(51, chosen="", rejected="Something"))  # 33
    rows.append({"prompt": [user("q")], "chosen": [assistant("a")], "rejected": "b"})  # 34: mixed styles
    result = clean_file(write_jsonl(tmp_path / "pairs.jsonl", rows), tmp_path / "out", valid_fraction=0.3, seed=5)
    assert result.kind == "preference"
    assert (result.n_train + result.n_valid, result.n_dropped_duplicates, result.n_dropped_identical,
            result.n_dropped_empty, result.n_dropped_invalid) == (30, 1, 1, 1, 1)
    dropped = [json.loads(line) for line in result.dropped_path.read_text().splitlines()]
    assert [(d["line"], d["reason"]) for d in dropped] == [
        (31, "duplicate"), (32, "identical"), (33, "empty_answer"), (34, "invalid")]
    assert "mixed_pair_styles" in dropped[-1]["detail"]

    def prompts(path):
        return {json.loads(line)["prompt"][0]["content"] for line in path.read_text().splitlines()}

    train, valid = prompts(result.train_path), prompts(result.valid_path)
    assert valid and train and not train & valid  # no prompt on both sides
    assert result.n_valid % 3 == 0  # whole prompts went to validation
    first = json.loads(result.train_path.read_text().splitlines()[0])
    assert set(first) == {"prompt", "chosen", "rejected"} and first["chosen"][0]["role"] == "assistant"
    openai = [json.loads(line) for line in result.exports["openai_dpo"].read_text().splitlines()]
    assert len(openai) == 30 and "preferred_output" in openai[0]
    assert len(json.loads(result.exports["sharegpt"].read_text())) == 30


# --------------------------------------------------------------------------- use cases, CLI, the Data tab


def test_the_use_cases_check_clean_and_convert_pairs(ctx, tmp_path):
    path = _checked_file(tmp_path)
    checked = data.check_dataset(ctx, str(path))
    assert checked.report["format"] == "preference" and checked.report["preference"]["n_pairs"] == 16
    assert data.list_datasets(ctx)[0].format == "preference"
    cleaned = data.clean_dataset(ctx, str(path), valid_fraction=0.2)
    assert cleaned.kind == "preference" and cleaned.n_train + cleaned.n_valid == 13
    converted = data.convert_pairs(ctx, str(path), to="sharegpt")
    assert (converted.n_pairs, converted.n_written, converted.n_invalid) == (16, 16, 1)
    assert converted.path.startswith(str(ctx.settings.exports_dir)) and converted.problems[0].startswith("line 17")
    with pytest.raises(UseCaseError, match="Unknown pair format"):
        data.convert_pairs(ctx, str(path), to="alpaca")
    chats = write_jsonl(tmp_path / "chats.jsonl", [{"messages": [user("q"), assistant("a")]}])
    with pytest.raises(UseCaseError, match="does not hold preference pairs"):
        data.convert_pairs(ctx, str(chats))


def test_the_cli_checks_and_converts_pairs(tmp_path):
    path = _checked_file(tmp_path)
    env_run = dict(capture_output=True, text=True, timeout=120)
    checked = subprocess.run([sys.executable, "-m", "ftassist", "check", str(path)], **env_run)
    assert checked.returncode == 1, checked.stderr  # line 17 is broken
    assert "16 valid preference pairs, format OpenAI DPO" in checked.stdout
    assert "chosen longer in" in checked.stdout and "pair_identical" not in checked.stdout
    assert "Chosen differs from rejected" in checked.stdout
    out = tmp_path / "converted.jsonl"
    converted = subprocess.run([sys.executable, "-m", "ftassist", "pairs", "convert", str(path), "--to", "trl",
                                "--out", str(out)], **env_run)
    assert converted.returncode == 0, converted.stderr
    assert "16 of 16 valid pairs written as trl" in converted.stdout and "line 17" in converted.stdout
    assert [to_pair(json.loads(line)) for line in out.read_text().splitlines()][0] == canonical(0)


def test_the_cli_format_choices_are_the_stations():
    from ftassist.commands import data as commands

    assert commands.PAIR_EXPORT_FORMATS == preferences.PAIR_EXPORT_FORMATS


def test_the_data_tab_shows_pairs_instead_of_chat_errors(app_ctx, tmp_path):
    upload = tmp_path / "gradio" / "abc123" / "pairs.jsonl"
    upload.parent.mkdir(parents=True)
    upload.write_text(_checked_file(tmp_path).read_text())
    session, summary, checklist, errors, _, fix = data_tab.check_dataset(
        app_ctx, str(upload), "", None, Session(), progress=lambda *a, **k: None)
    assert "16 valid preference pairs" in summary and "OpenAI DPO" in summary
    assert "line 15" in summary and "longer in" in summary
    assert "Chosen differs from rejected" in checklist and "No contradictory pairs" in checklist
    assert "example_missing_assistant_message" not in set(errors["code"])
    assert {"identical_pair", "empty_pair_side", "duplicate_pair", "contradictory_pair"} <= set(errors["code"])
    session, message, files = data_tab.fix_and_split(app_ctx, 0.2, 1, session, progress=lambda *a, **k: None)
    assert "pairs" in message and "no prompt on both sides" in message
    assert session.split.n_train + session.split.n_valid == 13


# --------------------------------------------------------------------------- what the app reads


def test_the_app_reads_only_uploads_and_its_data_dir(app_ctx, tmp_path):
    outside = write_jsonl(tmp_path / "secret.jsonl", [canonical(i) for i in range(12)])
    for call in (lambda: data.check_dataset(app_ctx, str(outside)),
                 lambda: data.clean_dataset(app_ctx, str(outside)),
                 lambda: data.show_record(app_ctx, str(outside), 1),
                 lambda: data.convert_pairs(app_ctx, str(outside)),
                 lambda: data.preview_mapping(app_ctx, str(outside), {"prompt": "a", "answer": "b"})):
        with pytest.raises(UseCaseError, match="reads only files uploaded to it or kept under its data dir"):
            call()
    with pytest.raises(gr.Error, match="Upload the file on the Data step"):
        data_tab.check_dataset(app_ctx, str(outside), "", None, Session(), progress=lambda *a, **k: None)
    # a link under the data dir that points outside is outside
    link = app_ctx.settings.uploads_dir / "link.jsonl"
    link.symlink_to(outside)
    with pytest.raises(UseCaseError, match="outside them"):
        data.check_dataset(app_ctx, str(link))
    with pytest.raises(UseCaseError, match="outside them"):
        data.check_dataset(app_ctx, str(app_ctx.settings.uploads_dir / ".." / ".." / "secret.jsonl"))
    # inside: the data dir, Gradio's upload folder, the shipped sample
    inside = app_ctx.settings.uploads_dir / "pairs.jsonl"
    inside.write_text(outside.read_text())
    assert data.check_dataset(app_ctx, str(inside)).report["n_examples"] == 12
    uploaded = tmp_path / "gradio" / "f00" / "pairs.jsonl"
    uploaded.parent.mkdir(parents=True)
    uploaded.write_text(outside.read_text())
    assert data.check_dataset(app_ctx, str(uploaded), keep_copy=True).path.startswith(str(app_ctx.settings.uploads_dir))
    from ftassist.usecases.planning import SAMPLE_PATH

    assert data.check_dataset(app_ctx, str(SAMPLE_PATH)).report["n_examples"] > 0
    # and it writes only under its data dir
    with pytest.raises(UseCaseError, match="writes only under its data dir"):
        data.clean_dataset(app_ctx, str(inside), out=str(tmp_path / "elsewhere"))
    assert data.clean_dataset(app_ctx, str(inside)).folder.is_relative_to(app_ctx.settings.clean_dir)


def test_a_persons_own_process_reads_any_file(ctx, tmp_path):
    outside = write_jsonl(tmp_path / "mine.jsonl", [canonical(i) for i in range(12)])
    assert ctx.reads_any_file and Context.open().reads_any_file
    assert data.check_dataset(ctx, str(outside)).report["n_examples"] == 12


def test_the_cli_through_the_app_still_reads_the_file_the_person_names(tmp_path):
    """With an app serving the data dir, the command sends a copy under the data dir (the app reads only there)
    and copies the app's files to an --out folder elsewhere."""
    from ftassist import app_socket

    served = Context(settings=Settings.from_environment(), reads_any_file=False)
    server = app_socket.serve(served)
    try:
        outside = _checked_file(tmp_path)
        run = dict(capture_output=True, text=True, timeout=120, cwd=tmp_path)
        checked = subprocess.run([sys.executable, "-m", "ftassist", "check", outside.name, "--json"], **run)
        assert checked.returncode == 1, checked.stderr
        report = json.loads(checked.stdout)
        assert report["preference"]["n_pairs"] == 16
        assert report["path"].startswith(str(served.settings.uploads_dir)) and "reads a copy" in checked.stderr
        cleaned = subprocess.run([sys.executable, "-m", "ftassist", "clean", outside.name, "--out", "split", "--json"],
                                 **run)
        assert cleaned.returncode == 0, cleaned.stderr
        result = json.loads(cleaned.stdout)
        assert result["train_path"] == str(tmp_path / "split" / "train.jsonl")
        assert (tmp_path / "split" / "valid.jsonl").is_file() and result["kind"] == "preference"
        converted = subprocess.run([sys.executable, "-m", "ftassist", "pairs", "convert", outside.name, "--to",
                                    "openai_dpo", "--out", "dpo.jsonl", "--json"], **run)
        assert converted.returncode == 0, converted.stderr
        assert json.loads(converted.stdout)["path"] == str(tmp_path / "dpo.jsonl")
        assert len((tmp_path / "dpo.jsonl").read_text().splitlines()) == 16
    finally:
        app_socket.stop(server)


def test_a_system_prompt_that_is_not_text_is_an_error_not_silently_dropped(tmp_path):
    """ShareGPT chats and ShareGPT pairs alike: converting would lose a non-text system prompt without a word."""
    turns = [{"from": "human", "value": "hi"}]
    rows = [{"conversations": turns + [{"from": "gpt", "value": "hello"}], "system": {"text": "be kind"}},
            {"conversations": turns, "system": ["be", "kind"], "chosen": {"from": "gpt", "value": "hello"},
             "rejected": {"from": "gpt", "value": "go away"}}]
    for n, row in enumerate(rows):
        path = tmp_path / f"f{n}.jsonl"
        path.write_text(json.dumps(row) + "\n")
        errors = [(e.line, e.code, e.message) for e in check_path(path).errors]
        assert any(line == 1 and code == "non_string_field" and '"system"' in message
                   for line, code, message in errors), errors
