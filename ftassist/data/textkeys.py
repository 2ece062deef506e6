"""The text keys the checklist compares examples by, shared with the token worker.

Why a module of its own: near-duplicate detection hashes every word of every prompt, and
on a big file that work is done by whichever process has spare time (the check's main
process or its token-counting worker, see `check.py`). Both must produce the very same
hashes, so both call these functions; and the worker must stay lean (no numpy, no
checklist), so they live here, with only the standard library.
"""

from __future__ import annotations

import string
import zlib
from array import array
from typing import Any, Sequence

# bytes.translate tables: ASCII letters lowercased, whitespace -> space; punctuation (and
# for near-duplicates, digits) deleted
NORMALISE = bytes(32 if i in b"\t\n\r\x0b\x0c" else i + 32 if 65 <= i <= 90 else i for i in range(256))
PUNCTUATION = string.punctuation.encode()
DIGITS = b"0123456789"
PUNCTUATION_AND_DIGITS = PUNCTUATION + DIGITS

NEAR_DUP_MAX_WORDS = 300  # near-duplicates look at the first this many words of a prompt
WORD_HASH_CODE = "I" if array("I").itemsize == 4 else "L"  # an array of 32-bit word hashes

_crc32 = zlib.crc32
_adler32 = zlib.adler32


def digests(keys: Sequence[bytes]) -> list[int]:
    """A 64-bit signed digest of each key (CRC-32 in the low half, Adler-32 in the high), for the
    checklist's exact-duplicate and grouping keys.

    Not Python's `hash`: that depends on the process's hash seed, and the check's two processes
    share the checklist's work chunk by chunk (`check.py`), so equal keys must get equal numbers
    in both. Two independent 32-bit checksums make a chance collision among a file's distinct keys
    negligible; they are each one C call, like `hash`.
    """
    crc32, adler32 = _crc32, _adler32
    return [crc32(key) ^ ((adler32(key) - 0x80000000) << 32) for key in keys]


def digest(key: bytes) -> int:
    """One key's `digests` value."""
    return digests((key,))[0]


def text_of(content: Any) -> str:
    """The text of a message's content: a string, a list of parts (their `text`), or anything."""
    if content is None:
        return ""
    if isinstance(content, list):
        return "\n".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


def final_user_text(roles: Sequence[Any], contents: Sequence[str], user: Any = "user",
                    assistant: Any = "assistant") -> str:
    """The prompt that near-duplicates and templates compare: the last user message before the
    final assistant message (earlier turns are context). "" when there is none.

    `user`/`assistant`: what stands for those roles in `roles` (the token worker passes the
    role codes of a packed chunk)."""
    last = len(roles) - 1
    while last >= 0 and roles[last] != assistant:
        last -= 1
    for i in range((last if last >= 0 else len(roles)) - 1, -1, -1):
        if roles[i] == user:
            return contents[i]
    return ""


def add_normalised_word_hashes(normalised: bytes, out: array) -> int:
    """Append the CRC-32 of each near-duplicate word of a text already through
    NORMALISE/PUNCTUATION_AND_DIGITS (its first NEAR_DUP_MAX_WORDS words) to `out`; return how many.

    CRC-32, not Python's `hash`: the result must not depend on the process's hash seed,
    since two processes share the work.
    """
    words = normalised.split()
    if len(words) > NEAR_DUP_MAX_WORDS:
        words = words[:NEAR_DUP_MAX_WORDS]
    out.extend(map(_crc32, words))
    return len(words)


def add_word_hashes(prompt: str, out: array) -> int:
    """`add_normalised_word_hashes` of a raw prompt."""
    normalised = prompt.encode("utf-8", "replace").translate(NORMALISE, PUNCTUATION_AND_DIGITS)
    return add_normalised_word_hashes(normalised, out)


def chat_word_hashes(chat: Any, out: array) -> int:
    """`add_word_hashes` of a canonical chat's final user message."""
    messages = chat.get("messages") if isinstance(chat, dict) else None
    if not isinstance(messages, list):
        return 0
    roles = []
    contents = []
    for message in messages:
        if isinstance(message, dict):
            content = message.get("content")
            roles.append(message.get("role"))
            contents.append(content if content.__class__ is str else text_of(content))
    return add_word_hashes(final_user_text(roles, contents), out)
