"""Validation: the cookbook's seven codes counted as the cookbook counts them, our extension
codes, the other formats, file-level checks, and no exception on any JSON value."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftassist.data.report import Issue, Record
from ftassist.data.validate import (
    ERROR_CODES,
    OPENAI_MAX_FILE_BYTES,
    context_warnings,
    validate_dataset_size,
    validate_record,
)

COOKBOOK_CODES = (
    "data_type",
    "missing_messages_list",
    "message_missing_key",
    "message_unrecognized_key",
    "unrecognized_role",
    "missing_content",
    "example_missing_assistant_message",
)


def cookbook_counts(dataset: list) -> Counter:
    """The cookbook notebook's counting rules, restated (REFERENCE.md's table), for records
    the notebook itself can process without crashing (messages are dicts)."""
    counts: Counter = Counter()
    for ex in dataset:
        if not isinstance(ex, dict):
            counts["data_type"] += 1
            continue
        msgs = ex.get("messages", None)
        if not msgs:
            counts["missing_messages_list"] += 1
            continue
        for m in msgs:
            if "role" not in m or "content" not in m:
                counts["message_missing_key"] += 1
            if any(k not in ("role", "content", "name", "function_call", "weight") for k in m):
                counts["message_unrecognized_key"] += 1
            if m.get("role", None) not in ("system", "user", "assistant", "function"):
                counts["unrecognized_role"] += 1
            content, fc = m.get("content", None), m.get("function_call", None)
            if (not content and not fc) or not isinstance(content, str):
                counts["missing_content"] += 1
        if not any(m.get("role", None) == "assistant" for m in msgs):
            counts["example_missing_assistant_message"] += 1
    return counts


def check(data, fmt="chat", line=7) -> list[Issue]:
    return validate_record(Record(line=line, data=data), fmt)


def codes(data, fmt="chat") -> Counter:
    return Counter(i.code for i in check(data, fmt))


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


GOOD = {"messages": [{"role": "system", "content": "Be brief."}, U("Hi"), A("Hello!")]}

# A crafted file where the cookbook does not crash: every counting rule exercised.
CRAFTED = [
    GOOD,
    5,  # not an object: data_type once, nothing else
    ["messages"],  # data_type
    "just a string",  # data_type
    {"foo": 1},  # missing_messages_list
    {"messages": []},  # missing_messages_list
    {"messages": None},  # missing_messages_list
    # missing content AND an unknown key in one message: 1 each (+ missing_content, as the cookbook)
    {"messages": [U("q"), {"role": "assistant", "extra": 1}]},
    # unknown role, object content (missing_content), no assistant. (A list of content parts is
    # our documented extension, tested in test_content_parts.py, so it is not in this file.)
    {"messages": [{"role": "bot", "content": "x"}, {"role": "user", "content": {"type": "text", "text": "a"}}]},
    # no role: missing key + unrecognized role; empty assistant content
    {"messages": [{"content": "x"}, A("")]},
    # number content, two unknown keys in one message count once
    {"messages": [U(5), {"role": "assistant", "content": "ok", "a": 1, "b": 2}]},
    # function role and function_call with content (both fine for the cookbook)
    {"messages": [U("q"), {"role": "assistant", "content": "calling", "function_call": {"name": "f"}},
                  {"role": "function", "name": "f", "content": "42"}, A("It is 42.")]},
    # empty content but a function_call: fine
    {"messages": [U("q"), {"role": "assistant", "content": "", "function_call": {"name": "f", "arguments": "{}"}}]},
    # weight 0 and 1 are fine
    {"messages": [U("q"), {"role": "assistant", "content": "a", "weight": 0}, U("r"), {"role": "assistant", "content": "b", "weight": 1}]},
]


def test_crafted_file_counts_match_the_cookbook_exactly():
    ours: Counter = Counter()
    for i, data in enumerate(CRAFTED, 1):
        for issue in validate_record(Record(line=i, data=data), "chat"):
            assert issue.line == i
            ours[issue.code] += 1
    ours_cookbook = Counter({c: n for c, n in ours.items() if c in COOKBOOK_CODES})
    assert ours_cookbook == cookbook_counts(CRAFTED)
    assert ours_cookbook == Counter({
        "data_type": 3,
        "missing_messages_list": 3,
        "message_missing_key": 2,
        "message_unrecognized_key": 2,
        "unrecognized_role": 2,
        "missing_content": 4,
        "example_missing_assistant_message": 1,
    })


def test_good_record_has_no_issues():
    assert check(GOOD) == []


def test_non_object_counts_data_type_once_and_nothing_else():
    assert codes(5) == Counter({"data_type": 1})
    assert codes(None) == Counter({"data_type": 1})
    assert codes([{"role": "user"}]) == Counter({"data_type": 1})


def test_missing_content_and_unknown_key_count_one_each():
    got = codes({"messages": [U("q"), {"role": "assistant", "foo": "bar"}]})
    assert got == Counter({"message_missing_key": 1, "message_unrecognized_key": 1, "missing_content": 1})


def test_issue_fields_line_message_hint_severity():
    issues = check({"messages": [U("q"), {"role": "robot", "content": "x"}]}, line=42)
    codes_ = {i.code for i in issues}
    assert codes_ == {"unrecognized_role", "example_missing_assistant_message"}
    for issue in issues:
        assert issue.line == 42 and issue.severity == "error"
        assert issue.message and issue.hint
    role = next(i for i in issues if i.code == "unrecognized_role")
    assert "robot" in role.message and "Message 2" in role.message


def test_problem_record_is_passed_through():
    problem = Issue(line=3, code="invalid_json", message="bad", hint="fix")
    assert validate_record(Record(line=3, data=None, problem=problem), None) == [problem]


def test_non_string_content_is_missing_content_with_its_type_named():
    for content, word in (12, "a number"), ({"a": 1}, "an object"), (True, "true/false"):
        issues = [i for i in check({"messages": [U(content), A("a")]}) if i.code == "missing_content"]
        assert len(issues) == 1 and word in issues[0].message and "not a string" in issues[0].message
    # a list is read as content parts: a text part without its text is that part's error
    assert codes({"messages": [U([{"type": "text"}]), A("a")]}) == Counter({"invalid_content_part": 1})


def test_null_content_and_missing_key():
    assert codes({"messages": [U(None), A("a")]}) == Counter({"missing_content": 1})
    assert codes({"messages": [{"role": "user"}, A("a")]}) == Counter({"message_missing_key": 1, "missing_content": 1})


def test_unknown_format_record():
    issues = check({"question": "q", "answer": "a"}, fmt=None)
    assert [i.code for i in issues] == ["missing_messages_list"]
    assert "conversations" in issues[0].hint and "instruction" in issues[0].hint


# ---------------------------------------------------------------------- extensions


def test_tool_call_extension_is_accepted():
    data = {
        "messages": [
            U("Weather in Paris and Rome?"),
            {"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}},
                {"id": "c2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Rome\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "18C"},
            {"role": "tool", "tool_call_id": "c2", "content": "22C"},
            A("Paris 18C, Rome 22C."),
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
    }
    assert check(data) == []
    # null content with tool_calls is fine as well; function_call too
    data2 = {"messages": [U("q"), {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
                          {"role": "function", "name": "f", "content": "1"}, A("1")]}
    assert check(data2) == []
    data3 = {"messages": [U("q"), {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f"}}]},
                          {"role": "tool", "content": "1"}, A("1")]}
    assert check(data3) == []


def test_tool_calls_on_a_user_message_do_not_excuse_missing_content():
    got = codes({"messages": [{"role": "user", "tool_calls": [{"function": {"name": "f"}}]}, A("a")]})
    assert got == Counter({"message_missing_key": 1, "missing_content": 1})


def test_invalid_tool_calls_and_tools():
    bad_calls = {"messages": [U("q"), {"role": "assistant", "tool_calls": "weather()"}, A("x")]}
    assert codes(bad_calls)["invalid_tool_calls"] == 1
    args_not_string = {"messages": [U("q"), {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}]}
    assert codes(args_not_string) == Counter({"invalid_tool_calls": 1})
    for tools in ("weather", [1, 2], [{"type": "function"}], [{"type": "function", "function": {"description": "x"}}]):
        assert codes({**GOOD, "tools": tools}) == Counter({"invalid_tools": 1}), tools
    assert codes({**GOOD, "functions": [{"name": "f"}]}) == Counter()
    assert codes({**GOOD, "functions": {"name": "f"}}) == Counter({"invalid_tools": 1})


def test_messages_not_list():
    for messages in ("hello", {"role": "user", "content": "x"}, 5, True):
        issues = check({"messages": messages})
        assert [i.code for i in issues] == ["messages_not_list"]


def test_non_object_message_counts_as_missing_key_once():
    got = codes({"messages": ["hello", U("q"), 3, A("a")]})
    assert got == Counter({"message_missing_key": 2})
    got = codes({"messages": [None]})
    assert got == Counter({"message_missing_key": 1, "example_missing_assistant_message": 1})


def test_consecutive_same_role():
    issues = check({"messages": [U("a"), U("b"), A("c"), A("d"), A("e")]})
    same = [i for i in issues if i.code == "consecutive_same_role"]
    assert len(same) == 3
    assert "Messages 1 and 2" in same[0].message
    # two tool results in a row (parallel calls) are fine
    data = {"messages": [U("q"), {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
                         {"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}, A("done")]}
    assert codes(data) == Counter()


def test_system_not_first():
    got = codes({"messages": [U("a"), {"role": "system", "content": "sys"}, A("b")]})
    assert got == Counter({"system_not_first": 1})
    got = codes({"messages": [{"role": "system", "content": "s"}, {"role": "system", "content": "t"}, U("a"), A("b")]})
    assert got == Counter({"system_not_first": 1, "consecutive_same_role": 1})


@pytest.mark.parametrize("weight", [2, -1, 0.5, "1", None, True, [1], math.nan])
def test_invalid_weight_values(weight):
    got = codes({"messages": [U("q"), {"role": "assistant", "content": "a", "weight": weight}]})
    assert got == Counter({"invalid_weight": 1})


def test_weight_only_on_assistant_messages():
    got = codes({"messages": [{"role": "user", "content": "q", "weight": 1}, A("a")]})
    assert got == Counter({"invalid_weight": 1})
    assert codes({"messages": [U("q"), {"role": "assistant", "content": "a", "weight": 1.0}]}) == Counter()


def test_unencodable_content():
    assert codes({"messages": [U("nul \x00 here"), A("a")]}) == Counter({"unencodable_content": 1})
    assert codes({"messages": [U("q"), A("broken \ud800 text")]}) == Counter({"unencodable_content": 1})
    assert codes({"messages": [U("q"), {"role": "assistant", "content": "x", "name": "b\x00t"}]}) == Counter({"unencodable_content": 1})
    # fine unicode is fine
    assert codes({"messages": [U("naïve café 東京 😀"), A("ok")]}) == Counter()


# ---------------------------------------------------------------------- other formats


def test_instruction_format():
    assert check({"instruction": "Add", "input": "1+1", "output": "2"}, "instruction") == []
    assert check({"instruction": "Add", "output": "2"}, "instruction") == []
    assert check({"instruction": "Add", "input": None, "output": "2"}, "instruction") == []
    assert codes({"instruction": "Add"}, "instruction") == Counter({"missing_field": 1})
    assert codes({"output": "2"}, "instruction") == Counter({"missing_field": 1})
    assert codes({"instruction": "Add", "output": 2}, "instruction") == Counter({"non_string_field": 1})
    assert codes({"instruction": "Add", "input": ["x"], "output": "2"}, "instruction") == Counter({"non_string_field": 1})
    assert codes({"instruction": "Add", "output": "  "}, "instruction") == Counter({"missing_content": 1})
    assert codes({"instruction": "Add", "output": "a\x00"}, "instruction") == Counter({"unencodable_content": 1})
    assert codes({"instruction": "Add", "output": "2", "history": [["q", "a"]]}, "instruction") == Counter()
    assert codes({"instruction": "Add", "output": "2", "history": ["q"]}, "instruction") == Counter({"non_string_field": 1})
    issue = check({"instruction": "Add"}, "instruction")[0]
    assert "output" in issue.message and issue.line == 7


def test_completion_format():
    assert check({"prompt": "Say hi:", "completion": " hi"}, "completion") == []
    assert check({"prompt": "", "completion": " hi"}, "completion") == []
    assert codes({"prompt": "x"}, "completion") == Counter({"missing_field": 1})
    assert codes({"prompt": 1, "completion": "x"}, "completion") == Counter({"non_string_field": 1})
    assert codes({"prompt": "x", "completion": ""}, "completion") == Counter({"missing_content": 1})


def sg(*turns, **extra):
    return {"conversations": [{"from": f, "value": v} for f, v in turns], **extra}


def test_sharegpt_format():
    assert check(sg(("system", "s"), ("human", "q"), ("gpt", "a")), "sharegpt") == []
    tools = sg(("human", "q"), ("function_call", "{\"name\": \"f\"}"), ("observation", "1"), ("gpt", "a"))
    assert check(tools, "sharegpt") == []
    assert codes(sg(("human", "q"), ("bot", "a")), "sharegpt") == Counter(
        {"unrecognized_role": 1, "example_missing_assistant_message": 1})
    assert codes(sg(("human", "q"), ("human", "q2"), ("gpt", "a")), "sharegpt") == Counter({"consecutive_same_role": 1})
    assert codes(sg(("human", "q"), ("gpt", "")), "sharegpt") == Counter({"missing_content": 1})
    assert codes(sg(("human", "q"), ("system", "s"), ("gpt", "a")), "sharegpt") == Counter({"system_not_first": 1})
    assert codes({"conversations": [{"from": "human"}, {"from": "gpt", "value": "a"}]}, "sharegpt") == Counter(
        {"message_missing_key": 1, "missing_content": 1})
    assert codes({"conversations": ["q", {"from": "gpt", "value": "a"}]}, "sharegpt") == Counter({"message_missing_key": 1})
    assert codes({"conversations": []}, "sharegpt") == Counter({"missing_messages_list": 1})
    assert codes({"conversations": "q"}, "sharegpt") == Counter({"messages_not_list": 1})
    assert codes({"other": 1}, "sharegpt") == Counter({"missing_field": 1})
    assert codes(sg(("human", 5), ("gpt", "a")), "sharegpt") == Counter({"missing_content": 1})


def test_undetected_format_is_validated_by_its_keys():
    assert codes({"instruction": "x"}, None) == Counter({"missing_field": 1})
    assert codes({"conversations": [{"from": "human", "value": "q"}]}, None) == Counter(
        {"example_missing_assistant_message": 1})
    assert codes({"messages": "x"}, None) == Counter({"messages_not_list": 1})
    assert codes({"completion": "x"}, None) == Counter({"missing_field": 1})


# ---------------------------------------------------------------------- file level


def test_dataset_size():
    assert [i.code for i in validate_dataset_size(9, 100)] == ["too_few_examples"]
    assert validate_dataset_size(10, 100) == []
    issues = validate_dataset_size(0, OPENAI_MAX_FILE_BYTES + 1)
    assert [i.code for i in issues] == ["too_few_examples", "file_too_large"]
    assert all(i.line == 0 and i.severity == "error" and i.hint for i in issues)
    assert validate_dataset_size(100, OPENAI_MAX_FILE_BYTES) == []


def test_context_warnings():
    issues = context_warnings([3, 5, 9], [100, 70000, 65536], 65536, "gpt-4o-mini-2024-07-18")
    assert [(i.line, i.code, i.severity) for i in issues] == [(5, "over_context_limit", "warning")]
    assert "truncated" in issues[0].message and "70,000" in issues[0].message
    assert context_warnings([1], [10], 0, "x") == []


def test_error_codes_legend_covers_everything_emitted():
    for title, hint in ERROR_CODES.values():
        assert title and hint
    samples = CRAFTED + [
        {"messages": "x"}, {"messages": [U("a"), U("b")]},
        {"messages": [U("a"), {"role": "system", "content": "s"}, A("b")]},
        {"messages": [U("a\x00"), {"role": "assistant", "content": "b", "weight": 3}]},
        {**GOOD, "tools": 1}, {"messages": [U("q"), {"role": "assistant", "tool_calls": 1}]},
    ]
    emitted = {i.code for d in samples for i in check(d)}
    emitted |= {i.code for i in check({"instruction": 1}, "instruction")}
    emitted |= {i.code for i in validate_dataset_size(1, 10**12)}
    emitted |= {i.code for i in context_warnings([1], [9], 5, "m")}
    assert emitted <= set(ERROR_CODES)
    assert {"non_string_field", "missing_field", "file_too_large", "over_context_limit", "invalid_tool_calls"} <= emitted


# ---------------------------------------------------------------------- robustness

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
keys = st.sampled_from(["role", "content", "name", "weight", "tool_calls", "function_call", "tool_call_id", "x",
                        "from", "value"])
roles = st.sampled_from(["system", "user", "assistant", "tool", "function", "bot", "human", "gpt", ""])
message_like = st.dictionaries(keys, json_values | roles, max_size=5)
record_like = st.dictionaries(
    st.sampled_from(["messages", "conversations", "instruction", "input", "output", "prompt", "completion",
                     "tools", "functions", "history", "system", "other"]),
    json_values | st.lists(message_like | json_values, max_size=5),
    max_size=4,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=json_values | record_like, fmt=st.sampled_from([None, "chat", "instruction", "completion", "sharegpt"]))
def test_never_raises_on_any_json(data, fmt):
    issues = validate_record(Record(line=11, data=data), fmt)
    assert isinstance(issues, list)
    for issue in issues:
        assert isinstance(issue, Issue) and issue.line == 11 and issue.code in ERROR_CODES
        assert issue.message and issue.hint


def test_deeply_nested_and_huge_values_do_not_crash():
    deep: list = []
    node = deep
    for _ in range(200_000):
        child: list = []
        node.append(child)
        node = child
    big = "x" * 5_000_000
    records = [
        {"messages": deep},
        {"messages": [U(deep), A(big)]},
        {"messages": [{"role": "assistant", "content": "a", "tool_calls": deep}]},
        {"instruction": deep, "output": big},
        {"conversations": [{"from": "human", "value": deep}]},
        {"messages": [U("q"), A("a")], "tools": deep},
    ]
    for fmt in ("chat", None, "sharegpt", "instruction"):
        for data in records:
            issues = validate_record(Record(line=1, data=data), fmt)
            assert all(i.code in ERROR_CODES for i in issues)
