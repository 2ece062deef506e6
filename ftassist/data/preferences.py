"""Preference pairs (DPO data): the three formats people have, one canonical pair, and the pair checks.

Why a station of its own: a preference record holds two answers to one prompt, not one
conversation, so the chat checks would call every record "no assistant turn". Here a pair is
detected, validated (line, code, message, fix: the `validate.py` helpers), converted, exported
and judged as a pair.

Formats (`pair_format`):
- "openai_dpo": OpenAI's DPO fine-tuning JSONL, `{"input": {"messages": [...], optional "tools"},
  "preferred_output": [assistant message], "non_preferred_output": [assistant message]}`;
- "trl": TRL's preference format, `prompt`/`chosen`/`rejected`, either plain strings ("standard") or
  lists of messages ("conversational"); the prompt explicit, or implicit (no `prompt`: it is the
  beginning chosen and rejected share, found the way TRL's `extract_prompt` finds it);
- "sharegpt": ShareGPT pairs as LLaMA-Factory writes them, `{"conversations": [{from, value}...],
  "chosen": {"from": "gpt", "value"}, "rejected": {...}}` (optional `system`, `tools`).

The canonical pair, what every format converts to and what the trainer reads, is TRL's
conversational form with an explicit prompt: `{"prompt": [messages], "chosen": [assistant message],
"rejected": [assistant message]}` (plus `tools` when there are some); `arena/export.py: dpo_pairs`
writes exactly this.
"""

from __future__ import annotations

import hashlib
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import orjson

from .formats import MESSAGE_KEYS, chat_to_sharegpt, sharegpt_to_chat, write_converted
from .report import ChecklistItem, Issue, Record
from .textkeys import text_of

PAIR_FORMATS = ("openai_dpo", "trl", "sharegpt")
PAIR_FORMAT_TITLES = {"openai_dpo": "OpenAI DPO", "trl": "TRL preference", "sharegpt": "ShareGPT pairs"}
PAIR_EXPORT_FORMATS = ("trl", "openai_dpo", "sharegpt", "trl_standard", "trl_implicit")
PAIR_EXPORT_SUFFIX = {"trl": ".jsonl", "openai_dpo": ".jsonl", "sharegpt": ".json", "trl_standard": ".jsonl",
                      "trl_implicit": ".jsonl"}

# --- the checks' thresholds ---------------------------------------------------------------
IDENTICAL_FAIL_SHARE = 0.05  # pairs whose chosen equals rejected: any -> warn, this share -> fail
DUPLICATE_FAIL_SHARE = 0.10  # the same pair again: any -> warn, this share -> fail
CONTRADICTION_FAIL_SHARE = 0.05  # A over B and B over A for one prompt: any -> warn, this share -> fail
LENGTH_MIN_PAIRS = 10  # fewer pairs compared: the length share is reported, not judged
LENGTH_WARN_SHARE = 0.70  # chosen longer (or shorter) in at least this share of the pairs: warn ...
LENGTH_FAIL_SHARE = 0.90  # ... in at least this share: fail
MAX_EVIDENCE = 20

PAIR_CHECK_TITLES = {
    "pair_identical": "Chosen differs from rejected",
    "pair_empty": "No empty side",
    "pair_duplicates": "No repeated pairs",
    "pair_contradictions": "No contradictory pairs",
    "pair_length_bias": "No length bias",
}

_KEYSET = frozenset(MESSAGE_KEYS)
_WHITESPACE = re.compile(r"\s+")
_SIDES = {"openai_dpo": ("preferred_output", "non_preferred_output"), "trl": ("chosen", "rejected"),
          "sharegpt": ("chosen", "rejected")}


@dataclass
class Pair:
    """One valid preference record: its source line, the canonical pair, and the shape it came in."""

    line: int
    pair: dict
    source_format: str  # one of PAIR_FORMATS
    style: str = "conversational"  # trl only: "standard" (strings) or "conversational" (messages)
    prompt_kind: str = "explicit"  # trl only: "implicit" when the prompt was the shared beginning


# --------------------------------------------------------------------------- detection


def is_preference(obj: Any) -> bool:
    """Whether a record is a preference pair: a `chosen` + `rejected` key pair, or OpenAI's outputs."""
    return isinstance(obj, dict) and (("chosen" in obj and "rejected" in obj) or "preferred_output" in obj
                                      or "non_preferred_output" in obj)


def pair_format(obj: dict) -> str:
    """Which preference format a record is in (call on a record `is_preference` accepts)."""
    if "preferred_output" in obj or "non_preferred_output" in obj:
        return "openai_dpo"
    if "conversations" in obj:
        return "sharegpt"
    return "trl"


