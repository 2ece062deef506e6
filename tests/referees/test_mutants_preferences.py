"""Referees for `ftassist/data/preferences.py`: the cases that mutation testing showed untested
(`tools/mutation.py ftassist/data/preferences.py`).

Every expectation is written out by hand: the record, its line, the exact issue a person reads
(code, message, hint, severity) in the order it is listed, the exact canonical pair, the exact
bytes a file is written with, the exact checklist summaries and figures (shares, medians and
means worked out from the lengths by hand). The module is never its own oracle; the only shared
values are `ERROR_CODES` (validate.py's legend, for the default hints) and, for a message about
one chat message, what `validate_record` says of that message in a plain chat record.

Equivalent mutants (no observable difference, left alive on purpose; numbered as mutmut 3.8 numbers
the mutants of each function, so the numbers move when that function changes):
- _message 1, 3: filtering a message whose keys are all known gives an equal copy of it.
- _messages 42: `prev = ""` instead of None: it is only compared with a recognised role, and none is "".
- _messages 59: the stand-in text of an empty answer ("XX-XX" for "-"): any non-empty text passes the
  same checks; 92: an answer side is always named in quotes ('"chosen"'), a first character without case.
- _sample 1: the default length is never used (every call gives one).
- _share 2, 4: `n` is never 0 there (`finish` returns before judging a file without pairs).
- _validate_openai 20, 37: `prompt_role = ""` instead of None: it is only compared with "assistant";
  43, and _validate_trl 81: `answer=None` is falsy where False is.
- _validate_sharegpt_pair 7-11: the ShareGPT validator does not read the conversation's "system".
- iter_pairs 2, 3: the first line's starting value is overwritten at the first valid pair, before it is read.
- write_pairs 19, 20: the temporary file's name; it is renamed onto the target either way.
- PairChecks._evidence 6, 8, 9: the default sample is never used (every line with evidence has a sample).
- PairChecks._length_bias 102, 105, 106: the direction is decided only when 70% of the pairs lean one way
  (so longer != shorter), and it is only compared with "longer", never shown.
"""

from __future__ import annotations

import json

import pytest

from ftassist.data import preferences as prefs
from ftassist.data.report import Issue, Record
from ftassist.data.validate import ERROR_CODES, validate_record

SYSTEM = {"role": "system", "content": "Be brief."}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
LINE = 7


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def issues_of(record, line=LINE) -> list[tuple[str, str, str]]:
    """(code, message, hint) in the order a person reads them; each on `line`, each an error."""
    found = prefs.validate_pair(record, line)
    for issue in found:
        assert issue.line == line and issue.severity == "error", issue
    return [(issue.code, issue.message, issue.hint) for issue in found]


def default(code: str) -> str:
    return ERROR_CODES[code][1]


def chat_message_issue(message: dict) -> tuple[str, str]:
    """What the chat validator says of one bad message in a two-message chat (the referee for the
    per-message messages a pair passes on, prefixed by where it is)."""
    found = validate_record(Record(line=1, data={"messages": [message, assistant("fine")]}), "chat")
    return found[0].code, found[0].message


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize("record, expected", [
    ({"chosen": "a", "rejected": "b"}, True),
    ({"chosen": "a"}, False),
    ({"rejected": "b"}, False),
    ({"preferred_output": []}, True),
    ({"non_preferred_output": []}, True),
    ({"messages": []}, False),
    ([{"chosen": "a", "rejected": "b"}], False),
    ("chosen rejected", False),
])
def test_what_is_a_pair(record, expected):
    assert prefs.is_preference(record) is expected


def test_formats_and_shapes_by_their_keys():
    assert prefs.pair_format({"non_preferred_output": []}) == "openai_dpo"
    assert prefs.pair_format({"preferred_output": [], "conversations": []}) == "openai_dpo"
    assert prefs.pair_format({"conversations": [], "chosen": {}, "rejected": {}}) == "sharegpt"
    assert prefs.pair_format({"chosen": "a", "rejected": "b"}) == "trl"
    assert prefs.trl_shape({"chosen": [], "rejected": []}) == ("conversational", "implicit")
    assert prefs.trl_shape({"prompt": "p", "chosen": "a", "rejected": "b"}) == ("standard", "explicit")
    assert prefs.trl_shape({"prompt": [], "chosen": "a"}) == ("standard", "explicit")  # chosen decides the style
    assert prefs.shape_of({"chosen": "a", "rejected": "b"}) == ("trl", "standard", "implicit")
    assert prefs.shape_of({"prompt": "p", "chosen": [], "rejected": []}) == ("trl", "conversational", "explicit")
    # the other formats have one shape: conversational, explicit, whatever their values are
    assert prefs.shape_of({"preferred_output": "x", "non_preferred_output": "y"}) == (
        "openai_dpo", "conversational", "explicit")
    assert prefs.shape_of({"conversations": [], "chosen": "a", "rejected": "b"}) == (
        "sharegpt", "conversational", "explicit")


def test_formats_in_words():
    assert prefs.describe("trl") == "TRL preference (conversational, explicit prompt)"
    assert prefs.describe("trl", "standard", "implicit") == "TRL preference (standard, implicit prompt)"
    assert prefs.describe("openai_dpo", "standard", "implicit") == "OpenAI DPO"
    assert prefs.describe("sharegpt") == "ShareGPT pairs"
    assert prefs.describe("alpaca") == "alpaca"


def test_the_published_names_of_formats_checks_and_file_suffixes():
    assert prefs.PAIR_FORMATS == ("openai_dpo", "trl", "sharegpt")
    assert prefs.PAIR_EXPORT_FORMATS == ("trl", "openai_dpo", "sharegpt", "trl_standard", "trl_implicit")
    # JSON Lines everywhere except ShareGPT, which LLaMA-Factory reads as one JSON array
    assert prefs.PAIR_EXPORT_SUFFIX == {"trl": ".jsonl", "openai_dpo": ".jsonl", "sharegpt": ".json",
                                        "trl_standard": ".jsonl", "trl_implicit": ".jsonl"}
    assert list(prefs.PAIR_CHECK_TITLES) == ["pair_identical", "pair_empty", "pair_duplicates",
                                             "pair_contradictions", "pair_length_bias"]


# --------------------------------------------------------------------------- validation: OpenAI DPO


def openai(messages=None, preferred=None, non_preferred=None, **extra):
    record = {"input": {"messages": messages if messages is not None else [user("q")], **extra},
              "preferred_output": preferred if preferred is not None else [assistant("a")],
              "non_preferred_output": non_preferred if non_preferred is not None else [assistant("b")]}
    return record


def test_a_valid_openai_pair_has_no_issue_and_an_empty_answer_is_not_an_error_here():
    assert issues_of(openai()) == []
    assert issues_of(openai(preferred=[assistant("   ")], non_preferred=[assistant("")])) == []
    assert issues_of(openai(tools=TOOLS)) == []
    # an answer that is only a tool call is an answer
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]}
    assert issues_of(openai(tools=TOOLS, preferred=[call])) == []


def test_openai_pair_without_its_parts():
    assert issues_of({"preferred_output": [assistant("a")], "non_preferred_output": [assistant("b")]}) == [
        ("missing_field", 'The preference record has no "input".',
         'Add "input": {"messages": [...]} with the conversation so far.')]
    assert issues_of({"input": {"messages": [user("q")]}, "non_preferred_output": [assistant("b")]}) == [
        ("missing_field", 'The preference record has no "preferred_output".',
         'Add "preferred_output": [{"role": "assistant", "content": ...}].')]
    assert issues_of({"input": {"messages": [user("q")]}, "preferred_output": [assistant("a")]}) == [
        ("missing_field", 'The preference record has no "non_preferred_output".',
         'Add "non_preferred_output": [{"role": "assistant", "content": ...}].')]


def test_openai_pair_is_checked_side_after_side():
    assert issues_of({"input": {"messages": [user("q")]}, "non_preferred_output": [user("b")]}) == [
        ("missing_field", 'The preference record has no "preferred_output".',
         'Add "preferred_output": [{"role": "assistant", "content": ...}].'),
        ("invalid_preference_side", '"non_preferred_output" does not end with an assistant message.',
         default("invalid_preference_side"))]
    assert issues_of(openai(preferred=[assistant("a"), assistant("b")], non_preferred=[user("c")])) == [
        ("invalid_preference_side",
         '"preferred_output" has 2 messages; OpenAI takes exactly one assistant message.',
         "Keep only the final answer."),
        ("invalid_preference_side", '"non_preferred_output" does not end with an assistant message.',
         default("invalid_preference_side"))]


