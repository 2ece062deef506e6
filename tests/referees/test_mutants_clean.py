"""Referees for `ftassist/data/clean.py` (Fix & split) written to kill the mutants the older tests let live.

What is dropped and why, what is trimmed, and which examples land in validation are written out
by hand or computed here by a plain second implementation of the documented rule (whole groups of
near-copies, known by construction, taken in a seeded random order until the target size); the
code under test is never its own oracle.

Equivalent mutants left alive on purpose (no observable difference), one line each
(mutmut 3.8 on clean.py: 395 mutants, 386 killed, these 9 survive):
- exact_key_4 / exact_key_9, group_key_26 / group_key_37 (`digest_size=16` dropped or -> 17): the keys are
  only compared with each other; equal inputs still give equal keys and different ones different keys.
- group_key_32 (separator `"\x1f"` -> `"XX\x1fXX"`): any separator no text contains keeps the same groups.
- group_key_34 (`"utf-8"` -> `"UTF-8"`): codec names are case-insensitive.
- group_key_30 / group_key_35 / group_key_36 (`"surrogatepass"` dropped or misspelt): unreachable in the
  product: group_key only sees chats `exact_key` already wrote as JSON (a lone surrogate is dropped as
  invalid before), and normalise_text turns one in the content into a space.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from ftassist.data.clean import (
    assign_split,
    clean_and_split,
    clean_file,
    exact_key,
    group_key,
    normalise_text,
    split_sizes,
    trim_chat,
)
from ftassist.data.report import Example


def U(text, **extra):
    return {"role": "user", "content": text, **extra}


def A(text, **extra):
    return {"role": "assistant", "content": text, **extra}


def S(text):
    return {"role": "system", "content": text}


def ex(line, *messages, **top):
    return Example(line=line, chat={"messages": list(messages), **top}, source_format="chat")


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------------- the result and its files


def test_files_are_written_where_and_as_the_result_says(tmp_path):
    out = tmp_path / "a" / "b" / "c"  # folders that do not exist yet
    res = clean_and_split([ex(1, U("q"), A("a")), ex(2, U("r"), A("b"))], None, out, valid_fraction=0.3, seed=5)
    assert res.folder == out
    assert (res.train_path, res.valid_path, res.dropped_path, res.all_path) == (
        out / "train.jsonl", out / "valid.jsonl", out / "dropped.jsonl", out / "cleaned.jsonl")
    assert res.exports == {"alpaca": out / "cleaned_alpaca.json", "sharegpt": out / "cleaned_sharegpt.json"}
    assert res.files == [out / "train.jsonl", out / "valid.jsonl", out / "dropped.jsonl",
                         out / "cleaned_alpaca.json", out / "cleaned_sharegpt.json"]
    assert all(p.is_file() for p in [*res.files, res.all_path])
    assert (res.seed, res.valid_fraction) == (5, 0.3)
    assert (res.n_in, res.n_train, res.n_valid, res.n_kept) == (2, 1, 1, 2)
    assert res.export_skipped == {"alpaca": 0, "sharegpt": 0}
    # the same folder again: overwritten, not an error
    again = clean_and_split([ex(1, U("q"), A("a"))], None, out)
    assert (again.n_train, again.n_valid) == (1, 0) and rows(again.all_path) == [{"messages": [U("q"), A("a")]}]
    assert (again.seed, again.valid_fraction) == (42, 0.1)  # the documented defaults


def test_to_dict_is_plain_json(tmp_path):
    res = clean_and_split([ex(1, U("q"), A("a")), ex(2, U("q"), A("a")), ex(3, U("r"), A(" "))],
                          {9: ["data_type"]}, tmp_path, valid_fraction=0.0, seed=3)
    d = res.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d == {
        "folder": str(tmp_path), "train_path": str(tmp_path / "train.jsonl"), "valid_path": str(tmp_path / "valid.jsonl"),
        "dropped_path": str(tmp_path / "dropped.jsonl"), "all_path": str(tmp_path / "cleaned.jsonl"),
        "exports": {"alpaca": str(tmp_path / "cleaned_alpaca.json"), "sharegpt": str(tmp_path / "cleaned_sharegpt.json")},
        "export_skipped": {"alpaca": 0, "sharegpt": 0},
        "n_in": 4, "n_train": 1, "n_valid": 0, "n_dropped_invalid": 1, "n_dropped_duplicates": 1,
        "n_dropped_empty": 1, "seed": 3, "valid_fraction": 0.0, "n_kept": 1, "n_recovered": 0, "repaired": "",
        "n_test": 0, "test_fraction": 0.0, "test_path": None,  # below 200 examples no test split is held out
    }


def test_valid_fraction_must_be_in_zero_to_one(tmp_path):
    for bad in (-0.01, 1.0, 1.5):
        with pytest.raises(ValueError, match=f"^valid_fraction must be at least 0 and below 1, got {bad}$"):
            clean_and_split([], None, tmp_path, valid_fraction=bad)
    nine = clean_and_split([ex(i, U(f"q{i}"), A(f"a{i}")) for i in range(1, 11)], None, tmp_path / "hi",
                           valid_fraction=0.999)
    assert (nine.n_train, nine.n_valid) == (1, 9)


# ---------------------------------------------------------------------- what is dropped, and why


def test_every_dropped_record_is_listed_with_its_reason(tmp_path):
    examples = [
        ex(1, S("sys"), U("Where is my order?"), A("It ships today.")),
        ex(3, U("  Where is my order?\n"), A("It ships today.  ")),  # differs by the system prompt: kept
        ex(4, S(" sys "), U("Where is my order? "), A("\tIt ships today.")),  # line 1 once trimmed
        ex(5, {"content": "Where is my order?", "role": "user"}, {"content": "It ships today.", "role": "assistant"},
           S("sys")),  # same keys in another order, but the system message moved: kept
        ex(6, S("sys"), {"content": "Where is my order?", "role": "user"},
           {"content": "It ships today.", "role": "assistant"}),  # line 1 with its keys in another order
        ex(7, U("q"), A(" \n\t ")),  # an answer of whitespace
        ex(8, U("q"), A(None)),  # no answer and no tool call
        ex(11, U("q"), A("")),
        ex(12, U("q"), A("a"), U("q2"), A("")),  # one empty answer among several is enough
        ex(13, U("q"), A({"x"})),  # a set: not JSON
        ex(14, U("q"), A("broken \ud800")),  # a lone surrogate: not UTF-8
        ex(15, S("sys"), U("Where is my order?"), A("It ships today.")),  # line 1 again: duplicate of line 1
    ]
    res = clean_and_split(examples, {10: ["missing_content", "data_type"], 2: ["invalid_json"], 16: [7]},
                          tmp_path, valid_fraction=0.0)
    dropped = rows(res.dropped_path)
    empty = "an assistant answer is empty after trimming whitespace"
    unwritable = [d.pop("detail") for d in dropped if d["line"] in (13, 14)]
    assert all(detail.startswith("cannot be written as JSON: ") for detail in unwritable) and len(unwritable) == 2
    assert dropped == [
        {"line": 2, "reason": "invalid", "detail": "invalid_json"},
        {"line": 4, "reason": "duplicate", "detail": "exact duplicate of line 1", "duplicate_of": 1},
        {"line": 6, "reason": "duplicate", "detail": "exact duplicate of line 1", "duplicate_of": 1},
        {"line": 7, "reason": "empty_answer", "detail": empty},
        {"line": 8, "reason": "empty_answer", "detail": empty},
        {"line": 10, "reason": "invalid", "detail": "missing_content, data_type"},
        {"line": 11, "reason": "empty_answer", "detail": empty},
        {"line": 12, "reason": "empty_answer", "detail": empty},
        {"line": 13, "reason": "invalid"},
        {"line": 14, "reason": "invalid"},
        {"line": 15, "reason": "duplicate", "detail": "exact duplicate of line 1", "duplicate_of": 1},
        {"line": 16, "reason": "invalid", "detail": "7"},
    ]
    assert (res.n_in, res.n_dropped_invalid, res.n_dropped_duplicates, res.n_dropped_empty) == (15, 5, 3, 4)
    assert (res.n_train, res.n_valid, res.n_kept) == (3, 0, 3)
    assert [r["messages"] for r in rows(res.all_path)] == [
        [S("sys"), U("Where is my order?"), A("It ships today.")],
        [U("Where is my order?"), A("It ships today.")],
        [U("Where is my order?"), A("It ships today."), S("sys")],
    ]
    assert rows(res.train_path) == rows(res.all_path) and res.valid_path.read_bytes() == b""


def test_tool_calls_and_empty_prompts_are_not_empty_answers(tmp_path):
    call = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    examples = [
        ex(1, U("q"), A(None, tool_calls=call), {"role": "tool", "content": "1", "tool_call_id": "c"}, A("one")),
        ex(2, U("q"), A("  ", function_call={"name": "f", "arguments": "{}"}), {"role": "function", "name": "f",
                                                                               "content": "2"}, A("two")),
        ex(3, U(""), A("answer to nothing")),
        ex(4, S(" "), U("q"), A("a")),
    ]
    res = clean_and_split(examples, None, tmp_path, valid_fraction=0.0)
    assert (res.n_dropped_empty, res.n_train) == (0, 4) and rows(res.dropped_path) == []
    kept = rows(res.all_path)
    assert [r["messages"][0]["content"] for r in kept] == ["q", "q", "", ""]
    assert [r["messages"][1].get("content") for r in kept] == [None, "", "answer to nothing", "q"]


def test_dedupe_off_keeps_exact_copies(tmp_path):
    examples = [ex(1, U("a"), A("b")), ex(2, U(" a"), A("b ")), ex(3, U("a"), A("b"))]
    res = clean_and_split(examples, None, tmp_path, dedupe=False, valid_fraction=0.0)
    assert (res.n_in, res.n_train, res.n_dropped_duplicates) == (3, 3, 0)
    assert rows(res.all_path) == [{"messages": [U("a"), A("b")]}] * 3


def test_the_callers_examples_are_not_changed(tmp_path):
    examples = [ex(1, U("  q  "), A(" a "), tools=[{"type": "function", "function": {"name": "f"}}])]
    before = json.dumps([e.chat for e in examples])
    res = clean_and_split(examples, None, tmp_path)
    assert json.dumps([e.chat for e in examples]) == before
    assert rows(res.all_path) == [{"messages": [U("q"), A("a")], "tools": [{"type": "function", "function": {"name": "f"}}]}]


def test_trim_chat_strips_only_text_content():
    chat = {"messages": [S("\n sys \n"), U(" q", name=" me "), A(None, tool_calls=[{"function": {"name": " f "}}]),
                         A(["  x  "]), A("done")], "tools": [" t "]}
    assert trim_chat(chat) == {"messages": [S("sys"), U("q", name=" me "), A(None, tool_calls=[{"function": {"name": " f "}}]),
                                            A(["  x  "]), A("done")], "tools": [" t "]}
    assert chat["messages"][0] == S("\n sys \n") and chat["messages"][1]["content"] == " q"


# ---------------------------------------------------------------------- the keys


def test_exact_key_ignores_key_order_only():
    base = {"messages": [U("q"), A("a")]}
    assert exact_key(base) == exact_key({"messages": [{"content": "q", "role": "user"}, {"content": "a", "role": "assistant"}]})
    for other in ({"messages": [U("q"), A("b")]}, {"messages": [U("Q"), A("a")]}, {"messages": [A("q"), U("a")]},
                  {"messages": [U("q"), A("a")], "tools": []}, {"messages": [S("s"), U("q"), A("a")]}):
        assert exact_key(other) != exact_key(base), other


def test_normalise_text_by_hand():
    assert normalise_text("  Hello,   WORLD!! ") == "hello world"
    assert normalise_text("...Hi") == "hi" and normalise_text("Hi...") == "hi"
    assert normalise_text("snake_case-name") == "snake case name"
    assert normalise_text("Straße") == "strasse"  # casefold, not lower
    assert normalise_text("ﬁle Ⅻ") == "file xii"  # NFKC: ligature and roman numeral spelled out
    assert normalise_text("¡Hola, señor!") == "hola señor"
    assert normalise_text("") == "" and normalise_text("?!") == ""


def test_group_key_ignores_system_case_spacing_and_punctuation_but_not_roles_or_words():
    def key(*messages):
        return group_key({"messages": list(messages)})

    base = key(S("Be nice."), U("How do I cancel?"), A("Go to Billing."))
    assert base == key(U("how do I   CANCEL"), A("go to billing!!"))
    assert base == key(S("Other."), U("How do I cancel?"), A("Go to Billing."))
    assert base == key(U("How do I cancel?"), S("late system"), A("Go to Billing."))
    assert base != key(S("Be nice."), U("How do I cancel?"), A("Go to Settings."))
    assert base != key(S("Be nice."), U("How do I delete?"), A("Go to Billing."))
    assert key(U("a"), A("b")) != key(A("a"), U("b"))
    assert key(U("a"), A("b c")) != key(U("a b"), A("c"))
    assert key(U("q"), A(None), A("x")) == key(U("q"), A(""), A("x")) != key(U("q"), A("x"))
    key(U("broken \ud800"), A("a"))  # a lone surrogate still has a key


# ---------------------------------------------------------------------- the split


@pytest.mark.parametrize(("n", "fraction", "expected"), [
    (0, 0.5, 0), (1, 0.5, 0), (1, 0.99, 0), (2, 0.1, 1), (2, 0.9, 1), (3, 0.5, 2), (10, 0.0, 0), (10, -0.2, 0),
    (10, 0.04, 1), (10, 0.21, 2), (10, 0.25, 2), (10, 0.29, 3), (10, 0.99, 9), (100, 0.004, 1), (100, 0.01, 1),
    (100, 0.1, 10), (1000, 0.0125, 12),
])
def test_split_sizes_by_hand(n, fraction, expected):
    assert split_sizes(n, fraction) == expected


def referee_split(groups: list[list[int]], target: int, seed: int) -> set[int]:
    """The documented rule, restated: groups in a seeded random order, each taken whole while it fits;
    if none fits, the smallest group (first such in that order) unless it is everything."""
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    chosen: set[int] = set()
    for g in order:
        if len(chosen) + len(groups[g]) <= target:
            chosen |= set(groups[g])
    if not chosen and target:
        smallest = min(len(groups[g]) for g in order)
        first = next(g for g in order if len(groups[g]) == smallest)
        if smallest < sum(map(len, groups)):
            chosen = set(groups[first])
    return chosen


def variants(topic: int, copies: int) -> list[tuple[dict, dict]]:
    """`copies` near-copies of one prompt and answer: other case, spacing, punctuation, system prompt."""
    out = []
    for c in range(copies):
        prompt = f"How do I reset password number {topic}?"
        answer = f"Open settings, then press reset {topic}."
        if c % 3 == 1:
            prompt, answer = prompt.upper().replace(" ", "  "), answer.replace(",", "").lower()
        elif c % 3 == 2:
            prompt, answer = prompt.replace("?", "!?"), answer + "!!"
        system = [S(f"System prompt {c}.")] if c else []
        out.append({"messages": [*system, U(prompt), A(answer)]})
    return out


def grouped_examples(sizes: list[int], seed: int) -> tuple[list[Example], list[list[int]]]:
    """Examples in a shuffled source order, and the groups (indices into that order) by construction;
    groups are listed by first appearance, as the split meets them."""
    chats = [(topic, chat) for topic, size in enumerate(sizes) for chat in variants(topic, size)]
    random.Random(seed).shuffle(chats)
    groups: dict[int, list[int]] = {}
    for i, (topic, _) in enumerate(chats):
        groups.setdefault(topic, []).append(i)
    return [Example(line=i + 1, chat=chat, source_format="chat") for i, (_, chat) in enumerate(chats)], list(groups.values())


@pytest.mark.parametrize(("sizes", "fraction", "seed"), [
    ([1] * 30, 0.2, 0),
    ([3, 1, 2, 1, 1, 4, 1, 2, 1, 1, 3, 1, 1, 2, 1], 0.25, 11),
    ([2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 1], 0.15, 4),
    ([5, 4, 3, 2, 1, 1, 1], 0.3, 42),
    ([3, 4], 0.1, 1),  # no group fits: the smallest goes
    ([4, 3, 3], 0.1, 2),  # no group fits: the first of the two smallest in the seeded order
    ([3, 3, 3, 3], 0.05, 9),
    ([6], 0.5, 3),  # one group: everything stays in training
])
def test_the_split_takes_whole_groups_as_the_referee_does(tmp_path, sizes, fraction, seed):
    examples, groups = grouped_examples(sizes, seed)
    n = len(examples)
    target = split_sizes(n, fraction)
    expected = referee_split(groups, target, seed)
    res = clean_and_split(examples, None, tmp_path, valid_fraction=fraction, seed=seed)
    assert res.n_dropped_duplicates == 0 and (res.n_valid, res.n_train) == (len(expected), n - len(expected))
    openai = [{"messages": e.chat["messages"]} for e in examples]
    assert rows(res.valid_path) == [openai[i] for i in sorted(expected)]
    assert rows(res.train_path) == [openai[i] for i in range(n) if i not in expected]
    assert rows(res.all_path) == openai
    # and straight from assign_split
    assert assign_split(groups, n, fraction, seed) == expected


def test_split_fallback_sizes_by_hand():
    # target 1, no group of one: the smaller group goes to validation, whole
    assert assign_split([[0, 1, 2, 3], [4, 5, 6]], 7, 0.1, 0) == {4, 5, 6}
    assert assign_split([[0, 1, 2], [3, 4, 5, 6]], 7, 0.1, 0) == {0, 1, 2}
    # one group holding everything: training keeps it
    assert assign_split([[0, 1, 2, 3, 4]], 5, 0.5, 0) == set()
    # no target, no validation, whatever the groups
    assert assign_split([[0], [1]], 2, 0.0, 0) == set()
    assert assign_split([[0]], 1, 0.5, 0) == set()
    # singletons fill the target exactly
    assert len(assign_split([[i] for i in range(50)], 50, 0.2, 8)) == 10
    # a big group that does not fit is skipped, smaller ones after it still count
    assert assign_split([[0, 1, 2, 3, 4, 5], [6], [7]], 8, 0.25, 0) == {6, 7}


def test_the_seed_decides_the_split_and_is_reproducible(tmp_path):
    examples = [ex(i, U(f"question {i}"), A(f"answer {i}")) for i in range(1, 41)]
    valid_by_seed = {}
    for seed in (0, 1, 2):
        first = clean_and_split(examples, None, tmp_path / f"{seed}a", valid_fraction=0.25, seed=seed)
        second = clean_and_split(examples, None, tmp_path / f"{seed}b", valid_fraction=0.25, seed=seed)
        assert first.valid_path.read_bytes() == second.valid_path.read_bytes()
        valid_by_seed[seed] = first.valid_path.read_bytes()
        expected = referee_split([[i] for i in range(40)], 10, seed)
        assert rows(first.valid_path) == [{"messages": examples[i].chat["messages"]} for i in sorted(expected)]
    assert len(set(valid_by_seed.values())) == 3


# ---------------------------------------------------------------------- from a file


def test_clean_file_lists_every_error_code_of_a_dropped_line(tmp_path):
    lines = [
        json.dumps({"messages": [U("q1"), A("a1")]}),
        json.dumps({"messages": [{"role": "bot", "content": ""}]}),
        json.dumps({"prompt": "p", "completion": "c"}),  # another format than the file's
        json.dumps({"messages": [U("q2"), A("a2")]}),
        json.dumps({"messages": [U("q1"), A("a1")]}),
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = clean_file(path, tmp_path / "out", valid_fraction=0.5, seed=1)
    assert [(d["line"], d["reason"], d["detail"]) for d in rows(res.dropped_path)] == [
        (2, "invalid", "unrecognized_role, missing_content, example_missing_assistant_message"),
        (3, "invalid", "mixed_formats"),
        (5, "duplicate", "exact duplicate of line 1"),
    ]
    assert (res.n_in, res.n_train, res.n_valid, res.seed, res.valid_fraction) == (5, 1, 1, 1, 0.5)
    res = clean_file(path, tmp_path / "kept", valid_fraction=0.0, dedupe=False)
    assert (res.n_train, res.n_valid, res.n_dropped_duplicates, res.seed) == (3, 0, 0, 42)
