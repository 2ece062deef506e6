"""The fix: invalid records and duplicates dropped and listed, whitespace trimmed, a clean split."""

from __future__ import annotations

import json

import pytest

from ftassist.data.clean import NothingToKeep, clean_and_split, clean_file, group_key, split_sizes
from ftassist.data.formats import alpaca_to_chat, sharegpt_to_chat
from ftassist.data.report import Example
from tests.data import corpus


def ex(line, user, answer, system=None):
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return Example(line=line, chat={"messages": messages}, source_format="chat")


def read_jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x]


def keyset(records):
    return {json.dumps(r, sort_keys=True) for r in records}


def test_split_sizes():
    assert split_sizes(0, 0.1) == 0
    assert split_sizes(1, 0.1) == 0
    assert split_sizes(2, 0.1) == 1
    assert split_sizes(3, 0.5) in (1, 2)
    assert split_sizes(100, 0.1) == 10
    assert split_sizes(100, 0.0) == 0
    assert split_sizes(5, 0.99) == 4


def test_no_overlap_and_counts(tmp_path):
    examples = [ex(i + 1, f"question {i}", f"answer {i}") for i in range(200)]
    res = clean_and_split(examples, None, tmp_path, valid_fraction=0.2, seed=1)
    train, valid = read_jsonl(res.train_path), read_jsonl(res.valid_path)
    assert (res.n_in, res.n_train, res.n_valid) == (200, 160, 40)
    assert len(train) == 160 and len(valid) == 40
    assert not keyset(train) & keyset(valid)
    assert keyset(train) | keyset(valid) == keyset(e.chat for e in examples)
    assert len(read_jsonl(res.all_path)) == 200


def test_seeded_and_reproducible(tmp_path):
    examples = [ex(i + 1, f"q{i}", f"a{i}") for i in range(50)]
    a = clean_and_split(examples, None, tmp_path / "a", seed=7)
    b = clean_and_split(examples, None, tmp_path / "b", seed=7)
    c = clean_and_split(examples, None, tmp_path / "c", seed=8)
    assert a.valid_path.read_bytes() == b.valid_path.read_bytes()
    assert a.train_path.read_bytes() == b.train_path.read_bytes()
    assert a.valid_path.read_bytes() != c.valid_path.read_bytes()


def test_trim_then_dedupe_keeps_first_and_lists_dropped(tmp_path):
    examples = [
        ex(1, "Where is my order?", "It ships today."),
        ex(2, "  Where is my order?\n", "It ships today.   "),  # same after trimming
        ex(3, "Refund?", "Within 30 days."),
        ex(5, "Refund?", "Within 30 days."),
        ex(6, "Empty", "   "),  # answer only whitespace
    ]
    res = clean_and_split(examples, {4: ["invalid_json"], 9: ["missing_content", "data_type"]}, tmp_path)
    assert res.n_in == 7
    assert res.n_dropped_duplicates == 2 and res.n_dropped_invalid == 2 and res.n_dropped_empty == 1
    assert res.n_train + res.n_valid == 2
    dropped = read_jsonl(res.dropped_path)
    assert [(d["line"], d["reason"]) for d in dropped] == [
        (2, "duplicate"), (4, "invalid"), (5, "duplicate"), (6, "empty_answer"), (9, "invalid")]
    assert dropped[0]["duplicate_of"] == 1 and dropped[2]["duplicate_of"] == 3
    assert "missing_content" in dropped[4]["detail"]
    everything = read_jsonl(res.all_path)
    assert everything[0]["messages"][0]["content"] == "Where is my order?"
    assert all(m["content"] == m["content"].strip() for r in everything for m in r["messages"])


def test_dedupe_can_be_turned_off(tmp_path):
    examples = [ex(1, "a", "b"), ex(2, "a", "b"), ex(3, "c", "d")]
    res = clean_and_split(examples, None, tmp_path, dedupe=False, valid_fraction=0.0)
    assert res.n_dropped_duplicates == 0 and res.n_train == 3 and res.n_valid == 0
    assert res.valid_path.read_text() == ""


def test_near_duplicates_never_straddle_the_split(tmp_path):
    examples = []
    for i in range(40):
        examples.append(ex(2 * i + 1, f"How do I cancel plan {i}?", f"Go to Billing {i}."))
        # same prompt + answer modulo case, punctuation, spacing and system prompt: not an exact duplicate
        examples.append(ex(2 * i + 2, f"how do i CANCEL plan {i}", f"go to billing {i}!!", system="Be nice."))
    for seed in range(5):
        res = clean_and_split(examples, None, tmp_path / str(seed), valid_fraction=0.25, seed=seed)
        assert res.n_dropped_duplicates == 0
        train = {group_key(r) for r in read_jsonl(res.train_path)}
        valid = {group_key(r) for r in read_jsonl(res.valid_path)}
        assert valid and not train & valid