def test_openai_input_that_is_not_an_object_or_has_no_messages():
    for value, kind in (("q", "a string"), ([user("q")], "a list"), (None, "null")):
        assert issues_of({**openai(), "input": value}) == [
            ("invalid_preference_side", f'"input" is {kind}, not an object.',
             'Make "input" an object: {"messages": [...], optional "tools": [...]}.')]
    assert issues_of(openai(messages="q")) == [
        ("messages_not_list", "The input's messages is a string, not a list of messages.",
         'Make it a list of {"role", "content"} messages.')]
    assert issues_of({**openai(), "input": {}}) == [
        ("messages_not_list", "The input's messages is null, not a list of messages.",
         'Make it a list of {"role", "content"} messages.')]
    assert issues_of(openai(messages=[])) == [
        ("missing_messages_list", "The input's messages is an empty list.", "Give it at least one message.")]


def test_openai_message_issues_name_where_they_are():
    robot = {"role": "robot", "content": "q"}
    code, message = chat_message_issue(robot)
    assert issues_of(openai(messages=[robot])) == [(code, f"In the input's messages: {message}", default(code))]
    # an empty prompt message is an error (only an answer may be empty here: the empty-side check judges it)
    assert issues_of(openai(messages=[user("")])) == [
        ("missing_content", "In the input's messages: Message 1 has empty content.", default("missing_content"))]
    assert issues_of(openai(preferred=[{"role": "assistant", "content": 3}])) == [
        ("missing_content", "In \"preferred_output\": Message 1's content is a number, not a string.",
         default("missing_content"))]


def test_openai_tools_are_checked_with_the_input():
    assert issues_of(openai(tools="lookup")) == [
        ("invalid_tools", 'The input\'s "tools" is a string, not a list.', default("invalid_tools"))]
    assert issues_of(openai(functions="lookup")) == [
        ("invalid_tools", 'The input\'s "functions" is a string, not a list.', default("invalid_tools"))]
    assert issues_of(openai(functions=[{"name": "lookup"}])) == []


def test_openai_answer_sides():
    assert issues_of(openai(preferred=[assistant("a"), assistant("b")])) == [
        ("invalid_preference_side",
         '"preferred_output" has 2 messages; OpenAI takes exactly one assistant message.',
         "Keep only the final answer.")]
    assert issues_of(openai(non_preferred=[user("x"), assistant("a"), assistant("b")])) == [
        ("invalid_preference_side",
         '"non_preferred_output" has 3 messages; OpenAI takes exactly one assistant message.',
         "Keep only the final answer.")]
    assert issues_of(openai(preferred=[user("a")])) == [
        ("invalid_preference_side", '"preferred_output" does not end with an assistant message.',
         default("invalid_preference_side"))]
    assert issues_of(openai(non_preferred=assistant("b"))) == [
        ("messages_not_list", '"non_preferred_output" is an object, not a list of messages.',
         'Make it a list of {"role", "content"} messages.')]
    assert issues_of(openai(non_preferred=[])) == [
        ("missing_messages_list", '"non_preferred_output" is an empty list.', "Give it at least one message.")]
    # a side that is not a message at all: the message check's words, and no assistant at the end
    code, message = chat_message_issue("a")
    assert issues_of(openai(preferred=["a"])) == [
        (code, f'In "preferred_output": {message}', default(code)),
        ("invalid_preference_side", '"preferred_output" does not end with an assistant message.',
         default("invalid_preference_side"))]


def test_openai_answers_reply_to_a_prompt_that_ends_with_the_user():
    hint = "End the prompt with the user's turn: the answers reply to it."
    assert issues_of(openai(messages=[user("q"), assistant("earlier")])) == [
        ("consecutive_same_role",
         'The prompt ends with an assistant message, and "preferred_output" starts with another.', hint),
        ("consecutive_same_role",
         'The prompt ends with an assistant message, and "non_preferred_output" starts with another.', hint)]
    # a side that does not start with an assistant message is told as such, not as two assistants
    assert issues_of(openai(messages=[user("q"), assistant("earlier")], preferred=[user("a")])) == [
        ("invalid_preference_side", '"preferred_output" does not end with an assistant message.',
         default("invalid_preference_side")),
        ("consecutive_same_role",
         'The prompt ends with an assistant message, and "non_preferred_output" starts with another.', hint)]


def test_a_record_that_cannot_be_read_is_reported_not_raised():
    assert issues_of(None) == [("data_type", "The record could not be checked (TypeError).", default("data_type"))]


# --------------------------------------------------------------------------- validation: TRL


def test_trl_pair_without_a_side():
    assert issues_of({"prompt": "q", "rejected": "b"}) == [
        ("missing_field", 'The preference record has no "chosen".',
         'Add "chosen" (the preferred answer), as text or a list of messages.')]
    assert issues_of({"prompt": "q", "chosen": "a"}) == [
        ("missing_field", 'The preference record has no "rejected".',
         'Add "rejected" (the worse answer), as text or a list of messages.')]
    assert issues_of({"prompt": "q"}) == [
        ("missing_field", 'The preference record has no "chosen".',
         'Add "chosen" (the preferred answer), as text or a list of messages.'),
        ("missing_field", 'The preference record has no "rejected".',
         'Add "rejected" (the worse answer), as text or a list of messages.')]


def test_trl_messages_with_a_side_or_prompt_that_is_not_messages():
    hint = "Write prompt, chosen and rejected all as lists of messages, or all as text."
    assert issues_of({"prompt": "q", "chosen": [assistant("a")], "rejected": [assistant("b")]}) == [
        ("mixed_pair_styles", '"chosen" is a list of messages but "prompt" is not.', hint)]
    assert issues_of({"prompt": "q", "chosen": [assistant("a")], "rejected": "b"}) == [
        ("mixed_pair_styles", '"chosen" is a list of messages but "rejected", "prompt" are not.', hint)]
    assert issues_of({"chosen": [user("q"), assistant("a")], "rejected": None}) == [
        ("mixed_pair_styles", '"chosen" is a list of messages but "rejected" is not.', hint)]


def test_trl_messages_with_an_explicit_prompt():
    assert issues_of({"prompt": [user("q")], "chosen": [assistant("a")], "rejected": [assistant("")]}) == []
    assert issues_of({"prompt": [], "chosen": [assistant("a")], "rejected": [assistant("b")]}) == [
        ("missing_messages_list", "The prompt is an empty list.", "Give it at least one message.")]
    assert issues_of({"prompt": [user("q")], "chosen": [], "rejected": [user("b")]}) == [
        ("missing_messages_list", '"chosen" is an empty list.', "Give it at least one message."),
        ("invalid_preference_side", '"rejected" does not end with an assistant message.',
         default("invalid_preference_side"))]
    robot = {"role": "robot", "content": "q"}
    code, message = chat_message_issue(robot)
    assert issues_of({"prompt": [robot], "chosen": [assistant("a")], "rejected": [assistant("b")]}) == [
        (code, f"In the prompt: {message}", default(code))]
    hint = "End the prompt with the user's turn: the answers reply to it."
    assert issues_of({"prompt": [user("q"), assistant("x")], "chosen": [assistant("a")],
                      "rejected": [assistant("b")]}) == [
        ("consecutive_same_role", 'The prompt ends with an assistant message, and "chosen" starts with another.', hint),
        ("consecutive_same_role", 'The prompt ends with an assistant message, and "rejected" starts with another.',
         hint)]


