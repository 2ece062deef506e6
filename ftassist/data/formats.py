"""The four dataset formats, their conversion to canonical chat, and the exporters.

Canonical chat is OpenAI's fine-tuning shape, `{"messages": [...], optional "tools"}`,
because it is the richest of the four (names, weights, tool calls): everything else
converts into it without loss, and it converts back out for trainers that want alpaca
(LLaMA-Factory style, with `history`) or ShareGPT.

Formats (decided per record, first match wins, so detection is one or two dict lookups):
- "chat":        `messages`
- "sharegpt":    `conversations` (items `{from, value}`; `{role, content}` items are accepted too)
- "instruction": `instruction` + `output` (optional `input`, `system`, `history`) — alpaca
- "completion":  `prompt` + `completion`
- "preference":  `chosen` + `rejected`, or `preferred_output` / `non_preferred_output`: a preference
  pair (DPO data), tried first since its formats also have `conversations` or `prompt`; pairs are
  read, checked and converted by `data/preferences.py`, not as chat
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import orjson

MESSAGE_KEYS = ("role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call")
_MESSAGE_KEYSET = frozenset(MESSAGE_KEYS)
CHAT_TOP_KEYS = ("messages", "tools", "parallel_tool_calls", "functions")
CONVERSATION_KEYS = {
    "chat": frozenset(CHAT_TOP_KEYS),
    "sharegpt": frozenset(("conversations", "system", "tools")),
    "instruction": frozenset(("instruction", "input", "output", "system", "history")),
    "completion": frozenset(("prompt", "completion")),
    "preference": frozenset(("prompt", "chosen", "rejected", "conversations", "system", "tools", "input",
                             "preferred_output", "non_preferred_output")),
}

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "model": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
    "function": "tool",
}
_TO_SHAREGPT = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation"}

EXPORT_FORMATS = ("openai", "alpaca", "sharegpt")
EXPORT_SUFFIX = {"openai": ".jsonl", "alpaca": ".json", "sharegpt": ".json"}


# --------------------------------------------------------------------------- detection


# What marks each format, in the order formats are tried: a record is in a format when it has
# all of its keys (detect_format), and points at it when it has any of them (guess_format).
FORMAT_KEYS = (
    ("preference", ("chosen", "rejected")),
    ("preference", ("preferred_output",)),
    ("preference", ("non_preferred_output",)),
    ("chat", ("messages",)),
    ("sharegpt", ("conversations",)),
    ("instruction", ("instruction", "output")),
    ("completion", ("prompt", "completion")),
)


def detect_format(obj: Any) -> str | None:
    """The record's format, or None when it is not a dict or matches none.

    FORMAT_KEYS unrolled: this runs once per record on the check's hot path (a test keeps
    the two in step)."""
    if type(obj) is not dict and not isinstance(obj, dict):
        return None
    if ("chosen" in obj and "rejected" in obj) or "preferred_output" in obj or "non_preferred_output" in obj:
        return "preference"
    if "messages" in obj:
        return "chat"
    if "conversations" in obj:
        return "sharegpt"
    if "instruction" in obj and "output" in obj:
        return "instruction"
    if "prompt" in obj and "completion" in obj:
        return "completion"
    return None


def guess_format(obj: dict) -> str | None:
    """For a record whose format was not detected: the format its keys point at, if any,
    so the error can name the missing field instead of a generic 'unknown format'."""
    for fmt, keys in FORMAT_KEYS:
        if any(k in obj for k in keys):
            return fmt
    return None


def extra_fields(obj: dict, fmt: str | None) -> dict:
    """Top-level columns that are not part of the conversation (e.g. `category`, `label`, `id`)."""
    if not isinstance(obj, dict):
        return {}
    skip = CONVERSATION_KEYS.get(fmt or "", frozenset())
    return {k: v for k, v in obj.items() if k not in skip}


# --------------------------------------------------------------------------- to canonical chat


def to_chat(obj: dict, fmt: str) -> dict:
    """Canonical chat for a record that passed validation; ValueError (clear message) if impossible."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    if fmt == "chat":
        return _chat_to_chat(obj)
    if fmt == "instruction":
        return alpaca_to_chat(obj)
    if fmt == "completion":
        return _completion_to_chat(obj)
    if fmt == "sharegpt":
        return sharegpt_to_chat(obj)
    if fmt == "preference":
        raise ValueError("a preference pair holds two answers, not one conversation: check or clean the file "
                         "of pairs as a whole (`ftassist check`), or convert it with `ftassist pairs convert`")
    raise ValueError(f"unknown format {fmt!r}; expected one of chat, instruction, completion, sharegpt")


