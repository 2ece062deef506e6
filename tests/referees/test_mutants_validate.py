"""Referees for `ftassist/data/validate.py` written to kill the mutants the older tests let live.

Every expectation is written out by hand: the record, the line it sits on, and the exact error a
person will read (code, message, hint, severity), in the order they are listed. The function
under test is never its own oracle; the only shared value is the legend `ERROR_CODES`, a module
constant that mutation testing leaves alone and that these tests read for the default hints.

Equivalent mutants left alive on purpose (no observable difference), one line each
(mutmut 3.8 on validate.py: 1067 mutants, 1052 killed, these 15 survive):
- _validate_chat_54 / _55 / _56 / _57 (fast path reads `content = None`), _64 (`type(None) is str`) and
  _66 (`type(None) is str` for the role): the fast path is never taken, and `_check_message`, the slow
  path, runs the same checks and reports the same issues; only the speed differs.
- _validate_chat_41 (`prev_role = None` -> `""`): prev_role is only compared with a recognised role,
  and none is "".
- _validate_chat_39, _validate_sharegpt_60 (`has_... = False` -> `None`): only ever read as `not has_...`.
- _validate_sharegpt_62 / _85 (`prev = None` -> `""`): prev is only compared with a mapped role, and no
  ShareGPT speaker maps to "".
- _validate_instruction_19 / _45 (`required=False` -> `required=None` for "input" and "system"): None is
  falsy exactly where False is; the field stays optional.
- validate_record_16 (`_VALIDATORS.get(fmt) if fmt or True`): a falsy fmt ("" or None) finds no
  validator either way, so the record's keys decide.
- _bad_text_9 (`encode("utf-8")` -> `encode("UTF-8")`): codec names are case-insensitive.
"""

from __future__ import annotations

import pytest

from ftassist.data.report import Issue, Record
from ftassist.data.validate import (
    ERROR_CODES,
    FORMATS_HINT,
    context_warnings,
    validate_dataset_size,
    validate_record,
)

NUL = "contains a NUL character (\\u0000)"
SURROGATE = "contains a lone surrogate (a broken UTF-16 character)"


def run(data, fmt="chat", line=7) -> list[Issue]:
    return validate_record(Record(line=line, data=data), fmt)


def found(data, fmt="chat", line=7) -> list[tuple[str, str]]:
    """(code, message) in the order a person reads them; every issue carries `line` and a hint."""
    issues = run(data, fmt, line)
    for issue in issues:
        assert issue.line == line and issue.hint and issue.severity == "error", issue
    return [(i.code, i.message) for i in issues]


def U(text, **extra):
    return {"role": "user", "content": text, **extra}


def A(text, **extra):
    return {"role": "assistant", "content": text, **extra}


def default_hint(code):
    return ERROR_CODES[code][1]


# ---------------------------------------------------------------------- the record as a whole


@pytest.mark.parametrize(("data", "kind"), [
    (None, "null"), (True, "true/false"), (False, "true/false"), (3, "a number"), (2.5, "a number"),
    ("text", "a string"), ([1], "a list"), ((1, 2), "a list"), ({1, 2}, "a set"), (b"x", "a bytes"),
])
def test_a_record_that_is_not_an_object_names_its_type(data, kind):
    (issue,) = run(data, line=12)
    assert issue == Issue(line=12, code="data_type", message=f"The record is {kind}, not a JSON object.",
                          hint="Each line must be one JSON object, e.g. {\"messages\": [...]}.", severity="error")


def test_a_record_of_no_known_format_lists_its_first_eight_keys_sorted():
    data = {k: 1 for k in ("zeta", "alpha", "kilo", "bravo", "echo", "delta", "golf", "hotel", "india", "charlie")}
    (issue,) = run(data, fmt=None, line=3)
    assert issue == Issue(3, "missing_messages_list",
                          "The record has no \"messages\" and matches no known format "
                          "(keys: alpha, bravo, charlie, delta, echo, golf, hotel, india).", FORMATS_HINT)
    (issue,) = run({}, fmt=None)
    assert issue.message == "The record has no \"messages\" and matches no known format (keys: none)."
    (issue,) = run({5: "x"}, fmt=None)
    assert issue.message.endswith("(keys: 5).")


def test_an_unknown_format_name_falls_back_to_the_records_keys():
    assert found({"prompt": "p", "completion": "c"}, fmt="csv") == []
    assert found({"instruction": "i"}, fmt="bogus") == [("missing_field", "The record has no \"output\".")]
    assert found({"conversations": [{"from": "gpt", "value": "a"}]}, fmt="") == []


def test_the_given_format_is_the_one_applied():
    # the same record read as completion (prompt may be empty) or instruction (fields missing)
    record = {"prompt": "", "completion": "c"}
    assert found(record, fmt="completion") == []
    assert found(record, fmt="instruction") == [
        ("missing_field", "The record has no \"instruction\"."), ("missing_field", "The record has no \"output\".")]


