"""OpenAI's typed content parts (Chat Completions / vision fine-tuning): text parts are text,
image parts make a vision example, an unknown part is an error that names the field to map."""

from __future__ import annotations

import json

import tiktoken

from ftassist.data.check import check_path
from ftassist.data.formats import has_images
from ftassist.data.report import Record
from ftassist.data.tokens import count_chat, get_encoding
from ftassist.data.validate import model_takes_images, validate_record, vision_warnings

IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}


def parts(*texts: str) -> list[dict]:
    return [{"type": "text", "text": t} for t in texts]


def write(tmp_path, name: str, records: list) -> str:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return str(path)


def issues_of(data, line=1):
    return [(i.code, i.message) for i in validate_record(Record(line=line, data=data), "chat")]


def test_text_parts_count_exactly_as_the_same_text_as_a_string(tmp_path):
    as_strings, as_parts = [], []
    for n in range(12):
        question, answer = f"What is {n} plus {n}? Answer briefly.", f"{n} plus {n} is {2 * n}."
        as_strings.append({"messages": [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": question},
                                        {"role": "assistant", "content": answer}]})
        as_parts.append({"messages": [{"role": "system", "content": parts("Be brief.")},
                                      {"role": "user", "content": parts(question)},
                                      {"role": "assistant", "content": parts(answer)}]})
    strings = check_path(write(tmp_path, "strings.jsonl", as_strings), model="gpt-4o-mini")
    listed = check_path(write(tmp_path, "parts.jsonl", as_parts), model="gpt-4o-mini")
    assert strings.errors == [] and listed.errors == []
    assert listed.n_examples == 12
    assert listed.tokens.per_example == strings.tokens.per_example
    assert listed.tokens.assistant_per_example == strings.tokens.assistant_per_example
    # the referee: tiktoken itself, with the cookbook's 3 per message + 3 for the reply
    get_encoding("o200k_base")  # puts the rank file in tiktoken's cache (no network)
    encoding = tiktoken.get_encoding("o200k_base")
    first = as_strings[0]["messages"]
    expected = 3 + sum(3 + len(encoding.encode(m["role"])) + len(encoding.encode(m["content"])) for m in first)
    assert listed.tokens.per_example[0] == expected
    assert listed.tokens.assistant_per_example[0] == len(encoding.encode(first[2]["content"]))
    assert listed.n_vision_examples == 0


def test_several_text_parts_count_each_part():
    encoding = get_encoding("o200k_base")
    chat = {"messages": [{"role": "user", "content": parts("Hello there.", " How are you?")},
                         {"role": "assistant", "content": "Fine."}]}
    total, _ = count_chat(chat, encoding)
    expected = 3 + 3 + 1 + len(encoding.encode("Hello there.")) + len(encoding.encode(" How are you?")) \
        + 3 + 1 + len(encoding.encode("Fine."))
    assert total == expected


def test_an_image_part_is_a_vision_example_and_valid_in_a_user_message():
    record = {"messages": [{"role": "user", "content": [*parts("What is this?"), IMAGE]},
                           {"role": "assistant", "content": "A cat."}]}
    assert issues_of(record) == []
    assert has_images(record)
    assert not has_images({"messages": [{"role": "user", "content": parts("no image")}]})
    assert not has_images({"messages": [{"role": "user", "content": "a string"}]})


def test_an_image_in_an_assistant_message_is_an_error():
    record = {"messages": [{"role": "user", "content": "Draw a cat."},
                           {"role": "assistant", "content": [IMAGE]}]}
    (issue,) = validate_record(Record(line=4, data=record), "chat")
    assert issue.code == "invalid_content_part" and issue.line == 4
    assert "assistant" in issue.message and "user message" in issue.message


