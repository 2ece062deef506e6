"""Per-record and per-file validation: every problem as an Issue with line, code, message, hint.

Chat records get OpenAI's cookbook checks ("Chat_finetuning_data_prep") under their exact
codes and counted the way the cookbook counts them, so our `error_counts` can be compared
with the notebook's output line for line:

- `data_type`: the record is not an object (nothing else is checked);
- `missing_messages_list`: `messages` absent or empty/falsy (nothing else is checked);
- once per message: `message_missing_key` (no `role` or no `content`),
  `message_unrecognized_key` (a key outside the recognised ones), `unrecognized_role`,
  `missing_content` (the cookbook's `(not content and not function_call) or content is not a
  string`: so a list or number content counts here, as does `""`);
- once per example: `example_missing_assistant_message`.

Deliberate extensions for the modern chat format (where the cookbook, written for
gpt-3.5, would reject valid data or crash):
- recognised message keys also include `tool_calls` and `tool_call_id`, roles also `tool`;
- an assistant message with `tool_calls` or `function_call` may have no (or null) content:
  neither `message_missing_key` nor `missing_content` (the cookbook flags null content);
- `content` may be a list of OpenAI's typed parts (`{"type": "text", "text"}`,
  `{"type": "image_url", "image_url": {"url"}}`: the Chat Completions / vision fine-tuning
  shape; the cookbook counts any list as `missing_content`); an unknown part is
  `invalid_content_part`, with a hint naming the field to map;
- a message that is not an object counts once as `message_missing_key` (the cookbook
  crashes); `messages` that is truthy but not a list is `messages_not_list` (it crashes or
  iterates characters).

Further checks with their own codes: `consecutive_same_role` (Together's rule; consecutive
`tool`/`function` results of parallel calls are allowed), `system_not_first` (Fireworks),
`invalid_weight`, `unencodable_content`, `invalid_tools`, `invalid_tool_calls`,
`invalid_content_part`; and for the
other formats `missing_field` and `non_string_field`, reusing the chat codes where the
meaning is the same.

This runs once per record on files of 100,000 records, so it is a handful of dict and type
checks per message, never recursion: any JSON value, however nested, is safe.
"""

from __future__ import annotations

from typing import Any

from ftassist.data.formats import guess_format, openai_tools
from ftassist.data.report import Issue, Record

OPENAI_MIN_EXAMPLES = 10
OPENAI_MAX_FILE_BYTES = 512 * 1024 * 1024

FORMATS_HINT = (
    'Use one of: chat {"messages": [{"role": "user", "content": ...}, {"role": "assistant", '
    '"content": ...}]}, instruction {"instruction", "input", "output"}, completion '
    '{"prompt", "completion"}, ShareGPT {"conversations": [{"from": "human", "value": ...}, ...]}, '
    'or preference pairs {"prompt", "chosen", "rejected"}.'
)

