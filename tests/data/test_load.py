"""The loader: every file type, exact line numbers, and every way a file can be broken."""

from __future__ import annotations

import inspect
import json
import time
import tracemalloc

import pytest

from ftassist.data.load import LoadError, detect_file_type, iter_records, json_depth, load_hub_dataset
from tests.data import corpus


def recs(path, **kw):
    return list(iter_records(path, **kw))


def codes(records):
    return [(r.line, r.problem.code if r.problem else None) for r in records]


# --------------------------------------------------------------------------- file types


def test_detect_file_type_by_extension(tmp_path):
    assert detect_file_type(corpus.write_jsonl(tmp_path, "a.jsonl", [corpus.chat(0)])) == "jsonl"
    assert detect_file_type(corpus.write_jsonl(tmp_path, "a.ndjson", [corpus.chat(0)])) == "jsonl"
    assert detect_file_type(corpus.write_json_array(tmp_path, "a.json", [corpus.chat(0)])) == "json"
    assert detect_file_type(corpus.write_csv(tmp_path, "a.csv", ["prompt", "completion"], [["a", "b"]])) == "csv"
    assert detect_file_type(corpus.write_csv(tmp_path, "a.tsv", ["prompt"], [["a"]], delimiter="\t")) == "csv"
    assert detect_file_type(corpus.write_parquet(tmp_path, "a.parquet", [corpus.completion(0)])) == "parquet"


def test_json_extension_holding_jsonl_is_read_as_jsonl(tmp_path):
    path = corpus.write_jsonl(tmp_path, "actually_lines.json", [corpus.chat(i) for i in range(3)])
    assert detect_file_type(path) == "jsonl"
    assert [r.line for r in recs(path)] == [1, 2, 3]
    single = corpus.write_jsonl(tmp_path, "one.json", [corpus.chat(0)])
    assert detect_file_type(single) == "json"
    assert [r.data for r in recs(single)] == [corpus.chat(0)]


def test_pretty_printed_json_saved_as_jsonl_is_read_as_json(tmp_path):
    path = corpus.write_json_array(tmp_path, "pretty.jsonl", [corpus.chat(0), corpus.chat(1)], indent=2)
    assert detect_file_type(path) == "json"
    assert [r.data for r in recs(path)] == [corpus.chat(0), corpus.chat(1)]


