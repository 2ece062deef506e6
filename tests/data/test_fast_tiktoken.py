"""The lean counter (tiktoken's Rust core alone) against the plain reference: tiktoken's public
`get_encoding(...).encode`, with special-token text counted as plain text, as the check does."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from ftassist.data.fast_tiktoken import lean_counter, reference_counter
from ftassist.data.tokens import TokenCounter, count_chat, get_encoding

REPO = Path(__file__).resolve().parents[2]


def varied_texts(seed: int = 1) -> list[str]:
    """Text that exercises the pre-tokenizer: scripts, emoji, contractions, digits, whitespace
    runs, special-token strings, random code points, long runs."""
    rnd = random.Random(seed)
    pieces = list("aZ09 \t\n\r'.,!?-_()[]{}<>|/\\\"$%&*+=:;") + [
        "  ", "\n\n", "\r\n", "'s", "'LL", "'ve", " 's", "é", "ü", "ß", "東京", "数据", "привет", "😀", "👍🏽",
        "\u200b", "\u00a0", "\u3000", "ǅ", "٣", "१",
        "<|endoftext|>", "<|fim_prefix|>", "<|endofprompt|>",
        "1234567", "ﬁ",
    ]
    texts = ["".join(rnd.choices(pieces, k=rnd.randint(0, 50))) for _ in range(1500)]
    texts += ["".join(chr(rnd.randint(32, 0x2FFFF)) for _ in range(30)).encode("utf-8", "replace").decode("utf-8")
              for _ in range(300)]
    texts += ["a" * 20000, " " * 5000 + "x", "9" * 3001, "😀" * 2000, "<|endoftext|>" * 50, ""]
    return texts


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_lean_counter_gives_the_references_counts(name):
    texts = varied_texts() + ["a\ud800b", "\udfff lone low surrogate"]  # tiktoken repairs lone surrogates
    reference = reference_counter(name)
    lean = lean_counter(name)
    expected = [reference(text) for text in texts]
    assert [lean(text) for text in texts] == expected
    # and the reference is what tiktoken's own Encoding gives with ordinary-text semantics
    encoding = get_encoding(name)
    assert expected[:200] == [len(encoding.encode_ordinary(text)) for text in texts[:200]]


@pytest.mark.parametrize("lean", [True, False])
def test_counting_many_texts_at_once_gives_each_texts_count(lean):
    """`count_many` maps the encoder over a list from C; a lone surrogate anywhere in the list sends the whole list
    through the one-text count (which repairs it as tiktoken does), so the counts stay each text's own."""
    counter = TokenCounter("o200k_base", lean=lean)
    reference = reference_counter("o200k_base")
    texts = varied_texts(seed=5)
    assert counter.count_many(texts) == [reference(text) for text in texts]
    with_surrogate = texts[:50] + ["a\ud800b"] + texts[50:100]
    assert counter.count_many(with_surrogate) == [reference(text) for text in with_surrogate]
    assert counter.count_many([]) == []


def test_reference_counts_special_token_text_as_plain_text():
    count = reference_counter("o200k_base")
    assert count("<|endoftext|>") > 1  # plain text: several tokens, not the one special token
    assert lean_counter("o200k_base")("<|endoftext|>") == count("<|endoftext|>")


def test_lean_token_counter_equals_the_plain_count_chat():
    rnd = random.Random(7)
    texts = varied_texts(seed=3)
    chats = []
    for _ in range(300):
        messages = [{"role": "system", "content": "You are terse."}]
        for _ in range(rnd.randint(1, 3)):
            messages.append({"role": "user", "content": rnd.choice(texts)})
            messages.append({"role": "assistant", "content": rnd.choice(texts)})
        chats.append({"messages": messages})
    lean = TokenCounter("cl100k_base", lean=True)
    encoding = get_encoding("cl100k_base")
    assert [lean.count_one(chat) for chat in chats] == [count_chat(chat, encoding) for chat in chats]