# code -> (title, default hint). Every code this module emits is here (the UI's legend).
ERROR_CODES: dict[str, tuple[str, str]] = {
    "data_type": ("Record is not an object", "Each line must be one JSON object, e.g. {\"messages\": [...]}."),
    "missing_messages_list": ("No messages", "Give the record a non-empty \"messages\" list. " + FORMATS_HINT),
    "messages_not_list": ("Messages are not a list", "Make \"messages\" (or \"conversations\") a JSON list of message objects."),
    "message_missing_key": ("Message lacks role or content", "Every message needs both \"role\" and \"content\"."),
    "message_unrecognized_key": (
        "Unrecognised message key",
        "Messages may only have role, content, name, weight, function_call, tool_calls, tool_call_id; remove other keys.",
    ),
    "unrecognized_role": ("Unrecognised role", "Use the role system, user, assistant, tool or function."),
    "missing_content": ("Missing or non-text content", "Give the message non-empty text content (a string)."),
    "example_missing_assistant_message": (
        "No assistant message",
        "Add at least one assistant message: it is what the model learns to write.",
    ),
    "consecutive_same_role": (
        "Same role twice in a row",
        "Alternate user and assistant turns: merge the two messages or insert the missing turn.",
    ),
    "system_not_first": ("System message not first", "Put the system message first, or make it a user message."),
    "invalid_weight": ("Invalid weight", "Set \"weight\" to 0 or 1, and only on assistant messages."),
    "unencodable_content": (
        "Text cannot be encoded",
        "Remove NUL characters and broken (lone surrogate) characters; re-export the text as UTF-8.",
    ),
    "invalid_tools": (
        "Invalid tools",
        "Make \"tools\" a list of {\"type\": \"function\", \"function\": {\"name\": ..., \"parameters\": {...}}}.",
    ),
    "invalid_tool_calls": (
        "Invalid tool calls",
        "Make \"tool_calls\" a list of {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\": \"<JSON string>\"}}.",
    ),
    "invalid_content_part": (
        "Unknown or invalid content part",
        "Write each part of a list content as {\"type\": \"text\", \"text\": ...} or "
        "{\"type\": \"image_url\", \"image_url\": {\"url\": ...}} (images only in user messages).",
    ),
    "missing_field": ("Required field missing", "Add the missing field to the record."),
    "invalid_preference_side": (
        "Answer of a pair is not an answer",
        "Make chosen and rejected each an assistant answer: [{\"role\": \"assistant\", \"content\": ...}] "
        "(or text, when the prompt is text too).",
    ),
    "mixed_pair_styles": ("Text and messages mixed in a pair",
                          "Write prompt, chosen and rejected all as text, or all as lists of messages."),
    "no_shared_prompt": ("No prompt in a pair", "Add a \"prompt\", or start chosen and rejected with the same prompt."),
    "identical_pair": ("Chosen equals rejected", "Make the rejected answer the worse one, or drop the pair."),
    "empty_pair_side": ("Empty answer in a pair", "Give both answers text, or drop the pair."),
    "duplicate_pair": ("Pair repeated", "Drop the copy: a repeated pair counts twice."),
    "contradictory_pair": ("Contradictory pairs", "Keep the pair whose preference is right, drop the other."),
    "non_string_field": ("Field is not text", "Make the field a string (quote it), or convert the record."),
    "too_few_examples": ("Too few examples", "OpenAI needs at least 10 valid examples; 50-100 good ones is a better start."),
    "file_too_large": ("File too large", "OpenAI accepts files up to 512 MB: split the file or drop examples."),
    "images_not_supported": (
        "Images for a text-only model",
        "Fine-tune a model that takes images (gpt-4o-2024-08-06, gpt-4.1-2025-04-14, an open vision model), "
        "or drop the image parts.",
    ),
    "over_context_limit": (
        "Example over the context limit",
        "Shorten or split the example, or drop it; otherwise it is truncated during training.",
    ),
}

# Keys and roles the cookbook recognises, plus our documented extensions.
_MESSAGE_KEYS = frozenset({"role", "content", "name", "function_call", "weight", "tool_calls", "tool_call_id"})
_ROLES = frozenset({"system", "user", "assistant", "function", "tool"})
_TOOL_RESULT_ROLES = frozenset({"tool", "function"})

_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "function_call": "assistant",
    "system": "system",
    "observation": "tool",
    "tool": "tool",
}


def _issue(line: int, code: str, message: str, hint: str | None = None, severity: str = "error") -> Issue:
    return Issue(line=line, code=code, message=message, hint=hint or ERROR_CODES[code][1], severity=severity)


