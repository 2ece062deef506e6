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
- a `content` list of OpenAI's typed parts counts its text parts' texts (each as a string
  would count) and 0 for an image part;
- any other non-string value (`tool_calls`, `function_call`, an untyped list) counts as its compact
  JSON (`json.dumps(v, separators=(",", ":"), ensure_ascii=False)`); `None` values and
  `weight` (a training flag, not text the model reads) count 0 (the cookbook would crash);
- an example's `tools` / `functions` definitions count as their compact JSON in the total,
  because OpenAI bills them as prompt tokens (the cookbook ignores them);
- assistant tokens also include an assistant message's `tool_calls` / `function_call` JSON.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from ftassist.data.tiktoken_files import (  # noqa: F401 - re-exported: callers import them from here
    DEFAULT_ENCODING,
    ENCODING_FILES,
    ENCODINGS,
    cache_file_name,
    ensure_offline_encodings,
)

if TYPE_CHECKING:
    from ftassist.data.report import TokenStats

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


def parts_tokens(parts: list, count: CountFn) -> int | None:
    """Tokens of a list of OpenAI content parts: each text part's text, as the same text as a string
    would count; an image part counts 0 (its tokens depend on its size, which the check does not
    fetch). None when the list is not typed parts (it then counts as its JSON)."""
    tokens = 0
    for part in parts:
        if type(part) is not dict:
            return None
        kind = part.get("type")
        if kind == "text" and type(part.get("text")) is str:
            tokens += count(part["text"])
        elif kind != "image_url":
            return None
    return tokens


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
                tokens = parts_tokens(value, count) if key == "content" and type(value) is list else None
                if tokens is None:
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
    memory does not grow with the text. Measured on a 2-core box, and so not used: tiktoken's
    `encode_ordinary_batch(num_threads=2)` (4x slower: a thread-pool future per text) and two
    threads of `encode_ordinary` (no gain). Counts equal `count_chat`, exactly.

    `count_many` counts a list of texts (uncached) with the encoder mapped over it from C, for
    callers that hold many texts at once (the token worker).

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
            from .fast_tiktoken import lean_counters

            self.count_uncached, self.count_many = lean_counters(encoding)
        else:
            tiktoken_encoding = get_encoding(encoding)
            encode_ordinary = tiktoken_encoding.encode_ordinary
            self.count_uncached = encoding_counter(tiktoken_encoding)
            self.count_many = lambda texts: list(map(len, map(encode_ordinary, texts)))  # uncached, in order
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
                elif key == "content" and type(value) is list:
                    tokens = parts_tokens(value, count)
                    if tokens is None:
                        tokens = count_uncached(as_text(value))
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
        from ftassist.data.report import TokenStats  # here: the token worker imports this module, and starts sooner

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


# --------------------------------------------------------------------------- open models' own tokenizers

_OPENAI_NAMES = _O200K_PREFIXES + _CL100K_PREFIXES


def is_openai_model(model: str | None) -> bool:
    """Whether `model` names an OpenAI model (tiktoken counts are exact for it)."""
    name = base_model(model)
    return bool(name) and name.startswith(_OPENAI_NAMES) and not name.startswith("gpt-oss")


def open_model_tokenizer(model: str | None):
    """The open model's own tokenizer when it loads without the network, else None.

    `model` is a local folder (a saved model or tokenizer) or a Hub id already in the local Hub
    cache (`local_files_only`: HF_HUB_OFFLINE or not, nothing is downloaded during a check).
    Why: an open model's tokenizer and chat template differ from o200k, so only its own counts
    are exact; without it the counts are o200k's, and said to be approximate.
    """
    if not model or is_openai_model(model):
        return None
    try:
        from pathlib import Path

        folder = Path(model).expanduser()
        if folder.is_dir():
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        if model.count("/") == 1 and _in_hub_cache(model):
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(model, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached, no tokenizer files, no transformers: count with o200k
        return None
    return None


def _in_hub_cache(model: str) -> bool:
    """Whether the Hub cache holds this model's tokenizer files: looked up before importing
    transformers, which takes seconds, so a check for an uncached model stays quick."""
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(model, name), str)
               for name in ("tokenizer_config.json", "tokenizer.json"))


def has_own_tokenizer(model: str | None) -> bool:
    """Whether `open_model_tokenizer` would find this open model's tokenizer: a cheap test (nothing is loaded)."""
    if not model or is_openai_model(model):
        return False
    from pathlib import Path

    if Path(model).expanduser().is_dir():
        return True
    try:
        return model.count("/") == 1 and _in_hub_cache(model)
    except Exception:  # noqa: BLE001 - an id the Hub rejects, no huggingface_hub: no tokenizer here
        return False


def tokenizer_name(model: str) -> str:
    """What a report says counted its tokens when an open model's own tokenizer did."""
    return f"{model} tokenizer"


def counted_with_tokenizer_of(encoding: str | None, model: str | None) -> bool:
    """Whether counts labelled `encoding` came from `model`'s own tokenizer (see `tokenizer_name`)."""
    return bool(model) and encoding == tokenizer_name(model)


