"""The files people really have: one cause said once, identical errors grouped, safe recovery, no empty PASS.

Each file below is written the way the mistake is made (Python's `str()`, `json.dump(indent=2)` per record,
a UTF-16 export...); the referee is the list of records it was written from.
"""

from __future__ import annotations

import json

import pytest

from ftassist.commands.data import render_text
from ftassist.data.check import check_path
from ftassist.data.clean import NothingToKeep, clean_file
from ftassist.data.diagnose import group_issues, line_ranges
from ftassist.data.report import Issue
from ftassist.ui.data_tab import STATUS_STYLE, checklist_html, errors_frame

N = 24


def records(n: int = N) -> list[dict]:
    return [{"messages": [{"role": "system", "content": "Réponds brièvement."},
                          {"role": "user", "content": f"Question numéro {i} : où est la gare ?"},
                          {"role": "assistant", "content": f"Réponse {i} : tout droit, puis à gauche.",
                           "weight": 1}]}
            for i in range(n)]


def contents(path) -> list[list[str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return sorted([m["content"] for m in row["messages"]] for row in rows)


def expected_contents(rows) -> list[list[str]]:
    return sorted([m["content"] for m in row["messages"]] for row in rows)


def cleaned(tmp_path, path):
    result = clean_file(path, tmp_path / "out", valid_fraction=0.25)
    return result, contents(result.all_path)


def assert_recovered(tmp_path, path, rows, recovered=None):
    """Every record kept, and `recovered` (default: all) of them counted as recovered by the fix."""
    result, got = cleaned(tmp_path, path)
    assert result.n_recovered == (len(rows) if recovered is None else recovered)
    assert result.n_dropped_invalid == 0
    assert got == expected_contents(rows)
    assert result.repaired
    again = check_path(result.all_path)
    assert again.errors == [] and again.n_examples == len(rows) and again.diagnosis == []


def only_diagnosis(report):
    assert len(report.diagnosis) == 1, report.diagnosis
    return report.diagnosis[0]


# --------------------------------------------------------------------------- the mistakes


def test_python_literals_in_jsonl(tmp_path):
    rows = records()
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(str(row) + "\n" for row in rows), encoding="utf-8")  # str(), not json.dumps
    assert "'messages'" in path.read_text(encoding="utf-8")
    report = check_path(path)
    assert report.n_examples == 0
    cause = only_diagnosis(report)
    assert (cause.code, cause.lines, cause.count, cause.fixable) == ("python_literals", f"1-{N}", N, True)
    assert "json.dumps" in cause.message + cause.hint
    # the thousands of identical rows are one group
    parse_groups = [g for g in report.error_groups if g.code == "invalid_json"]
    assert len(parse_groups) == 1 and parse_groups[0].lines == f"1-{N}" and parse_groups[0].count == N
    assert len(report.errors) == N + 1  # the full list stays for tools (+ too_few_examples)
    assert_recovered(tmp_path, path, rows)


def test_python_literals_true_none_are_converted_not_evaluated(tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"q{i} __import__('os')"},
                          {"role": "assistant", "content": f"a{i}."}], "meta": {"ok": True, "n": None}}
            for i in range(12)]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(str(row) + "\n" for row in rows), encoding="utf-8")
    assert "True" in path.read_text() and "None" in path.read_text()
    cause = only_diagnosis(check_path(path))
    assert cause.code == "python_literals" and cause.fixable
    result, got = cleaned(tmp_path, path)
    assert result.n_recovered == 12 and got == expected_contents(rows)


def test_json_array_saved_as_jsonl(tmp_path):
    rows = records()
    path = tmp_path / "chat.jsonl"
    path.write_text("[" + ",\n".join(json.dumps(row) for row in rows) + "]\n", encoding="utf-8")
    cause = only_diagnosis(check_path(path))
    assert (cause.code, cause.lines, cause.count, cause.fixable) == ("json_array_in_jsonl", f"1-{N}", N, True)
    assert_recovered(tmp_path, path, rows)


def test_pretty_printed_objects_one_after_another(tmp_path):
    rows = records()
    path = tmp_path / "chat.jsonl"
    text = "".join(json.dumps(row, indent=2, ensure_ascii=False) + "\n" for row in rows)
    path.write_text(text, encoding="utf-8")
    last_start = text.count("\n", 0, text.rindex('{\n  "messages"')) + 1
    report = check_path(path)
    cause = only_diagnosis(report)
    assert (cause.code, cause.count, cause.fixable) == ("pretty_printed_objects", N, True)
    assert cause.lines == f"1-{last_start:,}"
    assert report.n_examples == 1  # the first object was read; the rest was "content after the end"
    assert_recovered(tmp_path, path, rows, recovered=N - 1)