def _kind(value: Any) -> str:
    """Plain words for a JSON value's type, for messages like 'content is a list, not a string'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _bad_text(s: str) -> str | None:
    """Why a string cannot be encoded for training (NUL byte, lone surrogate), or None.

    Cheap on purpose: `"\\x00" in s` is a memchr, `isascii` is O(1) in CPython, and only
    non-ASCII text is encoded (measured ~2x faster than a surrogate regex). orjson already
    rejects lone-surrogate escapes, but json, CSV or Parquet readers may let them through.
    """
    if "\x00" in s:
        return "contains a NUL character (\\u0000)"
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (a broken UTF-16 character)"
    return None


def _short(value: Any, limit: int = 40) -> str:
    try:
        text = repr(value) if not isinstance(value, str) else value
    except Exception:  # noqa: BLE001 - repr of exotic objects must never break validation
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shown(value: Any) -> str:
    """A value of the record as the person must read it: text in quotes, so that the text "1" is
    not taken for the number 1, nor the role "user " (a trailing space) for user."""
    return _short(repr(value)) if isinstance(value, str) else _short(value)


# --------------------------------------------------------------------------- chat


def _valid_function(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("name"), str) and bool(obj.get("name"))


def _tool_calls_ok(calls: Any) -> bool:
    if not isinstance(calls, list) or not calls:
        return False
    for call in calls:
        if not isinstance(call, dict):
            return False
        fn = call.get("function")
        if not _valid_function(fn):
            return False
        args = fn.get("arguments")
        if args is not None and not isinstance(args, str):
            return False
    return True


def _tools_ok(rec: dict) -> str | None:
    tools = rec.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return f"\"tools\" is {_kind(tools)}, not a list"
        for i, tool in enumerate(tools, 1):
            if not isinstance(tool, dict) or not _valid_function(tool.get("function")):
                return f"tool {i} is not {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}"
    functions = rec.get("functions")
    if functions is not None:
        if not isinstance(functions, list):
            return f"\"functions\" is {_kind(functions)}, not a list"
        for i, fn in enumerate(functions, 1):
            if not _valid_function(fn):
                return f"function {i} has no \"name\""
    return None


_PART_HINT = ERROR_CODES["invalid_content_part"][1]


def _part_hint(part: dict, j: int) -> str:
    """A fix that names the field of an unknown part to map onto OpenAI's part shapes."""
    kind = part.get("type")
    kind_text = kind if type(kind) is str else ""
    text_key = next((k for k, v in part.items() if k != "type" and type(v) is str), None)
    if "image" in kind_text or "image" in part or "image_url" in part:
        field = next((k for k in ("image_url", "image", "url", "source") if k in part), text_key or "image")
        return (f"Map part {j}'s \"{field}\" to {{\"type\": \"image_url\", \"image_url\": {{\"url\": ...}}}} "
                "(a URL or a data:image/...;base64 URL).")
    if text_key is not None:
        return f"Map part {j}'s \"{text_key}\" field to {{\"type\": \"text\", \"text\": ...}}."
    return _PART_HINT


def _check_parts(parts: list, i: int, line: int, add, role: Any) -> None:
    """OpenAI's typed content parts: text parts are text; image parts make a vision example."""
    if not parts:
        add(_issue(line, "missing_content", f"Message {i}'s content is an empty list."))
        return
    has_text = False
    for j, part in enumerate(parts, 1):
        if type(part) is not dict:
            add(_issue(line, "invalid_content_part",
                       f"Message {i}'s content part {j} is {_kind(part)}, not an object with a \"type\"."))
            has_text = True  # reported once, as the part
            continue
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if type(text) is not str:
                add(_issue(line, "invalid_content_part", f"Message {i}'s content part {j} has \"text\" "
                           f"that is {_kind(text)}, not a string.", _part_hint(part, j)))
                has_text = True  # reported once, as the part
                continue
            has_text = has_text or bool(text)
            why = _bad_text(text)
            if why:
                add(_issue(line, "unencodable_content", f"Message {i}'s content part {j} {why}."))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if type(image) is dict else None
            if type(url) is not str or not url:
                add(_issue(line, "invalid_content_part",
                           f"Message {i}'s content part {j} is an image_url part without an \"image_url\": {{\"url\": ...}}.",
                           _part_hint(part, j)))
            elif role == "assistant":
                add(_issue(line, "invalid_content_part",
                           f"Message {i} is an assistant message with an image; images may only be in user messages.",
                           "Move the image to the user message before it, or remove it."))
            has_text = True  # an image is content
        else:
            what = f"the type {_shown(kind)}" if "type" in part else "no \"type\""
            add(_issue(line, "invalid_content_part", f"Message {i}'s content part {j} has {what}; "
                       "expected \"text\" or \"image_url\".", _part_hint(part, j)))
            has_text = True  # reported once, as the unknown part
    if not has_text:
        add(_issue(line, "missing_content", f"Message {i}'s content parts hold no text."))