def _template_messages(chat: dict) -> list[dict]:
    """Messages as chat templates read them: text parts joined, tool call arguments as objects."""
    from .textkeys import text_of

    out = []
    for message in chat.get("messages") or ():
        m = {k: v for k, v in message.items() if k != "weight"}
        content = m.get("content")
        if content is not None and not isinstance(content, str):
            m["content"] = text_of(content)
        calls = m.get("tool_calls")
        if isinstance(calls, list):
            m["tool_calls"] = [_call_with_object_arguments(c) for c in calls]
        out.append(m)
    return out


def _call_with_object_arguments(call: Any) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    try:
        arguments = json.loads(function["arguments"] or "{}")
    except ValueError:
        return call
    return {**call, "function": {**function, "arguments": arguments}}


def count_chat_with_tokenizer(chat: dict, tokenizer) -> tuple[int, int] | None:
    """(total, assistant) tokens of one example with an open model's tokenizer and chat template.

    Total: the example rendered by the model's chat template (tools included), as the trainer sees
    it. Assistant: the assistant messages' texts and tool calls encoded without special tokens.
    None when the template cannot render the example (the caller counts it with o200k).
    """
    return count_chats_with_tokenizer([chat], tokenizer)[0]


def count_chats_with_tokenizer(chats: Sequence[dict], tokenizer) -> list[tuple[int, int] | None]:
    """`count_chat_with_tokenizer` of each chat, the texts encoded in one batch.

    Rendered text encoded without special tokens is what `apply_chat_template(tokenize=True)`
    does; rendering first and encoding a whole chunk at once lets a fast tokenizer encode the
    chunk in one call instead of one call per example.
    """
    rendered: list[str | None] = []
    answers: list[list[str]] = []
    for chat in chats:
        messages = _template_messages(chat)
        try:
            text = tokenizer.apply_chat_template(messages, tools=chat.get("tools") or None, tokenize=False)
        except Exception:  # noqa: BLE001 - templates raise anything (jinja errors, "roles must alternate")
            text = None
        rendered.append(text if isinstance(text, str) else None)
        answers.append([text for message in messages if message.get("role") == "assistant"
                        for key in ("content", "tool_calls", "function_call")
                        if (text := as_text(message.get(key)))])
    texts = [text for text in rendered if text is not None]
    answer_texts = [text for parts in answers for text in parts]
    lengths = iter(_encoded_lengths(tokenizer, texts))
    answer_lengths = iter(_encoded_lengths(tokenizer, answer_texts))
    counts: list[tuple[int, int] | None] = []
    for text, parts in zip(rendered, answers):
        assistant = sum(next(answer_lengths) for _ in parts)
        counts.append(None if text is None else (next(lengths), assistant))
    return counts


def _encoded_lengths(tokenizer, texts: list[str]) -> list[int]:
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def tokenizer_chat_counter(tokenizer) -> Callable[[Sequence[dict]], tuple[list[tuple[int, int]], bool]]:
    """A function counting a chunk of chats with `tokenizer`: (counts, whether all were exact).

    An example the chat template refuses counts with o200k instead, and the chunk is then no
    longer exact (the report says "approximate" rather than pretend).
    """
    def count(chats: Sequence[dict]) -> tuple[list[tuple[int, int]], bool]:
        counted = count_chats_with_tokenizer(chats, tokenizer)
        exact = all(c is not None for c in counted)
        if not exact:
            refused = [chat for chat, c in zip(chats, counted) if c is None]
            fallback = iter(count_chats(refused, DEFAULT_ENCODING))
            counted = [c if c is not None else next(fallback) for c in counted]
        return counted, exact

    return count


def counts_for_model(chats: Iterable[dict], model: str | None, encoding: str | None = None
                     ) -> tuple[list[tuple[int, int]], str, bool]:
    """(counts, what counted them, exact) for the target model.

    An OpenAI model (or an explicit tiktoken `encoding`) counts with tiktoken: exact. An open
    model whose tokenizer loads offline (`open_model_tokenizer`) counts with its own tokenizer
    and chat template: exact. Any other open model counts with o200k: approximate, and said so.
    """
    chats = list(chats)
    tokenizer = None if encoding else open_model_tokenizer(model)
    if tokenizer is None:
        name = encoding or encoding_name_for_model(model)
        return count_chats(chats, name), name, tiktoken_exact(model, encoding)
    counts, exact = tokenizer_chat_counter(tokenizer)(chats)
    return counts, tokenizer_name(model), exact


def open_model_counter(model: str | None
                       ) -> tuple[str, Callable[[Sequence[dict]], tuple[list[tuple[int, int]], bool]]] | None:
    """(what counts, a chunk counter) when `model` is an open model whose own tokenizer loads offline;
    None when tiktoken counts (an OpenAI model, or an open model without its tokenizer here)."""
    tokenizer = open_model_tokenizer(model)
    if tokenizer is None:
        return None
    return tokenizer_name(model), tokenizer_chat_counter(tokenizer)


def approximate_note(tokens: dict, model: str | None) -> str:
    """Why a report's counts are approximate and how to make them exact; empty when they are exact."""
    if tokens.get("exact", True):
        return ""
    whose = f"{model}'s" if model else "the model's"
    return (f"approximate: counted with {tokens.get('encoding')}, not {whose} own tokenizer (not found on this "
            "machine; give a local model folder, or download the model into the Hugging Face cache, and check again)")


def tiktoken_exact(model: str | None, encoding: str | None = None) -> bool:
    """Whether tiktoken counts are exact for this target: an OpenAI model, an explicit encoding, or none named."""
    return bool(encoding) or not model or is_openai_model(model)
