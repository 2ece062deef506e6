"""Exact token counts with tiktoken, offline, the way OpenAI's cookbook counts chat examples.

Why this module exists:
- The encoding must follow the *base* model: tiktoken maps `ft:gpt-4.1-...` names wrongly,
  and the cookbook hard-codes `cl100k_base`, which is wrong for gpt-4o/4.1.
- Counting is the hot path of `ftassist check`: `TokenCounter` counts each distinct short
  string once (roles, shared system prompts) and keeps only three int lists. On a big
  file the check counts in a second process (`token_worker`), so that counting overlaps
  its parsing and checks. The rank files come offline (`tiktoken_files`).

Counting rule (cookbook "Chat_finetuning_data_prep", `num_tokens_from_messages`):
per message 3 tokens, plus the encoded length of every value, plus 1 when the key is `name`;
then 3 for the reply. Assistant tokens: the encoded length of the assistant messages' content.
Our documented deviations (all only for data the cookbook would crash on or ignore):
- text is encoded with `encode_ordinary` semantics: "<|endoftext|>" inside data counts as
  plain text (the cookbook's `encode()` raises ValueError on it);
- a non-string value (`tool_calls`, `function_call`, a list `content`) counts as its compact
  JSON (`json.dumps(v, separators=(",", ":"), ensure_ascii=False)`); `None` values and
  `weight` (a training flag, not text the model reads) count 0 (the cookbook would crash);
- an example's `tools` / `functions` definitions count as their compact JSON in the total,
  because OpenAI bills them as prompt tokens (the cookbook ignores them);
- assistant tokens also include an assistant message's `tool_calls` / `function_call` JSON.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence

from ftassist.data.report import TokenStats
from ftassist.data.tiktoken_files import (  # noqa: F401 - re-exported: callers import them from here
    DEFAULT_ENCODING,
    ENCODING_FILES,
    ENCODINGS,
    cache_file_name,
    ensure_offline_encodings,
)

CountFn = Callable[[str], int]


@lru_cache(maxsize=None)
def get_encoding(name: str = DEFAULT_ENCODING):
    """tiktoken's Encoding `name`, its rank file copied into tiktoken's cache first (no network)."""
    if name not in ENCODING_FILES:
        raise ValueError(f"Unknown encoding {name!r}: use one of {', '.join(ENCODINGS)}.")
    import tiktoken

    ensure_offline_encodings()  # every encoding: tiktoken used directly works offline too
    return tiktoken.get_encoding(name)


_O200K_PREFIXES = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "gpt-oss")
_CL100K_PREFIXES = ("gpt-3.5", "gpt-35", "gpt-4", "davinci-002", "babbage-002", "text-embedding")


def base_model(model: str | None) -> str:
    """`ft:gpt-4.1-mini-2025-04-14:org::id` -> `gpt-4.1-mini-2025-04-14`; also `babbage-002:ft-...`."""
    name = (model or "").strip().lower()
    if name.startswith("ft:"):
        name = name[3:]
    name = name.split(":", 1)[0]
    if "/" in name:  # "openai/gpt-4o" style
        name = name.rsplit("/", 1)[1]
    return name


def encoding_name_for_model(model: str | None) -> str:
    """The encoding of the BASE model; `o200k_base` for unknown or missing names."""
    name = base_model(model)
    if not name:
        return DEFAULT_ENCODING
    if name.startswith(_O200K_PREFIXES):  # before cl100k: "gpt-4o" starts with "gpt-4"
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return DEFAULT_ENCODING


# --------------------------------------------------------------------------- counting

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_PER_REPLY = 3
_SKIPPED_KEYS = frozenset({"weight"})  # training flags, not text the model reads
_TOOL_KEYS = ("tools", "functions")  # example-level definitions, billed as prompt tokens
_ASSISTANT_KEYS = frozenset({"content", "tool_calls", "function_call"})  # what counts as the assistant's tokens


def as_text(value: Any) -> str | None:
    """The text a value contributes: itself if a string, None if None, else its compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return None
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        try:
            return str(value)
        except Exception:  # noqa: BLE001 - e.g. RecursionError on absurdly nested data
            return ""