def test_trl_messages_with_an_implicit_prompt():
    assert issues_of({"chosen": [user("q"), assistant("a")], "rejected": [user("q"), assistant("b")]}) == []
    no_prompt = ("no_shared_prompt", "Chosen and rejected share no first message, so there is no prompt (the "
                 "implicit-prompt format takes it from what they share).",
                 'Start both with the same prompt messages, or add a "prompt" list.')
    assert issues_of({"chosen": [user("q"), assistant("a")], "rejected": [user("other"), assistant("b")]}) == [
        no_prompt]
    assert issues_of({"chosen": [assistant("a")], "rejected": [assistant("b")]}) == [no_prompt]
    assert issues_of({"chosen": [user("q"), assistant("a")], "rejected": [user("q"), user("b")]}) == [
        ("consecutive_same_role", 'In "rejected": Messages 1 and 2 are both user messages.',
         default("consecutive_same_role")),
        ("invalid_preference_side", '"rejected" does not end with an assistant message.',
         default("invalid_preference_side"))]
    # sides that are wrong are told as such, not also as sharing nothing
    assert issues_of({"chosen": [user("q"), user("a")], "rejected": [user("p"), assistant("b")]}) == [
        ("consecutive_same_role", 'In "chosen": Messages 1 and 2 are both user messages.',
         default("consecutive_same_role")),
        ("invalid_preference_side", '"chosen" does not end with an assistant message.',
         default("invalid_preference_side"))]


def test_trl_text_fields_that_are_not_text():
    hint = "Write prompt, chosen and rejected all as text, or all as lists of messages."
    assert issues_of({"prompt": "q", "chosen": 3, "rejected": "b"}) == [
        ("non_string_field", '"chosen" is a number, neither text nor a list of messages.', hint)]
    assert issues_of({"prompt": "q", "chosen": {"text": "a"}, "rejected": [assistant("b")]}) == [
        ("mixed_pair_styles", '"chosen" is an object, neither text nor a list of messages.', hint)]
    assert issues_of({"prompt": "q", "chosen": "a", "rejected": 2}) == [
        ("non_string_field", '"rejected" is not text ("chosen" is).', hint)]
    assert issues_of({"prompt": None, "chosen": "a", "rejected": True}) == [
        ("non_string_field", '"rejected", "prompt" are not text ("chosen" is).', hint)]
    assert issues_of({"prompt": [user("q")], "chosen": "a", "rejected": "b"}) == [
        ("mixed_pair_styles", '"prompt" is not text ("chosen" is).', hint)]


def test_trl_text_that_cannot_be_encoded_or_is_empty():
    nul = "contains a NUL character (\\u0000)"
    surrogate = "contains a lone surrogate (a broken UTF-16 character)"
    assert issues_of({"prompt": "q\x00", "chosen": "a", "rejected": "b\ud800"}) == [
        ("unencodable_content", f'"rejected" {surrogate}.', default("unencodable_content")),
        ("unencodable_content", f'"prompt" {nul}.', default("unencodable_content"))]
    assert issues_of({"prompt": " \n", "chosen": "a", "rejected": "b"}) == [
        ("missing_content", '"prompt" is empty.', "Give the prompt the answers reply to.")]
    assert issues_of({"prompt": "q", "chosen": "", "rejected": " "}) == []  # empty answers: the check's
    no_prompt = ("no_shared_prompt", "Chosen and rejected share no beginning, so there is no prompt (the "
                 "implicit-prompt format takes it from what they share).",
                 'Add a "prompt" field, or start both texts with the same prompt.')
    assert issues_of({"chosen": "Yes.", "rejected": "No."}) == [no_prompt]
    assert issues_of({"chosen": "  yes", "rejected": "  no"}) == [no_prompt]  # only spaces shared
    assert issues_of({"chosen": "a ", "rejected": "b "}) == [no_prompt]  # nothing shared, ends alike
    assert issues_of({"chosen": "Q: a", "rejected": "Q: b"}) == []


# --------------------------------------------------------------------------- validation: ShareGPT


def sharegpt(conversations=None, chosen=None, rejected=None, **extra):
    return {"conversations": conversations if conversations is not None else [{"from": "human", "value": "q"}],
            "chosen": chosen if chosen is not None else {"from": "gpt", "value": "a"},
            "rejected": rejected if rejected is not None else {"from": "gpt", "value": "b"}, **extra}


def test_sharegpt_pairs_valid_ones():
    assert issues_of(sharegpt()) == []
    assert issues_of(sharegpt(chosen={"value": "a"}, rejected={"from": "assistant", "value": "b"})) == []
    assert issues_of(sharegpt(system="Be brief.")) == []


def test_sharegpt_conversation_issues_are_the_conversations():
    found = issues_of(sharegpt(conversations=[{"from": "alien", "value": "q"}]))
    assert found == [("unrecognized_role", "In \"conversations\": Turn 1 is from 'alien'; expected human, gpt, "
                      "system, function_call, observation or tool.",
                      'Use "from": human, gpt, system, function_call, observation or tool.')]
    assert issues_of({"chosen": {"from": "gpt", "value": "a"}, "rejected": {"from": "gpt", "value": "b"},
                      "conversations": None}) == [
        ("missing_messages_list", 'In "conversations": "conversations" is empty.', "Add the conversation turns.")]


def test_sharegpt_conversation_shapes_and_tools():
    assert issues_of(sharegpt(conversations={"from": "human", "value": "q"})) == [
        ("messages_not_list", 'In "conversations": "conversations" is an object, not a list of turns.',
         default("messages_not_list"))]
    assert issues_of(sharegpt(tools="not json")) == [
        ("invalid_tools", 'In "conversations": The record\'s "tools" is not a list of function definitions (nor the '
         "JSON text of one).", 'Make "tools" a list (or the JSON text of a list) of {"name": ..., "parameters": '
         '{...}} function definitions.')]
    assert issues_of(sharegpt(tools=json.dumps([TOOLS[0]["function"]]))) == []


def test_sharegpt_answers_that_are_not_gpt_turns():
    assert issues_of(sharegpt(chosen="a")) == [
        ("invalid_preference_side", '"chosen" is a string, not a turn.',
         'Write "chosen": {"from": "gpt", "value": "..."}.')]
    assert issues_of(sharegpt(rejected=[])) == [
        ("invalid_preference_side", '"rejected" is a list, not a turn.',
         'Write "rejected": {"from": "gpt", "value": "..."}.')]
    assert issues_of(sharegpt(chosen=None, rejected={"from": "user", "value": "b"})) == [
        ("unrecognized_role", "\"rejected\" is from 'user', not gpt.", 'Answers are {"from": "gpt", "value": "..."}.')]
    assert issues_of({**sharegpt(), "chosen": None, "rejected": {"from": "user", "value": "b"}}) == [
        ("invalid_preference_side", '"chosen" is null, not a turn.', 'Write "chosen": {"from": "gpt", "value": "..."}.'),
        ("unrecognized_role", "\"rejected\" is from 'user', not gpt.", 'Answers are {"from": "gpt", "value": "..."}.')]
    assert issues_of(sharegpt(chosen={"from": "human", "value": "a"})) == [
        ("unrecognized_role", "\"chosen\" is from 'human', not gpt.",
         'Answers are {"from": "gpt", "value": "..."}.')]
    assert issues_of(sharegpt(rejected={"from": "gpt"})) == [
        ("non_string_field", "\"rejected\"'s value is null, not text.", 'Give the answer as text in "value".')]
    assert issues_of(sharegpt(rejected={"from": "gpt", "value": 5})) == [
        ("non_string_field", "\"rejected\"'s value is a number, not text.", 'Give the answer as text in "value".')]
    assert issues_of(sharegpt(chosen={"from": "gpt", "value": "a\x00"})) == [
        ("unencodable_content", "\"chosen\"'s value contains a NUL character (\\u0000).",
         default("unencodable_content"))]


def test_sharegpt_conversation_must_end_with_the_human():
    message = ("consecutive_same_role", "The conversation ends with a gpt turn, and the answers are gpt turns too.",
               'End "conversations" with the human\'s turn.')
    for last in ("gpt", "assistant"):
        turns = [{"from": "human", "value": "q"}, {"from": last, "value": "x"}]
        assert issues_of(sharegpt(conversations=turns)) == [message]


# --------------------------------------------------------------------------- conversion


def test_openai_to_the_canonical_pair_keeps_message_keys_and_tools():
    record = {"input": {"messages": [SYSTEM, {**user("q"), "name": "ann", "extra": 1}], "tools": TOOLS},
              "preferred_output": [{**assistant("a"), "weight": 1, "id": "x"}],
              "non_preferred_output": [assistant("b")]}
    assert prefs.to_pair(record) == {
        "prompt": [SYSTEM, {"role": "user", "content": "q", "name": "ann"}],
        "chosen": [{"role": "assistant", "content": "a", "weight": 1}],
        "rejected": [assistant("b")], "tools": TOOLS}
    assert "tools" not in prefs.to_pair(openai(tools=[]))