def trl_shape(obj: dict) -> tuple[str, str]:
    """A TRL record's (style, prompt kind): ("standard" | "conversational", "explicit" | "implicit")."""
    style = "conversational" if isinstance(obj.get("chosen"), list) else "standard"
    return style, ("explicit" if "prompt" in obj else "implicit")


def shape_of(obj: dict) -> tuple[str, str, str]:
    """(format, style, prompt kind): what must stay the same across a file (TRL reads one column type)."""
    fmt = pair_format(obj)
    if fmt == "trl":
        return (fmt, *trl_shape(obj))
    return fmt, "conversational", "explicit"


def describe(fmt: str, style: str = "conversational", prompt_kind: str = "explicit") -> str:
    """The format in words, for reports: "TRL preference (conversational, implicit prompt)"."""
    title = PAIR_FORMAT_TITLES.get(fmt, fmt)
    return f"{title} ({style}, {prompt_kind} prompt)" if fmt == "trl" else title


# --------------------------------------------------------------------------- validation


def validate_pair(rec: dict, line: int) -> list[Issue]:
    """Every problem of one preference record, with its line and a fix. Never raises."""
    from . import validate as v

    issues: list[Issue] = []
    try:
        fmt = pair_format(rec)
        if fmt == "openai_dpo":
            _validate_openai(rec, line, issues)
        elif fmt == "sharegpt":
            _validate_sharegpt_pair(rec, line, issues)
        else:
            _validate_trl(rec, line, issues)
    except Exception as exc:  # noqa: BLE001 - validation must report, never crash the check
        issues.append(v._issue(line, "data_type", f"The record could not be checked ({type(exc).__name__})."))
    return issues


def _missing(line: int, key: str, hint: str) -> Issue:
    from . import validate as v

    return v._issue(line, "missing_field", f"The preference record has no \"{key}\".", hint)


def _messages(messages: Any, where: str, line: int, issues: list[Issue], answer: bool) -> str | None:
    """Check a list of messages (`where`: "the prompt", "\"chosen\""...); the last role, or None.

    For an answer side (`answer`), its last message must be an assistant message, and an empty
    text is not an error here: it is the "empty side" check's (a warning that Fix & split drops)."""
    from . import validate as v

    if not isinstance(messages, list):
        issues.append(v._issue(line, "messages_not_list", f"{where[:1].upper()}{where[1:]} is {v._kind(messages)}, "
                               "not a list of messages.", "Make it a list of {\"role\", \"content\"} messages."))
        return None
    if not messages:
        issues.append(v._issue(line, "missing_messages_list", f"{where[:1].upper()}{where[1:]} is an empty list.",
                               "Give it at least one message."))
        return None

    def add(issue: Issue) -> None:
        issue.message = f"In {where}: {issue.message}"
        issues.append(issue)

    prev = None
    for i, message in enumerate(messages, 1):
        if answer and type(message) is dict and isinstance(message.get("content"), str) \
                and not message["content"].strip():
            message = {**message, "content": "-"}  # judged by the empty-side check, not as an error
        prev = v._check_message(message, i, line, add, prev)
    last = messages[-1]
    if answer and (not isinstance(last, dict) or last.get("role") != "assistant"):
        issues.append(v._issue(line, "invalid_preference_side",
                               f"{where[:1].upper()}{where[1:]} does not end with an assistant message."))
    return last.get("role") if isinstance(last, dict) else None


def _side_after_prompt(prompt_role: str | None, side_first: Any, where: str, line: int, issues: list[Issue]) -> None:
    from . import validate as v

    if prompt_role == "assistant" and isinstance(side_first, dict) and side_first.get("role") == "assistant":
        issues.append(v._issue(line, "consecutive_same_role",
                               f"The prompt ends with an assistant message, and {where} starts with another.",
                               "End the prompt with the user's turn: the answers reply to it."))


def _validate_openai(rec: dict, line: int, issues: list[Issue]) -> None:
    from . import validate as v

    source = rec.get("input")
    if "input" not in rec:
        issues.append(_missing(line, "input", "Add \"input\": {\"messages\": [...]} with the conversation so far."))
        prompt_role = None
    elif not isinstance(source, dict):
        issues.append(v._issue(line, "invalid_preference_side", f"\"input\" is {v._kind(source)}, not an object.",
                               "Make \"input\" an object: {\"messages\": [...], optional \"tools\": [...]}."))
        prompt_role = None
    else:
        prompt_role = _messages(source.get("messages"), "the input's messages", line, issues, answer=False)
        if "tools" in source or "functions" in source:
            why = v._tools_ok(source)
            if why:
                issues.append(v._issue(line, "invalid_tools", f"The input's {why}."))
    for key in ("preferred_output", "non_preferred_output"):
        if key not in rec:
            issues.append(_missing(line, key, f"Add \"{key}\": [{{\"role\": \"assistant\", \"content\": ...}}]."))
            continue
        side = rec[key]
        if isinstance(side, list) and len(side) > 1:
            issues.append(v._issue(line, "invalid_preference_side", f"\"{key}\" has {len(side)} messages; "
                                   "OpenAI takes exactly one assistant message.", "Keep only the final answer."))
            continue
        _messages(side, f"\"{key}\"", line, issues, answer=True)
        if isinstance(side, list) and side:
            _side_after_prompt(prompt_role, side[0], f"\"{key}\"", line, issues)


