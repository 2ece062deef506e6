"""Nothing lost between our own steps: for files the check accepts, `clean` writes records the
check accepts again, with the same meaning (tool calls, tool results, weights, system prompts).

The meaning of each input is read by `meaning_of_input` below, written from the formats'
documentation and independent of `formats.to_chat`: a conversion bug cannot cancel itself out.
"""

from __future__ import annotations

import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftassist.data.check import check_path
from ftassist.data.clean import clean_file

# --------------------------------------------------------------------------- generators

words = st.lists(st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6), min_size=1, max_size=5)
texts = words.map(" ".join)
names = st.sampled_from(["get_weather", "search", "add"])
arguments = st.dictionaries(st.sampled_from(["city", "query", "a", "b"]),
                            st.one_of(texts, st.integers(-5, 50)), max_size=3)
weights = st.one_of(st.none(), st.sampled_from([0, 1]))
TOOL_DEFS = [{"name": n, "description": f"the {n} tool",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
             for n in ("get_weather", "search", "add")]


@st.composite
def chat_record(draw, index: int) -> dict:
    messages: list[dict] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(texts)})
    n_calls = 0
    uses_tools = False
    for turn in range(draw(st.integers(1, 3))):
        prefix = f"record {index} turn {turn}: " if turn == 0 else ""
        messages.append({"role": "user", "content": prefix + draw(texts)})
        if draw(st.booleans()):  # a tool round: parallel calls, their results, then the answer
            uses_tools = True
            calls = []
            for _ in range(draw(st.integers(1, 2))):
                n_calls += 1
                calls.append({"id": f"c{index}_{n_calls}", "type": "function",
                              "function": {"name": draw(names), "arguments": json.dumps(draw(arguments))}})
            messages.append({"role": "assistant", "content": None, "tool_calls": calls})
            for call in calls:
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": draw(texts)})
        answer = {"role": "assistant", "content": draw(texts)}
        weight = draw(weights)
        if weight is not None:
            answer["weight"] = weight
        messages.append(answer)
    record: dict = {"messages": messages}
    if uses_tools:
        record["tools"] = [{"type": "function", "function": t} for t in TOOL_DEFS]
    return record


@st.composite
def sharegpt_record(draw, index: int) -> dict:
    turns: list[dict] = []
    uses_tools = False
    for turn in range(draw(st.integers(1, 3))):
        prefix = f"record {index} turn {turn}: " if turn == 0 else ""
        turns.append({"from": "human", "value": prefix + draw(texts)})
        if draw(st.booleans()):
            uses_tools = True
            calls = [{"name": draw(names), "arguments": draw(arguments)} for _ in range(draw(st.integers(1, 2)))]
            turns.append({"from": "function_call", "value": json.dumps(calls[0] if len(calls) == 1 else calls)})
            turns.extend({"from": "observation", "value": draw(texts)} for _ in calls)
        turns.append({"from": "gpt", "value": draw(texts)})
    record: dict = {"conversations": turns}
    if draw(st.booleans()):
        record["system"] = draw(texts)
    if uses_tools:  # LLaMA-Factory keeps tools as bare definitions, often as a JSON string
        record["tools"] = json.dumps(TOOL_DEFS) if draw(st.booleans()) else TOOL_DEFS
    return record


@st.composite
def alpaca_record(draw, index: int) -> dict:
    record = {"instruction": f"record {index}: " + draw(texts), "input": draw(st.one_of(st.just(""), texts)),
              "output": draw(texts)}
    if draw(st.booleans()):
        record["system"] = draw(texts)
    if draw(st.booleans()):
        record["history"] = draw(st.lists(st.tuples(texts, texts).map(list), max_size=2))
    return record


@st.composite
def completion_record(draw, index: int) -> dict:
    return {"prompt": f"record {index}: " + draw(texts), "completion": draw(texts)}


SHAPES = {"chat": chat_record, "sharegpt": sharegpt_record, "instruction": alpaca_record,
          "completion": completion_record}