def test_sharegpt_to_the_canonical_pair():
    record = sharegpt(system="Be brief.", tools=json.dumps([TOOLS[0]["function"]]))
    pair = prefs.to_pair(record)
    assert pair == {"prompt": [SYSTEM, user("q")], "chosen": [assistant("a")], "rejected": [assistant("b")],
                    "tools": TOOLS}
    assert "tools" not in prefs.to_pair(sharegpt())


def test_trl_to_the_canonical_pair():
    assert prefs.to_pair({"prompt": [user("q")], "chosen": [assistant("a")], "rejected": [assistant("b")],
                          "tools": TOOLS}) == {
        "prompt": [user("q")], "chosen": [assistant("a")], "rejected": [assistant("b")], "tools": TOOLS}
    assert prefs.to_pair({"prompt": "q", "chosen": "a", "rejected": "b", "tools": TOOLS}) == {
        "prompt": [user("q")], "chosen": [assistant("a")], "rejected": [assistant("b")], "tools": TOOLS}
    assert "tools" not in prefs.to_pair({"prompt": "q", "chosen": "a", "rejected": "b", "tools": []})
    # implicit messages: the shared beginning is the prompt, the rest the answers
    conversation = [SYSTEM, user("q"), assistant("x"), user("more?")]
    assert prefs.to_pair({"chosen": [*conversation, assistant("a"), user("ok"), assistant("c")],
                          "rejected": [*conversation, assistant("b")]}) == {
        "prompt": conversation, "chosen": [assistant("a"), user("ok"), assistant("c")],
        "rejected": [assistant("b")]}
    # one shared message, then two different turns on each side: the prompt is that one message
    assert prefs.to_pair({"chosen": [user("q"), assistant("x"), user("r"), assistant("y")],
                          "rejected": [user("q"), assistant("z"), user("s"), assistant("w")]}) == {
        "prompt": [user("q")], "chosen": [assistant("x"), user("r"), assistant("y")],
        "rejected": [assistant("z"), user("s"), assistant("w")]}
    # the rejected side whole inside the chosen one: it keeps its last message
    assert prefs.to_pair({"chosen": [user("q"), assistant("a"), user("r"), assistant("b")],
                          "rejected": [user("q"), assistant("a")]}) == {
        "prompt": [user("q")], "chosen": [assistant("a"), user("r"), assistant("b")], "rejected": [assistant("a")]}
    # a shorter side keeps its last message: one side whole inside the other is not an empty answer
    assert prefs.to_pair({"chosen": [user("q"), assistant("a")], "rejected": [user("q"), assistant("a"),
                                                                              user("r"), assistant("b")]}) == {
        "prompt": [user("q")], "chosen": [assistant("a")], "rejected": [assistant("a"), user("r"), assistant("b")]}


@pytest.mark.parametrize("chosen, rejected, prompt, answers", [
    ("The sky is blue.", "The sky is green.", "The sky is", (" blue.", " green.")),
    ("abc1", "abc2", "abc", ("1", "2")),
    ("a b", "a c", "a", (" b", " c")),
    ("same", "same", "sam", ("e", "e")),  # each side keeps its last character
    ("ab", "abcd", "a", ("b", "bcd")),
    ("abcd", "ab", "a", ("bcd", "b")),
    (" x", " y", "", (" x", " y")),  # the space before the difference stays with the answers
    ("xy", "zy", "", ("xy", "zy")),
])
def test_the_implicit_text_prompt_is_trls(chosen, rejected, prompt, answers):
    """TRL's `extract_prompt`: the common beginning, less a space before the first differing character."""
    assert prefs.to_pair({"chosen": chosen, "rejected": rejected}) == {
        "prompt": [user(prompt)], "chosen": [assistant(answers[0])], "rejected": [assistant(answers[1])]}


def test_the_two_conversations_of_a_pair():
    pair = {"prompt": [SYSTEM, user("q")], "chosen": [assistant("a")], "rejected": [assistant("b")]}
    assert prefs.chats_of(pair) == ({"messages": [SYSTEM, user("q"), assistant("a")]},
                                    {"messages": [SYSTEM, user("q"), assistant("b")]})
    assert prefs.chats_of({**pair, "tools": TOOLS}) == (
        {"messages": [SYSTEM, user("q"), assistant("a")], "tools": TOOLS},
        {"messages": [SYSTEM, user("q"), assistant("b")], "tools": TOOLS})
    assert prefs.chats_of({**pair, "tools": []})[0] == {"messages": [SYSTEM, user("q"), assistant("a")]}


# --------------------------------------------------------------------------- exporters


CALL = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]}


def test_openai_and_trl_exports_by_hand():
    pair = {"prompt": [SYSTEM, user("q")], "chosen": [assistant("a")], "rejected": [CALL]}
    assert prefs.export_pair(pair, "openai_dpo") == {
        "input": {"messages": [SYSTEM, user("q")]}, "preferred_output": [assistant("a")],
        "non_preferred_output": [CALL]}
    assert prefs.export_pair({**pair, "tools": TOOLS}, "openai_dpo")["input"] == {
        "messages": [SYSTEM, user("q")], "tools": TOOLS}
    assert prefs.export_pair({**pair, "tools": []}, "openai_dpo")["input"] == {"messages": [SYSTEM, user("q")]}
    assert prefs.export_pair({**pair, "extra": 1}, "trl") == pair
    assert prefs.export_pair({**pair, "tools": TOOLS}, "trl") == {**pair, "tools": TOOLS}
    assert prefs.export_pair(pair, "trl_implicit") == {
        "chosen": [SYSTEM, user("q"), assistant("a")], "rejected": [SYSTEM, user("q"), CALL]}
    assert prefs.export_pair({**pair, "tools": TOOLS}, "trl_implicit")["tools"] == TOOLS
    assert "tools" not in prefs.export_pair({**pair, "tools": []}, "trl_implicit")


@pytest.mark.parametrize("side, error", [
    ([assistant("a"), assistant("b")], '"chosen" must be exactly one assistant message for this format'),
    ([], '"chosen" must be exactly one assistant message for this format'),
    ([user("a")], '"chosen" must be exactly one assistant message for this format'),
])
def test_openai_export_takes_one_assistant_answer(side, error):
    pair = {"prompt": [user("q")], "chosen": side, "rejected": [assistant("b")]}
    with pytest.raises(ValueError) as raised:
        prefs.export_pair(pair, "openai_dpo")
    assert str(raised.value) == error


def test_text_exports_by_hand():
    pair = {"prompt": [user("q")], "chosen": [assistant("a")], "rejected": [assistant("b")]}
    assert prefs.export_pair(pair, "trl_standard") == {"prompt": "q", "chosen": "a", "rejected": "b"}
    assert prefs.export_pair(pair, "sharegpt") == {
        "conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "a"},
        "rejected": {"from": "gpt", "value": "b"}}
    with_system = {**pair, "prompt": [SYSTEM, user("q")], "tools": TOOLS}
    exported = prefs.export_pair(with_system, "sharegpt")
    assert exported["system"] == "Be brief." and json.loads(exported["tools"]) == [TOOLS[0]["function"]]


@pytest.mark.parametrize("change, error", [
    ({"prompt": [SYSTEM, user("q")]},
     "plain-text pairs need a prompt of one user message (no system message, no earlier turns)"),
    ({"prompt": [assistant("q")]},
     "plain-text pairs need a prompt of one user message (no system message, no earlier turns)"),
    ({"prompt": [{"role": "user", "content": [{"type": "text", "text": "q"}]}]},
     "plain-text pairs need a prompt of one user message (no system message, no earlier turns)"),
    ({"tools": TOOLS}, "plain-text pairs cannot hold tools"),
    ({"chosen": [CALL]}, '"chosen" must be a text answer for this format'),
    ({"rejected": [{"role": "assistant", "content": [{"type": "text", "text": "b"}]}]},
     '"rejected" must be a text answer for this format'),
    ({"rejected": [user("b")]}, '"rejected" must be exactly one assistant message for this format'),
])
def test_plain_text_export_refuses_what_it_cannot_hold(change, error):
    pair = {"prompt": [user("q")], "chosen": [assistant("a")], "rejected": [assistant("b")], **change}
    with pytest.raises(ValueError) as raised:
        prefs.export_pair(pair, "trl_standard")
    assert str(raised.value) == error