def _validate_trl(rec: dict, line: int, issues: list[Issue]) -> None:
    from . import validate as v

    for key in ("chosen", "rejected"):
        if key not in rec:
            issues.append(_missing(line, key, f"Add \"{key}\" (the {'preferred' if key == 'chosen' else 'worse'} "
                                   "answer), as text or a list of messages."))
    if issues:
        return
    chosen, rejected = rec["chosen"], rec["rejected"]
    prompt = rec.get("prompt")
    conversational = isinstance(chosen, list)
    kinds = {"chosen": chosen, "rejected": rejected, **({"prompt": prompt} if "prompt" in rec else {})}
    if conversational:
        wrong = [k for k, value in kinds.items() if not isinstance(value, list)]
        if wrong:
            names = ", ".join(f'"{k}"' for k in wrong)
            issues.append(v._issue(line, "mixed_pair_styles",
                                   f"\"chosen\" is a list of messages but {names} "
                                   f"{'is' if len(wrong) == 1 else 'are'} not.",
                                   "Write prompt, chosen and rejected all as lists of messages, or all as text."))
            return
        if "prompt" in rec:
            prompt_role = _messages(prompt, "the prompt", line, issues, answer=False)
            for key, side in (("chosen", chosen), ("rejected", rejected)):
                _messages(side, f"\"{key}\"", line, issues, answer=True)
                if side:
                    _side_after_prompt(prompt_role, side[0], f"\"{key}\"", line, issues)
            return
        for key, side in (("chosen", chosen), ("rejected", rejected)):
            _messages(side, f"\"{key}\"", line, issues, answer=True)
        if not issues and not _shared_messages(chosen, rejected):
            issues.append(v._issue(line, "no_shared_prompt", "Chosen and rejected share no first message, so "
                                   "there is no prompt (the implicit-prompt format takes it from what they share).",
                                   "Start both with the same prompt messages, or add a \"prompt\" list."))
        return
    wrong = [k for k, value in kinds.items() if not isinstance(value, str)]
    if wrong:
        code = "mixed_pair_styles" if any(isinstance(kinds[k], list) for k in wrong) else "non_string_field"
        names = ", ".join(f'"{k}"' for k in wrong)
        message = (f"\"chosen\" is {v._kind(chosen)}, neither text nor a list of messages." if "chosen" in wrong
                   else f"{names} {'is' if len(wrong) == 1 else 'are'} not text (\"chosen\" is).")
        issues.append(v._issue(line, code, message,
                               "Write prompt, chosen and rejected all as text, or all as lists of messages."))
        return
    for key, value in kinds.items():
        why = v._bad_text(value)
        if why:
            issues.append(v._issue(line, "unencodable_content", f"\"{key}\" {why}."))
    if "prompt" in rec and not prompt.strip():
        issues.append(v._issue(line, "missing_content", "\"prompt\" is empty.", "Give the prompt the answers reply to."))
    if "prompt" not in rec and not _shared_text(chosen, rejected).strip():
        issues.append(v._issue(line, "no_shared_prompt", "Chosen and rejected share no beginning, so there is no "
                               "prompt (the implicit-prompt format takes it from what they share).",
                               "Add a \"prompt\" field, or start both texts with the same prompt."))