def test_trailing_comma_per_line(tmp_path):
    rows = records()
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(row) + ",\n" for row in rows), encoding="utf-8")
    cause = only_diagnosis(check_path(path))
    assert (cause.code, cause.lines, cause.count, cause.fixable) == ("trailing_comma", f"1-{N}", N, True)
    assert_recovered(tmp_path, path, rows)


def test_utf16_file(tmp_path):
    rows = records()
    path = tmp_path / "chat.jsonl"
    path.write_bytes("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-16"))
    report = check_path(path)
    cause = only_diagnosis(report)
    assert (cause.code, cause.lines, cause.fixable) == ("utf16_file", "file", True)
    assert report.n_examples == N  # read decoded: the checklist and tokens still describe the content
    assert [e.code for e in report.errors] == ["utf16_file"]
    assert_recovered_encoding(tmp_path, path, rows)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_file_without_a_byte_order_mark(tmp_path, encoding):
    """What .NET's Encoding.Unicode and some Windows exports write: UTF-16 with no mark to say so."""
    rows = records()
    rows[0]["messages"][0]["content"] = "東京はどこ？ 一 Ā"  # characters whose low or high byte is NUL
    path = tmp_path / "chat.jsonl"
    encoded = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode(encoding)
    assert not encoded.startswith((b"\xff\xfe", b"\xfe\xff"))
    path.write_bytes(encoded)
    report = check_path(path)
    cause = only_diagnosis(report)
    assert (cause.code, cause.lines, cause.fixable) == ("utf16_file", "file", True)
    assert encoding.upper() in report.errors[0].message
    assert report.n_examples == N
    assert_recovered_encoding(tmp_path, path, rows)