def _check_message(m: Any, i: int, line: int, add, prev_role: str | None) -> str | None:
    """Every check of one message (the slow path); returns its role for the order checks."""
    if type(m) is not dict:
        add(_issue(line, "message_missing_key", f"Message {i} is {_kind(m)}, not an object with role and content."))
        return None
    role = m.get("role")
    content = m.get("content")
    known_role = type(role) is str and role in _ROLES
    calls = m.get("tool_calls") or m.get("function_call")
    # Extension: an assistant tool call may come without content.
    tool_call_only = content is None and role == "assistant" and bool(calls)

    if "role" not in m or ("content" not in m and not tool_call_only):
        missing = "role" if "role" not in m else "content"
        add(_issue(line, "message_missing_key", f"Message {i} has no \"{missing}\"."))
    if not (m.keys() <= _MESSAGE_KEYS):
        extra = ", ".join(sorted(str(k) for k in m if k not in _MESSAGE_KEYS))
        add(_issue(line, "message_unrecognized_key", f"Message {i} has unrecognised key(s): {extra}."))
    if not known_role:
        text = "no role" if role is None else f"the role {_shown(role)}"
        add(_issue(line, "unrecognized_role", f"Message {i} has {text}; expected system, user, assistant, tool or function."))
    if type(content) is str:
        if not content and not m.get("function_call") and not (role == "assistant" and m.get("tool_calls")):
            add(_issue(line, "missing_content", f"Message {i} has empty content."))
        else:
            why = _bad_text(content)
            if why:
                add(_issue(line, "unencodable_content", f"Message {i}'s content {why}."))
    elif type(content) is list:
        _check_parts(content, i, line, add, role)
    elif not tool_call_only:
        if content is None:
            msg = f"Message {i} has no content." if "content" not in m else f"Message {i}'s content is null."
        else:
            msg = f"Message {i}'s content is {_kind(content)}, not a string."
        add(_issue(line, "missing_content", msg))

    name = m.get("name")
    if type(name) is str:
        why = _bad_text(name)
        if why:
            add(_issue(line, "unencodable_content", f"Message {i}'s name {why}."))
    if "weight" in m:
        w = m["weight"]
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w not in (0, 1):
            add(_issue(line, "invalid_weight", f"Message {i} has weight {_shown(w)}; it must be 0 or 1."))
        elif role != "assistant":
            add(_issue(line, "invalid_weight", f"Message {i} is a {_short(role)} message with a weight; only assistant messages may have one."))
    if "tool_calls" in m and not _tool_calls_ok(m["tool_calls"]):
        add(_issue(line, "invalid_tool_calls", f"Message {i}'s tool_calls are not a list of function calls with a name and string arguments."))

    if not known_role:
        return None
    if role == prev_role and role not in _TOOL_RESULT_ROLES:
        add(_issue(line, "consecutive_same_role", f"Messages {i - 1} and {i} are both {role} messages."))
    if role == "system" and i > 1:
        add(_issue(line, "system_not_first", f"Message {i} is a system message but is not the first message."))
    return role