@pytest.mark.parametrize("name,msg", [("data.xlsx", "unsupported file type"), ("notes.docx", "unsupported")])
def test_unsupported_extension(tmp_path, name, msg):
    path = corpus.write_bytes(tmp_path, name, b"whatever")
    with pytest.raises(LoadError, match=msg):
        detect_file_type(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(LoadError, match="not found"):
        iter_records(tmp_path / "nope.jsonl")
    with pytest.raises(LoadError, match="directory"):
        iter_records(tmp_path)


def test_binary_file_is_a_load_error_with_one_line_message(tmp_path):
    with pytest.raises(LoadError) as exc:
        iter_records(corpus.binary(tmp_path))
    assert "binary" in str(exc.value) and "\n" not in str(exc.value)
    zipped = corpus.write_bytes(tmp_path, "x.csv", b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(LoadError, match="ZIP"):
        iter_records(zipped)
    utf16 = corpus.write_bytes(tmp_path, "u.jsonl", '{"a": 1}\n'.encode("utf-16"))
    with pytest.raises(LoadError, match="UTF-16"):
        iter_records(utf16)


def test_empty_and_whitespace_only_files_yield_nothing(tmp_path):
    assert recs(corpus.empty(tmp_path)) == []
    assert recs(corpus.whitespace_only(tmp_path)) == []
    assert recs(corpus.empty(tmp_path, "e.json")) == []
    assert recs(corpus.whitespace_only(tmp_path, "w.json")) == []
    assert recs(corpus.empty(tmp_path, "e.csv")) == []
    assert recs(corpus.empty(tmp_path, "e.parquet")) == []


# --------------------------------------------------------------------------- JSONL


def test_jsonl_lines_blank_lines_bom_and_crlf(tmp_path):
    body = b"\xef\xbb\xbf" + b'{"a": 1}\r\n\r\n   \r\n{"b": 2}\r\n\n{"c": 3}'
    path = corpus.write_bytes(tmp_path, "x.jsonl", body)
    out = recs(path)
    assert [(r.line, r.data) for r in out] == [(1, {"a": 1}), (4, {"b": 2}), (6, {"c": 3})]
    assert all(r.problem is None for r in out)
    assert out[0].raw_size == len(b'{"a": 1}')


def test_bom_and_crlf_via_corpus(tmp_path):
    path = corpus.write_jsonl(tmp_path, "x.jsonl", [corpus.chat(i) for i in range(3)], bom=True, crlf=True)
    assert [r.data for r in recs(path)] == [corpus.chat(i) for i in range(3)]


def test_invalid_utf8_line_is_pinned_to_its_line(tmp_path):
    out = recs(corpus.latin1_line(tmp_path))
    assert codes(out) == [(1, None), (2, None), (3, "invalid_utf8"), (4, None)]
    problem = out[2].problem
    assert problem.column == len('{"messages": [{"role": "user", "content": "caf') + 1
    assert "UTF-8" in problem.hint and "0xe9" in problem.message


def test_malformed_json_has_column_and_hint(tmp_path):
    out = recs(corpus.malformed_json(tmp_path))
    assert codes(out) == [(1, None), (2, "invalid_json"), (3, None), (4, "invalid_json")]
    p = out[1].problem
    assert p.column == len('{"messages": [{"role": "user"}], "a": 1,') + 1
    assert "trailing comma" in p.hint
    assert out[3].problem.column is not None


def test_lone_surrogate_escape_is_kept_for_validation(tmp_path):
    path = corpus.write_bytes(tmp_path, "s.jsonl", b'{"messages": [{"role": "user", "content": "\\ud800"}]}\n')
    (rec,) = recs(path)
    assert rec.problem is None and rec.data["messages"][0]["content"] == "\ud800"


def test_nan_is_not_json(tmp_path):
    (rec,) = recs(corpus.write_bytes(tmp_path, "n.jsonl", b'{"a": NaN}\n'))
    assert rec.problem.code == "invalid_json"


def test_truncated_last_line(tmp_path):
    out = recs(corpus.truncated(tmp_path))
    assert codes(out) == [(1, None), (2, None), (3, "invalid_json")]
    assert "truncated" in out[2].problem.message


def test_non_object_records_are_returned_as_they_are(tmp_path):
    path = corpus.write_bytes(tmp_path, "x.jsonl", b'[1, 2]\n"text"\n42\nnull\n{"a": 1}\n')
    assert [r.data for r in recs(path)] == [[1, 2], "text", 42, None, {"a": 1}]
    assert all(r.problem is None for r in recs(path))


def test_gigantic_line_is_skipped_without_reading_it_into_memory(tmp_path):
    path = corpus.gigantic_line(tmp_path, size=40 * 2**20)
    tracemalloc.start()
    try:
        out = recs(path, max_record_bytes=2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert codes(out) == [(1, None), (2, "record_too_large"), (3, None)]
    assert out[2].data == corpus.chat(2)
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.1f} MB for a 40 MB line"


def test_oversized_last_line_without_newline(tmp_path):
    path = corpus.write_bytes(tmp_path, "x.jsonl", b'{"a": 1}\n{"b": "' + b"y" * 5000)
    assert codes(recs(path, max_record_bytes=1000)) == [(1, None), (2, "record_too_large")]


def test_deeply_nested_records_no_crash_no_hang(tmp_path):
    path = corpus.deeply_nested(tmp_path, depth=100_000)
    t = time.perf_counter()
    out = recs(path)
    assert time.perf_counter() - t < 5
    assert codes(out) == [(1, None), (2, "too_deeply_nested"), (3, None), (4, "too_deeply_nested")]


def test_depth_limit_counts_real_nesting_not_brackets_in_strings(tmp_path):
    brackets = {"messages": [{"role": "user", "content": "[" * 500 + "{" * 500}]}
    nested = json.loads("[" * 150 + "]" * 150)
    path = corpus.write_jsonl(tmp_path, "x.jsonl", [brackets, nested])
    out = recs(path)
    assert out[0].problem is None and out[0].data == brackets
    assert out[1].problem.code == "too_deeply_nested"
    assert json_depth(b'{"a": [[1]]}', 100) == 0  # few brackets: not even scanned
    assert json_depth(b"[" * 5 + b"]" * 5, 2) > 2


def test_many_messages_are_not_mistaken_for_nesting(tmp_path):
    rec = {"messages": [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(300)]}
    (out,) = recs(corpus.write_jsonl(tmp_path, "x.jsonl", [rec]))
    assert out.problem is None and len(out.data["messages"]) == 300


def test_iter_records_is_a_streaming_generator(tmp_path):
    path = tmp_path / "big.jsonl"
    rec = corpus.chat(0)
    rec["messages"][1]["content"] += " More details follow." * 15
    line = json.dumps(rec).encode() + b"\n"
    path.write_bytes(line * 50_000)  # ~24 MB
    it = iter_records(path)
    assert inspect.isgenerator(it)
    first = next(it)
    assert first.line == 1 and first.data == rec
    tracemalloc.start()
    try:
        n = 1 + sum(1 for _ in it)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 50_000
    file_size = path.stat().st_size
    assert peak < file_size / 4, f"peak {peak} vs file {file_size}: the loader holds the file"


def test_line_numbers_exact_across_chunks(tmp_path, monkeypatch):
    from ftassist.data import load

    monkeypatch.setattr(load, "_CHUNK", 64)  # force many chunk boundaries
    lines = []
    for i in range(200):
        lines.append(json.dumps({"i": i, "pad": "z" * (i % 37)}))
        if i % 7 == 0:
            lines.append("")
    path = corpus.write_bytes(tmp_path, "x.jsonl", ("\n".join(lines) + "\n").encode())
    expected = [(n + 1, json.loads(t)) for n, t in enumerate(lines) if t]
    assert [(r.line, r.data) for r in recs(path)] == expected


# --------------------------------------------------------------------------- JSON documents


def test_json_array_lines_where_elements_start(tmp_path):
    text = (
        '[\n'
        '  {"messages": [{"role": "user", "content": "a, [b] {c} \\"q\\" \\\\"}]},\n'
        '  {"prompt": "x",\n'
        '   "completion": "y"},\n'
        '  5, "s", null,\n'
        '  [1, {"k": []}]\n'
        ']\n'
    )
    out = recs(corpus.write_bytes(tmp_path, "x.json", text.encode()))
    assert [(r.line, r.data) for r in out] == [
        (2, {"messages": [{"role": "user", "content": 'a, [b] {c} "q" \\'}]}),
        (3, {"prompt": "x", "completion": "y"}),
        (5, 5), (5, "s"), (5, None),
        (6, [1, {"k": []}]),
    ]


def test_json_array_pretty_printed_line_numbers(tmp_path):
    data = [corpus.chat(i) for i in range(5)]
    path = corpus.write_json_array(tmp_path, "x.json", data, indent=2)
    text = path.read_text().splitlines()
    starts = [n + 1 for n, t in enumerate(text) if t == "  {"]
    out = recs(path)
    assert [r.data for r in out] == data
    assert [r.line for r in out] == starts


def test_json_array_across_tiny_chunks(tmp_path, monkeypatch):
    from ftassist.data import load

    monkeypatch.setattr(load, "_CHUNK", 7)
    data = [{"s": 'quote " and \\ backslash ' + "é" * i, "l": [i, [i]]} for i in range(30)]
    path = corpus.write_json_array(tmp_path, "x.json", data, indent=1)
    out = recs(path)
    assert [r.data for r in out] == data
    text = path.read_text().splitlines()
    assert [r.line for r in out] == [n + 1 for n, t in enumerate(text) if t == " {"]


def test_json_array_element_errors_and_truncation(tmp_path):
    text = b'[\n{"a": 1},\n{"b": 1,},\n,\n{"c": 2}'
    out = recs(corpus.write_bytes(tmp_path, "x.json", text))
    assert codes(out) == [(1 + 1, None), (3, "invalid_json"), (4, "invalid_json"), (5, None), (5, "invalid_json")]
    assert out[1].problem.column == len('{"b": 1,') + 1
    assert "truncated" in out[-1].problem.message


def test_json_trailing_comma_and_trailing_garbage(tmp_path):
    out = recs(corpus.write_bytes(tmp_path, "x.json", b'[{"a": 1},\n]\n\n oops'))
    assert codes(out) == [(1, None), (2, "invalid_json"), (4, "invalid_json")]
    assert "trailing comma" in out[1].problem.message
    assert "after the end" in out[2].problem.message


def test_json_truncated_inside_an_element(tmp_path):
    out = recs(corpus.write_bytes(tmp_path, "x.json", b'[{"a": 1},\n{"b": "unterminated'))
    assert codes(out)[0] == (1, None)
    assert out[1].line == 2 and out[1].problem.code == "invalid_json"
    assert "truncated" in out[1].problem.message


def test_json_object_with_list_key_is_iterated(tmp_path):
    text = b'{"version": 2, "meta": {"data": 1},\n "data": [\n  {"a": 1},\n  {"b": 2}\n ], "rows": [9]}'
    out = recs(corpus.write_bytes(tmp_path, "x.json", text))
    assert [(r.line, r.data) for r in out] == [(3, {"a": 1}), (4, {"b": 2})]


def test_json_single_object_is_one_record(tmp_path):
    path = corpus.write_json_array(tmp_path, "x.json", corpus.chat(0), indent=2)
    assert [(r.line, r.data) for r in recs(path)] == [(1, corpus.chat(0))]


def test_json_top_level_scalar(tmp_path):
    assert [r.data for r in recs(corpus.write_bytes(tmp_path, "x.json", b' "just text" '))] == ["just text"]


def test_json_deep_element_and_giant_element(tmp_path, monkeypatch):
    from ftassist.data import load

    monkeypatch.setattr(load, "_CHUNK", 1024)
    deep = b"[" * 100_000 + b"]" * 100_000
    text = b'[{"ok": 1},\n' + deep + b',\n{"big": "' + b"x" * 50_000 + b'"},\n{"ok": 2}]'
    t = time.perf_counter()
    out = recs(corpus.write_bytes(tmp_path, "x.json", text), max_record_bytes=10_000)
    assert time.perf_counter() - t < 10
    assert codes(out) == [(1, None), (2, "too_deeply_nested"), (3, "record_too_large"), (4, None)]
    assert out[-1].data == {"ok": 2}


# --------------------------------------------------------------------------- CSV / TSV


def test_csv_rows_with_multiline_cells_and_json_column(tmp_path):
    msgs = json.dumps(corpus.chat(0)["messages"])
    path = corpus.write_csv(
        tmp_path, "x.csv", ["messages", "category"],
        [[msgs, "billing"], [msgs, "line one\nline two\nline three"], ["[not json", "x"], [msgs, "last"]],
    )
    out = recs(path)
    assert [r.line for r in out] == [2, 3, 6, 7]
    assert out[0].data == {"messages": corpus.chat(0)["messages"], "category": "billing"}
    assert out[1].data["category"] == "line one\nline two\nline three"
    assert out[2].data["messages"] == "[not json"  # left as text: validation reports it


def test_csv_instruction_with_bom_crlf_and_blank_lines(tmp_path):
    body = "\ufeffinstruction,input,output\r\nSum it,\"a, b\",ok\r\n\r\nSay hi,,hello\r\n".encode()
    out = recs(corpus.write_bytes(tmp_path, "x.csv", body))
    assert [(r.line, r.data) for r in out] == [
        (2, {"instruction": "Sum it", "input": "a, b", "output": "ok"}),
        (4, {"instruction": "Say hi", "input": "", "output": "hello"}),
    ]


def test_tsv_and_bad_rows(tmp_path):
    path = corpus.write_bytes(tmp_path, "x.tsv", b"prompt\tcompletion\nq\ta\nq2\ta2\textra\nq3\n\xe9t\xe9\tx\n")
    out = recs(path)
    assert codes(out) == [(2, None), (3, "invalid_csv"), (4, None), (5, "invalid_utf8")]
    assert out[0].data == {"prompt": "q", "completion": "a"}
    assert out[2].data == {"prompt": "q3", "completion": None}


def test_csv_without_header_names_is_a_load_error(tmp_path):
    with pytest.raises(LoadError, match="header"):
        recs(corpus.write_bytes(tmp_path, "x.csv", b",,\n1,2,3\n"))


# --------------------------------------------------------------------------- Parquet


def test_parquet_rows_are_records_numbered_from_1(tmp_path):
    rows = [corpus.chat(i) for i in range(3)] + [{"messages": None}]
    out = recs(corpus.write_parquet(tmp_path, "x.parquet", rows))
    assert [r.line for r in out] == [1, 2, 3, 4]
    assert out[1].data["messages"] == corpus.chat(1)["messages"]
    assert out[0].raw_size > 0


def test_parquet_non_json_types_are_converted(tmp_path):
    import datetime

    out = recs(corpus.write_parquet(tmp_path, "x.parquet", [{"when": datetime.date(2024, 1, 2), "b": b"hi"}]))
    assert out[0].data == {"when": "2024-01-02", "b": "hi"}


def test_corrupt_parquet_is_a_load_error(tmp_path):
    path = corpus.write_bytes(tmp_path, "x.parquet", b"PAR1 this is not really parquet")
    with pytest.raises(LoadError, match="Parquet") as exc:
        recs(path)
    assert "\n" not in str(exc.value)


# --------------------------------------------------------------------------- Hub


def test_hub_dataset_offline_is_a_clear_load_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    t = time.perf_counter()
    with pytest.raises(LoadError) as exc:
        load_hub_dataset("nobody-here/made-up-dataset-xyz-123", out_dir=tmp_path)
    assert time.perf_counter() - t < 30
    msg = str(exc.value)
    assert "could not reach the Hugging Face Hub" in msg and "made-up-dataset-xyz-123" in msg
    assert "Traceback" not in msg and "\n" not in msg


def test_hub_dataset_bad_id():
    with pytest.raises(LoadError, match="not a Hugging Face dataset id"):
        load_hub_dataset("has spaces in it")


def test_hub_dataset_is_written_as_jsonl(tmp_path, monkeypatch):
    import datasets

    rows = [corpus.chat(0), {"prompt": "p", "completion": "c", "raw": b"bytes"}]
    seen = {}

    def fake_load_dataset(name, config=None, split=None, **kw):
        seen.update(name=name, config=config, split=split)
        return rows

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr("ftassist.hub_reach.hub_reachable", lambda timeout=3.0: True)  # as faked as the download
    path = load_hub_dataset("org/support-chats", split="validation", out_dir=tmp_path, config="en")
    assert seen == {"name": "org/support-chats", "config": "en", "split": "validation"}
    assert path.parent == tmp_path and path.suffix == ".jsonl"
    assert [r.data for r in recs(path)] == [corpus.chat(0), {"prompt": "p", "completion": "c", "raw": "bytes"}]
    # default location: the uploads dir under FTASSIST_HOME
    from ftassist import config

    assert load_hub_dataset("org/support-chats").parent == config.uploads_dir()


def test_hub_unreachable_fails_fast_without_client_retries(monkeypatch):
    import time

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub

    # nothing listens on the discard port; the client read HF_ENDPOINT at import, so it is set where it looks
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    start = time.perf_counter()
    with pytest.raises(LoadError, match="could not reach the Hugging Face Hub"):
        load_hub_dataset("someone/some-dataset")
    assert time.perf_counter() - start < 5


def test_resolve_source_tells_a_local_file_from_a_hub_id(tmp_path, monkeypatch):
    from ftassist.data import load

    fetched = []
    monkeypatch.setattr(load, "load_hub_dataset", lambda name, out_dir=None: fetched.append((name, out_dir)) or name)
    local = corpus.write_jsonl(tmp_path, "a.jsonl", [corpus.chat(0)])
    assert load.resolve_source(str(local)) == local
    assert load.resolve_source("hf:org/name", hub_dir=tmp_path) == "org/name"
    assert load.resolve_source("org/name") == "org/name"  # a slash, no extension, no such file: an id
    assert fetched == [("org/name", tmp_path), ("org/name", None)]
    for missing in ("missing.jsonl", "data/missing.jsonl", "plain"):  # an extension or no slash: a local path
        with pytest.raises(LoadError, match="no such file"):
            load.resolve_source(str(tmp_path / missing) if "/" in missing else missing)
    with pytest.raises(LoadError, match="no dataset given"):
        load.resolve_source("  ")
    assert len(fetched) == 2
