"""Format detection, conversion to canonical chat, exporters and round trips."""

from __future__ import annotations

import json

import pytest

from ftassist.data.formats import (
    EXPORT_FORMATS,
    FORMAT_KEYS,
    alpaca_to_chat,
    chat_to_alpaca,
    chat_to_openai,
    chat_to_sharegpt,
    detect_format,
    extra_fields,
    guess_format,
    sharegpt_to_chat,
    to_chat,
    write_export,
)
from ftassist.data.load import iter_records
from tests.data import corpus

SYSTEM = {"role": "system", "content": "You are a support agent."}


def msgs(*pairs):
    return [{"role": r, "content": c} for r, c in pairs]


SINGLE = {"messages": [SYSTEM] + msgs(("user", "Where is my order?"), ("assistant", "It ships today."))}
MULTI = {"messages": [SYSTEM] + msgs(
    ("user", "Hi"), ("assistant", "Hello! How can I help?"),
    ("user", "Reset my password"), ("assistant", "Use the 'Forgot password' link."),
    ("user", "Thanks"), ("assistant", "You're welcome."),
)}
NO_SYSTEM = {"messages": msgs(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d"))}


@pytest.mark.parametrize("obj,fmt", [
    (corpus.chat(0), "chat"),
    ({"messages": "not a list"}, "chat"),
    (corpus.sharegpt(0), "sharegpt"),
    (corpus.instruction(0), "instruction"),
    (corpus.instruction(0, with_input=False), "instruction"),
    (corpus.completion(0), "completion"),
    ({"instruction": "x"}, None),
    ({"prompt": "x"}, None),
    ({"text": "x"}, None),
    ([1, 2], None),
    ("s", None),
    (None, None),
])
def test_detect_format(obj, fmt):
    assert detect_format(obj) == fmt


def test_detection_and_guess_follow_one_table():
    """detect_format is FORMAT_KEYS unrolled for speed: every mix of the marker keys agrees."""
    from itertools import combinations

    markers = sorted({k for _, keys in FORMAT_KEYS for k in keys})
    for n in range(len(markers) + 1):
        for present in combinations(markers, n):
            obj = dict.fromkeys(present, "x")
            full = next((fmt for fmt, keys in FORMAT_KEYS if all(k in obj for k in keys)), None)
            some = next((fmt for fmt, keys in FORMAT_KEYS if any(k in obj for k in keys)), None)
            assert detect_format(obj) == full, present
            assert guess_format(obj) == some, present
    assert guess_format({"output": "x"}) == "instruction" and guess_format({"text": "x"}) is None


def test_every_format_detected_from_files(tmp_path):
    path = corpus.mixed_formats(tmp_path)
    assert [detect_format(r.data) for r in iter_records(path)] == [
        "chat", "instruction", "completion", "sharegpt", "chat"]


def test_chat_keeps_openai_keys_and_tools():
    rec = {
        "messages": [
            {"role": "user", "content": "weather?", "name": "bob", "junk": 1},
            {"role": "assistant", "content": None, "weight": 0, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
            {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
            {"role": "assistant", "content": "Sunny.", "weight": 1},
        ],
        "tools": [{"type": "function", "function": {"name": "w", "parameters": {}}}],
        "category": "weather",
    }
    chat = to_chat(rec, "chat")
    assert chat["tools"] == rec["tools"]
    assert chat["messages"][0] == {"role": "user", "content": "weather?", "name": "bob"}
    assert chat["messages"][1]["tool_calls"][0]["id"] == "c1" and chat["messages"][1]["weight"] == 0
    assert chat["messages"][2]["tool_call_id"] == "c1"
    assert "category" not in chat
    assert extra_fields(rec, "chat") == {"category": "weather"}
    assert chat_to_openai(chat) == chat


def test_instruction_to_chat():
    rec = {"instruction": "Translate", "input": "bonjour", "output": "hello", "system": "Be brief.", "label": "fr"}
    assert to_chat(rec, "instruction") == {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Translate\n\nbonjour"},
        {"role": "assistant", "content": "hello"},
    ]}
    assert to_chat({"instruction": "Hi", "input": "  ", "output": "Yo"}, "instruction")["messages"] == msgs(
        ("user", "Hi"), ("assistant", "Yo"))
    assert extra_fields(rec, "instruction") == {"label": "fr"}


def test_completion_to_chat():
    assert to_chat({"prompt": "p", "completion": "c", "id": 7}, "completion") == {
        "messages": msgs(("user", "p"), ("assistant", "c"))}
    assert extra_fields({"prompt": "p", "completion": "c", "id": 7}, "completion") == {"id": 7}


def test_sharegpt_roles():
    rec = {"conversations": [
        {"from": "system", "value": "sys"},
        {"from": "human", "value": "q"},
        {"from": "function_call", "value": '{"name": "f", "arguments": {}}'},
        {"from": "observation", "value": "result"},
        {"from": "gpt", "value": "a"},
        {"from": "user", "value": "q2"},
        {"from": "chatgpt", "value": "a2"},
        {"from": "tool", "value": "r2"},
        {"from": "assistant", "value": "a3"},
    ], "source": "x"}
    roles = [m["role"] for m in to_chat(rec, "sharegpt")["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user", "assistant", "tool", "assistant"]
    messages = to_chat(rec, "sharegpt")["messages"]
    # the function call stays a call, and the observation answers it
    assert messages[2] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    assert messages[3] == {"role": "tool", "content": "result", "tool_call_id": "call_1"}
    assert "tool_call_id" not in messages[7]  # a tool turn with no call before it answers none
    assert extra_fields(rec, "sharegpt") == {"source": "x"}


def test_sharegpt_accepts_role_content_items_and_top_level_system():
    rec = {"system": "S", "conversations": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}
    assert to_chat(rec, "sharegpt") == {"messages": msgs(("system", "S"), ("user", "u"), ("assistant", "a"))}


@pytest.mark.parametrize("rec,fmt,msg", [
    ({"conversations": [{"from": "alien", "value": "x"}]}, "sharegpt", "unknown speaker"),
    ({"conversations": "nope"}, "sharegpt", "must be a list"),
    ({"instruction": 3, "output": "x"}, "instruction", "must be a string"),
    ({"messages": [1]}, "chat", "every message"),
    ({"prompt": "x", "completion": "y"}, "weird", "unknown format"),
])
def test_to_chat_errors_are_clear_value_errors(rec, fmt, msg):
    with pytest.raises(ValueError, match=msg):
        to_chat(rec, fmt)


@pytest.mark.parametrize("chat", [SINGLE, MULTI, NO_SYSTEM], ids=["single", "multi", "no_system"])
def test_round_trip_alpaca(chat):
    alpaca = chat_to_alpaca(chat)
    assert alpaca["instruction"] == chat["messages"][-2]["content"]
    assert alpaca["output"] == chat["messages"][-1]["content"]
    assert detect_format(alpaca) == "instruction"
    assert alpaca_to_chat(alpaca) == chat


def test_alpaca_multi_turn_uses_history():
    alpaca = chat_to_alpaca(MULTI)
    assert alpaca["system"] == SYSTEM["content"]
    assert alpaca["history"] == [["Hi", "Hello! How can I help?"], ["Reset my password", "Use the 'Forgot password' link."]]


@pytest.mark.parametrize("chat", [SINGLE, MULTI, NO_SYSTEM], ids=["single", "multi", "no_system"])
def test_round_trip_sharegpt(chat):
    sg = chat_to_sharegpt(chat)
    assert detect_format(sg) == "sharegpt"
    assert {t["from"] for t in sg["conversations"]} <= {"human", "gpt"}
    assert sharegpt_to_chat(sg) == chat


def test_sharegpt_tools_round_trip_as_json_string():
    chat = dict(SINGLE, tools=[{"type": "function", "function": {"name": "f"}}])
    sg = chat_to_sharegpt(chat)
    assert isinstance(sg["tools"], str)
    assert sharegpt_to_chat(sg) == chat


def test_alpaca_refuses_what_it_cannot_hold():
    with pytest.raises(ValueError):
        chat_to_alpaca({"messages": msgs(("user", "a"))})
    with pytest.raises(ValueError):
        chat_to_alpaca({"messages": msgs(("user", "a"), ("tool", "b"))})


def test_write_export_streams_each_format(tmp_path):
    chats = [SINGLE, MULTI, {"messages": msgs(("user", "only a question"))}]
    assert EXPORT_FORMATS == ("openai", "alpaca", "sharegpt")
    n = write_export(iter(chats), tmp_path / "o.jsonl", "openai")
    assert n == 3
    lines = (tmp_path / "o.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == chats
    assert write_export(iter(chats), tmp_path / "a.json", "alpaca") == 2  # the last has no answer
    alpaca = json.loads((tmp_path / "a.json").read_text())
    assert [alpaca_to_chat(a) for a in alpaca] == chats[:2]
    assert write_export(iter(chats), tmp_path / "s.json", "sharegpt") == 3
    sg = json.loads((tmp_path / "s.json").read_text())
    assert [sharegpt_to_chat(s) for s in sg] == chats
    # the exported files load back through the loader as the right format
    assert [detect_format(r.data) for r in iter_records(tmp_path / "a.json")] == ["instruction"] * 2
    assert [detect_format(r.data) for r in iter_records(tmp_path / "s.json")] == ["sharegpt"] * 3
    assert write_export([], tmp_path / "empty.json", "alpaca") == 0
    assert json.loads((tmp_path / "empty.json").read_text()) == []
    with pytest.raises(ValueError, match="unknown export format"):
        write_export([], tmp_path / "x", "csv")