def _validate_chat(rec: dict, line: int) -> list[Issue]:
    messages = rec.get("messages")
    if not messages:
        if "messages" not in rec:
            what = "The record has no \"messages\"."
        elif messages is None:
            what = "The record's \"messages\" is null."
        else:
            what = f"The record's \"messages\" is empty ({messages!r})."
        return [_issue(line, "missing_messages_list", what)]
    if not isinstance(messages, list):
        return [_issue(line, "messages_not_list", f"\"messages\" is {_kind(messages)}, not a list of messages.")]

    issues: list[Issue] = []
    add = issues.append
    has_assistant = False
    prev_role = None
    roles = _ROLES
    for i, m in enumerate(messages, 1):
        if type(m) is dict:
            role = m.get("role")
            content = m.get("content")
            # Fast path, the common case: exactly {role, content}, a known role, non-empty text.
            if len(m) == 2 and type(content) is str and content and type(role) is str and role in roles:
                if "\x00" in content or not content.isascii():
                    why = _bad_text(content)
                    if why:
                        add(_issue(line, "unencodable_content", f"Message {i}'s content {why}."))
                if role == prev_role and role not in _TOOL_RESULT_ROLES:
                    add(_issue(line, "consecutive_same_role", f"Messages {i - 1} and {i} are both {role} messages."))
                if role == "assistant":
                    has_assistant = True
                elif role == "system" and i > 1:
                    add(_issue(line, "system_not_first", f"Message {i} is a system message but is not the first message."))
                prev_role = role
                continue
            if role == "assistant":
                has_assistant = True
        prev_role = _check_message(m, i, line, add, prev_role)
    if not has_assistant:
        add(_issue(line, "example_missing_assistant_message", "The example has no assistant message."))
    if "tools" in rec or "functions" in rec:
        why = _tools_ok(rec)
        if why:
            add(_issue(line, "invalid_tools", f"The record's {why}."))
    return issues


# --------------------------------------------------------------------------- other formats


def _text_field(rec: dict, key: str, line: int, issues: list[Issue], required: bool = True, non_empty: bool = False) -> None:
    """Check one text field of a flat record (instruction/completion)."""
    if key not in rec or (rec[key] is None and required):
        if required:
            issues.append(_issue(line, "missing_field", f"The record has no \"{key}\".", f"Add a \"{key}\" string."))
        return
    value = rec[key]
    if value is None:
        return
    if not isinstance(value, str):
        issues.append(_issue(line, "non_string_field", f"\"{key}\" is {_kind(value)}, not a string."))
        return
    if non_empty and not value.strip():
        issues.append(_issue(line, "missing_content", f"\"{key}\" is empty.", f"Give \"{key}\" non-empty text: it is what the model learns to write."))
        return
    why = _bad_text(value)
    if why:
        issues.append(_issue(line, "unencodable_content", f"\"{key}\" {why}."))


def _validate_instruction(rec: dict, line: int) -> list[Issue]:
    issues: list[Issue] = []
    _text_field(rec, "instruction", line, issues, non_empty=True)
    _text_field(rec, "input", line, issues, required=False)
    _text_field(rec, "output", line, issues, non_empty=True)
    _text_field(rec, "system", line, issues, required=False)
    history = rec.get("history")
    if history is not None and not (
        isinstance(history, list)
        and all(isinstance(t, (list, tuple)) and len(t) == 2 and all(isinstance(x, str) for x in t) for t in history)
    ):
        issues.append(
            _issue(line, "non_string_field", "\"history\" is not a list of [instruction, answer] string pairs.",
                   "Make \"history\" a list of [\"question\", \"answer\"] pairs, or remove it.")
        )
    return issues


def _validate_completion(rec: dict, line: int) -> list[Issue]:
    issues: list[Issue] = []
    _text_field(rec, "prompt", line, issues)
    _text_field(rec, "completion", line, issues, non_empty=True)
    return issues


