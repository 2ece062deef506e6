"""Exact token counts with tiktoken, offline, the way OpenAI's cookbook counts chat examples.

Why this module exists:
- tiktoken downloads each encoding's rank file on first use; this machine (and many users')
  has no network. The `bpe-openai` package ships the same rank files gzipped, and their
  decompressed sha256 equal tiktoken's own expected hashes, so we copy them into tiktoken's
  cache under the names tiktoken looks for (sha1 of the blob URL), after checking the hash.
- The encoding must follow the *base* model: tiktoken maps `ft:gpt-4.1-...` names wrongly,
  and the cookbook hard-codes `cl100k_base`, which is wrong for gpt-4o/4.1.
- Counting is the hot path of `ftassist check`: `TokenCounter` counts each distinct short
  string once (roles, shared system prompts) and keeps only three int lists;
  `BackgroundChatCounter` moves the counting into a worker process so it overlaps the
  caller's parsing and checks (threads measured no gain on 2 cores, see below).

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

import gzip
import hashlib
import json
import marshal
import os
import sys
import tempfile
import threading
from array import array
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence

from ftassist.data.report import TokenStats

DEFAULT_ENCODING = "o200k_base"

# name -> (tiktoken's blob URL, tiktoken's expected sha256 of the decompressed file)
ENCODING_FILES: dict[str, tuple[str, str]] = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}
ENCODINGS = tuple(ENCODING_FILES)

_verified: set[tuple[str, str]] = set()  # (cache dir, encoding) already checked in this process


# --------------------------------------------------------------------------- offline cache


def default_cache_dir() -> Path:
    """`$TIKTOKEN_CACHE_DIR` when set (non-empty), else `$XDG_CACHE_HOME|~/.cache`/ftassist/tiktoken."""
    env = os.environ.get("TIKTOKEN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ftassist" / "tiktoken"


def cache_file_name(encoding: str) -> str:
    """The file name tiktoken's `read_file_cached` uses: sha1 of the blob URL."""
    url, _ = ENCODING_FILES[encoding]
    return hashlib.sha1(url.encode()).hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _shipped_rank_file(encoding: str) -> bytes:
    """The decompressed rank file shipped by `bpe-openai` (no network)."""
    try:
        import importlib.util

        # Locate the package without importing it: its __init__ eagerly builds tokenizers.
        spec = importlib.util.find_spec("bpe_openai")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError("bpe_openai")
        package_dir = Path(list(spec.submodule_search_locations)[0])
        blob = (package_dir / "data" / f"{encoding}.tiktoken.gz").read_bytes()
    except (ImportError, FileNotFoundError, OSError, ValueError) as exc:
        raise RuntimeError(
            f"Cannot find the offline copy of {encoding} (package bpe-openai). "
            "Install it with `pip install bpe-openai`, or allow tiktoken to download once."
        ) from exc
    return gzip.decompress(blob)


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        return os.access(path, os.W_OK | os.X_OK)
    except OSError:
        return False


def ensure_offline_encodings(cache_dir: str | os.PathLike | None = None, names: Iterable[str] | None = None) -> Path:
    """Make `tiktoken.get_encoding("o200k_base"/"cl100k_base")` work with no network.

    Writes each rank file into the tiktoken cache dir under tiktoken's own cache name, only
    after checking its sha256 equals tiktoken's expected hash; a cached file with the wrong
    hash is replaced. Sets `TIKTOKEN_CACHE_DIR` when it was unset (or empty, which would
    disable tiktoken's cache). Idempotent: after the first check in a process it only stats.
    `names`: only these encodings (default: all). Returns the cache dir.
    """
    names = tuple(ENCODING_FILES) if names is None else tuple(names)
    if cache_dir is not None:
        return _populate(Path(cache_dir).expanduser(), names)
    target = default_cache_dir()
    if not _writable(target) and not _complete(target, names):
        # tiktoken would need to download into an unwritable dir: use a temp dir instead
        target = Path(tempfile.gettempdir()) / "ftassist-tiktoken"
        os.environ["TIKTOKEN_CACHE_DIR"] = str(target)
    if not os.environ.get("TIKTOKEN_CACHE_DIR"):
        os.environ["TIKTOKEN_CACHE_DIR"] = str(target)
    return _populate(target, names)