class _Exploding(dict):
    def get(self, *args):
        raise RuntimeError("boom")


def test_a_record_that_breaks_a_check_is_reported_not_raised():
    (issue,) = run(_Exploding(messages=[]), line=4)
    assert issue == Issue(4, "data_type", "The record could not be checked (RuntimeError).",
                          default_hint("data_type"))


def test_a_record_with_a_read_problem_is_passed_through_as_is():
    problem = Issue(line=9, code="invalid_json", message="Expecting value", hint="Fix the JSON.")
    assert validate_record(Record(line=9, data={"messages": "x"}, problem=problem), "chat") == [problem]


# ---------------------------------------------------------------------- chat: the messages list


def test_missing_or_empty_messages_say_which():
    assert found({}) == [("missing_messages_list", "The record has no \"messages\".")]
    assert found({"messages": None}) == [("missing_messages_list", "The record's \"messages\" is null.")]
    assert found({"messages": []}) == [("missing_messages_list", "The record's \"messages\" is empty ([]).")]
    assert found({"messages": ""}) == [("missing_messages_list", "The record's \"messages\" is empty ('').")]
    assert found({"messages": 0}) == [("missing_messages_list", "The record's \"messages\" is empty (0).")]
    (issue,) = run({})
    assert issue.hint == "Give the record a non-empty \"messages\" list. " + FORMATS_HINT


def test_messages_that_are_not_a_list():
    assert found({"messages": "hi"}) == [("messages_not_list", "\"messages\" is a string, not a list of messages.")]
    assert found({"messages": {"role": "user"}}) == [
        ("messages_not_list", "\"messages\" is an object, not a list of messages.")]
    (issue,) = run({"messages": 1.5})
    assert issue.hint == "Make \"messages\" (or \"conversations\") a JSON list of message objects."


def test_a_valid_conversation_has_no_issue_on_either_path():
    fast = {"messages": [{"role": "system", "content": "s"}, U("q"), A("a"), U("q2"), A("a2")]}
    slow = {"messages": [{"role": "system", "content": "s", "name": "sys"}, U("q", name="me"),
                         A("a", weight=0), U("q2", name="me"), A("a2", weight=1)]}
    assert found(fast) == [] and found(slow) == []


def test_no_assistant_message_anywhere():
    assert found({"messages": [U("q")]}) == [
        ("example_missing_assistant_message", "The example has no assistant message.")]
    assert found({"messages": [U("q", name="x")]}) == [
        ("example_missing_assistant_message", "The example has no assistant message.")]
    # an assistant message found on either path counts, even a broken one
    assert found({"messages": [U("q"), {"role": "assistant", "content": 5}]}) == [
        ("missing_content", "Message 2's content is a number, not a string.")]
    assert found({"messages": [U("q"), A("a", name="n")]}) == []
    assert found({"messages": [A("a")]}) == []
    (issue,) = run({"messages": [U("q")]})
    assert issue.hint == "Add at least one assistant message: it is what the model learns to write."


# ---------------------------------------------------------------------- chat: one message


def test_a_message_that_is_not_an_object():
    assert found({"messages": [U("q"), "hello", A("a")]}) == [
        ("message_missing_key", "Message 2 is a string, not an object with role and content.")]
    assert found({"messages": [U("q"), None, A("a")]}) == [
        ("message_missing_key", "Message 2 is null, not an object with role and content.")]


def test_missing_role_key():
    assert found({"messages": [{"content": "x"}, A("a")]}) == [
        ("message_missing_key", "Message 1 has no \"role\"."),
        ("unrecognized_role", "Message 1 has no role; expected system, user, assistant, tool or function."),
    ]
    (issue, _) = run({"messages": [{"content": "x"}, A("a")]})
    assert issue.hint == "Every message needs both \"role\" and \"content\"."


def test_missing_content_key():
    assert found({"messages": [U("q"), {"role": "assistant"}]}) == [
        ("message_missing_key", "Message 2 has no \"content\"."),
        ("missing_content", "Message 2 has no content."),
    ]
    assert found({"messages": [{"role": "user", "name": "n"}, A("a")]}) == [
        ("message_missing_key", "Message 1 has no \"content\"."),
        ("missing_content", "Message 1 has no content."),
    ]