def test_lean_counter_keeps_no_python_rank_table(tmp_path):
    """The reason the module exists: after `lean_counter`, no Encoding is registered and no
    dict of the rank table's size is alive (a fresh process, so other tests do not interfere)."""
    code = (
        "import gc, tiktoken.registry as registry\n"
        "from ftassist.data.fast_tiktoken import lean_counter\n"
        "count = lean_counter('o200k_base')\n"
        "assert count('Hello world') == 2\n"
        "big = [o for o in gc.get_objects() if isinstance(o, dict) and len(o) > 100000]\n"
        "print(len(registry.ENCODINGS), len(big))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "0"]


def _never_load(*args, **kwargs):
    raise AssertionError("tiktoken's own loader was used")


def test_lean_counter_reads_the_rank_file_itself(monkeypatch):
    """The lean counter builds its table from the cached rank file line by line, never through tiktoken's loader
    (which holds the whole file, its lines and the dict at once: the memory the module exists to save)."""
    import tiktoken.load
    import tiktoken_ext.openai_public as openai_public

    monkeypatch.setattr(tiktoken.load, "load_tiktoken_bpe", _never_load)
    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", _never_load)
    assert lean_counter("cl100k_base")("Hello world") == 2


def test_a_rank_file_that_fails_its_hash_is_not_used(tmp_path, monkeypatch):
    """A cached rank file whose sha256 differs from tiktoken's pinned one (a tampered or truncated download) is
    not read: the call goes to tiktoken's own loader, which fetches or refuses it."""
    import tiktoken.load

    from ftassist.data import fast_tiktoken
    from ftassist.data.tiktoken_files import ENCODING_FILES, cache_file_name

    url, expected = ENCODING_FILES["cl100k_base"]
    good = Path(os.environ["TIKTOKEN_CACHE_DIR"]) / cache_file_name("cl100k_base")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    tampered = good.read_bytes().replace(b" 100\n", b" 101\n", 1)
    assert tampered != good.read_bytes()
    (tmp_path / cache_file_name("cl100k_base")).write_bytes(tampered)
    calls = []
    monkeypatch.setattr(tiktoken.load, "load_tiktoken_bpe", lambda *args: calls.append(args) or {"tiktoken": 1})
    assert fast_tiktoken._streamed_ranks(url, expected) == {"tiktoken": 1}
    assert calls == [(url, expected)]
    # the same file untouched is read here, to the same table tiktoken builds
    (tmp_path / cache_file_name("cl100k_base")).write_bytes(good.read_bytes())
    ranks = fast_tiktoken._streamed_ranks(url, expected)
    assert calls == [(url, expected)] and len(ranks) == 100256 and ranks[b"!"] == 0


def test_the_parsed_table_is_kept_and_read_back_only_when_whole_and_from_the_same_file(tmp_path, monkeypatch):
    """The first read of a rank file keeps the parsed table beside it; later reads take it from there. A kept table
    that is damaged, or was made from another rank file, is not used: the rank file is parsed again."""
    import tiktoken.load

    from ftassist.data import fast_tiktoken
    from ftassist.data.tiktoken_files import ENCODING_FILES, cache_file_name, ensure_offline_encodings

    url, expected = ENCODING_FILES["cl100k_base"]
    source = ensure_offline_encodings(names=("cl100k_base",)) / cache_file_name("cl100k_base")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    rank_file = tmp_path / cache_file_name("cl100k_base")
    rank_file.write_bytes(source.read_bytes())
    monkeypatch.setattr(tiktoken.load, "load_tiktoken_bpe", _never_load)
    parsed = fast_tiktoken._streamed_ranks(url, expected)
    kept = tmp_path / (rank_file.name + fast_tiktoken._MARSHALLED)
    assert kept.is_file() and len(parsed) == 100256
    rank_file.write_bytes(b"")  # from now on, a table can only come from what was kept
    assert fast_tiktoken._streamed_ranks(url, expected) == parsed
    whole = kept.read_bytes()
    kept.write_bytes(whole[:-1] + bytes([whole[-1] ^ 1]))  # damaged
    assert fast_tiktoken._cached_ranks(str(kept), expected) is None
    kept.write_bytes(whole)
    assert fast_tiktoken._cached_ranks(str(kept), "0" * 64) is None  # kept for another rank file
    assert fast_tiktoken._cached_ranks(str(kept), expected) == parsed
    # a damaged table is parsed again from the rank file, and kept whole again
    kept.write_bytes(whole[:100])
    rank_file.write_bytes(source.read_bytes())
    assert fast_tiktoken._streamed_ranks(url, expected) == parsed and kept.read_bytes() == whole


def test_a_worker_with_a_kept_table_neither_reads_nor_hashes_the_rank_file(tmp_path, monkeypatch):
    """What the worker's start saves: the kept table is enough; the rank file is not even checked."""
    from ftassist.data import fast_tiktoken
    from ftassist.data.tiktoken_files import ENCODING_FILES, cache_file_name, ensure_offline_encodings

    url, expected = ENCODING_FILES["cl100k_base"]
    source = ensure_offline_encodings(names=("cl100k_base",)) / cache_file_name("cl100k_base")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    (tmp_path / cache_file_name("cl100k_base")).write_bytes(source.read_bytes())
    fast_tiktoken._streamed_ranks(url, expected)  # parsed once: the table is kept
    (tmp_path / cache_file_name("cl100k_base")).write_bytes(b"not a rank file")

    text = "<|endoftext|> naïve café"
    expected_count = reference_counter("cl100k_base")(text)

    def no_check(*args, **kwargs):
        raise AssertionError("the rank file was checked")

    monkeypatch.setattr(fast_tiktoken, "ensure_offline_encodings", no_check)
    count = fast_tiktoken.lean_counter("cl100k_base")
    assert count("Hello world") == 2 and count(text) == expected_count
