"""The one place that reaches into tiktoken's private parts, and why.

The check counts tokens in a worker process (see `token_worker`), and a check's peak
memory is that of both processes together. A public `tiktoken.Encoding` keeps the whole
rank table twice: once in its Rust core and once as a Python dict (`_mergeable_ranks`,
about 200,000 bytes->int entries for o200k_base), and tiktoken's registry keeps that
Encoding alive. Counting needs only the Rust core, so `lean_counter` builds the core
alone (`tiktoken._tiktoken.CoreBPE`, the binding `Encoding.__init__` itself calls) and
lets the dict go. `bench/bench_check.py` shows the difference: with a public Encoding in
the worker the check's peak memory rises by about 25-30 MB, from about 0.44 to about 0.52
of the reference's, over the goal of at most half; the time is the same.

The rank file is read line by line (`_streamed_ranks`, hash-checked as tiktoken checks it)
instead of through tiktoken's loader, which holds the whole file, a list of all its lines
and the dict at once: the worker's start-up peak, the moment the dict and the Rust core's
three copies of the table are all alive (~91 MB for o200k_base), is then about 4 MB lower.
That peak is the long chats' peak in bench_check, with the check's own process beside it.

The parsed table is also kept beside the rank file, marshalled (`_cached_ranks`): loading it
takes well under half the time of parsing the file, and on long texts the worker is the check's
critical path from its start (it counts from the moment it is ready to the end), so the time
saved is the check's.

`reference_counter` is the plain way (tiktoken's public `get_encoding(...).encode`), and
tests hold `lean_counter` to it, token count for token count.
"""

from __future__ import annotations

from typing import Callable

from .tiktoken_files import ensure_offline_encodings

CountFn = Callable[[str], int]
CountManyFn = Callable[[list[str]], list[int]]  # the counts of many texts at once, in order


def reference_counter(name: str) -> CountFn:
    """Token count of a text by tiktoken's public API, special-token text counted as plain text.

    `disallowed_special=()` is what the check does with "<|endoftext|>" inside data: ordinary
    text (the cookbook's bare `encode()` would raise on it).
    """
    import tiktoken

    ensure_offline_encodings(names=(name,))
    encode = tiktoken.get_encoding(name).encode
    return lambda text: len(encode(text, disallowed_special=()))


def lean_counter(name: str) -> CountFn:
    """Token count of a text from tiktoken's Rust core alone: the same counts as
    `reference_counter`, without the Python copy of the rank table (see the module doc)."""
    return lean_counters(name)[0]


def lean_counters(name: str) -> tuple[CountFn, CountManyFn]:
    """`lean_counter`'s count, and a count of many texts at once from one core.

    Why the second: it maps the core's encoder over the texts from C, without a Python call
    per text, which is most of the cost beyond tiktoken's own on a file of many texts.
    """
    import gc
    import types

    import tiktoken_ext.openai_public as openai_public
    from tiktoken import _tiktoken

    kept = _kept_table(name)
    if kept is None:  # the rank file is read (and hash-checked first)
        ensure_offline_encodings(names=(name,))
        loader = _streamed_ranks
    else:  # the table kept from a hash-checked rank file: that file is not read, nor hashed again
        def loader(blob_path: str, expected_hash: str | None = None) -> dict[bytes, int]:
            return kept
    constructor = openai_public.ENCODING_CONSTRUCTORS[name]
    # tiktoken's own constructor (its pattern, special tokens, file URL and hash), with the
    # rank table loaded as said above: a copy of the function with its own globals, so that
    # tiktoken's module is left as it is
    constructor = types.FunctionType(constructor.__code__, {**openai_public.__dict__, "load_tiktoken_bpe": loader})
    spec = constructor()
    core = _tiktoken.CoreBPE(spec["mergeable_ranks"], spec["special_tokens"], spec["pat_str"])
    del spec
    kept = loader = None  # nothing keeps the Python table alive now
    gc.collect()  # the rank dict goes now, before the worker's memory matters
    encode_ordinary = core.encode_ordinary

    def count(text: str) -> int:
        try:
            return len(encode_ordinary(text))
        except UnicodeEncodeError:  # as tiktoken's Encoding does: lone surrogates become U+FFFD
            return len(encode_ordinary(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")))

    def count_many(texts: list[str]) -> list[int]:
        try:
            return list(map(len, map(encode_ordinary, texts)))
        except UnicodeEncodeError:  # a lone surrogate somewhere: text by text, as `count` does
            return list(map(count, texts))

    return count, count_many


def _streamed_ranks(blob_path: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """tiktoken's `load_tiktoken_bpe`, reading its cached file one line at a time.

    Why: tiktoken's loader keeps the file, the list of its ~200,000 lines and the dict alive
    together, and what it frees leaves the memory fragmented. Same cache file (tiktoken's
    name for it under `$TIKTOKEN_CACHE_DIR`), same sha256 check; any other case (no cache
    file, a hash that differs, a line it cannot parse) is tiktoken's own loader's.
    """
    import hashlib
    import os
    from binascii import a2b_base64

    from tiktoken.load import load_tiktoken_bpe

    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    if cache_dir and expected_hash:
        path = os.path.join(cache_dir, hashlib.sha1(blob_path.encode()).hexdigest())
        cached = _cached_ranks(path + _MARSHALLED, expected_hash)
        if cached is not None:
            return cached
        ranks: dict[bytes, int] = {}
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as rank_file:
                for line in rank_file:
                    digest.update(line)
                    if line.strip():
                        token, rank = line.split()
                        ranks[a2b_base64(token)] = int(rank)
            if digest.hexdigest() == expected_hash:
                _keep_ranks(path + _MARSHALLED, expected_hash, ranks)
                return ranks
        except (OSError, ValueError):
            pass
        del ranks
    return load_tiktoken_bpe(blob_path, expected_hash)


_MARSHALLED = ".ftassist-ranks"  # the marshalled table's file: the rank file's name, and this


def _kept_table(name: str) -> dict[bytes, int] | None:
    """The encoding's table as `_keep_ranks` kept it in the tiktoken cache directory, or None."""
    import os

    from .tiktoken_files import ENCODING_FILES, cache_file_name, default_cache_dir

    path = os.path.join(str(default_cache_dir()), cache_file_name(name) + _MARSHALLED)
    return _cached_ranks(path, ENCODING_FILES[name][1])


def _cached_ranks(path: str, expected_hash: str) -> dict[bytes, int] | None:
    """The rank table kept by `_keep_ranks` for the rank file whose sha256 is `expected_hash`, or None
    when there is none, or it is damaged (its own sha256 fails) or made from another file."""
    import hashlib
    import marshal

    try:
        with open(path, "rb") as cache_file:
            blob = cache_file.read()
        if len(blob) <= 32 or hashlib.sha256(memoryview(blob)[32:]).digest() != blob[:32]:
            return None
        made_from, ranks = marshal.loads(memoryview(blob)[32:])
    except (OSError, ValueError, EOFError, TypeError):
        return None
    return ranks if made_from == expected_hash and isinstance(ranks, dict) else None


def _keep_ranks(path: str, expected_hash: str, ranks: dict[bytes, int]) -> None:
    """Write the parsed table beside its rank file (whole or not at all: a temporary file, renamed);
    a cache directory that cannot be written to is left as it is."""
    import hashlib
    import marshal
    import os

    payload = marshal.dumps((expected_hash, ranks))
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as cache_file:
            cache_file.write(hashlib.sha256(payload).digest())
            cache_file.write(payload)
        os.replace(temporary, path)
    except OSError:
        try:
            os.unlink(temporary)
        except OSError:
            pass