def _validate_sharegpt(rec: dict, line: int) -> list[Issue]:
    key = "conversations" if "conversations" in rec or "messages" not in rec else "messages"
    turns = rec.get(key)
    if key not in rec:
        return [_issue(line, "missing_field", "The record has no \"conversations\".", "Add a \"conversations\" list of {\"from\", \"value\"} turns.")]
    if not turns:
        return [_issue(line, "missing_messages_list", f"\"{key}\" is empty.", "Add the conversation turns.")]
    if not isinstance(turns, list):
        return [_issue(line, "messages_not_list", f"\"{key}\" is {_kind(turns)}, not a list of turns.")]
    issues: list[Issue] = []
    add = issues.append
    system = rec.get("system")
    if system is not None and type(system) is not str:  # converting would drop it without a word
        add(_issue(line, "non_string_field", f"\"system\" is {_kind(system)}, not text.",
                   "Give the system prompt as text, or remove the \"system\" key."))
    has_gpt = False
    prev = None
    for i, t in enumerate(turns, 1):
        if type(t) is not dict:
            add(_issue(line, "message_missing_key", f"Turn {i} is {_kind(t)}, not an object with from and value.",
                       "Every turn needs \"from\" and \"value\"."))
            prev = None
            continue
        who = t.get("from")
        value = t.get("value")
        if "from" not in t or "value" not in t:
            missing = "from" if "from" not in t else "value"
            add(_issue(line, "message_missing_key", f"Turn {i} has no \"{missing}\".", "Every turn needs \"from\" and \"value\"."))
        role = _SHAREGPT_ROLES.get(who) if type(who) is str else None
        if role is None:
            add(_issue(line, "unrecognized_role", f"Turn {i} is from {_shown(who)}; expected human, gpt, system, function_call, observation or tool.",
                       "Use \"from\": human, gpt, system, function_call, observation or tool."))
        if type(value) is str and value:
            why = _bad_text(value)
            if why:
                add(_issue(line, "unencodable_content", f"Turn {i}'s value {why}."))
        else:
            what = "empty" if value == "" else ("missing" if value is None else f"{_kind(value)}, not a string")
            add(_issue(line, "missing_content", f"Turn {i}'s value is {what}.", "Give every turn a non-empty text \"value\"."))
        if who == "gpt" or who == "assistant":
            has_gpt = True
        if role is not None:
            if role == prev and role != "tool":
                add(_issue(line, "consecutive_same_role", f"Turns {i - 1} and {i} are both {role} turns.",
                           "Alternate human and gpt turns: merge the two turns or insert the missing one."))
            if role == "system" and i > 1:
                add(_issue(line, "system_not_first", f"Turn {i} is a system turn but is not the first turn."))
        prev = role
    if rec.get("tools") not in (None, "", []):
        tools = openai_tools(rec["tools"])
        why = "\"tools\" is not a list of function definitions (nor the JSON text of one)" if tools is None \
            else _tools_ok({"tools": tools})
        if why:
            add(_issue(line, "invalid_tools", f"The record's {why}.",
                       "Make \"tools\" a list (or the JSON text of a list) of {\"name\": ..., \"parameters\": {...}} "
                       "function definitions."))
    if not has_gpt:
        add(_issue(line, "example_missing_assistant_message", "The conversation has no gpt turn.",
                   "Add at least one {\"from\": \"gpt\", \"value\": ...} turn."))
    return issues


def _validate_preference(rec: dict, line: int) -> list[Issue]:
    from ftassist.data.preferences import validate_pair  # it builds on this module's helpers

    return validate_pair(rec, line)


_VALIDATORS = {
    "preference": _validate_preference,
    "chat": _validate_chat,
    "instruction": _validate_instruction,
    "completion": _validate_completion,
    "sharegpt": _validate_sharegpt,
}