def _keep_top(obj: dict, out: dict) -> dict:
    for key in ("tools", "parallel_tool_calls", "functions"):
        if key in obj and obj[key] is not None:
            out[key] = obj[key]
    return out


def _chat_to_chat(obj: dict) -> dict:
    msgs = obj.get("messages")
    if not isinstance(msgs, list):
        raise ValueError("`messages` must be a list of messages")
    clean = True
    for m in msgs:
        if not isinstance(m, dict):
            raise ValueError("every message must be an object with `role` and `content`")
        if not m.keys() <= _MESSAGE_KEYSET:
            clean = False
    out_msgs = msgs if clean else [{k: v for k, v in m.items() if k in _MESSAGE_KEYSET} for m in msgs]
    return _keep_top(obj, {"messages": out_msgs})


def has_images(chat: dict) -> bool:
    """Whether a canonical chat holds an image part (a vision example). String contents cost one type check."""
    for message in chat.get("messages") or ():
        content = message.get("content") if type(message) is dict else None
        if type(content) is list:
            for part in content:
                if type(part) is dict and part.get("type") == "image_url":
                    return True
    return False


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"`{what}` must be a string, got {type(value).__name__}")
    return value


def alpaca_to_chat(obj: dict) -> dict:
    """Alpaca / LLaMA-Factory instruction record -> chat (`history` pairs become earlier turns)."""
    instruction = _text(obj.get("instruction"), "instruction")
    inp = _text(obj.get("input"), "input")
    output = _text(obj.get("output"), "output")
    system = _text(obj.get("system"), "system")
    messages: list[dict] = []
    if system:
        messages.append({"role": "system", "content": system})
    history = obj.get("history") or []
    if not isinstance(history, list):
        raise ValueError("`history` must be a list of [user, assistant] pairs")
    for pair in history:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError("`history` must be a list of [user, assistant] pairs")
        messages.append({"role": "user", "content": _text(pair[0], "history")})
        messages.append({"role": "assistant", "content": _text(pair[1], "history")})
    user = f"{instruction}\n\n{inp}" if inp.strip() else instruction
    messages.append({"role": "user", "content": user})
    messages.append({"role": "assistant", "content": output})
    return {"messages": messages}


def _completion_to_chat(obj: dict) -> dict:
    prompt = _text(obj.get("prompt"), "prompt")
    completion = _text(obj.get("completion"), "completion")
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]}


def _call_of(value: str) -> list[dict] | None:
    """The calls a `function_call` turn's value holds (`{"name", "arguments"}` or a list of them), or None."""
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    calls = parsed if isinstance(parsed, list) else [parsed]
    if not calls or not all(isinstance(c, dict) and isinstance(c.get("name"), str) and c["name"] for c in calls):
        return None
    return calls


def _arguments_text(arguments: Any) -> str:
    """OpenAI keeps a call's arguments as a JSON string; ShareGPT (LLaMA-Factory) as an object."""
    if arguments is None:
        return "{}"
    return arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()


def openai_tools(tools: Any) -> list | None:
    """A tools list in OpenAI's `{"type": "function", "function": {...}}` shape; bare
    `{name, description, parameters}` definitions (LLaMA-Factory's) are wrapped; a JSON string is parsed."""
    if isinstance(tools, str) and tools.strip():
        try:
            tools = orjson.loads(tools)  # LLaMA-Factory keeps tools as a JSON string
        except orjson.JSONDecodeError:
            return None
    if not isinstance(tools, list) or not tools:
        return None
    return [{"type": "function", "function": t} if isinstance(t, dict) and "function" not in t and "name" in t else t
            for t in tools]