def _complete(target: Path, names: Sequence[str]) -> bool:
    """All rank files present with the right hash (read-only caches are fine then)."""
    return all(
        (target / cache_file_name(name)).is_file()
        and _sha256_file(target / cache_file_name(name)) == ENCODING_FILES[name][1]
        for name in names
    )


def _populate(target: Path, names: Sequence[str]) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for encoding in names:
        expected = ENCODING_FILES[encoding][1]
        path = target / cache_file_name(encoding)
        key = (str(target), encoding)
        if key in _verified and path.exists():
            continue
        if path.exists() and _sha256_file(path) == expected:
            _verified.add(key)
            continue
        data = _shipped_rank_file(encoding)
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise RuntimeError(
                f"The offline copy of {encoding} has sha256 {actual}, expected {expected}; "
                "refusing to use it. Reinstall bpe-openai."
            )
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the new one
        _verified.add(key)
    return target


@lru_cache(maxsize=None)
def get_encoding(name: str = DEFAULT_ENCODING):
    """A tiktoken Encoding (cached), loaded from the offline copies when needed."""
    if name not in ENCODING_FILES:
        raise ValueError(f"Unknown encoding {name!r}: use one of {', '.join(ENCODINGS)}.")
    import tiktoken

    ensure_offline_encodings()  # every encoding: tiktoken used directly works offline too
    return tiktoken.Encoding(**_encoding_spec(name))


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


def _as_text(value: Any) -> str | None:
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


def _tiktoken_count(enc) -> Any:
    """`len(enc.encode_ordinary(text))` as a one-argument function."""
    encode = enc.encode_ordinary
    return lambda text: len(encode(text))


def _chat_counts(chat: Any, count) -> tuple[int, int]:
    """The counting rule, written once for any `count(text) -> int` (see the module doc)."""
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
                text = _as_text(value)
                if text is None:
                    continue
                n = count(text)
                total += n
                if key == "name":
                    total += TOKENS_PER_NAME
                if is_assistant and key in ("content", "tool_calls", "function_call"):
                    assistant += n
    for key in _TOOL_KEYS:
        text = _as_text(chat.get(key))
        if text is not None:
            total += count(text)
    return total, assistant


def count_chat(chat: dict, enc=None) -> tuple[int, int]:
    """(total, assistant) tokens of one canonical chat example, counted as the cookbook does.

    `enc` is a tiktoken Encoding (or an encoding name; default o200k_base). This is the
    reference implementation: plain tiktoken, one `encode_ordinary` per value. Unlike the
    cookbook's `encode()`, text such as "<|endoftext|>" in the data counts as ordinary text
    instead of raising. See the module docstring for non-string values, `weight` and `tools`.
    """
    if enc is None or isinstance(enc, str):
        enc = get_encoding(enc or DEFAULT_ENCODING)
    return _chat_counts(chat, _tiktoken_count(enc))


# Probe texts to confirm at start-up that the fast counter agrees with tiktoken.
_PROBES = (
    "Hello, world! It's 2024: naïve café, 東京, привет 😀 <|endoftext|>",
    "    def f(x):\n\treturn x**2  # comment\r\n\n\n",
    "1234567890 3.14159 $1,000,000 don't WE'LL they've",
)


@lru_cache(maxsize=None)
def _fast_count_fn(name: str):
    """bpe-openai's Rust `count` (no token list built), or None when unusable.

    It is 1.3-1.6x faster than tiktoken's encode_ordinary and gives identical counts (checked
    by tests on varied text and unicode, and here on probes); tiktoken stays the source of
    truth and handles what the fast counter cannot (strings with lone surrogates).
    """
    try:
        import warnings

        with warnings.catch_warnings():  # its package init uses a deprecated importlib call
            warnings.simplefilter("ignore", DeprecationWarning)
            from bpe_openai import _bindings

            tokenizer = _bindings.tokenizer_for_encoding(name)
    except Exception:  # noqa: BLE001 - any failure just means "use tiktoken"
        return None
    ref = _tiktoken_count(get_encoding(name))
    if any(tokenizer.count(p) != ref(p) for p in _PROBES):
        return None
    return tokenizer.count