def test_sharegpt_export_takes_text_answers():
    pair = {"prompt": [user("q")], "chosen": [assistant("a")], "rejected": [CALL]}
    with pytest.raises(ValueError) as raised:
        prefs.export_pair(pair, "sharegpt")
    assert str(raised.value) == '"rejected" must be a text answer for this format'


def test_export_errors_name_the_side():
    pair = {"prompt": [user("q")], "chosen": [assistant("a")], "rejected": [assistant("b")]}
    with pytest.raises(ValueError) as raised:
        prefs.export_pair({**pair, "rejected": [user("b")]}, "openai_dpo")
    assert str(raised.value) == '"rejected" must be exactly one assistant message for this format'
    with pytest.raises(ValueError) as raised:
        prefs.export_pair({**pair, "chosen": [CALL]}, "sharegpt")
    assert str(raised.value) == '"chosen" must be a text answer for this format'
    # text and a tool call in one answer: not a text answer either
    both = {**CALL, "content": "Let me look."}
    for fmt in ("sharegpt", "trl_standard"):
        with pytest.raises(ValueError) as raised:
            prefs.export_pair({**pair, "chosen": [both]}, fmt)
        assert str(raised.value) == '"chosen" must be a text answer for this format'


def test_an_unknown_export_format_names_the_known_ones(tmp_path):
    known = "choose one of trl, openai_dpo, sharegpt, trl_standard, trl_implicit"
    with pytest.raises(ValueError) as raised:
        prefs.export_pair({}, "alpaca")
    assert str(raised.value) == f"unknown pair format 'alpaca'; {known}"
    with pytest.raises(ValueError) as raised:
        prefs.write_pairs([], tmp_path / "out.jsonl", "dpo")
    assert str(raised.value) == f"unknown pair format 'dpo'; {known}"
    assert not (tmp_path / "out.jsonl").exists()


def _pair(i):
    return {"prompt": [user(f"q{i}")], "chosen": [assistant(f"a{i}")], "rejected": [assistant(f"b{i}")]}


def test_write_pairs_writes_these_bytes(tmp_path):
    out = tmp_path / "deep" / "er" / "pairs.jsonl"
    assert prefs.write_pairs([_pair(1), _pair(2)], out) == 2
    assert out.read_bytes() == (
        b'{"prompt":[{"role":"user","content":"q1"}],"chosen":[{"role":"assistant","content":"a1"}],'
        b'"rejected":[{"role":"assistant","content":"b1"}]}\n'
        b'{"prompt":[{"role":"user","content":"q2"}],"chosen":[{"role":"assistant","content":"a2"}],'
        b'"rejected":[{"role":"assistant","content":"b2"}]}\n')
    assert sorted(p.name for p in out.parent.iterdir()) == ["pairs.jsonl"]  # no .part left behind
    standard = tmp_path / "standard.jsonl"
    unwritable = {**_pair(3), "chosen": [CALL]}
    assert prefs.write_pairs([_pair(1), unwritable, _pair(2)], standard, "trl_standard") == 2
    assert standard.read_bytes() == (b'{"prompt":"q1","chosen":"a1","rejected":"b1"}\n'
                                     b'{"prompt":"q2","chosen":"a2","rejected":"b2"}\n')


def test_write_pairs_writes_sharegpt_as_one_array(tmp_path):
    out = tmp_path / "pairs.json"
    assert prefs.write_pairs([{**_pair(0), "chosen": [CALL]}, _pair(1), _pair(2)], out, "sharegpt") == 2
    turn = b'{"conversations":[{"from":"human","value":"q%d"}],"chosen":{"from":"gpt","value":"a%d"},' \
           b'"rejected":{"from":"gpt","value":"b%d"}}'
    assert out.read_bytes() == b"[\n" + turn % (1, 1, 1) + b",\n" + turn % (2, 2, 2) + b"\n]\n"
    assert prefs.write_pairs([], out, "sharegpt") == 0
    assert out.read_bytes() == b"[]\n" and json.loads(out.read_bytes()) == []
    assert prefs.write_pairs([_pair(1)], out, "sharegpt") == 1
    assert out.read_bytes() == b"[\n" + turn % (1, 1, 1) + b"\n]\n"


def test_write_pairs_skips_pairs_json_cannot_hold(tmp_path):
    out = tmp_path / "pairs.jsonl"
    odd = {**_pair(1), "tools": [object()]}  # not JSON
    missing = {"prompt": [user("q")], "chosen": [assistant("a")]}  # no rejected side
    assert prefs.write_pairs([odd, missing, _pair(2)], out, "trl_implicit") == 1
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"chosen": [user("q2"), assistant("a2")], "rejected": [user("q2"), assistant("b2")]}]
    assert prefs.write_pairs([_pair(1)], str(out), "trl") == 1  # a path as text works too


# --------------------------------------------------------------------------- reading a file of pairs


def read(rows: list) -> tuple[list[prefs.Pair], list[Issue]]:
    issues: list[Issue] = []
    records = [row if isinstance(row, Record) else Record(line=i, data=row) for i, row in enumerate(rows, 1)]
    return list(prefs.iter_pairs(records, issues.append)), issues


def test_iter_pairs_reports_what_is_not_a_pair_at_its_line():
    broken = Issue(2, "invalid_json", "Line 2 is not valid JSON.", "Fix it.")
    rows = [{"prompt": "q", "chosen": "a", "rejected": "b"}, Record(line=2, data=None, problem=broken),
            ["a", "list"], {"messages": [user("q"), assistant("a")]}, {"text": 1}, {"chosen": "only"},
            {"rejected": "only"}, {"prompt": "q2", "chosen": "a2", "rejected": "b2"}]
    pairs, issues = read(rows)
    assert [(p.line, p.source_format, p.style, p.prompt_kind) for p in pairs] == [
        (1, "trl", "standard", "explicit"), (8, "trl", "standard", "explicit")]
    assert pairs[1].pair == {"prompt": [user("q2")], "chosen": [assistant("a2")], "rejected": [assistant("b2")]}
    hint = "give every record a prompt with a chosen and a rejected answer, or split the file"
    assert [(i.line, i.code, i.message, i.hint, i.severity) for i in issues] == [
        (2, "invalid_json", "Line 2 is not valid JSON.", "Fix it.", "error"),
        (3, "data_type", "The record is a list, not a JSON object.", default("data_type"), "error"),
        (4, "mixed_formats", "this record is in chat format, but the file holds preference pairs", hint, "error"),
        (5, "mixed_formats", "this record is not a pair, but the file holds preference pairs", hint, "error"),
        (6, "missing_field", 'The preference record has no "rejected".',
         'Add "rejected" (the worse answer), as text or a list of messages.', "error"),
        (7, "missing_field", 'The preference record has no "chosen".',
         'Add "chosen" (the preferred answer), as text or a list of messages.', "error")]


def test_iter_pairs_keeps_the_shape_of_the_first_valid_pair():
    rows = [{"prompt": "q", "chosen": 1, "rejected": "b"},  # 1: invalid, sets no shape
            {"chosen": [user("q"), assistant("a")], "rejected": [user("q"), assistant("b")]},  # 2: the shape
            {"prompt": [user("q")], "chosen": [assistant("a")], "rejected": [assistant("b")]},  # 3: explicit
            {"chosen": "Q: a", "rejected": "Q: b"},  # 4: text
            openai(),  # 5
            {"chosen": [user("p"), assistant("a")], "rejected": [user("p"), assistant("b")]}]  # 6: same as 2
    pairs, issues = read(rows)
    assert [(p.line, p.source_format, p.style, p.prompt_kind) for p in pairs] == [
        (2, "trl", "conversational", "implicit"), (6, "trl", "conversational", "implicit")]
    assert pairs[0].pair == {"prompt": [user("q")], "chosen": [assistant("a")], "rejected": [assistant("b")]}
    hint = "write every pair the same way (`ftassist pairs convert` rewrites a file in one format)"
    first = "TRL preference (conversational, implicit prompt) (from line 2)"
    assert [(i.line, i.code, i.message, i.hint) for i in issues[1:]] == [
        (3, "mixed_formats", f"this pair is TRL preference (conversational, explicit prompt), but the file is {first}",
         hint),
        (4, "mixed_formats", f"this pair is TRL preference (standard, implicit prompt), but the file is {first}",
         hint),
        (5, "mixed_formats", f"this pair is OpenAI DPO, but the file is {first}", hint)]
    assert issues[0].line == 1 and issues[0].code == "non_string_field"