def sharegpt_to_chat(obj: dict) -> dict:
    """ShareGPT record -> chat, tool calling kept as tool calling: a `function_call` turn whose value
    is a call's JSON becomes an assistant message with `tool_calls`, the `observation` turns after it
    become `tool` messages answering those calls (`tool_call_id`), `tools` take OpenAI's shape."""
    conv = obj.get("conversations")
    if not isinstance(conv, list):
        raise ValueError("`conversations` must be a list of {from, value} turns")
    messages: list[dict] = []
    system = obj.get("system")
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    pending: list[str] = []  # ids of calls not answered yet, in order
    n_calls = 0
    for n, turn in enumerate(conv, 1):
        if not isinstance(turn, dict):
            raise ValueError(f"turn {n} of `conversations` is not an object")
        who = turn.get("from", turn.get("role"))
        if not isinstance(who, str) or who.lower() not in SHAREGPT_ROLES:
            raise ValueError(
                f"turn {n}: unknown speaker {who!r}; expected human, gpt, system, function_call or observation"
            )
        who = who.lower()
        value = _text(turn.get("value", turn.get("content")), "value")
        role = SHAREGPT_ROLES[who]
        calls = _call_of(value) if who == "function_call" else None
        if calls is not None:
            tool_calls = []
            for call in calls:
                n_calls += 1
                tool_calls.append({"id": f"call_{n_calls}", "type": "function",
                                   "function": {"name": call["name"], "arguments": _arguments_text(call.get("arguments"))}})
            pending = [c["id"] for c in tool_calls]
            messages.append({"role": "assistant", "content": None, "tool_calls": tool_calls})
            continue
        if role == "system" and messages and messages[-1]["role"] == "system":
            messages[-1]["content"] += "\n\n" + value  # the `system` field, then a system turn: one prompt
            continue
        message = {"role": role, "content": value}
        if role == "tool" and pending:
            message["tool_call_id"] = pending.pop(0)
        elif role != "tool":
            pending = []
        messages.append(message)
    out = {"messages": messages}
    tools = openai_tools(obj.get("tools"))
    if tools:
        out["tools"] = tools
    return out


# --------------------------------------------------------------------------- exporters


def chat_to_openai(chat: dict) -> dict:
    """OpenAI chat fine-tuning record (the canonical form, minus anything OpenAI does not take)."""
    out = {"messages": [{k: v for k, v in m.items() if k in _MESSAGE_KEYSET} for m in chat["messages"]]}
    return _keep_top(chat, out)


def _split_system(chat: dict) -> tuple[str, list[dict]]:
    msgs = list(chat.get("messages") or [])
    system = ""
    if msgs and msgs[0].get("role") == "system":
        system = msgs[0].get("content") or ""
        msgs = msgs[1:]
    return system, msgs


def chat_to_alpaca(chat: dict) -> dict:
    """Alpaca (LLaMA-Factory flavour): last user turn -> `instruction`, last answer -> `output`,
    earlier user/assistant pairs -> `history`, system -> `system`.

    Raises ValueError for conversations alpaca cannot hold (tool turns, a system message
    that is not first, turns that do not alternate user/assistant, no final answer).
    """
    system, msgs = _split_system(chat)
    if len(msgs) < 2 or len(msgs) % 2:
        raise ValueError("alpaca needs alternating user/assistant turns ending with an assistant answer")
    pairs = []
    for u, a in zip(msgs[0::2], msgs[1::2]):
        if u.get("role") != "user" or a.get("role") != "assistant":
            raise ValueError("alpaca needs alternating user/assistant turns (no tool or extra system turns)")
        if a.get("tool_calls") or a.get("function_call"):
            raise ValueError("alpaca cannot hold tool calls")
        if not isinstance(u.get("content") or "", str) or not isinstance(a.get("content") or "", str):
            raise ValueError("alpaca holds text only, not content parts")
        pairs.append([u.get("content") or "", a.get("content") or ""])
    last_u, last_a = pairs.pop()
    out: dict = {"instruction": last_u, "input": "", "output": last_a}
    if system:
        out["system"] = system
    if pairs:
        out["history"] = pairs
    return out