def _load_bpe_fast(tiktoken_bpe_file: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """`tiktoken.load.load_tiktoken_bpe`, the same dict, about 3x faster.

    The file comes through tiktoken's own `read_file_cached`, hash check included, and is
    parsed with C-level maps; a file that is not plain "token rank" pairs goes to tiktoken's
    parser, which names the bad line. The dict is then kept in the tiktoken cache dir as a
    marshal copy (`_rank_cache_path`), which later loads read back in a third of the time.
    """
    import binascii

    from tiktoken.load import load_tiktoken_bpe, read_file_cached

    cache = _rank_cache_path(expected_hash)
    ranks = _read_rank_cache(cache) if cache else None
    if ranks is not None:
        return ranks
    contents = read_file_cached(tiktoken_bpe_file, expected_hash)
    parts = contents.split()
    lines = contents.count(b"\n") + (not contents.endswith(b"\n"))
    if len(parts) != 2 * lines:  # blank or odd lines: not the plain format
        return load_tiktoken_bpe(tiktoken_bpe_file, expected_hash)
    try:
        ranks = dict(zip(map(binascii.a2b_base64, parts[0::2]), map(int, parts[1::2])))
    except (ValueError, binascii.Error):
        return load_tiktoken_bpe(tiktoken_bpe_file, expected_hash)
    if cache:
        _write_rank_cache(cache, ranks)
    return ranks


# marshal's format may change between Python versions: each version has its own copy
_RANKS_MAGIC = b"ftassist-ranks-1 python-%d.%d marshal-%d\n" % (*sys.version_info[:2], marshal.version)


def _rank_cache_path(expected_hash: str | None) -> Path | None:
    """Where the parsed copy of the rank file with sha256 `expected_hash` lives: beside tiktoken's
    own copy, named by that hash (so a copy is never used for another file); None when
    tiktoken caches nothing or there is no hash to name it by."""
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    if not cache_dir or not expected_hash or not all(c in "0123456789abcdef" for c in expected_hash):
        return None
    return Path(cache_dir) / f"{expected_hash}.ranks"


def _read_rank_cache(path: Path) -> dict[bytes, int] | None:
    """The parsed ranks, or None when the copy is missing, from another Python, or damaged
    (its payload carries its own sha256, written only after tiktoken checked the source)."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    head = len(_RANKS_MAGIC) + 32
    if len(blob) < head or not blob.startswith(_RANKS_MAGIC):
        return None
    payload = memoryview(blob)[head:]
    if hashlib.sha256(payload).digest() != blob[len(_RANKS_MAGIC):head]:
        return None
    try:
        ranks = marshal.loads(payload)
    except (ValueError, EOFError, TypeError):
        return None
    return ranks if isinstance(ranks, dict) else None


def _write_rank_cache(path: Path, ranks: dict[bytes, int]) -> None:
    payload = marshal.dumps(ranks)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(_RANKS_MAGIC + hashlib.sha256(payload).digest() + payload)
        os.replace(tmp, path)  # atomic: a concurrent reader sees no copy or a whole one
    except OSError:  # a read-only cache: parse each time
        try:
            tmp.unlink()
        except OSError:
            pass


def _encoding_spec(name: str) -> dict[str, Any]:
    """tiktoken's constructor arguments for `name` (its own pattern and special tokens), with
    the ranks read offline through `_load_bpe_fast`."""
    import tiktoken_ext.openai_public as openai_public

    ensure_offline_encodings(names=(name,))
    with _SPEC_LOCK:  # the loader is swapped module-wide for the constructor's call
        real_loader = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = _load_bpe_fast
        try:
            return openai_public.ENCODING_CONSTRUCTORS[name]()
        finally:
            openai_public.load_tiktoken_bpe = real_loader


_SPEC_LOCK = threading.Lock()


def _lean_count_fn(name: str):
    """tiktoken's own Rust BPE core, without the Python-side rank dict an `Encoding` keeps.

    Same engine and counts as `Encoding.encode_ordinary` (including its repair of lone
    surrogates), about 25 MB lighter: what a counting-only process such as the background
    worker needs, since every MB of that process adds to a check's peak memory.
    """
    import gc

    from tiktoken import _tiktoken

    spec = _encoding_spec(name)
    core = _tiktoken.CoreBPE(spec["mergeable_ranks"], spec["special_tokens"], spec["pat_str"])
    del spec
    gc.collect()
    encode = core.encode_ordinary

    def count(text: str) -> int:
        try:
            return len(encode(text))
        except UnicodeEncodeError:  # as tiktoken does: lone surrogates become U+FFFD
            return len(encode(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")))

    return count


def _counter(name: str, backend: str = "tiktoken"):
    """A `count(text) -> int` for `name`.

    backend "tiktoken": tiktoken's encode_ordinary. "bpe": bpe-openai's Rust counter (error if
    unusable). "auto": bpe-openai when usable, else tiktoken. Measured on 100k chat examples:
    the Rust counter is 1.3x (ASCII) to 1.6x (mixed scripts) faster per text, but loading it
    takes ~0.6 s and ~130 MB, so it pays off only for big jobs off the main process.
    """
    if backend not in ("tiktoken", "bpe", "auto", "lean"):
        raise ValueError(f"Unknown token counting backend {backend!r}: use tiktoken, lean, bpe or auto.")
    if backend == "lean":
        return _lean_count_fn(name)
    slow = _tiktoken_count(get_encoding(name))
    fast = _fast_count_fn(name) if backend in ("auto", "bpe") else None
    if backend == "bpe" and fast is None:
        raise RuntimeError("The bpe-openai counter is not available; use backend='tiktoken'.")
    if fast is None:
        return slow

    def count(text: str) -> int:
        try:
            return fast(text)
        except UnicodeEncodeError:  # lone surrogates: tiktoken repairs them itself
            return slow(text)

    return count


def count_texts(texts: Iterable[str], encoding: str = DEFAULT_ENCODING, backend: str = "tiktoken") -> list[int]:
    """Token count of each text (ordinary text, no special tokens), exact for `encoding`."""
    count = _counter(encoding, backend)
    return [count(t) if isinstance(t, str) else count(_as_text(t) or "") for t in texts]


def summarize(values: Sequence[int | float]) -> dict:
    """count, min, max, mean, median, p5, p95 (numpy linear percentiles); zeros when empty."""
    if len(values) == 0:
        return {"count": 0, "min": 0, "max": 0, "mean": 0.0, "median": 0.0, "p5": 0.0, "p95": 0.0}
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    p5, median, p95 = np.percentile(arr, [5, 50, 95])
    return {
        "count": int(arr.size),
        "min": int(arr.min()) if float(arr.min()).is_integer() else float(arr.min()),
        "max": int(arr.max()) if float(arr.max()).is_integer() else float(arr.max()),
        "mean": float(arr.mean()),
        "median": float(median),
        "p5": float(p5),
        "p95": float(p95),
    }


class TokenCounter:
    """Counts tokens of many chat examples fast: the hot path of `ftassist check`.

    Why it is fast: each distinct short string (roles, names, a system prompt shared by
    most examples) is counted once thanks to a small bounded cache; the per-message loop is
    a few dict/type checks; nothing but three int lists is kept, so memory does not grow with
    the text. Measured on this 2-core box, and so not used: tiktoken's
    `encode_ordinary_batch(num_threads=2)` (4x slower: a thread-pool future per text) and two
    threads of `encode_ordinary` (no gain); bpe-openai's counter (`backend="bpe"`, identical
    counts) is 1.3-1.6x faster per text but costs ~0.6 s and ~130 MB to load, which a
    100k-example file does not win back. Counts equal `count_chat` summed, exactly.
    """

    CACHE_MAX_ENTRIES = 4096
    CACHE_MAX_CHARS = 16384

    def __init__(self, encoding: str = DEFAULT_ENCODING, backend: str = "tiktoken"):
        self.encoding = encoding
        self._count = _counter(encoding, backend)
        self._cache: dict[str, int] = {}
        self.per_example: list[int] = []
        self.assistant_per_example: list[int] = []
        self.lines: list[int] = []

    def count(self, text: str) -> int:
        """Tokens of one text, through the cache."""
        cache = self._cache
        n = cache.get(text)
        if n is None:
            n = self._count(text)
            if len(text) <= self.CACHE_MAX_CHARS:
                if len(cache) >= self.CACHE_MAX_ENTRIES:
                    cache.clear()
                cache[text] = n
        return n

    def add(self, line: int, chat: dict) -> tuple[int, int]:
        """Count one example (kept in call order); returns its (total, assistant) tokens."""
        total, assistant = self.count_one(chat)
        self.per_example.append(total)
        self.assistant_per_example.append(assistant)
        self.lines.append(line)
        return total, assistant

    def count_one(self, chat: dict) -> tuple[int, int]:
        """(total, assistant) tokens of one example, without recording it; equals `count_chat`."""
        cache = self._cache
        get = cache.get
        count = self._count
        max_chars = self.CACHE_MAX_CHARS
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
                    n = get(value)
                    if n is None:
                        n = count(value)
                        if len(value) <= max_chars:
                            if len(cache) >= self.CACHE_MAX_ENTRIES:
                                cache.clear()
                            cache[value] = n
                else:
                    n = count(_as_text(value))
                total += n
                if key == "name":
                    total += TOKENS_PER_NAME
                elif is_assistant and (key == "content" or key == "tool_calls" or key == "function_call"):
                    assistant += n
        for key in _TOOL_KEYS:
            value = chat.get(key)
            if value is not None:
                total += count(_as_text(value))
        return total, assistant

    def __len__(self) -> int:
        return len(self.per_example)

    def finish(self, limit: int | None = None) -> TokenStats:
        """The TokenStats of everything added, in the order added; `limit`: per-example maximum."""
        over = []
        if limit is not None:
            over = [ln for ln, n in zip(self.lines, self.per_example) if n > limit]
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


def count_chats(chats: Iterable[dict], enc=None) -> list[tuple[int, int]]:
    """(total, assistant) of each chat, fast; identical to `count_chat` on each.

    `enc`: a tiktoken Encoding, an encoding name, or None (o200k_base). Uses one shared
    counter per encoding, so a system prompt repeated across calls is counted once.
    """
    name = enc if isinstance(enc, str) else getattr(enc, "name", None) or DEFAULT_ENCODING
    if name not in ENCODING_FILES:  # an Encoding we do not manage: count with it directly
        count = _tiktoken_count(enc)
        return [_chat_counts(chat, count) for chat in chats]
    count_one = _shared_counter(name).count_one
    return [count_one(chat) for chat in chats]


# --------------------------------------------------------------------------- background worker

_FRAME = 8  # bytes of the big-endian length that precedes each pickled frame


def _read_exact(stream, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


_EOF = object()  # _read_frame's answer at the end of the stream


def _read_frame(stream) -> Any:
    import pickle

    head = _read_exact(stream, _FRAME)
    if head is None:
        return _EOF
    body = _read_exact(stream, int.from_bytes(head, "big"))
    return _EOF if body is None else pickle.loads(body)


def _frame(obj: Any) -> bytes:
    import pickle

    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return len(body).to_bytes(_FRAME, "big") + body


class Counted(NamedTuple):
    """One chunk's results from `BackgroundChatCounter`: its payload, the (total, assistant)
    tokens of each chat, and, when asked for, the chats' near-duplicate word hashes
    (`textkeys.chat_word_hashes`: all hashes in one array, and how many each chat has)."""

    payload: Any
    totals: Sequence[int]
    assistants: Sequence[int]
    words: tuple[array, array] | None = None

    @property
    def counts(self) -> list[tuple[int, int]]:
        return list(zip(self.totals, self.assistants))


def pack_chats(chats: list, words: bool = False) -> bytes:
    """One chunk of chats as a frame for the worker.

    Why not pickle the dicts: a chat of plain {role, content} messages travels as its texts
    and one role code per message, which is cheaper to pickle on this side and to unpickle
    and walk on the other (measured: 1.4 + 0.6 us per chat against 1.9 + 3.0). Any other
    chat (tools, names, non-string content) travels whole.
    """
    texts: list[str] = []
    roles = bytearray()
    layout = array("i")  # per chat: its number of messages, or -1 when it travels whole
    whole: dict[int, Any] = {}
    codes: dict[str, int] = {}
    for i, chat in enumerate(chats):
        msgs = chat.get("messages") if chat.__class__ is dict and len(chat) == 1 else None
        if msgs.__class__ is list:
            start = len(texts)
            for m in msgs:
                if m.__class__ is dict and len(m) == 2:
                    content = m.get("content")
                    role = m.get("role")
                    if content.__class__ is str and role.__class__ is str:
                        code = codes.get(role)
                        if code is None and len(codes) < 255:
                            code = codes[role] = len(codes)
                        if code is not None:
                            texts.append(content)
                            roles.append(code)
                            continue
                del texts[start:], roles[start:]
                break
            else:
                layout.append(len(msgs))
                continue
        layout.append(-1)
        whole[i] = chat
    return _frame((list(codes), layout.tobytes(), bytes(roles), texts, whole, words))


def count_packed(counter: "TokenCounter", frame: tuple) -> tuple[bytes, bytes, tuple[bytes, bytes] | None]:
    """The worker's answer to one `pack_chats` frame: totals, assistant tokens, word hashes.

    Equal to `counter.count_one` and `textkeys.chat_word_hashes` on each chat (tests hold
    both paths to that); the plain-message path just skips the dict walking.
    """
    from .textkeys import WORD_HASH_CODE, add_word_hashes, chat_word_hashes, final_user_text

    role_names, layout_bytes, roles, texts, whole, words = frame
    layout = array("i")
    layout.frombytes(layout_bytes)
    cache = counter._cache
    get = cache.get
    count = counter.count
    role_tokens = [count(r) for r in role_names]
    assistant = role_names.index("assistant") if "assistant" in role_names else -1
    user = role_names.index("user") if "user" in role_names else -1
    totals = array("i")
    assistants = array("i")
    wh = array(WORD_HASH_CODE)
    wc = array("i")
    pos = 0
    for i, n in enumerate(layout):
        if n < 0:
            chat = whole[i]
            t, a = counter.count_one(chat)
            if words:
                wc.append(chat_word_hashes(chat, wh))
        else:
            t = TOKENS_PER_REPLY
            a = 0
            end = pos + n
            for j in range(pos, end):
                text = texts[j]
                k = get(text)
                if k is None:
                    k = count(text)
                code = roles[j]
                t += TOKENS_PER_MESSAGE + role_tokens[code] + k
                if code == assistant:
                    a += k
            if words:
                prompt = final_user_text(roles[pos:end], texts[pos:end], user=user, assistant=assistant)
                wc.append(add_word_hashes(prompt, wh))
            pos = end
        totals.append(t)
        assistants.append(a)
    return totals.tobytes(), assistants.tobytes(), (wh.tobytes(), wc.tobytes()) if words else None


def _unpack_answer(payload: Any, answer: tuple) -> Counted:
    from .textkeys import WORD_HASH_CODE

    totals, assistants = array("i"), array("i")
    totals.frombytes(answer[0])
    assistants.frombytes(answer[1])
    words = None
    if answer[2] is not None:
        wh, wc = array(WORD_HASH_CODE), array("i")
        wh.frombytes(answer[2][0])
        wc.frombytes(answer[2][1])
        words = (wh, wc)
    return Counted(payload, totals, assistants, words)


def _worker_main() -> None:
    """The worker process: reads (encoding, backend), then `pack_chats` frames; answers each.

    Runs as `python -c "from ftassist.data.tokens import _worker_main; _worker_main()"`, not
    through multiprocessing, so the parent's `__main__` is never re-imported (a CLI or app
    entry point without a main guard would otherwise run again in the child).
    """
    import gc

    gc.disable()  # a counting loop makes no reference cycles; collections would only cost time
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    setup = _read_frame(stdin)
    if setup is _EOF:
        return
    counter = TokenCounter(setup[0], backend=setup[1])
    stdout.write(_frame("ready"))
    stdout.flush()
    while True:
        frame = _read_frame(stdin)
        if frame is _EOF:
            return
        try:
            answer: Any = count_packed(counter, frame)
        except Exception:  # noqa: BLE001 - the parent recounts this chunk itself
            answer = None
        stdout.write(_frame(answer))
        stdout.flush()


def _widen_pipes(*streams) -> None:
    """Give the pipes to the worker room for a whole chunk (Linux; elsewhere a no-op).

    Why: a 2 MB chunk through a default 64 KB pipe takes ~35 writes, and between two of them
    the writer thread must win the GIL back from the busy main thread (up to the 5 ms switch
    interval each time), so the worker would sit waiting for its input.
    """
    try:
        import fcntl

        size = 1 << 20
        try:
            with open("/proc/sys/fs/pipe-max-size") as fh:
                size = min(size, int(fh.read()))
        except (OSError, ValueError):
            pass
        for stream in streams:
            fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except Exception:  # noqa: BLE001 - only a speed-up
        pass


class BackgroundChatCounter:
    """Counts chunks of chats in a worker process while the caller goes on parsing and checking.

    Why: counting is most of a check's CPU time and tiktoken's own threads gain nothing on 2
    cores (measured: 2 threads of `encode_ordinary` took as long as 1; bpe-openai holds the
    GIL), so the only way to overlap it with parsing/validation/checklist work is another
    process. Chats travel packed (`pack_chats`, far cheaper than counting them here).

    Use: `submit(chats, payload, words=False)` returns the chunks already counted, in
    submission order, as `Counted` results; it blocks only to keep at most `max_pending`
    chunks in flight (bounded memory). `drain()` returns the rest. Counts equal `count_chat`
    on each chat; `words=True` also asks for the near-duplicate word hashes, so that a
    caller with more work than the worker can hand some over (`backlog` says how far behind
    the worker is). If the worker cannot start or dies, chunks are counted in this process
    instead (slower, same numbers), so callers never handle worker errors.
    """

    def __init__(self, encoding: str = DEFAULT_ENCODING, backend: str = "lean", max_pending: int = 4):
        import collections
        import queue

        if encoding not in ENCODING_FILES:
            raise ValueError(f"Unknown encoding {encoding!r}: use one of {', '.join(ENCODINGS)}.")
        self.encoding = encoding
        self.backend = backend
        self.max_pending = max(1, max_pending)
        # (payload, chats or None, packed frame or None, words, n), oldest first: a chunk that was packed keeps
        # only its frame (far smaller than the dicts), which is also what a recount here starts from
        self._inflight: collections.deque = collections.deque()
        self._results: queue.Queue = queue.Queue()
        self._outbox: queue.Queue = queue.Queue(maxsize=self.max_pending + 1)
        self._local: TokenCounter | None = None
        self._proc = None
        self.in_process = True  # becomes False once the worker answered "ready"
        try:
            self._start_worker()
        except Exception:  # noqa: BLE001 - no worker: count here
            self._stop_worker()
        if self._proc is not None:
            self._reader = threading.Thread(target=self._read_loop, name="token-count-reader", daemon=True)
            self._writer = threading.Thread(target=self._write_loop, name="token-count-writer", daemon=True)
            self._reader.start()
            self._writer.start()

    # -- worker plumbing

    def _start_worker(self) -> None:
        import subprocess

        # no ensure_offline_encodings() here: the worker checks its rank file itself, and
        # hashing it here too would only delay the worker's start
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from ftassist.data.tokens import _worker_main; _worker_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        _widen_pipes(self._proc.stdin, self._proc.stdout)
        self._proc.stdin.write(_frame((self.encoding, self.backend)))
        self._proc.stdin.flush()

    def _stop_worker(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except Exception:  # noqa: BLE001
                pass
        try:
            proc.wait(timeout=2)
        except Exception:  # noqa: BLE001
            proc.kill()
            proc.wait()

    def _read_loop(self) -> None:
        proc = self._proc
        try:
            first = _read_frame(proc.stdout)
            if first == "ready":
                self.in_process = False
                while True:
                    answer = _read_frame(proc.stdout)
                    if answer is _EOF:
                        break
                    self._results.put(("ok", answer))
        except Exception:  # noqa: BLE001 - a broken pipe ends the worker's turn
            pass
        self._results.put(("dead", None))

    def _write_loop(self) -> None:
        proc = self._proc
        while True:
            data = self._outbox.get()
            if data is None:
                break
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
            except Exception:  # noqa: BLE001 - the reader notices the dead worker
                break
        try:
            proc.stdin.close()
        except Exception:  # noqa: BLE001
            pass

    def _count_here(self, payload: Any, chats: list | None, data: bytes | None, words: bool) -> Counted:
        import pickle

        from .textkeys import WORD_HASH_CODE, chat_word_hashes

        if self._local is None:
            self._local = TokenCounter(self.encoding, backend="tiktoken")
        if chats is None:
            return _unpack_answer(payload, count_packed(self._local, pickle.loads(data[_FRAME:])))
        counts = [self._local.count_one(chat) for chat in chats]
        found = None
        if words:
            wh = array(WORD_HASH_CODE)
            found = (wh, array("i", [chat_word_hashes(chat, wh) for chat in chats]))
        return Counted(payload, array("i", [t for t, _ in counts]), array("i", [a for _, a in counts]), found)

    def _take_oldest(self, block: bool) -> Counted | None:
        """The oldest in-flight chunk's results, or None when not ready and not blocking."""
        import queue

        if not self._inflight:
            return None
        if self._proc is None or self._inflight[0][2] is None:  # no worker, or never sent to it
            payload, chats, data, words, _ = self._inflight.popleft()
            return self._count_here(payload, chats, data, words)
        try:
            status, answer = self._results.get(block=block)
        except queue.Empty:
            return None
        payload, chats, data, words, n = self._inflight.popleft()
        if status == "dead":
            self._results.put(("dead", None))  # every later chunk sees it too
            self._abandon_worker()
            return self._count_here(payload, chats, data, words)
        try:
            done = _unpack_answer(payload, answer)
        except Exception:  # noqa: BLE001 - a chunk the worker could not count
            return self._count_here(payload, chats, data, words)
        if len(done.totals) != n or (words and (done.words is None or len(done.words[1]) != n)):
            return self._count_here(payload, chats, data, words)
        return done

    def _abandon_worker(self) -> None:
        try:
            self._outbox.put_nowait(None)
        except Exception:  # noqa: BLE001
            pass
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
        self.in_process = True

    # -- public API

    @property
    def backlog(self) -> int:
        """Chunks submitted and not yet returned: how far behind the worker is."""
        return len(self._inflight)

    @property
    def words_in_flight(self) -> bool:
        """Whether a chunk still in flight was sent with words=True (its word hashes are to come)."""
        return any(item[3] for item in self._inflight)

    def submit(self, chats: list, payload: Any = None, words: bool = False) -> list[Counted]:
        """Queue one chunk; return the chunks finished so far (oldest first)."""
        chats = list(chats)
        done = []
        data = None
        if self._proc is not None:
            try:
                data = pack_chats(chats, words)
            except Exception:  # noqa: BLE001 - e.g. absurdly nested data: count it here
                data = None
        self._inflight.append((payload, None if data is not None else chats, data, words, len(chats)))
        if data is not None:
            self._outbox.put(data)
        while True:
            must_wait = len(self._inflight) > self.max_pending
            item = self._take_oldest(block=must_wait)
            if item is None:
                break
            done.append(item)
        return done

    def drain(self) -> list[Counted]:
        """Wait for every chunk still in flight; return them oldest first."""
        done = []
        while self._inflight:
            done.append(self._take_oldest(block=True))
        return done

    def close(self) -> None:
        """Stop the worker (chunks still in flight are dropped: call drain() first)."""
        self._inflight.clear()
        if self._proc is not None:
            try:
                self._outbox.put(None, timeout=1)
            except Exception:  # noqa: BLE001
                pass
            self._stop_worker()

    def __enter__(self) -> "BackgroundChatCounter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # best effort: never leave a worker behind
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