@st.composite
def dataset(draw) -> tuple[str, list[dict]]:
    shape = draw(st.sampled_from(sorted(SHAPES)))
    size = draw(st.integers(10, 14))  # OpenAI's minimum is 10 examples
    return shape, [draw(SHAPES[shape](index)) for index in range(size)]


# --------------------------------------------------------------------------- the referee


def _message(role: str, text: str | None, weight=None, calls=(), answers=None) -> tuple:
    return role, text, weight, tuple(calls), answers


def meaning_of_input(shape: str, record: dict) -> tuple:
    """(messages, tools): each message as (role, text, weight, ((name, arguments), ...), call answered)."""
    if shape == "completion":
        return (_message("user", record["prompt"]), _message("assistant", record["completion"])), ()
    if shape == "instruction":
        out = [_message("system", record["system"])] if record.get("system") else []
        for question, answer in record.get("history") or []:
            out += [_message("user", question), _message("assistant", answer)]
        user = record["instruction"] + ("\n\n" + record["input"] if record["input"] else "")
        return (*out, _message("user", user), _message("assistant", record["output"])), ()
    if shape == "sharegpt":
        out = [_message("system", record["system"])] if record.get("system") else []
        pending: list[tuple] = []
        for turn in record["conversations"]:
            who, value = turn["from"], turn["value"]
            if who == "function_call":
                parsed = json.loads(value)
                calls = [(c["name"], c["arguments"]) for c in (parsed if isinstance(parsed, list) else [parsed])]
                pending = list(calls)
                out.append(_message("assistant", None, calls=calls))
            elif who == "observation":
                out.append(_message("tool", value, answers=pending.pop(0)))
            else:
                out.append(_message({"human": "user", "gpt": "assistant"}[who], value))
        tools = record.get("tools")
        tools = json.loads(tools) if isinstance(tools, str) else tools
        return tuple(out), tuple(json.dumps(t, sort_keys=True) for t in tools or ())
    return meaning_of_chat(record)


def meaning_of_chat(record: dict) -> tuple:
    """The same for an OpenAI chat record: tool results resolved to the call they answer."""
    out, by_id = [], {}
    for m in record["messages"]:
        calls = []
        for call in m.get("tool_calls") or ():
            assert call["type"] == "function"
            function = call["function"]
            assert isinstance(function["arguments"], str)  # OpenAI's shape: a JSON string
            calls.append((function["name"], json.loads(function["arguments"])))
            by_id[call["id"]] = calls[-1]
        answers = by_id[m["tool_call_id"]] if m["role"] == "tool" else None
        out.append(_message(m["role"], m.get("content"), m.get("weight"), calls, answers))
    tools = []
    for tool in record.get("tools") or ():
        assert tool["type"] == "function" and set(tool) == {"type", "function"}  # OpenAI's shape
        tools.append(json.dumps(tool["function"], sort_keys=True))
    return tuple(out), tuple(tools)


# --------------------------------------------------------------------------- the property


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
@given(generated=dataset())
def test_check_of_clean_has_no_error_and_keeps_every_meaning(tmp_path_factory, generated):
    shape, records = generated
    folder = tmp_path_factory.mktemp(shape)
    source = folder / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    first = check_path(source)
    assert first.errors == [] and first.n_examples == len(records), first.errors[:3]

    result = clean_file(source, folder / "clean", valid_fraction=0.2)
    again = check_path(result.all_path)
    assert again.errors == [], again.errors[:3]
    assert again.n_examples == len(records)
    cleaned = [json.loads(line) for line in result.all_path.read_text().splitlines()]
    assert [meaning_of_chat(c) for c in cleaned] == [meaning_of_input(shape, r) for r in records]
    # the split files hold the same records, and are valid on their own
    split = [json.loads(line) for p in (result.train_path, result.valid_path) for line in p.read_text().splitlines()]
    assert sorted(map(json.dumps, split)) == sorted(map(json.dumps, cleaned))

    # ShareGPT export: what it holds checks clean again, and the same meaning comes back
    exported = json.loads(result.exports["sharegpt"].read_text())
    weighted = any("weight" in m for r in cleaned for m in r["messages"])
    if exported and not weighted:  # ShareGPT has no weights
        back = check_path(result.exports["sharegpt"])
        assert back.errors == [] or {e.code for e in back.errors} == {"too_few_examples"}, back.errors[:3]
        if len(exported) == len(cleaned):
            assert [meaning_of_input("sharegpt", r) for r in exported] == \
                [meaning_of_chat(c) for c in cleaned]