def encoding_counter(encoding) -> CountFn:
    """`len(encoding.encode_ordinary(text))` as a one-argument function."""
    encode_ordinary = encoding.encode_ordinary
    return lambda text: len(encode_ordinary(text))


def _chat_counts(chat: Any, count: CountFn) -> tuple[int, int]:
    """The counting rule, written plainly once for any `count(text) -> int` (see the module doc)."""
    if not isinstance(chat, dict):
        return 0, 0
    messages = chat.get("messages")
    total = TOKENS_PER_REPLY
    assistant = 0
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            total += TOKENS_PER_MESSAGE
            is_assistant = message.get("role") == "assistant"
            for key, value in message.items():
                if key in _SKIPPED_KEYS:
                    continue
                text = as_text(value)
                if text is None:
                    continue
                tokens = count(text)
                total += tokens
                if key == "name":
                    total += TOKENS_PER_NAME
                if is_assistant and key in _ASSISTANT_KEYS:
                    assistant += tokens
    for key in _TOOL_KEYS:
        text = as_text(chat.get(key))
        if text is not None:
            total += count(text)
    return total, assistant


def count_chat(chat: dict, encoding=None) -> tuple[int, int]:
    """(total, assistant) tokens of one canonical chat example, counted as the cookbook does.

    `encoding` is a tiktoken Encoding (or an encoding name; default o200k_base). This is the
    reference implementation: plain tiktoken, one `encode_ordinary` per value, which the
    fast `TokenCounter` is tested against. Unlike the cookbook's `encode()`, text such as
    "<|endoftext|>" in the data counts as ordinary text instead of raising. See the module
    docstring for non-string values, `weight` and `tools`.
    """
    if encoding is None or isinstance(encoding, str):
        encoding = get_encoding(encoding or DEFAULT_ENCODING)
    return _chat_counts(chat, encoding_counter(encoding))


def summarize(values: Sequence[int | float]) -> dict:
    """count, min, max, mean, median, p5, p95 (numpy linear percentiles); zeros when empty."""
    if len(values) == 0:
        return {"count": 0, "min": 0, "max": 0, "mean": 0.0, "median": 0.0, "p5": 0.0, "p95": 0.0}
    import numpy as np

    values_array = np.asarray(values, dtype=np.float64)
    p5, median, p95 = np.percentile(values_array, [5, 50, 95])
    smallest, largest = float(values_array.min()), float(values_array.max())
    return {
        "count": int(values_array.size),
        "min": int(smallest) if smallest.is_integer() else smallest,
        "max": int(largest) if largest.is_integer() else largest,
        "mean": float(values_array.mean()),
        "median": float(median),
        "p5": float(p5),
        "p95": float(p95),
    }


