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

Not done any more, because the benchmark showed no gain: swapping tiktoken's rank-file
loader for a faster parser with a marshal cache. It only shortened the worker's start,
which overlaps the check's own start-up.

`reference_counter` is the plain way (tiktoken's public `get_encoding(...).encode`), and
tests hold `lean_counter` to it, token count for token count.
"""

from __future__ import annotations

from typing import Callable

from .tiktoken_files import ensure_offline_encodings

CountFn = Callable[[str], int]


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
    import gc

    import tiktoken_ext.openai_public as openai_public
    from tiktoken import _tiktoken

    ensure_offline_encodings(names=(name,))
    spec = openai_public.ENCODING_CONSTRUCTORS[name]()  # tiktoken's own pattern, ranks and special tokens
    core = _tiktoken.CoreBPE(spec["mergeable_ranks"], spec["special_tokens"], spec["pat_str"])
    del spec
    gc.collect()  # the rank dict goes now, before the worker's memory matters
    encode_ordinary = core.encode_ordinary

    def count(text: str) -> int:
        try:
            return len(encode_ordinary(text))
        except UnicodeEncodeError:  # as tiktoken's Encoding does: lone surrogates become U+FFFD
            return len(encode_ordinary(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")))

    return count
