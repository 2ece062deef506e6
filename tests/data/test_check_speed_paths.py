"""The check's speed and memory paths (bench_check's goal) give exactly what the plain paths give.

- the worker's rank table read line by line equals tiktoken's own loader, and a cache file
  with the wrong hash is left to tiktoken's loader;
- a chunk counted on two threads equals the chunk counted on one;
- the near-duplicate search's sorts equal numpy's stable sorts;
- numpy comes into a check's process only when the checklist needs it.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ftassist.data import token_worker as W
from ftassist.data.tiktoken_files import ENCODING_FILES, cache_file_name, ensure_offline_encodings
from ftassist.data.tokens import count_chat, get_encoding

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_streamed_rank_table_equals_tiktokens_loader(name):
    """In a process of its own: two copies of a rank table would stay in this one's peak memory, which
    the processes it starts inherit (their `ru_maxrss`)."""
    code = (
        "import sys\n"
        "from tiktoken.load import load_tiktoken_bpe\n"
        "from ftassist.data.fast_tiktoken import _streamed_ranks\n"
        "from ftassist.data.tiktoken_files import ENCODING_FILES, ensure_offline_encodings\n"
        "name = sys.argv[1]\n"
        "ensure_offline_encodings(names=(name,))\n"
        "url, expected = ENCODING_FILES[name]\n"
        "streamed = _streamed_ranks(url, expected)\n"
        "print(streamed == load_tiktoken_bpe(url, expected), len(streamed) > 100_000)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code, name], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]


def test_streamed_rank_table_leaves_a_bad_cache_file_to_tiktoken(tmp_path, monkeypatch):
    """A cache file whose hash differs is not used: tiktoken's own loader decides (here it re-reads the
    blob URL, which this test replaces by a good local copy)."""
    import tiktoken.load as tiktoken_load

    from ftassist.data import fast_tiktoken

    good_dir = ensure_offline_encodings(names=("cl100k_base",))
    url, expected = ENCODING_FILES["cl100k_base"]
    bad = tmp_path / cache_file_name("cl100k_base")
    bad.write_bytes(b"YQ== 0\n")  # one well-formed line, wrong hash
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    asked = []

    def tiktokens_loader(blob_path, expected_hash=None):
        asked.append(blob_path)
        data = (good_dir / cache_file_name("cl100k_base")).read_bytes()
        assert hashlib.sha256(data).hexdigest() == expected_hash
        return {b"from tiktoken": 0}

    monkeypatch.setattr(tiktoken_load, "load_tiktoken_bpe", tiktokens_loader)
    assert fast_tiktoken._streamed_ranks(url, expected) == {b"from tiktoken": 0}
    assert asked == [url]


def long_chats(n: int, seed: int = 5) -> list[dict]:
    rnd = random.Random(seed)
    words = "the model answer refund 東京 😀 don't 12345 \n\n  code(x) = y;".split(" ")

    def text(k: int) -> str:
        return " ".join(rnd.choices(words, k=k))

    chats = []
    for _ in range(n):
        messages = [{"role": "system", "content": "You are terse."}]
        for _ in range(rnd.randint(2, 6)):
            messages.append({"role": "user", "content": text(rnd.randint(40, 400))})
            messages.append({"role": "assistant", "content": text(rnd.randint(40, 400))})
        chats.append({"messages": messages})
    chats.append({"messages": [{"role": "user", "content": "tools"}, {"role": "assistant", "content": "x"}],
                  "tools": [{"type": "function", "function": {"name": "f"}}]})  # travels whole
    return chats


def test_background_counter_counts_long_chats_alike_when_it_is_behind():
    chats = long_chats(160, seed=9)
    encoding = get_encoding("o200k_base")
    expected = [count_chat(chat, encoding) for chat in chats]
    with W.BackgroundChatCounter("o200k_base", max_pending=1) as counter:
        done = []
        for start in range(0, len(chats), 40):  # ~350,000 characters a chunk: the worker falls behind
            done += counter.submit(chats[start:start + 40], start)
        done += counter.drain()
    assert [count for chunk in done for count in chunk.counts] == expected


def test_near_duplicate_sorts_equal_numpys_stable_sorts():
    from ftassist.data.checklist import _first_of, _stable_order

    rnd = np.random.default_rng(3)
    for size, high in ((0, 1), (1, 1), (7, 3), (5000, 40), (5000, 2**32)):
        keys = rnd.integers(0, high, size, dtype=np.uint64).astype(np.uint32)
        order, sorted_keys = _stable_order(keys)
        assert (order == np.argsort(keys, kind="stable")).all()
        assert (sorted_keys == keys[order]).all() and sorted_keys.dtype == np.uint32
        values = rnd.integers(-(2**62), 2**62, size) if high > 100 else rnd.integers(0, high, size)
        first = {}
        expected = [first.setdefault(int(value), index) for index, value in enumerate(values)]
        assert _first_of(values.astype(np.int64)).tolist() == expected


def test_numpy_comes_only_when_the_checklist_needs_it(tmp_path):
    """Building the checklist and streaming examples into it does not import numpy (a big check's worker is
    still starting then, and its memory peaks); judging does."""
    code = (
        "import sys\n"
        "from ftassist.data.checklist import ChecklistBuilder\n"
        "from ftassist.data.report import Example\n"
        "builder = ChecklistBuilder(tokens_later=True)\n"
        "chats = [{'messages': [{'role': 'user', 'content': f'question {i}'},"
        " {'role': 'assistant', 'content': 'An answer.'}]} for i in range(40)]\n"
        "builder.add_many([Example(i + 1, chat, 'chat') for i, chat in enumerate(chats)], words=False)\n"
        "print('numpy' in sys.modules)\n"
        "from array import array\n"
        "from ftassist.data.textkeys import WORD_HASH_CODE, chat_word_hashes\n"
        "hashes = array(WORD_HASH_CODE)\n"
        "builder.add_words(0, hashes, [chat_word_hashes(chat, hashes) for chat in chats])\n"
        "builder.set_tokens([10] * 40, [3] * 40)\n"
        "items = builder.finish()\n"
        "print('numpy' in sys.modules, len(items))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "7"]