def test_null_role_and_role_of_another_type():
    assert found({"messages": [{"role": None, "content": "x"}, A("a")]}) == [
        ("unrecognized_role", "Message 1 has no role; expected system, user, assistant, tool or function.")]
    assert found({"messages": [{"role": 5, "content": "x"}, A("a")]}) == [
        ("unrecognized_role", "Message 1 has the role 5; expected system, user, assistant, tool or function.")]
    assert found({"messages": [{"role": "User", "content": "x"}, A("a")]}) == [
        ("unrecognized_role", "Message 1 has the role 'User'; expected system, user, assistant, tool or function.")]
    # text is quoted: a trailing space is seen, and the text "5" is not the number 5
    assert found({"messages": [{"role": "user ", "content": "x"}, A("a")]}) == [
        ("unrecognized_role", "Message 1 has the role 'user '; expected system, user, assistant, tool or function.")]
    assert found({"messages": [{"role": "5", "content": "x"}, A("a")]}) == [
        ("unrecognized_role", "Message 1 has the role '5'; expected system, user, assistant, tool or function.")]
    (issue,) = run({"messages": [{"role": "bot", "content": "x"}, A("a")]})
    assert issue.hint == "Use the role system, user, assistant, tool or function."


def test_a_long_role_is_cut_at_forty_characters():
    forty = "r" * 38  # 40 characters with its quotes
    assert found({"messages": [{"role": forty, "content": "x"}, A("a")]})[0][1] == (
        f"Message 1 has the role '{forty}'; expected system, user, assistant, tool or function.")
    assert found({"messages": [{"role": "s" * 39, "content": "x"}, A("a")]})[0][1] == (
        f"Message 1 has the role '{'s' * 38}…; expected system, user, assistant, tool or function.")
    number = 10**39  # 40 digits
    assert found({"messages": [{"role": number, "content": "x"}, A("a")]})[0][1] == (
        f"Message 1 has the role {number}; expected system, user, assistant, tool or function.")
    assert found({"messages": [{"role": number * 10, "content": "x"}, A("a")]})[0][1] == (
        f"Message 1 has the role 1{'0' * 38}…; expected system, user, assistant, tool or function.")
    long_list = list(range(30))  # repr is 110 characters
    assert found({"messages": [{"role": long_list, "content": "x"}, A("a")]})[0][1] == (
        f"Message 1 has the role {repr(long_list)[:39]}…; expected system, user, assistant, tool or function.")


class _NoRepr:
    def __repr__(self):
        raise ValueError("no repr")


def test_a_role_whose_repr_fails_is_named_by_its_type():
    assert found({"messages": [{"role": _NoRepr(), "content": "x"}, A("a")]}) == [
        ("unrecognized_role", "Message 1 has the role <_NoRepr>; expected system, user, assistant, tool or function.")]


def test_unrecognised_keys_are_listed_sorted():
    assert found({"messages": [U("q"), A("a", zeta=1, alpha=2, weight=1)]}) == [
        ("message_unrecognized_key", "Message 2 has unrecognised key(s): alpha, zeta.")]
    (issue,) = run({"messages": [U("q", extra=1), A("a")]})
    assert issue.hint == ("Messages may only have role, content, name, weight, function_call, tool_calls, "
                          "tool_call_id; remove other keys.")
    # every recognised key at once raises nothing about keys
    every = {"role": "assistant", "content": "a", "name": "n", "weight": 1, "function_call": {"name": "f"},
             "tool_calls": [{"function": {"name": "f"}}], "tool_call_id": "c"}
    assert found({"messages": [U("q"), every]}) == []


def test_content_that_is_empty_null_or_not_text():
    assert found({"messages": [U(""), A("a")]}) == [("missing_content", "Message 1 has empty content.")]
    assert found({"messages": [U("q"), A("")]}) == [("missing_content", "Message 2 has empty content.")]
    assert found({"messages": [U(None), A("a")]}) == [("missing_content", "Message 1's content is null.")]
    assert found({"messages": [U(["a"]), A("a")]}) == [
        ("invalid_content_part", "Message 1's content part 1 is a string, not an object with a \"type\".")]
    assert found({"messages": [U([]), A("a")]}) == [("missing_content", "Message 1's content is an empty list.")]
    assert found({"messages": [U({"t": 1}), A("a")]}) == [
        ("missing_content", "Message 1's content is an object, not a string.")]
    assert found({"messages": [U(False), A("a")]}) == [
        ("missing_content", "Message 1's content is true/false, not a string.")]
    (issue,) = run({"messages": [U(""), A("a")]})
    assert issue.hint == "Give the message non-empty text content (a string)."