def test_iter_pairs_of_other_formats_say_their_shape():
    pairs, issues = read([sharegpt(), openai()])
    assert [(p.line, p.source_format, p.style, p.prompt_kind) for p in pairs] == [
        (1, "sharegpt", "conversational", "explicit")]
    assert [(i.line, i.message) for i in issues] == [
        (2, "this pair is OpenAI DPO, but the file is ShareGPT pairs (from line 1)")]



# --------------------------------------------------------------------------- the identities of a pair


def test_the_text_of_an_answer_side():
    parts = {"role": "assistant", "content": [{"type": "text", "text": "x"}, {"type": "image"}, "y"]}
    calls = json.dumps(CALL["tool_calls"], sort_keys=True, separators=(",", ":"))
    assert prefs.side_text([assistant("a"), CALL, "junk", parts]) == f"a\n\n{calls}\nx\n\ny"
    assert prefs.side_text([{"role": "assistant", "content": "b", "tool_calls": []}]) == "b"
    assert prefs.side_text([]) == ""


def test_the_prompt_key_is_the_messages_spacing_aside():
    import hashlib

    key = prefs.prompt_key({"prompt": [SYSTEM, user("  What   is\tit? "), "junk"]})
    by_hand = hashlib.blake2b(b'[["system","Be brief."],["user","What is it?"]]', digest_size=16).digest()
    assert key == by_hand
    assert prefs.prompt_key({"prompt": [SYSTEM, user("What is it?")]}) == by_hand
    assert prefs.prompt_key({"prompt": [user("What is it?")]}) != by_hand  # the system prompt counts
    assert prefs.prompt_key({"prompt": [assistant("What is it?")]}) != prefs.prompt_key({"prompt": [user("What is it?")]})


def test_the_pair_key_is_the_whole_pair_spacing_aside():
    pair = {"prompt": [user("q")], "chosen": [assistant("A good  answer")], "rejected": [assistant("bad")]}
    spaced = {"prompt": [user(" q ")], "chosen": [assistant(" A good answer\n")], "rejected": [assistant("bad ")]}
    assert prefs.pair_key(pair) == prefs.pair_key(spaced)
    swapped = {**pair, "chosen": pair["rejected"], "rejected": pair["chosen"]}
    assert prefs.pair_key(swapped) != prefs.pair_key(pair)
    assert prefs.pair_key({**pair, "tools": TOOLS}) != prefs.pair_key(pair)
    reordered = [{"function": TOOLS[0]["function"], "type": "function"}]  # the same tools, keys in another order
    assert prefs.pair_key({**pair, "tools": reordered}) == prefs.pair_key({**pair, "tools": TOOLS})
    assert prefs.pair_key({**pair, "rejected": [assistant("worse")]}) != prefs.pair_key(pair)
    assert prefs.pair_key({**pair, "prompt": [user("p")]}) != prefs.pair_key(pair)


# --------------------------------------------------------------------------- the checks, pair by pair


def pair(prompt, chosen, rejected):
    return {"prompt": [user(prompt)], "chosen": [assistant(chosen)], "rejected": [assistant(rejected)]}


def warned(checks, line, value) -> list[tuple]:
    return [(w.line, w.code, w.message, w.hint, w.severity) for w in checks.add(line, value)]


def test_each_pair_is_told_what_is_wrong_with_it():
    checks = prefs.PairChecks()
    dup_hint = "drop the copy (Fix & split keeps the first): a repeated pair counts twice"
    empty_hint = "give both answers text, or drop the pair (Fix & split drops it)"
    same_hint = ("a pair teaches only by its difference: make the rejected answer the worse one, "
                 "or drop the pair (Fix & split drops it)")
    opposite_hint = "keep the pair whose preference is right and drop the other: together they cancel out"
    assert warned(checks, 1, pair("Q1?", "Long answer here", "Short")) == []
    assert warned(checks, 2, pair(" Q1? ", "  Long   answer here ", "Short")) == [
        (2, "duplicate_pair", "the same pair as line 1", dup_hint, "warning")]
    assert warned(checks, 3, pair("Q1?", "Short", "Long answer here")) == [
        (3, "contradictory_pair", "line 1 prefers the other answer to the same prompt", opposite_hint, "warning")]
    assert warned(checks, 4, pair("Q2?", "Same", "Same ")) == [
        (4, "identical_pair", "the chosen and the rejected answers are the same text", same_hint, "warning")]
    assert warned(checks, 5, pair("Q3?", " ", "Yes")) == [
        (5, "empty_pair_side", "the chosen answer is empty", empty_hint, "warning")]
    assert warned(checks, 6, pair("Q4?", "Yes", "")) == [
        (6, "empty_pair_side", "the rejected answer is empty", empty_hint, "warning")]
    assert warned(checks, 7, pair("Q5?", "", "\n")) == [
        (7, "empty_pair_side", "both answers are empty", empty_hint, "warning")]
    assert warned(checks, 8, pair("Q5?", "", "")) == [
        (8, "empty_pair_side", "both answers are empty", empty_hint, "warning"),
        (8, "duplicate_pair", "the same pair as line 7", dup_hint, "warning")]
    assert warned(checks, 9, pair("Q2?", "Same", "Same")) == [
        (9, "identical_pair", "the chosen and the rejected answers are the same text", same_hint, "warning"),
        (9, "duplicate_pair", "the same pair as line 4", dup_hint, "warning")]
    assert warned(checks, 10, pair("Q3?", "Yes", "")) == [  # the opposite of line 5, with an empty side
        (10, "empty_pair_side", "the rejected answer is empty", empty_hint, "warning"),
        (10, "contradictory_pair", "line 5 prefers the other answer to the same prompt", opposite_hint, "warning")]
    assert warned(checks, 11, pair("Q1?", "Long answer here", "Short")) == [  # a third copy: still of line 1 ...
        (11, "duplicate_pair", "the same pair as line 1", dup_hint, "warning"),
        (11, "contradictory_pair", "line 3 prefers the other answer to the same prompt", opposite_hint, "warning")]
    assert warned(checks, 12, pair("Q1?", "Short", "Long answer here")) == [  # the first opposite is line 1's
        (12, "duplicate_pair", "the same pair as line 3", dup_hint, "warning"),
        (12, "contradictory_pair", "line 1 prefers the other answer to the same prompt", opposite_hint, "warning")]
    assert checks.n == 12
    assert checks.summary() == {
        "identical_lines": [4, 9],
        "empty_lines": [5, 6, 7, 8, 10],
        "duplicate_lines": [[2, 1], [8, 7], [9, 4], [11, 1], [12, 3]],
        "contradiction_lines": [[3, 1], [10, 5], [11, 3], [12, 1]],
        # lengths of the pairs with two different, non-empty answers: lines 1, 2, 3, 11, 12 (16 vs 5 characters)
        "length": {"compared": 5, "chosen_longer": 3, "chosen_shorter": 2, "chosen_longer_share": 0.6,
                   "median_ratio": 3.2, "mean_ratio": round((3 * 16 / 5 + 2 * 5 / 16) / 5, 3)},
    }
    assert checks.length_lines == [1, 2, 3, 11, 12]
    assert checks.samples[4] == "prompt: Q2? | chosen: Same | rejected: Same"
    assert checks.samples[2] == "prompt: Q1? | chosen: Long answer here | rejected: Short"
    assert 1 not in checks.samples  # only the lines named in a warning keep a sample


def test_samples_are_short():
    checks = prefs.PairChecks()
    checks.add(1, pair("p" * 101, "c" * 81, "same"))
    checks.add(2, pair("p" * 101, "c" * 81, "same"))
    assert checks.samples[2] == f"prompt: {'p' * 99}… | chosen: {'c' * 79}… | rejected: same"
    checks.add(5, pair("q", "c", "r" * 81))
    checks.add(6, pair("q", "c", "r" * 81))
    assert checks.samples[6] == f"prompt: q | chosen: c | rejected: {'r' * 79}…"
    checks.add(3, pair("p" * 100, "c" * 80, "r" * 80))
    checks.add(4, pair("p" * 100, "c" * 80, "r" * 80))
    assert checks.samples[4] == f"prompt: {'p' * 100} | chosen: {'c' * 80} | rejected: {'r' * 80}"