def _validate_sharegpt_pair(rec: dict, line: int, issues: list[Issue]) -> None:
    from . import validate as v

    conversation = {"conversations": rec.get("conversations"), "system": rec.get("system"), "tools": rec.get("tools")}
    for issue in v._validate_sharegpt(conversation, line):
        if issue.code != "example_missing_assistant_message":  # the answers are in chosen/rejected
            issue.message = f"In \"conversations\": {issue.message}"
            issues.append(issue)
    turns = rec.get("conversations")
    last = turns[-1] if isinstance(turns, list) and turns else None
    for key in ("chosen", "rejected"):
        side = rec.get(key)
        if not isinstance(side, dict):
            issues.append(v._issue(line, "invalid_preference_side", f"\"{key}\" is {v._kind(side)}, not a turn.",
                                   f"Write \"{key}\": {{\"from\": \"gpt\", \"value\": \"...\"}}."))
            continue
        who, value = side.get("from", "gpt"), side.get("value")
        if who not in ("gpt", "assistant"):
            issues.append(v._issue(line, "unrecognized_role", f"\"{key}\" is from {v._shown(who)}, not gpt.",
                                   "Answers are {\"from\": \"gpt\", \"value\": \"...\"}."))
        if not isinstance(value, str):
            issues.append(v._issue(line, "non_string_field", f"\"{key}\"'s value is {v._kind(value)}, not text.",
                                   "Give the answer as text in \"value\"."))
        elif v._bad_text(value):
            issues.append(v._issue(line, "unencodable_content", f"\"{key}\"'s value {v._bad_text(value)}."))
    if isinstance(last, dict) and last.get("from") in ("gpt", "assistant"):
        issues.append(v._issue(line, "consecutive_same_role", "The conversation ends with a gpt turn, and the "
                               "answers are gpt turns too.", "End \"conversations\" with the human's turn."))


# --------------------------------------------------------------------------- conversion


def _message(m: dict) -> dict:
    return m if m.keys() <= _KEYSET else {k: v for k, v in m.items() if k in _KEYSET}


def _shared_messages(chosen: list, rejected: list) -> int:
    """How many first messages an implicit conversational pair shares: its prompt. Each side keeps at least
    its last message, so a pair whose sides are the same whole is two equal answers, not two empty ones."""
    n = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        n += 1
    return max(0, min(n, len(chosen) - 1, len(rejected) - 1))


def _shared_text(chosen: str, rejected: str) -> str:
    """The prompt of an implicit standard pair: TRL's `extract_prompt` (the common beginning, less the
    space before the first different character, which stays with the answers)."""
    n = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        n += 1
    n = max(0, min(n, len(chosen) - 1, len(rejected) - 1))  # as for messages: each side keeps something
    if 0 < n and chosen[n - 1] == " ":
        n -= 1
    return chosen[:n]


def to_pair(obj: dict) -> dict:
    """The canonical pair of a valid preference record; ValueError (clear message) when it cannot be."""
    fmt = pair_format(obj)
    if fmt == "openai_dpo":
        source = obj.get("input") or {}
        out = {"prompt": [_message(m) for m in source["messages"]],
               "chosen": [_message(m) for m in obj["preferred_output"]],
               "rejected": [_message(m) for m in obj["non_preferred_output"]]}
        if source.get("tools"):
            out["tools"] = source["tools"]
        return out
    if fmt == "sharegpt":
        chat = sharegpt_to_chat({k: obj[k] for k in ("conversations", "system", "tools") if k in obj})
        out = {"prompt": chat["messages"],
               "chosen": [{"role": "assistant", "content": obj["chosen"]["value"]}],
               "rejected": [{"role": "assistant", "content": obj["rejected"]["value"]}]}
        if chat.get("tools"):
            out["tools"] = chat["tools"]
        return out
    chosen, rejected = obj["chosen"], obj["rejected"]
    if isinstance(chosen, list):
        if "prompt" in obj:
            prompt = obj["prompt"]
        else:
            n = _shared_messages(chosen, rejected)
            prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
        out = {"prompt": [_message(m) for m in prompt], "chosen": [_message(m) for m in chosen],
               "rejected": [_message(m) for m in rejected]}
    else:
        if "prompt" in obj:
            prompt = obj["prompt"]
        else:
            prompt = _shared_text(chosen, rejected)
            chosen, rejected = chosen[len(prompt):], rejected[len(prompt):]
        out = {"prompt": [{"role": "user", "content": prompt}], "chosen": [{"role": "assistant", "content": chosen}],
               "rejected": [{"role": "assistant", "content": rejected}]}
    if obj.get("tools"):
        out["tools"] = obj["tools"]
    return out


def chats_of(pair: dict) -> tuple[dict, dict]:
    """The two conversations a pair trains on, prompt + chosen and prompt + rejected, as canonical chats
    (what token counts and the chat checklist take)."""
    tools = {"tools": pair["tools"]} if pair.get("tools") else {}
    return ({"messages": [*pair["prompt"], *pair["chosen"]], **tools},
            {"messages": [*pair["prompt"], *pair["rejected"]], **tools})


# --------------------------------------------------------------------------- exporters


def _single_answer(side: list, key: str) -> dict:
    if len(side) != 1 or side[0].get("role") != "assistant":
        raise ValueError(f"\"{key}\" must be exactly one assistant message for this format")
    return side[0]