def test_an_assistant_tool_call_may_come_without_content_but_nobody_else():
    call = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    ok = [
        {"role": "assistant", "tool_calls": call},
        {"role": "assistant", "content": None, "tool_calls": call},
        {"role": "assistant", "content": "", "tool_calls": call},
        {"role": "assistant", "function_call": {"name": "f"}},
        {"role": "assistant", "content": None, "function_call": {"name": "f"}},
        {"role": "assistant", "content": "", "function_call": {"name": "f"}},
    ]
    for message in ok:
        assert found({"messages": [U("q"), message, {"role": "tool", "content": "1"}, A("a")]}) == [], message
    # a user message with a function_call and empty text is fine by the cookbook's rule too
    assert found({"messages": [U("", function_call={"name": "f"}), A("a")]}) == []
    # but a tool call does not excuse the content of anyone but the assistant
    assert found({"messages": [U("", tool_calls=call), A("a")]}) == [
        ("missing_content", "Message 1 has empty content.")]
    assert found({"messages": [{"role": "user", "content": None, "tool_calls": call}, A("a")]}) == [
        ("missing_content", "Message 1's content is null.")]
    assert found({"messages": [{"role": "user", "function_call": {"name": "f"}}, A("a")]}) == [
        ("message_missing_key", "Message 1 has no \"content\"."), ("missing_content", "Message 1 has no content.")]
    # and an empty list of calls is no call at all
    assert found({"messages": [U("q"), {"role": "assistant", "content": None, "tool_calls": []}]}) == [
        ("missing_content", "Message 2's content is null."),
        ("invalid_tool_calls", "Message 2's tool_calls are not a list of function calls with a name and string arguments."),
    ]
    assert found({"messages": [U("q"), {"role": "assistant", "content": "", "tool_calls": []}]}) == [
        ("missing_content", "Message 2 has empty content."),
        ("invalid_tool_calls", "Message 2's tool_calls are not a list of function calls with a name and string arguments."),
    ]
    # content that is there but not text is still reported beside a tool call
    assert found({"messages": [U("q"), {"role": "assistant", "content": 3, "tool_calls": call}]}) == [
        ("missing_content", "Message 2's content is a number, not a string.")]


def test_text_that_cannot_be_encoded_on_both_paths():
    assert found({"messages": [U("a\x00b"), A("a")]}) == [("unencodable_content", f"Message 1's content {NUL}.")]
    assert found({"messages": [U("q"), A("\ud800x")]}) == [("unencodable_content", f"Message 2's content {SURROGATE}.")]
    assert found({"messages": [U("a\x00b", name="n"), A("a")]}) == [
        ("unencodable_content", f"Message 1's content {NUL}.")]
    assert found({"messages": [U("q"), A("é\ud800", name="n")]}) == [
        ("unencodable_content", f"Message 2's content {SURROGATE}.")]
    # both NUL and a surrogate: the NUL is named
    assert found({"messages": [U("\x00é\udc00"), A("a")]}) == [("unencodable_content", f"Message 1's content {NUL}.")]
    assert found({"messages": [U("q"), A("a", name="b\x00t")]}) == [("unencodable_content", f"Message 2's name {NUL}.")]
    assert found({"messages": [U("q"), A("a", name="\ud83d")]}) == [
        ("unencodable_content", f"Message 2's name {SURROGATE}.")]
    assert found({"messages": [U("q"), A("a", name=5)]}) == []
    assert found({"messages": [U("q", name="José 東京"), A("naïve 😀")]}) == []
    (issue,) = run({"messages": [U("\x00"), A("a")]})
    assert issue.hint == "Remove NUL characters and broken (lone surrogate) characters; re-export the text as UTF-8."


@pytest.mark.parametrize(("weight", "shown"), [(2, "2"), (-1, "-1"), (0.5, "0.5"), ("1", "'1'"), (None, "None"),
                                               (True, "True"), (False, "False"), ([1], "[1]")])
def test_a_weight_other_than_zero_or_one(weight, shown):
    assert found({"messages": [U("q"), A("a", weight=weight)]}) == [
        ("invalid_weight", f"Message 2 has weight {shown}; it must be 0 or 1.")]


def test_a_weight_on_another_role():
    assert found({"messages": [U("q", weight=1), A("a")]}) == [
        ("invalid_weight", "Message 1 is a user message with a weight; only assistant messages may have one.")]
    assert found({"messages": [U("q", weight=0), A("a")]}) == [
        ("invalid_weight", "Message 1 is a user message with a weight; only assistant messages may have one.")]
    assert found({"messages": [U("q"), A("a", weight=0.0), A("b", weight=1.0)]}) == [
        ("consecutive_same_role", "Messages 2 and 3 are both assistant messages.")]
    (issue,) = run({"messages": [U("q"), A("a", weight=7)]})
    assert issue.hint == "Set \"weight\" to 0 or 1, and only on assistant messages."