def test_sharegpt_tool_calling_file_from_the_issue(tmp_path):
    """The known break: tools copied bare, function calls flattened into assistant text."""
    records = [{"conversations": [
        {"from": "human", "value": f"Weather in city {n}?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": f"c{n}"}})},
        {"from": "observation", "value": json.dumps({"temp": n})},
        {"from": "gpt", "value": f"It is {n} degrees."}],
        "system": "You are a weather bot.", "tools": json.dumps(TOOL_DEFS[:1])} for n in range(10)]
    source = tmp_path / "tools.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert check_path(source).errors == []
    result = clean_file(source, tmp_path / "out")
    assert check_path(result.all_path).errors == []
    first = json.loads(result.all_path.read_text().splitlines()[0])
    assert first["tools"] == [{"type": "function", "function": TOOL_DEFS[0]}]
    system, user, call, tool, answer = first["messages"]
    assert system == {"role": "system", "content": "You are a weather bot."}
    (tool_call,) = call["tool_calls"]
    assert tool_call["function"]["name"] == "get_weather"
    assert json.loads(tool_call["function"]["arguments"]) == {"city": "c0"}
    assert tool == {"role": "tool", "content": '{"temp": 0}', "tool_call_id": tool_call["id"]}
    assert answer == {"role": "assistant", "content": "It is 0 degrees."}


def test_placeholders_are_filled_with_the_values_given(tmp_path):
    records = [{"messages": [{"role": "system", "content": "You are {{name}}'s helper, from {{ place }}."},
                             {"role": "user", "content": [{"type": "text", "text": f"Hi {{{{name}}}} #{n}"}]},
                             {"role": "assistant", "content": "Hello {{name}}, {{unknown}} stays.", "weight": 1}]}
               for n in range(10)]
    source = tmp_path / "placeholders.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = clean_file(source, tmp_path / "out", fill={"name": "Ada", "place": "London"})
    assert check_path(result.all_path).errors == []
    first = json.loads(result.all_path.read_text().splitlines()[0])["messages"]
    assert first[0]["content"] == "You are Ada's helper, from London."
    assert first[1]["content"] == [{"type": "text", "text": "Hi Ada #0"}]
    assert first[2] == {"role": "assistant", "content": "Hello Ada, {{unknown}} stays.", "weight": 1}
    unfilled = clean_file(source, tmp_path / "plain")  # nothing given: the file's texts as they are
    assert json.loads(unfilled.all_path.read_text().splitlines()[0])["messages"][0]["content"] == \
        "You are {{name}}'s helper, from {{ place }}."


def test_placeholders_are_filled_through_the_cli(tmp_path, capsys):
    import json as json_module

    from ftassist.cli import main

    source = tmp_path / "greet.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Say hello to {{{{name}}}} ({i})"},
                          {"role": "assistant", "content": f"Hello, {{{{name}}}}! Number {i}, {{{{unknown}}}}."}]}
            for i in range(12)]
    source.write_text("".join(json_module.dumps(r) + "\n" for r in rows))
    out = tmp_path / "clean"
    assert main(["clean", str(source), "--out", str(out), "--fill", "name=Ada", "--json"]) == 0
    written = (out / "train.jsonl").read_text() + (out / "valid.jsonl").read_text()
    assert "{{name}}" not in written and written.count("Ada") == 24 and written.count("{{unknown}}") == 12
    assert main(["clean", str(source), "--out", str(out), "--fill", "oops"]) == 2
    assert "--fill takes NAME=VALUE" in capsys.readouterr().err