def test_latin1_file(tmp_path):
    rows = records()
    path = tmp_path / "chat.jsonl"
    path.write_bytes("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("latin-1"))
    report = check_path(path)
    cause = only_diagnosis(report)
    assert (cause.code, cause.lines, cause.count, cause.fixable) == ("legacy_encoding", f"1-{N}", N, True)
    assert "Latin-1" in cause.message
    assert_recovered(tmp_path, path, rows)


@pytest.mark.parametrize("encoding, shape, written", [
    ("utf-16", "python_literals", lambda row: repr(row)),
    ("latin-1", "python_literals", lambda row: repr(row)),
    ("latin-1", "trailing_comma", lambda row: json.dumps(row, ensure_ascii=False) + ","),
])
def test_a_file_with_two_causes_is_fixed_for_both(tmp_path, encoding, shape, written):
    """An encoding and a shape at once (a Windows export of Python's `str()` of each record, say): the check names
    both, and the Fix converts the encoding, then the shape, and keeps every record."""
    rows = records()
    path = tmp_path / "chat.jsonl"
    path.write_bytes("".join(written(row) + "\n" for row in rows).encode(encoding))
    report = check_path(path)
    assert [cause.code for cause in report.diagnosis] == [
        "utf16_file" if encoding == "utf-16" else "legacy_encoding", shape]
    assert all(cause.fixable for cause in report.diagnosis)
    result, got = cleaned(tmp_path, path)
    assert result.n_dropped_invalid == 0 and got == expected_contents(rows)
    assert result.n_recovered == N and " then " in result.repaired  # both fixes named
    again = check_path(result.all_path)
    assert again.errors == [] and again.n_examples == N and again.diagnosis == []


def assert_recovered_encoding(tmp_path, path, rows):
    result, got = cleaned(tmp_path, path)
    assert result.n_dropped_invalid == 0 and got == expected_contents(rows) and "UTF-16" in result.repaired
    assert check_path(result.all_path).errors == []


def test_a_file_mixing_utf8_and_latin1_is_not_guessed(tmp_path):
    rows = records(12)
    lines = [json.dumps(row, ensure_ascii=False).encode("utf-8" if i % 2 else "latin-1") for i, row in enumerate(rows)]
    path = tmp_path / "chat.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    cause = only_diagnosis(check_path(path))
    assert (cause.code, cause.lines, cause.count, cause.fixable) == ("mixed_encoding", "1; 3; 5; 7; 9; 11", 6, False)


def test_csv_with_other_column_names(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("question,answer\n" + "".join(f"Question {i}?,Answer {i}.\n" for i in range(N)), encoding="utf-8")
    cause = only_diagnosis(check_path(path))
    assert (cause.code, cause.lines, cause.count, cause.fixable) == ("csv_columns", f"2-{N + 1}", N, True)
    assert "found question, answer" in cause.message and "instruction + output" in cause.message
    result, got = cleaned(tmp_path, path)
    assert result.n_recovered == N
    assert got == sorted([f"Question {i}?", f"Answer {i}."] for i in range(N))
    assert check_path(result.all_path).errors == []


def test_csv_with_unknown_columns_names_them_and_refuses(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("foo,bar\n" + "".join(f"x{i},y{i}\n" for i in range(N)), encoding="utf-8")
    cause = only_diagnosis(check_path(path))
    assert cause.code == "csv_columns" and not cause.fixable and "found foo, bar" in cause.message
    with pytest.raises(NothingToKeep, match="keep no example.*found foo, bar"):
        clean_file(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before writing empty files


def test_a_clean_file_has_no_diagnosis_and_nothing_recovered(tmp_path):
    rows = records()
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows[:-1]) + "{broken\n", encoding="utf-8")
    report = check_path(path)
    assert report.diagnosis == []
    assert [(g.code, g.lines) for g in report.error_groups] == [("invalid_json", f"{N}")]
    result, _ = cleaned(tmp_path, path)
    assert result.n_recovered == 0 and result.n_dropped_invalid == 1


# --------------------------------------------------------------------------- grouping


def test_line_ranges():
    assert line_ranges([1, 2, 3, 4130, 5, 4131]) == "1-3; 5; 4,130-4,131"
    assert line_ranges(range(1, 4131)) == "1-4,130"
    assert line_ranges([0]) == "file"
    assert line_ranges(range(1, 100, 2)).endswith("and 38 more")


def test_groups_join_messages_that_differ_only_in_numbers():
    issues = [Issue(i, "invalid_json", f"malformed JSON: Expecting ',' delimiter (column {i + 3})", "hint")
              for i in range(1, 6)] + [Issue(9, "missing_content", "no content", "h")]
    groups = group_issues(issues)
    assert [(g.code, g.lines, g.count, g.message) for g in groups] == [
        ("invalid_json", "1-5", 5, "malformed JSON: Expecting ',' delimiter"), ("missing_content", "9", 1, "no content")]


def test_cli_text_says_the_cause_once_and_groups_the_rows(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(str(row) + "\n" for row in records(4130)), encoding="utf-8")
    text = render_text(check_path(path).to_dict())
    assert text.count("FILE PROBLEM") == 1 and "[python_literals] lines 1-4,130 (4,130 records)" in text
    assert "error lines 1-4,130: [invalid_json]" in text
    assert text.count("[invalid_json]") == 1  # one row, not 4,130
    assert "[N/A ]" in text and "[PASS]" not in text


def test_data_tab_table_shows_groups(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(str(row) + "\n" for row in records(300)), encoding="utf-8")
    frame = errors_frame(check_path(path).to_dict())
    assert len(frame) == 2  # the 300 parse errors, and too few examples
    assert list(frame["line"]) == ["file", "1-300"] or list(frame["line"]) == ["1-300", "file"]


# --------------------------------------------------------------------------- no PASS without evidence


def test_no_valid_example_is_not_checked_never_pass(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text("{broken\n" * 5, encoding="utf-8")
    report = check_path(path)
    assert report.n_examples == 0
    assert {item.status for item in report.checklist} == {"not_checked"}
    page = checklist_html([item.__dict__ for item in report.checklist])
    assert "NOT CHECKED" in page and "PASS" not in page
    assert STATUS_STYLE["not_checked"][0] != STATUS_STYLE["pass"][0]


def test_nothing_of_its_kind_is_not_checked(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in records()), encoding="utf-8")
    by_id = {item.id: item.status for item in check_path(path).checklist}
    assert by_id["balanced"] == "not_checked"  # no category to balance: nothing judged
    assert by_id["lengths"] != "not_checked" and by_id["accurate"] != "not_checked"


def test_fix_and_split_that_would_keep_nothing_refuses(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text("".join('{"messages": [{"role": "user", "content": "hi"}]}\n' for _ in range(5)), encoding="utf-8")
    with pytest.raises(NothingToKeep, match="keep no example.*5 invalid"):
        clean_file(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_use_case_refuses_with_the_reason(tmp_path):
    from ftassist.usecases.context import Context, Settings, UseCaseError
    from ftassist.usecases.data import clean_dataset

    path = tmp_path / "chat.jsonl"
    path.write_text("{broken\n" * 3, encoding="utf-8")
    ctx = Context(settings=Settings(data_dir=tmp_path / "data"))
    with pytest.raises(UseCaseError, match="keep no example"):
        clean_dataset(ctx, str(path), out=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_objects_one_a_line_that_fail_validation_are_not_called_pretty_printed(tmp_path):
    from ftassist.data.check import check_path

    path = tmp_path / "seed.jsonl"
    rows = [{"instruction": f"Task {i}", "instances": [{"input": "", "output": f"Answer {i}"}]} for i in range(12)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = check_path(path)
    assert report.errors and not [d for d in report.diagnosis if d.code == "pretty_printed_objects"]