def test_a_text_only_target_is_warned_about_images():
    assert model_takes_images("gpt-4o-mini-2024-07-18") is False
    assert model_takes_images("gpt-4o-2024-08-06") is True
    assert model_takes_images("ft:gpt-4.1-2025-04-14:org::abc") is True
    assert model_takes_images("Qwen/Qwen2.5-VL-7B-Instruct") is True
    assert model_takes_images("meta-llama/Llama-3.1-8B-Instruct") is False
    assert model_takes_images(None) is None

    (warning,) = vision_warnings([3, 5], "gpt-4o-mini")
    assert warning.code == "images_not_supported" and warning.severity == "warning" and warning.line == 0
    assert "2 examples" in warning.message and "3, 5" in warning.message and "gpt-4o-mini" in warning.message
    assert vision_warnings([3], "gpt-4o-2024-08-06") == []
    assert vision_warnings([3], None) == []  # no target: nothing to warn about
    assert vision_warnings([], "gpt-4o-mini") == []


def test_an_unknown_part_is_an_error_with_its_line_and_a_hint_naming_the_field(tmp_path):
    good = [{"messages": [{"role": "user", "content": parts(f"q{n}")}, {"role": "assistant", "content": f"a{n}"}]}
            for n in range(11)]
    unknown_text = {"messages": [{"role": "user", "content": [{"type": "input_text", "value": "hi"}]},
                                 {"role": "assistant", "content": "hello"}]}
    unknown_image = {"messages": [{"role": "user", "content": [*parts("see"), {"type": "image", "image": "cat.png"}]},
                                  {"role": "assistant", "content": "a cat"}]}
    report = check_path(write(tmp_path, "unknown.jsonl", [*good[:2], unknown_text, *good[2:], unknown_image]))
    by_line = {issue.line: issue for issue in report.errors}
    assert set(by_line) == {3, 13}
    text_issue, image_issue = by_line[3], by_line[13]
    assert text_issue.code == image_issue.code == "invalid_content_part"
    assert "part 1" in text_issue.message and "'input_text'" in text_issue.message
    assert '"value"' in text_issue.hint and '"type": "text"' in text_issue.hint
    assert "part 2" in image_issue.message
    assert '"image"' in image_issue.hint and '"image_url"' in image_issue.hint
    assert report.n_examples == 11


def test_broken_parts_are_each_reported_once():
    user = {"role": "user"}
    answer = {"role": "assistant", "content": "a"}
    assert [c for c, _ in issues_of({"messages": [{**user, "content": ["plain"]}, answer]})] == ["invalid_content_part"]
    assert [c for c, _ in issues_of({"messages": [{**user, "content": [{"type": "text", "text": 3}]}, answer]})] == [
        "invalid_content_part"]
    assert [c for c, _ in issues_of({"messages": [{**user, "content": [{"type": "image_url", "image_url": "x"}]}, answer]})] == [
        "invalid_content_part"]
    assert issues_of({"messages": [{**user, "content": []}, answer]}) == [
        ("missing_content", "Message 1's content is an empty list.")]
    assert issues_of({"messages": [{**user, "content": parts("")}, answer]}) == [
        ("missing_content", "Message 1's content parts hold no text.")]
    assert [c for c, _ in issues_of({"messages": [{**user, "content": parts("a\x00b")}, answer]})] == [
        "unencodable_content"]


def test_the_check_counts_vision_examples_and_warns_a_text_only_target(tmp_path):
    text_only = {"messages": [{"role": "user", "content": "Describe a cat."}, {"role": "assistant", "content": "Fur."}]}
    with_image = {"messages": [{"role": "user", "content": [*parts("What is this?"), IMAGE]},
                               {"role": "assistant", "content": "A cat."}]}
    rows = [text_only] * 8 + [with_image] * 3  # images on lines 9, 10 and 11
    path = write(tmp_path, "vision.jsonl", rows)
    report = check_path(path, model="gpt-4o-mini-2024-07-18")
    assert report.n_vision_examples == 3 and not report.errors
    (warning,) = [w for w in report.warnings if w.code == "images_not_supported"]
    assert "9, 10, 11" in warning.message
    assert not [w for w in check_path(path, model="gpt-4o-2024-08-06").warnings if w.code == "images_not_supported"]