@pytest.mark.parametrize("calls", [
    "f()", {"function": {"name": "f"}}, [], ["f"], [{"function": None}], [{"function": {"name": ""}}],
    [{"function": {"name": 5}}], [{"function": {"arguments": "{}"}}], [{"function": {"name": "f", "arguments": {}}}],
    [{"function": {"name": "f", "arguments": 1}}],
    [{"function": {"name": "f"}}, {"function": {"name": "g", "arguments": []}}],
    [{"function": {"name": "f"}}, "g"],
])
def test_invalid_tool_calls(calls):
    assert found({"messages": [U("q"), {"role": "assistant", "content": "x", "tool_calls": calls}]}) == [
        ("invalid_tool_calls", "Message 2's tool_calls are not a list of function calls with a name and string arguments.")]


def test_valid_tool_calls_and_their_hint():
    calls = [{"function": {"name": "f"}}, {"function": {"name": "g", "arguments": None}},
             {"id": "3", "type": "function", "function": {"name": "h", "arguments": "{\"a\": 1}"}}]
    assert found({"messages": [U("q"), {"role": "assistant", "tool_calls": calls}]}) == []
    (issue,) = run({"messages": [U("q"), A("a", tool_calls=1)]})
    assert issue.hint.startswith("Make \"tool_calls\" a list of")


def test_tools_and_functions_of_the_record():
    assert found({"messages": [U("q"), A("a")], "tools": None, "functions": None}) == []
    cases = [
        ({"tools": "weather"}, "The record's \"tools\" is a string, not a list."),
        ({"tools": [{"type": "function", "function": {"name": "f"}}, {"type": "function"}]},
         "The record's tool 2 is not {\"type\": \"function\", \"function\": {\"name\": ...}}."),
        ({"tools": ["f"]}, "The record's tool 1 is not {\"type\": \"function\", \"function\": {\"name\": ...}}."),
        ({"tools": [{"function": {"name": ""}}]},
         "The record's tool 1 is not {\"type\": \"function\", \"function\": {\"name\": ...}}."),
        ({"functions": {"name": "f"}}, "The record's \"functions\" is an object, not a list."),
        ({"functions": [{"name": "f"}, {"description": "no name"}]}, "The record's function 2 has no \"name\"."),
        ({"functions": [{"name": 3}]}, "The record's function 1 has no \"name\"."),
        # good tools do not hide bad functions
        ({"tools": [{"function": {"name": "f"}}], "functions": "f"}, "The record's \"functions\" is a string, not a list."),
    ]
    for extra, message in cases:
        assert found({"messages": [U("q"), A("a")], **extra}) == [("invalid_tools", message)], extra
    good = {"tools": [{"type": "function", "function": {"name": "f"}}, {"function": {"name": "g"}}],
            "functions": [{"name": "f"}, {"name": "g"}]}
    assert found({"messages": [U("q"), A("a")], **good}) == []
    (issue,) = run({"messages": [U("q"), A("a")], "tools": 1})
    assert issue.hint.startswith("Make \"tools\" a list of")


# ---------------------------------------------------------------------- chat: order of messages


def test_same_role_twice_on_the_fast_and_the_slow_path():
    same = "consecutive_same_role"
    assert found({"messages": [U("a"), U("b"), A("c")]}) == [(same, "Messages 1 and 2 are both user messages.")]
    assert found({"messages": [U("a"), U("b", name="n"), A("c")]}) == [(same, "Messages 1 and 2 are both user messages.")]
    assert found({"messages": [U("a", name="n"), U("b"), A("c")]}) == [(same, "Messages 1 and 2 are both user messages.")]
    assert found({"messages": [U("q"), A("a"), A("b", name="n")]}) == [
        (same, "Messages 2 and 3 are both assistant messages.")]
    (issue,) = run({"messages": [U("a"), U("b"), A("c")]})
    assert issue.hint == "Alternate user and assistant turns: merge the two messages or insert the missing turn."