def _text_answer(side: list, key: str) -> str:
    message = _single_answer(side, key)
    if message.get("tool_calls") or not isinstance(message.get("content"), str):
        raise ValueError(f"\"{key}\" must be a text answer for this format")
    return message["content"]


def pair_to_openai_dpo(pair: dict) -> dict:
    """OpenAI's DPO record: the prompt under `input`, one assistant message on each side."""
    source: dict = {"messages": pair["prompt"]}
    if pair.get("tools"):
        source["tools"] = pair["tools"]
    return {"input": source, "preferred_output": [_single_answer(pair["chosen"], "chosen")],
            "non_preferred_output": [_single_answer(pair["rejected"], "rejected")]}


def pair_to_trl(pair: dict) -> dict:
    """TRL conversational with an explicit prompt: the canonical pair itself."""
    return {k: pair[k] for k in ("prompt", "chosen", "rejected", "tools") if k in pair}


def pair_to_trl_implicit(pair: dict) -> dict:
    """TRL conversational with an implicit prompt: each side is the whole conversation."""
    out = {"chosen": [*pair["prompt"], *pair["chosen"]], "rejected": [*pair["prompt"], *pair["rejected"]]}
    if pair.get("tools"):
        out["tools"] = pair["tools"]
    return out


def pair_to_trl_standard(pair: dict) -> dict:
    """TRL standard (plain text): the prompt must be one user message, each side one text answer."""
    prompt = pair["prompt"]
    if len(prompt) != 1 or prompt[0].get("role") != "user" or not isinstance(prompt[0].get("content"), str):
        raise ValueError("plain-text pairs need a prompt of one user message (no system message, no earlier turns)")
    if pair.get("tools"):
        raise ValueError("plain-text pairs cannot hold tools")
    return {"prompt": prompt[0]["content"], "chosen": _text_answer(pair["chosen"], "chosen"),
            "rejected": _text_answer(pair["rejected"], "rejected")}


def pair_to_sharegpt(pair: dict) -> dict:
    """LLaMA-Factory's ShareGPT pair: the prompt as `conversations` (system and tools as ShareGPT keeps
    them), each answer one gpt turn."""
    out = chat_to_sharegpt({"messages": pair["prompt"], **({"tools": pair["tools"]} if pair.get("tools") else {})})
    out["chosen"] = {"from": "gpt", "value": _text_answer(pair["chosen"], "chosen")}
    out["rejected"] = {"from": "gpt", "value": _text_answer(pair["rejected"], "rejected")}
    return out


_PAIR_EXPORTERS: dict[str, Callable[[dict], dict]] = {
    "trl": pair_to_trl, "openai_dpo": pair_to_openai_dpo, "sharegpt": pair_to_sharegpt,
    "trl_standard": pair_to_trl_standard, "trl_implicit": pair_to_trl_implicit,
}


def export_pair(pair: dict, fmt: str) -> dict:
    """One canonical pair in `fmt` (one of PAIR_EXPORT_FORMATS); ValueError when the format cannot hold it."""
    try:
        convert = _PAIR_EXPORTERS[fmt]
    except KeyError:
        raise ValueError(f"unknown pair format {fmt!r}; choose one of {', '.join(PAIR_EXPORT_FORMATS)}") from None
    return convert(pair)


def write_pairs(pairs: Iterable[dict], path: str | Path, fmt: str = "trl") -> int:
    """Write canonical pairs in `fmt`: JSONL, except ShareGPT (a JSON array, as LLaMA-Factory's
    examples are). Returns how many were written: pairs the format cannot hold are skipped."""
    if fmt not in _PAIR_EXPORTERS:
        raise ValueError(f"unknown pair format {fmt!r}; choose one of {', '.join(PAIR_EXPORT_FORMATS)}")
    return write_converted(pairs, path, _PAIR_EXPORTERS[fmt], as_array=fmt == "sharegpt",
                           skip=(ValueError, TypeError, KeyError, AttributeError))


# --------------------------------------------------------------------------- reading