def test_pairs_with_tools_or_calls_are_told_apart_by_them():
    checks = prefs.PairChecks()
    call_b = {**CALL, "tool_calls": [{**CALL["tool_calls"][0], "id": "c2"}]}
    assert checks.add(1, {"prompt": [user("q")], "chosen": [CALL], "rejected": [call_b]}) == []
    assert checks.add(2, {"prompt": [user("q")], "chosen": [CALL], "rejected": [call_b], "tools": TOOLS}) == []
    assert checks.summary()["duplicate_lines"] == [] and checks.summary()["identical_lines"] == []


# --------------------------------------------------------------------------- the checks, the whole file


def judged(pairs: list[dict]) -> dict[str, object]:
    checks = prefs.PairChecks()
    for line, value in enumerate(pairs, 1):
        checks.add(line, value)
    return {item.id: item for item in checks.finish()}


def distinct(n: int, start: int = 0) -> list[dict]:
    """`n` good pairs, each its own prompt, chosen and rejected of equal length (no length bias)."""
    return [pair(f"Question {i}?", f"yes {i:04d}", f"no! {i:04d}") for i in range(start, start + n)]


def test_no_pairs_are_not_judged():
    items = prefs.PairChecks().finish()
    assert [(i.id, i.title, i.status, i.summary) for i in items] == [
        ("pair_identical", "Chosen differs from rejected", "not_checked", "No valid pairs to check."),
        ("pair_empty", "No empty side", "not_checked", "No valid pairs to check."),
        ("pair_duplicates", "No repeated pairs", "not_checked", "No valid pairs to check."),
        ("pair_contradictions", "No contradictory pairs", "not_checked", "No valid pairs to check."),
        ("pair_length_bias", "No length bias", "not_checked", "No valid pairs to check.")]


def test_clean_pairs_pass():
    items = judged(distinct(12))
    assert [(i.id, i.title, i.status) for i in items.values()] == [
        ("pair_identical", "Chosen differs from rejected", "pass"), ("pair_empty", "No empty side", "pass"),
        ("pair_duplicates", "No repeated pairs", "pass"), ("pair_contradictions", "No contradictory pairs", "pass"),
        ("pair_length_bias", "No length bias", "pass")]
    assert items["pair_identical"].summary == "Every pair has two different answers."
    assert items["pair_empty"].summary == "No pair has an empty answer."
    assert items["pair_duplicates"].summary == "No pair appears twice."
    assert items["pair_contradictions"].summary == "No prompt has two pairs that prefer opposite answers."
    assert items["pair_length_bias"].summary == (
        "The chosen answer is longer in 0 of 12 pairs (0%); chosen/rejected length: median ×1.00, mean ×1.00. "
        "No strong length bias.")
    for key in ("pair_identical", "pair_empty", "pair_duplicates", "pair_contradictions", "pair_length_bias"):
        assert items[key].evidence == []
    assert items["pair_length_bias"].details == {"compared": 12, "chosen_longer": 0, "chosen_shorter": 0,
                                                 "chosen_longer_share": 0.0, "median_ratio": 1.0, "mean_ratio": 1.0}
    assert items["pair_identical"].details == {"lines": []} and items["pair_empty"].details == {"lines": []}
    assert items["pair_duplicates"].details == {"lines": []}
    assert items["pair_contradictions"].details == {"pairs": []}


def test_identical_pairs_fail_from_one_in_twenty():
    same = pair("Same?", "Same answer", "Same  answer")
    fail = judged([*distinct(19), same])["pair_identical"]
    assert fail.status == "fail"
    assert fail.summary == ("1 pair (5%) has the same chosen and rejected answer: they teach nothing (lines 20). "
                            "Fix & split drops them.")
    assert fail.evidence == [{"line": 20, "sample": "prompt: Same? | chosen: Same answer | rejected: Same answer",
                              "note": "chosen = rejected"}]
    assert fail.details == {"lines": [20]}
    assert judged([*distinct(20), same])["pair_identical"].status == "warn"
    two = judged([same, *distinct(39), pair("Other?", "x", "x")])["pair_identical"]  # 2 of 41
    assert two.status == "warn" and two.summary == (
        "2 pairs (5%) have the same chosen and rejected answer: they teach nothing (lines 1, 41). "
        "Fix & split drops them.")


def test_any_empty_answer_fails():
    item = judged([*distinct(30), pair("Empty?", "", "no")])["pair_empty"]
    assert item.status == "fail" and item.summary == (
        "1 pair has an empty answer (lines 31): DPO would learn to prefer, or avoid, saying nothing. "
        "Fix & split drops them.")
    assert item.evidence == [{"line": 31, "sample": "prompt: Empty? | chosen:  | rejected: no",
                              "note": "empty chosen answer"}]
    item = judged([pair("A?", "yes", " "), pair("B?", "", "")])["pair_empty"]
    assert item.summary.startswith("2 pairs have an empty answer (lines 1, 2): ")
    assert [e["note"] for e in item.evidence] == ["empty rejected answer", "empty both answer"]
    assert item.details == {"lines": [1, 2]}


def test_repeated_pairs_fail_from_one_in_ten():
    rows = distinct(9)
    fail = judged([*rows, rows[3]])["pair_duplicates"]
    assert fail.status == "fail" and fail.summary == (
        "1 pair (10%) repeats an earlier pair (lines 10): a repeated pair weighs twice. Fix & split keeps the first.")
    assert fail.evidence == [{"line": 10, "sample": "prompt: Question 3? | chosen: yes 0003 | rejected: no! 0003",
                              "note": "same pair as line 4"}]
    assert fail.details == {"lines": [[10, 4]]}
    warn = judged([*distinct(10), rows[3]])["pair_duplicates"]
    assert warn.status == "warn" and warn.summary.startswith("1 pair (9%) repeats an earlier pair (lines 11)")
    two = judged([*distinct(20), rows[1], rows[2]])["pair_duplicates"]
    assert two.status == "warn" and two.summary.startswith("2 pairs (9%) repeat an earlier pair (lines 21, 22)")
    assert two.details == {"lines": [[21, 2], [22, 3]]}


def test_contradictions_fail_when_both_pairs_make_one_in_twenty():
    rows = distinct(39)
    opposite = pair("Question 5?", "no! 0005", "yes 0005")
    fail = judged([*rows, opposite])["pair_contradictions"]  # 2 of 40 pairs are in the contradiction
    assert fail.status == "fail" and fail.summary == (
        "1 pair prefers B over A where an earlier pair with the same prompt prefers A over B (lines 6, 40): "
        "they cancel out. Keep the right one.")
    assert fail.evidence == [{"line": 40, "sample": "prompt: Question 5? | chosen: no! 0005 | rejected: yes 0005",
                              "note": "opposite of line 6"}]
    assert fail.details == {"pairs": [[40, 6]]}
    assert judged([*distinct(40), opposite])["pair_contradictions"].status == "warn"  # 2 of 41
    both = judged([*distinct(38), opposite, pair("Question 1?", "no! 0001", "yes 0001")])["pair_contradictions"]
    assert both.status == "fail"  # 4 of 40 pairs are in a contradiction
    two = judged([*distinct(80), opposite, pair("Question 1?", "no! 0001", "yes 0001")])["pair_contradictions"]
    assert two.status == "warn" and two.summary.startswith(
        "2 pairs prefer B over A where an earlier pair with the same prompt prefers A over B (lines 2, 6, 81, 82): ")


def test_long_lists_of_lines_are_cut():
    rows = [pair(f"Q{i}?", "same", "same") for i in range(1010)]
    item = judged(rows)["pair_identical"]
    assert item.summary == ("1,010 pairs (100%) have the same chosen and rejected answer: they teach nothing "
                            "(lines 1, 2, 3, 4, 5, 6, 7, 8 and 1,002 more). Fix & split drops them.")
    assert [e["line"] for e in item.evidence] == list(range(1, 21))  # twenty lines of evidence at most
    assert item.details == {"lines": list(range(1, 1011))}
    nine = judged([pair(f"Q{i}?", "same", "same") for i in range(9)])["pair_identical"]
    assert "(lines 1, 2, 3, 4, 5, 6, 7, 8 and 1 more)" in nine.summary
    eight = judged([pair(f"Q{i}?", "same", "same") for i in range(8)])["pair_identical"]
    assert "(lines 1, 2, 3, 4, 5, 6, 7, 8)" in eight.summary