def chat_to_sharegpt(chat: dict) -> dict:
    """ShareGPT (LLaMA-Factory flavour): system -> `system`, turns -> `conversations` of {from, value}.

    An assistant turn with tool calls becomes a `function_call` turn whose value is the JSON of
    the calls (`{"name", "arguments": {...}}`, a list for parallel calls); tool results become
    `observation` turns; tools become a JSON string of bare function definitions under `tools`.
    Raises ValueError for what ShareGPT cannot hold (text and tool calls in one turn, images).
    """
    system, msgs = _split_system(chat)
    conv = []
    for m in msgs:
        role = m.get("role")
        content = m.get("content")
        if content is not None and not isinstance(content, str):
            raise ValueError("ShareGPT turns hold text only, not content parts")
        if role == "assistant" and (m.get("tool_calls") or m.get("function_call")):
            if content:
                raise ValueError("ShareGPT cannot hold text and tool calls in one turn")
            calls = m.get("tool_calls") or [{"function": m.get("function_call")}]
            value = []
            for call in calls:
                function = call.get("function", call) if isinstance(call, dict) else call
                if not isinstance(function, dict):
                    raise ValueError("a tool call without a function")
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    try:
                        arguments = orjson.loads(arguments) if arguments.strip() else {}
                    except orjson.JSONDecodeError:
                        pass  # kept as the text it is
                value.append({"name": function.get("name"), "arguments": arguments})
            conv.append({"from": "function_call", "value": orjson.dumps(value[0] if len(value) == 1 else value).decode()})
            continue
        if role not in _TO_SHAREGPT:
            raise ValueError(f"ShareGPT has no speaker for role {role!r}")
        conv.append({"from": _TO_SHAREGPT[role], "value": content or ""})
    out: dict = {"conversations": conv}
    if system:
        out["system"] = system
    if chat.get("tools"):
        tools = [t["function"] if isinstance(t, dict) and isinstance(t.get("function"), dict) else t
                 for t in chat["tools"]]
        out["tools"] = orjson.dumps(tools).decode()
    return out


_EXPORTERS = {"openai": chat_to_openai, "alpaca": chat_to_alpaca, "sharegpt": chat_to_sharegpt}


def export_record(chat: dict, fmt: str) -> dict:
    try:
        return _EXPORTERS[fmt](chat)
    except KeyError:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}") from None


def write_export(chats: Iterable[dict], path: str | Path, fmt: str) -> int:
    """Stream `chats` to `path`: openai as JSONL, alpaca and sharegpt as a JSON array.

    Returns the number of records written; conversations the format cannot hold (e.g. tool
    calls in alpaca) are skipped — compare with your count to see how many.
    """
    if fmt not in _EXPORTERS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    return write_converted(chats, path, _EXPORTERS[fmt], as_array=fmt != "openai")


def write_converted(records: Iterable[dict], path: str | Path, convert: Callable[[dict], Any], *, as_array: bool,
                    skip: tuple[type[BaseException], ...] = (ValueError, TypeError, KeyError)) -> int:
    """Stream `convert(record)` for each record to `path` as JSONL, or as one JSON array; a record whose
    conversion raises one of `skip` is left out (the caller compares counts). Written to a `.part` file and
    moved into place, so a reader never sees half a file. Returns the number written."""
    skip = (*skip, orjson.JSONEncodeError)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        if as_array:
            fh.write(b"[")
        for record in records:
            try:
                row = orjson.dumps(convert(record))
            except skip:
                continue
            if as_array:
                fh.write(b"\n" if n == 0 else b",\n")
            fh.write(row)
            if not as_array:
                fh.write(b"\n")
            n += 1
        if as_array:
            fh.write(b"\n]\n" if n else b"]\n")
    tmp.replace(path)
    return n


__all__ = [
    "EXPORT_FORMATS",
    "EXPORT_SUFFIX",
    "MESSAGE_KEYS",
    "detect_format",
    "to_chat",
    "extra_fields",
    "alpaca_to_chat",
    "sharegpt_to_chat",
    "has_images",
    "openai_tools",
    "chat_to_openai",
    "chat_to_alpaca",
    "chat_to_sharegpt",
    "export_record",
    "write_export",
]