def test_tiny_datasets_keep_one_on_each_side(tmp_path):
    res = clean_and_split([ex(1, "a", "b"), ex(2, "c", "d")], None, tmp_path, valid_fraction=0.1)
    assert (res.n_train, res.n_valid) == (1, 1)
    res = clean_and_split([ex(1, "a", "b")], None, tmp_path / "one", valid_fraction=0.1)
    assert (res.n_train, res.n_valid) == (1, 0)
    with pytest.raises(NothingToKeep, match="keep no example"):  # refuses instead of writing empty files
        clean_and_split([], None, tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_exports_of_the_full_cleaned_set(tmp_path):
    examples = [ex(i + 1, f"q{i}", f"a{i}", system="S") for i in range(10)]
    tool = Example(11, {"messages": [
        {"role": "user", "content": "weather"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "1"},
        {"role": "assistant", "content": "Sunny"}]}, "chat")
    res = clean_and_split(examples + [tool], None, tmp_path)
    alpaca = json.loads(res.exports["alpaca"].read_text())
    sharegpt = json.loads(res.exports["sharegpt"].read_text())
    assert [alpaca_to_chat(a) for a in alpaca] == [e.chat for e in examples]
    assert res.export_skipped == {"alpaca": 1, "sharegpt": 0}
    assert [sharegpt_to_chat(s) for s in sharegpt[:10]] == [e.chat for e in examples]
    assert res.to_dict()["exports"]["alpaca"].endswith(".json")


def test_bad_valid_fraction(tmp_path):
    with pytest.raises(ValueError):
        clean_and_split([], None, tmp_path, valid_fraction=1.0)


def test_clean_file_drops_unparsable_lines(tmp_path):
    records = [corpus.chat(i) for i in range(20)]
    lines = [json.dumps(r) for r in records]
    lines.insert(3, "{broken json")  # line 4
    lines.append(json.dumps(records[0]))  # line 22: duplicate of line 1
    path = corpus.write_bytes(tmp_path, "d.jsonl", ("\n".join(lines) + "\n").encode())
    res = clean_file(path, tmp_path / "out", valid_fraction=0.2, seed=3)
    assert res.n_in == 22
    assert res.n_dropped_invalid == 1 and res.n_dropped_duplicates == 1
    assert (res.n_train, res.n_valid) == (16, 4)
    dropped = read_jsonl(res.dropped_path)
    assert [(d["line"], d["reason"]) for d in dropped] == [(4, "invalid"), (22, "duplicate")]
    assert "invalid_json" in dropped[0]["detail"]
    assert keyset(read_jsonl(res.train_path)) | keyset(read_jsonl(res.valid_path)) == keyset(records)


def test_clean_file_converts_other_formats(tmp_path):
    path = corpus.write_json_array(tmp_path, "alpaca.json", [corpus.instruction(i) for i in range(10)])
    res = clean_file(path, tmp_path / "out", valid_fraction=0.1)
    rows = read_jsonl(res.all_path)
    assert len(rows) == 10 and res.n_valid == 1
    assert rows[0]["messages"] == [
        {"role": "user", "content": "Summarise ticket 0.\n\nCustomer 0 was charged twice."},
        {"role": "assistant", "content": "Ticket 0 is about billing."},
    ]


def test_shipped_sample_is_clean_and_splits(tmp_path):
    from pathlib import Path

    import ftassist.data

    sample = Path(ftassist.data.__file__).parent / "sample" / "sample_chat.jsonl"
    res = clean_file(sample, tmp_path / "out")
    assert res.n_in == 60 and res.n_dropped_invalid == res.n_dropped_duplicates == res.n_dropped_empty == 0
    assert (res.n_train, res.n_valid) == (54, 6)
    rows = read_jsonl(res.all_path)
    assert all(r["messages"][0]["role"] == "system" and r["messages"][-1]["role"] == "assistant" for r in rows)
    assert len({r["messages"][0]["content"] for r in rows}) == 1  # one consistent system prompt
    assert sum(len(r["messages"]) > 3 for r in rows) >= 5  # some multi-turn conversations