# --------------------------------------------------------------------------- length bias


def lengths(*sides: tuple[int, int]) -> list[dict]:
    """Pairs whose chosen and rejected answers have these lengths in characters."""
    return [pair(f"Q{i}?", "c" * c, "r" * r) for i, (c, r) in enumerate(sides, 1)]


def test_length_figures_by_hand():
    checks = prefs.PairChecks()
    for line, value in enumerate(lengths((30, 10), (10, 20), (40, 10), (7, 7)), 1):
        checks.add(line, value)
    # ratios 3, 0.5, 4, 1: median (1 + 3) / 2, mean 8.5 / 4
    assert checks.length_figures() == {"compared": 4, "chosen_longer": 2, "chosen_shorter": 1,
                                       "chosen_longer_share": 0.5, "median_ratio": 2.0, "mean_ratio": 2.125}
    checks.add(5, pair("Q5?", "c" * 11, "r" * 3))
    # ratios 3, 0.5, 4, 1, 11/3: share 3/5, median 3, mean (8.5 + 11/3) / 5 = 2.4333...
    assert checks.length_figures() == {"compared": 5, "chosen_longer": 3, "chosen_shorter": 1,
                                       "chosen_longer_share": 0.6, "median_ratio": 3.0, "mean_ratio": 2.433}
    checks.add(6, pair("Q6?", "c", "r" * 2))
    assert checks.length_figures()["chosen_longer_share"] == 0.5
    checks.add(7, pair("Q7?", "c" * 5, "r" * 3))
    assert checks.length_figures()["chosen_longer_share"] == 0.5714  # 4 / 7, to four places
    one = prefs.PairChecks()
    one.add(1, pair("Q?", "c" * 11, "r" * 3))  # 11 / 3 = 3.6666...
    assert one.length_figures() == {"compared": 1, "chosen_longer": 1, "chosen_shorter": 0,
                                    "chosen_longer_share": 1.0, "median_ratio": 3.667, "mean_ratio": 3.667}
    assert prefs.PairChecks().length_figures() == {"compared": 0, "chosen_longer": 0, "chosen_shorter": 0,
                                                   "chosen_longer_share": None, "median_ratio": None,
                                                   "mean_ratio": None}


def bias(*sides: tuple[int, int]):
    return judged(lengths(*sides))["pair_length_bias"]


def test_length_bias_is_not_judged_without_different_answers_or_with_too_few():
    item = judged([pair("Q?", "", "x"), pair("R?", "same", "same")])["pair_length_bias"]
    assert (item.status, item.summary, item.evidence) == (
        "not_checked", "No pair with two non-empty, different answers to compare.", [])
    assert item.details["compared"] == 0
    nine = bias(*[(20, 10)] * 9)
    assert nine.status == "pass" and nine.summary == (
        "The chosen answer is longer in 9 of 9 pairs (100%); chosen/rejected length: median ×2.00, mean ×2.00. "
        "Too few pairs to judge a bias.")
    assert nine.evidence == [] and nine.details["compared"] == 9


LONGER_ADVICE = (" DPO learns whatever tells chosen from rejected, length included: when the chosen answer is "
                 "nearly always the longer one, the model learns to write longer, not better. Add pairs where the "
                 "better answer is the shorter one, or trim the chosen answers; a length-normalised loss (e.g. SimPO, "
                 "or DPO's `ld_alpha`) also helps.")
SHORTER_ADVICE = (" DPO learns whatever tells chosen from rejected: here it is brevity as much as quality. Add pairs "
                  "where the better answer is the longer one; a length-normalised loss (e.g. SimPO, or DPO's "
                  "`ld_alpha`) also helps.")


def test_length_bias_thresholds_seventy_and_ninety_percent():
    assert bias(*[(20, 10)] * 6, *[(10, 20)] * 4).status == "pass"  # 60%
    seventy = bias(*[(20, 10)] * 7, *[(10, 20)] * 3)
    assert seventy.status == "warn" and seventy.summary == (
        "The chosen answer is longer in 7 of 10 pairs (70%); chosen/rejected length: median ×2.00, mean ×1.55."
        + LONGER_ADVICE)
    assert bias(*[(20, 10)] * 8, *[(10, 20)] * 2).status == "warn"  # 80%
    assert bias(*[(20, 10)] * 9, (10, 20)).status == "fail"  # 90%
    # the other way: chosen shorter in 70% and 90% of the pairs (equal lengths count as not longer)
    shorter = bias(*[(10, 20)] * 7, *[(20, 10)] * 3)
    assert shorter.status == "warn" and shorter.summary == (
        "The chosen answer is longer in 3 of 10 pairs (30%); chosen/rejected length: median ×0.50, mean ×0.95."
        + SHORTER_ADVICE)
    assert bias(*[(10, 20)] * 6, *[(20, 10)] * 4).status == "pass"
    assert bias(*[(10, 20)] * 9, (20, 10)).status == "fail"
    # equal lengths lean neither way: one longer pair among same-length ones is no bias
    assert bias(*[(10, 10)] * 9, (20, 10)).status == "pass"
    assert bias(*[(10, 10)] * 2, *[(10, 20)] * 7, (20, 10)).status == "warn"  # 70% shorter
    assert bias(*[(10, 10)] * 2, *[(20, 10)] * 7, (10, 20)).status == "warn"  # 70% longer


def test_length_bias_evidence_is_the_five_most_lopsided_pairs():
    item = bias((20, 10), (50, 10), (30, 10), (10, 20), (90, 10), (40, 10), (11, 10), (60, 10), (70, 10), (80, 10),
                (1200, 1000))
    assert item.status == "fail" and item.details["chosen_longer"] == 10  # 10 of 11
    assert item.evidence == [
        {"line": 5, "sample": "", "note": "chosen 90 characters, rejected 10"},
        {"line": 10, "sample": "", "note": "chosen 80 characters, rejected 10"},
        {"line": 9, "sample": "", "note": "chosen 70 characters, rejected 10"},
        {"line": 8, "sample": "", "note": "chosen 60 characters, rejected 10"},
        {"line": 2, "sample": "", "note": "chosen 50 characters, rejected 10"}]
    shorter = bias((10, 20), (10, 50), (10, 30), (20, 10), (10, 90), (10, 40), (10, 11), (10, 60), (10, 70),
                   (1000, 1200), (10, 80))
    assert shorter.evidence == [
        {"line": 5, "sample": "", "note": "chosen 10 characters, rejected 90"},
        {"line": 11, "sample": "", "note": "chosen 10 characters, rejected 80"},
        {"line": 9, "sample": "", "note": "chosen 10 characters, rejected 70"},
        {"line": 8, "sample": "", "note": "chosen 10 characters, rejected 60"},
        {"line": 2, "sample": "", "note": "chosen 10 characters, rejected 50"}]
    big = bias(*[(2500, 1000)] * 10)
    assert big.evidence[0]["note"] == "chosen 2,500 characters, rejected 1,000"


def test_length_counts_use_thousands_separators():
    item = bias(*[(2, 1)] * 1001, *[(1, 2)] * 1000)
    assert item.summary.startswith("The chosen answer is longer in 1,001 of 2,001 pairs (50%);")


def test_a_pair_that_validates_but_does_not_convert_is_named_not_raised():
    # a tool call whose arguments nest deeper than JSON can be written back: the check lets it through,
    # the conversion to the canonical pair cannot hold it
    deep = '{"name": "lookup", "arguments": ' + "[" * 300 + "]" * 300 + "}"
    turns = [{"from": "human", "value": "q"}, {"from": "function_call", "value": deep},
             {"from": "observation", "value": "r"}, {"from": "human", "value": "and?"}]
    pairs, issues = read([sharegpt(conversations=turns), sharegpt()])
    assert [p.line for p in pairs] == [2]
    assert [(i.line, i.code, i.hint, i.severity) for i in issues] == [
        (1, "conversion_failed", "check the record's fields against the format's documentation", "error")]
    assert issues[0].message.startswith("could not convert this pair: ")