def test_consecutive_tool_or_function_results_are_allowed_on_both_paths():
    call = {"role": "assistant", "tool_calls": [{"function": {"name": "f"}}, {"function": {"name": "g"}}]}
    for results in (
        [{"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}],
        [{"role": "tool", "content": "1", "tool_call_id": "a"}, {"role": "tool", "content": "2", "tool_call_id": "b"}],
        [{"role": "function", "content": "1", "name": "f"}, {"role": "function", "content": "2", "name": "g"}],
        [{"role": "function", "content": "1"}, {"role": "function", "content": "2"}],
    ):
        assert found({"messages": [U("q"), call, *results, A("done")]}) == [], results


def test_a_broken_message_between_two_alike_does_not_make_them_consecutive():
    assert found({"messages": [U("a"), {"role": "bot", "content": "x"}, U("b"), A("c")]}) == [
        ("unrecognized_role", "Message 2 has the role 'bot'; expected system, user, assistant, tool or function.")]
    assert found({"messages": [U("a"), 7, U("b"), A("c")]}) == [
        ("message_missing_key", "Message 2 is a number, not an object with role and content.")]


def test_system_message_only_first():
    assert found({"messages": [{"role": "system", "content": "s", "name": "n"}, U("q"), A("a")]}) == []
    assert found({"messages": [U("q"), {"role": "system", "content": "s"}, A("a")]}) == [
        ("system_not_first", "Message 2 is a system message but is not the first message.")]
    assert found({"messages": [U("q"), {"role": "system", "content": "s", "name": "n"}, A("a")]}) == [
        ("system_not_first", "Message 2 is a system message but is not the first message.")]
    assert found({"messages": [U("q"), A("a"), {"role": "system", "content": "s"}]}) == [
        ("system_not_first", "Message 3 is a system message but is not the first message.")]
    (issue,) = run({"messages": [U("q"), {"role": "system", "content": "s"}, A("a")]})
    assert issue.hint == "Put the system message first, or make it a user message."


def test_several_problems_are_listed_in_check_order_with_their_line():
    data = {"messages": [{"role": "system", "content": "s"}, {"role": "system", "content": "t", "x": 1},
                         {"content": ""}, U("u", weight=2)], "tools": "t"}
    issues = run(data, line=31)
    assert [(i.line, i.code, i.message) for i in issues] == [
        (31, "message_unrecognized_key", "Message 2 has unrecognised key(s): x."),
        (31, "consecutive_same_role", "Messages 1 and 2 are both system messages."),
        (31, "system_not_first", "Message 2 is a system message but is not the first message."),
        (31, "message_missing_key", "Message 3 has no \"role\"."),
        (31, "unrecognized_role", "Message 3 has no role; expected system, user, assistant, tool or function."),
        (31, "missing_content", "Message 3 has empty content."),
        (31, "invalid_weight", "Message 4 has weight 2; it must be 0 or 1."),
        (31, "example_missing_assistant_message", "The example has no assistant message."),
        (31, "invalid_tools", "The record's \"tools\" is a string, not a list."),
    ]


# ---------------------------------------------------------------------- instruction and completion


def test_instruction_fields_in_order():
    assert found({"instruction": 1, "input": 2, "output": None, "system": 3}, "instruction") == [
        ("non_string_field", "\"instruction\" is a number, not a string."),
        ("non_string_field", "\"input\" is a number, not a string."),
        ("missing_field", "The record has no \"output\"."),
        ("non_string_field", "\"system\" is a number, not a string."),
    ]
    assert found({"output": "o"}, "instruction") == [("missing_field", "The record has no \"instruction\".")]
    assert found({"instruction": None, "output": "o"}, "instruction") == [
        ("missing_field", "The record has no \"instruction\".")]


def test_instruction_field_hints():
    missing, _ = run({"input": "x"}, "instruction")
    assert missing.hint == "Add a \"instruction\" string."
    (empty,) = run({"instruction": "i", "output": " \n"}, "instruction")
    assert (empty.code, empty.message, empty.hint) == (
        "missing_content", "\"output\" is empty.", "Give \"output\" non-empty text: it is what the model learns to write.")
    (wrong,) = run({"instruction": "i", "output": ["o"]}, "instruction")
    assert wrong.hint == "Make the field a string (quote it), or convert the record."


def test_optional_instruction_fields_may_be_empty_or_null_but_required_ones_not():
    assert found({"instruction": "i", "input": "", "output": "o", "system": ""}, "instruction") == []
    assert found({"instruction": "i", "input": None, "output": "o", "system": None}, "instruction") == []
    assert found({"instruction": "  ", "output": "o"}, "instruction") == [
        ("missing_content", "\"instruction\" is empty.")]


def test_instruction_text_that_cannot_be_encoded():
    assert found({"instruction": "i\x00", "input": "\ud800", "output": "o", "system": "s\x00"}, "instruction") == [
        ("unencodable_content", f"\"instruction\" {NUL}."),
        ("unencodable_content", f"\"input\" {SURROGATE}."),
        ("unencodable_content", f"\"system\" {NUL}."),
    ]


@pytest.mark.parametrize("history", [[], [["q", "a"]], [["q", "a"], ("q2", "a2")]])
def test_a_good_history(history):
    assert found({"instruction": "i", "output": "o", "history": history}, "instruction") == []


@pytest.mark.parametrize("history", ["q", {"q": "a"}, 5, ["q"], [["q"]], [["q", "a", "b"]], [["q", 1]], [[1, "a"]],
                                     [["q", "a"], ["q2"]], [["q", "a"], ["q2", None]]])
def test_a_bad_history(history):
    (issue,) = run({"instruction": "i", "output": "o", "history": history}, "instruction")
    assert (issue.code, issue.message, issue.hint) == (
        "non_string_field", "\"history\" is not a list of [instruction, answer] string pairs.",
        "Make \"history\" a list of [\"question\", \"answer\"] pairs, or remove it.")


def test_completion_fields():
    assert found({"prompt": "", "completion": "c"}, "completion") == []
    assert found({"prompt": "  ", "completion": "c"}, "completion") == []
    assert found({"completion": "c"}, "completion") == [("missing_field", "The record has no \"prompt\".")]
    assert found({"prompt": None, "completion": "c"}, "completion") == [("missing_field", "The record has no \"prompt\".")]
    assert found({"prompt": "p"}, "completion") == [("missing_field", "The record has no \"completion\".")]
    assert found({"prompt": "p", "completion": " "}, "completion") == [("missing_content", "\"completion\" is empty.")]
    assert found({"prompt": ["p"], "completion": 5}, "completion") == [
        ("non_string_field", "\"prompt\" is a list, not a string."),
        ("non_string_field", "\"completion\" is a number, not a string."),
    ]
    assert found({"prompt": "p\x00", "completion": "c\x00"}, "completion") == [
        ("unencodable_content", f"\"prompt\" {NUL}."), ("unencodable_content", f"\"completion\" {NUL}.")]


# ---------------------------------------------------------------------- ShareGPT


def turns(*pairs):
    return [{"from": who, "value": value} for who, value in pairs]


def test_sharegpt_reads_conversations_or_else_messages():
    good = turns(("human", "q"), ("gpt", "a"))
    assert found({"conversations": good}, "sharegpt") == []
    assert found({"messages": good}, "sharegpt") == []
    assert found({"conversations": good, "messages": "ignored"}, "sharegpt") == []
    assert found({"conversations": [], "messages": good}, "sharegpt") == [
        ("missing_messages_list", "\"conversations\" is empty.")]
    assert found({"messages": []}, "sharegpt") == [("missing_messages_list", "\"messages\" is empty.")]
    assert found({"messages": "x"}, "sharegpt") == [("messages_not_list", "\"messages\" is a string, not a list of turns.")]


def test_sharegpt_without_usable_turns():
    (missing,) = run({"id": 1}, "sharegpt")
    assert (missing.code, missing.message, missing.hint) == (
        "missing_field", "The record has no \"conversations\".", "Add a \"conversations\" list of {\"from\", \"value\"} turns.")
    (empty,) = run({"conversations": None}, "sharegpt")
    assert (empty.code, empty.message, empty.hint) == (
        "missing_messages_list", "\"conversations\" is empty.", "Add the conversation turns.")
    (not_list,) = run({"conversations": {"from": "human"}}, "sharegpt")
    assert (not_list.code, not_list.message, not_list.hint) == (
        "messages_not_list", "\"conversations\" is an object, not a list of turns.", default_hint("messages_not_list"))


def test_sharegpt_turn_problems_and_their_hints():
    data = {"conversations": ["hi", {"value": "v"}, {"from": "gpt"}, {"from": 3, "value": ""},
                              {"from": "gpt", "value": 4}, {"from": "gpt", "value": None}]}
    issues = run(data, "sharegpt", line=5)
    role_hint = "Use \"from\": human, gpt, system, function_call, observation or tool."
    key_hint = "Every turn needs \"from\" and \"value\"."
    value_hint = "Give every turn a non-empty text \"value\"."
    expected = "expected human, gpt, system, function_call, observation or tool."
    assert [(i.line, i.code, i.message, i.hint) for i in issues] == [
        (5, "message_missing_key", "Turn 1 is a string, not an object with from and value.", key_hint),
        (5, "message_missing_key", "Turn 2 has no \"from\".", key_hint),
        (5, "unrecognized_role", f"Turn 2 is from None; {expected}", role_hint),
        (5, "message_missing_key", "Turn 3 has no \"value\".", key_hint),
        (5, "missing_content", "Turn 3's value is missing.", value_hint),
        (5, "unrecognized_role", f"Turn 4 is from 3; {expected}", role_hint),
        (5, "missing_content", "Turn 4's value is empty.", value_hint),
        (5, "missing_content", "Turn 5's value is a number, not a string.", value_hint),
        (5, "missing_content", "Turn 6's value is missing.", value_hint),
        (5, "consecutive_same_role", "Turns 5 and 6 are both assistant turns.",
         "Alternate human and gpt turns: merge the two turns or insert the missing one."),
    ]
    assert all(i.severity == "error" for i in issues)


def test_sharegpt_text_that_cannot_be_encoded():
    assert found({"conversations": turns(("human", "q\x00"), ("gpt", "\udfff"))}, "sharegpt") == [
        ("unencodable_content", f"Turn 1's value {NUL}."), ("unencodable_content", f"Turn 2's value {SURROGATE}.")]


def test_sharegpt_roles_and_order():
    same = "consecutive_same_role"
    # human and user are the same role; observations in a row are parallel results
    assert found({"conversations": turns(("human", "a"), ("user", "b"), ("gpt", "c"))}, "sharegpt") == [
        (same, "Turns 1 and 2 are both user turns.")]
    assert found({"conversations": turns(("human", "q"), ("function_call", "f"), ("observation", "1"),
                                         ("tool", "2"), ("gpt", "a"))}, "sharegpt") == []
    assert found({"conversations": turns(("system", "s"), ("human", "q"), ("assistant", "a"))}, "sharegpt") == []
    assert found({"conversations": turns(("human", "q"), ("gpt", "a"), ("system", "s"))}, "sharegpt") == [
        ("system_not_first", "Turn 3 is a system turn but is not the first turn.")]
    assert found({"conversations": turns(("Human", "q"), ("gpt", "a"))}, "sharegpt") == [
        ("unrecognized_role", "Turn 1 is from 'Human'; expected human, gpt, system, function_call, observation or tool.")]
    assert found({"conversations": [{"from": ["human"], "value": "q"}, *turns(("gpt", "a"))]}, "sharegpt") == [
        ("unrecognized_role", "Turn 1 is from ['human']; expected human, gpt, system, function_call, observation or tool.")]
    # a turn of unknown role or no object in between breaks the run
    assert [c for c, _ in found({"conversations": [*turns(("human", "a"), ("bot", "x"), ("human", "b"), ("gpt", "c"))]},
                                "sharegpt")] == ["unrecognized_role"]
    assert [c for c, _ in found({"conversations": [*turns(("human", "a")), 1, *turns(("human", "b"), ("gpt", "c"))]},
                                "sharegpt")] == ["message_missing_key"]


def test_sharegpt_needs_a_gpt_turn():
    # function_call is an assistant role for the order checks, but not the answer the model learns
    for who in ("human", "system", "function_call", "observation", "tool"):
        (issue,) = [i for i in run({"conversations": turns(("human", "q"), (who, "x"))}, "sharegpt")
                    if i.code == "example_missing_assistant_message"]
        assert (issue.message, issue.hint) == (
            "The conversation has no gpt turn.", "Add at least one {\"from\": \"gpt\", \"value\": ...} turn."), who
    assert found({"conversations": turns(("human", "q"), ("assistant", "a"))}, "sharegpt") == []
    assert found({"conversations": turns(("human", "q"), ("gpt", "a"))}, "sharegpt") == []


# ---------------------------------------------------------------------- file level


def test_too_few_examples_counts_in_words():
    def message(n):
        (issue,) = validate_dataset_size(n, 100)
        assert (issue.line, issue.code, issue.severity) == (0, "too_few_examples", "error")
        assert issue.hint == "OpenAI needs at least 10 valid examples; 50-100 good ones is a better start."
        return issue.message

    assert message(0) == "The file has 0 valid examples; OpenAI requires at least 10."
    assert message(1) == "The file has 1 valid example; OpenAI requires at least 10."
    assert message(2) == "The file has 2 valid examples; OpenAI requires at least 10."
    assert message(9) == "The file has 9 valid examples; OpenAI requires at least 10."
    assert validate_dataset_size(10, 100) == validate_dataset_size(11, 100) == []


def test_a_file_over_512_mb():
    mb = 1024 * 1024
    assert validate_dataset_size(10, 512 * mb) == []
    (issue,) = validate_dataset_size(10, 512 * mb + 1)
    assert (issue.line, issue.code, issue.severity, issue.message, issue.hint) == (
        0, "file_too_large", "error", "The file is 512 MB; OpenAI accepts at most 512 MB per file.",
        "OpenAI accepts files up to 512 MB: split the file or drop examples.")
    (issue,) = validate_dataset_size(10, 2048 * mb + 300 * 1024)
    assert issue.message == "The file is 2,048 MB; OpenAI accepts at most 512 MB per file."


def test_context_warnings_per_example_over_the_limit():
    issues = context_warnings([2, 4, 6, 8], [65536, 65537, 10, 1_200_000], 65536, "gpt-4o-mini")
    assert [(i.line, i.code, i.severity, i.message, i.hint) for i in issues] == [
        (4, "over_context_limit", "warning",
         "The example has 65,537 tokens, over gpt-4o-mini's limit of 65,536 per example; it will be truncated during training.",
         "Shorten or split the example, or drop it; otherwise it is truncated during training."),
        (8, "over_context_limit", "warning",
         "The example has 1,200,000 tokens, over gpt-4o-mini's limit of 65,536 per example; it will be truncated during training.",
         "Shorten or split the example, or drop it; otherwise it is truncated during training."),
    ]
    assert context_warnings([1, 2], [5, 10**9], 0, "m") == []
    assert context_warnings([1, 2], [5, 10**9], None, "m") == []