def validate_record(rec: Record, fmt: str | None) -> list[Issue]:
    """All problems of one record: errors and warnings, each with line=rec.line.

    `fmt` is the format detected for this record ("chat", "instruction", "completion",
    "sharegpt", "preference" or None). Never raises, whatever `rec.data` holds.
    """
    if rec.problem is not None:
        return [rec.problem]
    line = rec.line
    data = rec.data
    try:
        if not isinstance(data, dict):
            return [_issue(line, "data_type", f"The record is {_kind(data)}, not a JSON object.")]
        validator = _VALIDATORS.get(fmt) if fmt else None
        if validator is None:
            guessed = guess_format(data)
            if guessed is None:
                keys = ", ".join(sorted(str(k) for k in data)[:8]) or "none"
                return [_issue(line, "missing_messages_list",
                               f"The record has no \"messages\" and matches no known format (keys: {keys}).",
                               FORMATS_HINT)]
            validator = _VALIDATORS[guessed]
        return validator(data, line)
    except Exception as exc:  # noqa: BLE001 - validation must report, never crash the check
        return [_issue(line, "data_type", f"The record could not be checked ({type(exc).__name__}).")]


# --------------------------------------------------------------------------- file level


def validate_dataset_size(n_examples: int, file_size: int) -> list[Issue]:
    """File-level errors (line 0): fewer than OpenAI's 10 examples, more than its 512 MB."""
    issues: list[Issue] = []
    if n_examples < OPENAI_MIN_EXAMPLES:
        issues.append(_issue(0, "too_few_examples",
                             f"The file has {n_examples} valid example{'s' if n_examples != 1 else ''}; "
                             f"OpenAI requires at least {OPENAI_MIN_EXAMPLES}."))
    if file_size > OPENAI_MAX_FILE_BYTES:
        issues.append(_issue(0, "file_too_large",
                             f"The file is {file_size / 1024 ** 2:,.0f} MB; OpenAI accepts at most 512 MB per file."))
    return issues


# Models that take images in fine-tuning data: OpenAI's vision fine-tuning snapshots (and the
# aliases that point at them), and open models whose names say they see.
_VISION_OPENAI = ("gpt-4o-2024-08-06", "gpt-4.1-2025-04-14")
_VISION_ALIASES = frozenset({"gpt-4o", "gpt-4.1"})
_VISION_MARKS = ("-vl", "vl-", "vision", "llava", "pixtral", "idefics", "paligemma", "gemma-3", "omni", "smolvlm",
                 "llama-4", "mllama", "phi-4-multimodal", "internvl", "minicpm-v")


def model_takes_images(model: str | None) -> bool | None:
    """Whether fine-tuning `model` can take image parts; None when no target model is known."""
    from ftassist.data.tokens import base_model

    name = base_model(model)
    if not name:
        return None
    if name.startswith(_VISION_OPENAI) or name in _VISION_ALIASES:
        return True
    return any(mark in (model or "").lower() for mark in _VISION_MARKS)


def vision_warnings(vision_lines: list[int], model: str | None) -> list[Issue]:
    """One file-level warning when examples have images but the target model takes text only."""
    if not vision_lines or model_takes_images(model) is not False:
        return []
    n = len(vision_lines)
    shown = ", ".join(map(str, vision_lines[:5])) + (", …" if n > 5 else "")
    return [_issue(0, "images_not_supported",
                   f"{n} example{'s' if n != 1 else ''} (line{'s' if n != 1 else ''} {shown}) "
                   f"{'have' if n != 1 else 'has'} images, but {model} takes text only: "
                   "the image parts cannot be trained on.", severity="warning")]


def context_warnings(lines: list[int], tokens: list[int], limit: int, model: str) -> list[Issue]:
    """A warning per example whose token count is over `model`'s per-example `limit`."""
    if not limit:
        return []
    return [
        _issue(line, "over_context_limit",
               f"The example has {n:,} tokens, over {model}'s limit of {limit:,} per example; "
               "it will be truncated during training.",
               severity="warning")
        for line, n in zip(lines, tokens)
        if n > limit
    ]