def iter_pairs(records: Iterable[Record], on_issue: Callable[[Issue], None]) -> Iterator[Pair]:
    """The valid preference records as canonical pairs, in file order; every problem goes to `on_issue`.

    One place decides what a valid pair is, for the check and for clean alike: no error from the
    validator, the same shape as the file's first valid pair (format, and for TRL text or messages,
    explicit or implicit prompt: a trainer reads one column type), and a conversion that succeeds.
    """
    from . import validate as v

    file_shape: tuple[str, str, str] | None = None
    first_line = 0
    for record in records:
        line, data = record.line, record.data
        if record.problem is not None:
            on_issue(record.problem)
            continue
        if not isinstance(data, dict):
            on_issue(v._issue(line, "data_type", f"The record is {v._kind(data)}, not a JSON object."))
            continue
        if not is_preference(data) and "chosen" not in data and "rejected" not in data:
            from .formats import detect_format

            what = detect_format(data)
            on_issue(Issue(line, "mixed_formats", f"this record is {f'in {what} format' if what else 'not a pair'}, "
                           "but the file holds preference pairs",
                           "give every record a prompt with a chosen and a rejected answer, or split the file"))
            continue
        problems = validate_pair(data, line)
        for issue in problems:
            on_issue(issue)
        if any(issue.severity == "error" for issue in problems):
            continue
        shape = shape_of(data)
        if file_shape is None:
            file_shape, first_line = shape, line
        elif shape != file_shape:
            on_issue(Issue(line, "mixed_formats", f"this pair is {describe(*shape)}, but the file is "
                           f"{describe(*file_shape)} (from line {first_line})",
                           "write every pair the same way (`ftassist pairs convert` rewrites a file in one format)"))
            continue
        try:
            pair = to_pair(data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            on_issue(Issue(line, "conversion_failed", f"could not convert this pair: {exc}",
                           "check the record's fields against the format's documentation"))
            continue
        yield Pair(line, pair, shape[0], shape[1], shape[2])


# --------------------------------------------------------------------------- the checks


def side_text(side: list) -> str:
    """The text of an answer side: its contents, and its tool calls as JSON."""
    parts = []
    for message in side:
        if isinstance(message, dict):
            parts.append(text_of(message.get("content")))
            if message.get("tool_calls"):
                parts.append(orjson.dumps(message["tool_calls"], option=orjson.OPT_SORT_KEYS).decode())
    return "\n".join(parts)


def _squeezed(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _key(value: Any) -> bytes:
    return hashlib.blake2b(orjson.dumps(value, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()


def prompt_key(pair: dict) -> bytes:
    """The prompt's identity for contradictions and the split: the messages, spacing aside (system kept)."""
    return _key([[m.get("role"), _squeezed(text_of(m.get("content")))] for m in pair["prompt"]
                 if isinstance(m, dict)])


def pair_key(pair: dict) -> bytes:
    """The whole pair's identity: the same pair twice shares it (spacing at the ends aside)."""
    return _key([prompt_key(pair).hex(), _squeezed(side_text(pair["chosen"])), _squeezed(side_text(pair["rejected"])),
                 pair.get("tools")])


def _sample(text: str, n: int = 160) -> str:
    text = _squeezed(text)
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class PairChecks:
    """The preference checks, one pair at a time: `add` returns the warnings of that pair (with its
    line), `finish` judges the file (checklist items) and says the figures (`summary`)."""

    n: int = 0
    identical: list[int] = field(default_factory=list)
    empty: list[tuple[int, str]] = field(default_factory=list)  # (line, "chosen" | "rejected" | "both")
    duplicates: list[tuple[int, int]] = field(default_factory=list)  # (line, line of the first)
    contradictions: list[tuple[int, int]] = field(default_factory=list)  # (line, line of the opposite pair)
    chosen_lengths: list[int] = field(default_factory=list)
    rejected_lengths: list[int] = field(default_factory=list)
    length_lines: list[int] = field(default_factory=list)
    samples: dict[int, str] = field(default_factory=dict)  # evidence text of the lines named above
    _seen: dict[bytes, int] = field(default_factory=dict)
    _orders: dict[tuple[bytes, bytes, bytes], int] = field(default_factory=dict)  # (prompt, chosen, rejected)

    def add(self, line: int, pair: dict) -> list[Issue]:
        self.n += 1
        warnings: list[Issue] = []
        chosen, rejected = side_text(pair["chosen"]), side_text(pair["rejected"])
        chosen_key, rejected_key = _squeezed(chosen), _squeezed(rejected)
        sample = (f"prompt: {_sample(side_text(pair['prompt']), 100)} | chosen: {_sample(chosen, 80)} | "
                  f"rejected: {_sample(rejected, 80)}")
        empty = [side for side, text in (("chosen", chosen_key), ("rejected", rejected_key)) if not text]
        if empty:
            which = empty[0] if len(empty) == 1 else "both"
            self.empty.append((line, which))
            self.samples[line] = sample
            side = "both answers are" if which == "both" else f"the {which} answer is"
            warnings.append(Issue(line, "empty_pair_side", f"{side} empty",
                                  "give both answers text, or drop the pair (Fix & split drops it)", "warning"))
        elif chosen_key == rejected_key:
            self.identical.append(line)
            self.samples[line] = sample
            warnings.append(Issue(line, "identical_pair", "the chosen and the rejected answers are the same text",
                                  "a pair teaches only by its difference: make the rejected answer the worse one, "
                                  "or drop the pair (Fix & split drops it)", "warning"))
        key = pair_key(pair)
        first = self._seen.get(key)
        if first is not None:
            self.duplicates.append((line, first))
            self.samples[line] = sample
            warnings.append(Issue(line, "duplicate_pair", f"the same pair as line {first}",
                                  "drop the copy (Fix & split keeps the first): a repeated pair counts twice",
                                  "warning"))
        else:
            self._seen[key] = line
        if chosen_key != rejected_key:
            prompt = prompt_key(pair)
            chosen_hash, rejected_hash = _key(chosen_key), _key(rejected_key)
            opposite = self._orders.get((prompt, rejected_hash, chosen_hash))
            if opposite is not None:
                self.contradictions.append((line, opposite))
                self.samples[line] = sample
                warnings.append(Issue(line, "contradictory_pair", f"line {opposite} prefers the other answer to "
                                      "the same prompt", "keep the pair whose preference is right and drop the "
                                      "other: together they cancel out", "warning"))
            self._orders.setdefault((prompt, chosen_hash, rejected_hash), line)
            if chosen_key and rejected_key:
                self.chosen_lengths.append(len(chosen_key))
                self.rejected_lengths.append(len(rejected_key))
                self.length_lines.append(line)
        return warnings

    # ------------------------------------------------------------------ judging
    def length_figures(self) -> dict:
        """Share of pairs (with two different, non-empty answers) where chosen is longer; the length ratios."""
        pairs = list(zip(self.chosen_lengths, self.rejected_lengths))
        longer = sum(1 for c, r in pairs if c > r)
        shorter = sum(1 for c, r in pairs if c < r)
        ratios = [c / r for c, r in pairs]
        return {
            "compared": len(pairs),
            "chosen_longer": longer,
            "chosen_shorter": shorter,
            "chosen_longer_share": round(longer / len(pairs), 4) if pairs else None,
            "median_ratio": round(statistics.median(ratios), 3) if ratios else None,
            "mean_ratio": round(statistics.fmean(ratios), 3) if ratios else None,
        }

    def summary(self) -> dict:
        return {
            "identical_lines": list(self.identical),
            "empty_lines": [line for line, _ in self.empty],
            "duplicate_lines": [[line, first] for line, first in self.duplicates],
            "contradiction_lines": [[line, other] for line, other in self.contradictions],
            "length": self.length_figures(),
        }

    def finish(self) -> list[ChecklistItem]:
        n = self.n
        if not n:
            return [ChecklistItem(id_, title, "not_checked", "No valid pairs to check.")
                    for id_, title in PAIR_CHECK_TITLES.items()]
        return [self._identical(), self._empty(), self._duplicates(), self._contradictions(), self._length_bias()]

    def _evidence(self, lines: Iterable[int], note: Callable[[int], str]) -> list[dict]:
        return [{"line": line, "sample": self.samples.get(line, ""), "note": note(line)}
                for line in list(lines)[:MAX_EVIDENCE]]

    def _item(self, id_: str, status: str, summary: str, evidence: list[dict], details: dict) -> ChecklistItem:
        return ChecklistItem(id_, PAIR_CHECK_TITLES[id_], status, summary, evidence, details)

    def _identical(self) -> ChecklistItem:
        k = len(self.identical)
        status = "pass" if not k else ("fail" if k / self.n >= IDENTICAL_FAIL_SHARE else "warn")
        summary = ("Every pair has two different answers." if not k else
                   f"{_pairs(k)} ({_share(k, self.n)}) {_have(k)} the same chosen and rejected answer: they teach nothing "
                   f"(lines {_lines(self.identical)}). Fix & split drops them.")
        return self._item("pair_identical", status, summary,
                          self._evidence(self.identical, lambda _: "chosen = rejected"), {"lines": self.identical})

    def _empty(self) -> ChecklistItem:
        k = len(self.empty)
        lines = [line for line, _ in self.empty]
        which = dict(self.empty)
        summary = ("No pair has an empty answer." if not k else
                   f"{_pairs(k)} {_have(k)} an empty answer (lines {_lines(lines)}): DPO would learn to prefer, or avoid, "
                   "saying nothing. Fix & split drops them.")
        return self._item("pair_empty", "fail" if k else "pass", summary,
                          self._evidence(lines, lambda line: f"empty {which[line]} answer"), {"lines": lines})

    def _duplicates(self) -> ChecklistItem:
        k = len(self.duplicates)
        status = "pass" if not k else ("fail" if k / self.n >= DUPLICATE_FAIL_SHARE else "warn")
        lines = [line for line, _ in self.duplicates]
        first = dict(self.duplicates)
        summary = ("No pair appears twice." if not k else
                   f"{_pairs(k)} ({_share(k, self.n)}) {'repeats' if k == 1 else 'repeat'} an earlier pair (lines {_lines(lines)}): a repeated "
                   "pair weighs twice. Fix & split keeps the first.")
        return self._item("pair_duplicates", status, summary,
                          self._evidence(lines, lambda line: f"same pair as line {first[line]}"),
                          {"lines": [[line, first[line]] for line in lines]})

    def _contradictions(self) -> ChecklistItem:
        k = len(self.contradictions)
        status = "pass" if not k else ("fail" if 2 * k / self.n >= CONTRADICTION_FAIL_SHARE else "warn")
        lines = [line for line, _ in self.contradictions]
        other = dict(self.contradictions)
        summary = ("No prompt has two pairs that prefer opposite answers." if not k else
                   f"{_pairs(k)} {'prefers' if k == 1 else 'prefer'} B over A where an earlier pair with the same prompt prefers A over B "
                   f"(lines {_lines(sorted({*lines, *other.values()}))}): they cancel out. Keep the right one.")
        return self._item("pair_contradictions", status, summary,
                          self._evidence(lines, lambda line: f"opposite of line {other[line]}"),
                          {"pairs": [[line, other[line]] for line in lines]})

    def _length_bias(self) -> ChecklistItem:
        figures = self.length_figures()
        compared, share = figures["compared"], figures["chosen_longer_share"]
        why = ("DPO learns whatever tells chosen from rejected, length included: when the chosen answer is "
               "nearly always the longer one, the model learns to write longer, not better")
        if not compared:
            return self._item("pair_length_bias", "not_checked", "No pair with two non-empty, different answers "
                              "to compare.", [], figures)
        text = (f"The chosen answer is longer in {figures['chosen_longer']:,} of {compared:,} pairs ({share:.0%}); "
                f"chosen/rejected length: median ×{figures['median_ratio']:.2f}, mean ×{figures['mean_ratio']:.2f}.")
        if compared < LENGTH_MIN_PAIRS:
            return self._item("pair_length_bias", "pass", f"{text} Too few pairs to judge a bias.", [], figures)
        # equal lengths lean neither way: a file of same-length answers has no length bias
        lean = max(figures["chosen_longer"], figures["chosen_shorter"]) / compared
        status = "fail" if lean >= LENGTH_FAIL_SHARE else "warn" if lean >= LENGTH_WARN_SHARE else "pass"
        if status == "pass":
            return self._item("pair_length_bias", "pass", f"{text} No strong length bias.", [], figures)
        direction = "longer" if figures["chosen_longer"] > figures["chosen_shorter"] else "shorter"
        advice = (f" {why[:1].upper()}{why[1:]}." if direction == "longer" else
                  " DPO learns whatever tells chosen from rejected: here it is brevity as much as quality.")
        advice += (" Add pairs where the better answer is the shorter one, or trim the chosen answers; "
                   if direction == "longer" else " Add pairs where the better answer is the longer one; ")
        advice += "a length-normalised loss (e.g. SimPO, or DPO's `ld_alpha`) also helps."
        ranked = sorted(zip(self.length_lines, self.chosen_lengths, self.rejected_lengths),
                        key=lambda t: (t[1] / t[2]) if direction == "longer" else (t[2] / t[1]), reverse=True)
        evidence = [{"line": line, "sample": "", "note": f"chosen {c:,} characters, rejected {r:,}"}
                    for line, c, r in ranked[:5]]
        return self._item("pair_length_bias", status, text + advice, evidence, figures)


def _pairs(k: int) -> str:
    return f"{k:,} pair{'s' if k != 1 else ''}"


def _have(k: int) -> str:
    return "has" if k == 1 else "have"


def _share(k: int, n: int) -> str:
    return f"{k / n:.0%}" if n else "0%"


def _lines(lines: list[int], shown: int = 8) -> str:
    text = ", ".join(map(str, lines[:shown]))
    return text + (f" and {len(lines) - shown:,} more" if len(lines) > shown else "")


__all__ = [
    "PAIR_CHECK_TITLES", "PAIR_EXPORT_FORMATS", "PAIR_EXPORT_SUFFIX", "PAIR_FORMATS", "Pair", "PairChecks",
    "chats_of", "describe", "export_pair", "is_preference", "iter_pairs", "pair_format", "pair_key", "prompt_key",
    "to_pair", "validate_pair", "write_pairs",
]