class TokenCounter:
    """Counts tokens of many chat examples fast: the hot path of `ftassist check`.

    Why it is fast: each distinct short string (roles, names, a system prompt shared by
    most examples) is counted once thanks to a small bounded cache (`known_counts`); the
    per-message loop is a few dict/type checks; nothing but three int lists is kept, so
    memory does not grow with the text. Measured on a 2-core box, and so not used:
    tiktoken's `encode_ordinary_batch(num_threads=2)` (4x slower: a thread-pool future per
    text) and two threads of `encode_ordinary` (no gain). Counts equal `count_chat`, exactly.

    `lean=True` counts with `fast_tiktoken.lean_counter` (tiktoken's core without its
    Python rank table: what the worker process uses); otherwise with tiktoken's Encoding,
    which the rest of this process shares.
    """

    CACHE_MAX_ENTRIES = 4096
    CACHE_MAX_CHARS = 16384

    def __init__(self, encoding: str = DEFAULT_ENCODING, lean: bool = False):
        if encoding not in ENCODING_FILES:
            raise ValueError(f"Unknown encoding {encoding!r}: use one of {', '.join(ENCODINGS)}.")
        self.encoding = encoding
        if lean:
            from .fast_tiktoken import lean_counter

            self.count_uncached = lean_counter(encoding)
        else:
            self.count_uncached = encoding_counter(get_encoding(encoding))
        self.known_counts: dict[str, int] = {}  # text -> tokens; hot loops may look texts up here first
        self.per_example: list[int] = []
        self.assistant_per_example: list[int] = []
        self.lines: list[int] = []

    def count(self, text: str) -> int:
        """Tokens of one text, through the cache."""
        known_counts = self.known_counts
        tokens = known_counts.get(text)
        if tokens is None:
            tokens = self.count_uncached(text)
            if len(text) <= self.CACHE_MAX_CHARS:
                if len(known_counts) >= self.CACHE_MAX_ENTRIES:
                    known_counts.clear()
                known_counts[text] = tokens
        return tokens

    def add(self, line: int, chat: dict) -> tuple[int, int]:
        """Count one example (kept in call order); returns its (total, assistant) tokens."""
        total, assistant = self.count_one(chat)
        self.per_example.append(total)
        self.assistant_per_example.append(assistant)
        self.lines.append(line)
        return total, assistant

    def count_one(self, chat: dict) -> tuple[int, int]:
        """(total, assistant) tokens of one example, without recording it; equals `count_chat`.

        The same rule as `_chat_counts`, with the cache lookup written inline: this runs for
        every example of a file.
        """
        lookup = self.known_counts.get
        count = self.count
        count_uncached = self.count_uncached
        total = TOKENS_PER_REPLY
        assistant = 0
        if not isinstance(chat, dict):
            chat = {}
        messages = chat.get("messages")
        for message in messages if isinstance(messages, list) else ():
            if not isinstance(message, dict):
                continue
            total += TOKENS_PER_MESSAGE
            is_assistant = message.get("role") == "assistant"
            for key, value in message.items():
                if key in _SKIPPED_KEYS or value is None:
                    continue
                if type(value) is str:
                    tokens = lookup(value)
                    if tokens is None:
                        tokens = count(value)
                else:
                    tokens = count_uncached(as_text(value))
                total += tokens
                if key == "name":
                    total += TOKENS_PER_NAME
                elif is_assistant and key in _ASSISTANT_KEYS:
                    assistant += tokens
        for key in _TOOL_KEYS:
            value = chat.get(key)
            if value is not None:
                total += count_uncached(as_text(value))
        return total, assistant

    def __len__(self) -> int:
        return len(self.per_example)

    def finish(self, limit: int | None = None) -> TokenStats:
        """The TokenStats of everything added, in the order added; `limit`: per-example maximum."""
        over = []
        if limit is not None:
            over = [line for line, tokens in zip(self.lines, self.per_example) if tokens > limit]
        return TokenStats(
            encoding=self.encoding,
            exact=True,
            per_example=list(self.per_example),
            assistant_per_example=list(self.assistant_per_example),
            lines=list(self.lines),
            total=sum(self.per_example),
            assistant_total=sum(self.assistant_per_example),
            stats={"total": summarize(self.per_example), "assistant": summarize(self.assistant_per_example)},
            over_limit=over,
            limit=limit,
        )


@lru_cache(maxsize=None)
def _shared_counter(name: str) -> TokenCounter:
    return TokenCounter(name)


def count_chats(chats: Iterable[dict], encoding=None) -> list[tuple[int, int]]:
    """(total, assistant) of each chat, fast; identical to `count_chat` on each.

    `encoding`: a tiktoken Encoding, an encoding name, or None (o200k_base). Uses one shared
    counter per encoding, so a system prompt repeated across calls is counted once.
    """
    name = encoding if isinstance(encoding, str) else getattr(encoding, "name", None) or DEFAULT_ENCODING
    if name not in ENCODING_FILES:  # an Encoding we do not manage: count with it directly
        count = encoding_counter(encoding)
        return [_chat_counts(chat, count) for chat in chats]
    count_one = _shared_counter(name).count_one
    return [count_one(chat) for chat in chats]
