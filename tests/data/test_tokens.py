"""Token counting: offline tiktoken files, the cookbook's counting rule, model -> encoding,
the fast TokenCounter against plain tiktoken, the background worker, and the statistics."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ftassist.data import tiktoken_files as F
from ftassist.data import token_worker as W
from ftassist.data import tokens as T
from ftassist.data.tokens import (
    TokenCounter,
    cache_file_name,
    count_chat,
    encoding_name_for_model,
    ensure_offline_encodings,
    get_encoding,
    summarize,
)

REPO = Path(__file__).resolve().parents[2]


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


def S(text):
    return {"role": "system", "content": text}


# ---------------------------------------------------------------------- offline files


def test_constants_match_tiktokens_own_urls_and_hashes(monkeypatch):
    import tiktoken_ext.openai_public as public

    seen = {}

    def fake_load(url, expected_hash=None):
        seen[url] = expected_hash
        return {}

    monkeypatch.setattr(public, "load_tiktoken_bpe", fake_load)
    for name in ("cl100k_base", "o200k_base"):
        getattr(public, name)()
        url, sha = T.ENCODING_FILES[name]
        assert seen[url] == sha


def test_cache_file_name_is_sha1_of_the_url():
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    assert cache_file_name("o200k_base") == hashlib.sha1(url.encode()).hexdigest()
    assert cache_file_name("o200k_base") == "fb374d419588a4632f3f557e76b4b70aebbca790"


def test_populates_an_empty_cache_with_hash_checked_files(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "_verified", set())
    cache = tmp_path / "tk"
    assert ensure_offline_encodings(cache) == cache
    for name, (_, sha) in T.ENCODING_FILES.items():
        path = cache / cache_file_name(name)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    mtimes = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    ensure_offline_encodings(cache)  # idempotent: nothing rewritten
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == mtimes


def test_corrupted_cache_file_is_rejected_and_replaced(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "_verified", set())
    cache = tmp_path / "tk"
    cache.mkdir()
    bad = cache / cache_file_name("o200k_base")
    bad.write_bytes(b"not a rank file\n")
    ensure_offline_encodings(cache)
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == T.ENCODING_FILES["o200k_base"][1]
    # a file corrupted after it was verified in this process is caught on a fresh check too
    bad.write_bytes(b"garbage")
    monkeypatch.setattr(F, "_verified", set())
    ensure_offline_encodings(cache)
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == T.ENCODING_FILES["o200k_base"][1]


def test_shipped_file_with_a_wrong_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "_verified", set())
    monkeypatch.setattr(F, "_shipped_rank_file", lambda name: b"tampered")
    with pytest.raises(RuntimeError, match="refusing"):
        ensure_offline_encodings(tmp_path / "tk")
    assert not (tmp_path / "tk" / cache_file_name("cl100k_base")).exists()


def test_tiktoken_works_offline_from_a_fresh_cache_dir(tmp_path):
    """A new process, an empty TIKTOKEN_CACHE_DIR and any download attempt made to fail."""
    code = (
        "import tiktoken.load as L\n"
        "def no_net(path):\n"
        "    if '://' in path: raise RuntimeError('network used: ' + path)\n"
        "    return open(path, 'rb').read()\n"
        "L.read_file = no_net\n"
        "from ftassist.data.tokens import get_encoding\n"
        "import tiktoken\n"
        "print(len(get_encoding('o200k_base').encode('Hello world')),"
        " len(tiktoken.get_encoding('cl100k_base').encode('Hello world')))\n"
    )
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path / "fresh"), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "2"]
    # tiktoken's two rank files, and nothing else
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == sorted(
        [cache_file_name("o200k_base"), cache_file_name("cl100k_base")])


def test_unknown_encoding_is_a_clear_error():
    with pytest.raises(ValueError, match="o200k_base"):
        get_encoding("p50k_base")


# ---------------------------------------------------------------------- models


@pytest.mark.parametrize(
    "model, encoding",
    [
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("gpt-4.1-nano-2025-04-14", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("o4-mini-2025-04-16", "o200k_base"),
        ("o1", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("davinci-002", "cl100k_base"),
        ("babbage-002", "cl100k_base"),
        ("ft:gpt-4.1-mini-2025-04-14:my-org::AbC123", "o200k_base"),
        ("ft:gpt-3.5-turbo-0125:my-org:custom:9xyz", "cl100k_base"),
        ("ft:gpt-4o-mini-2024-07-18:org::id:ckpt-step-10", "o200k_base"),
        ("babbage-002:ft-acme-2023-08-01", "cl100k_base"),
        ("GPT-4o", "o200k_base"),
        ("some-local-model", "o200k_base"),
        (None, "o200k_base"),
        ("", "o200k_base"),
    ],
)
def test_encoding_follows_the_base_model(model, encoding):
    assert encoding_name_for_model(model) == encoding


# ---------------------------------------------------------------------- counting


def test_hand_checked_counts():
    enc = get_encoding("o200k_base")
    # each of these is one token in o200k_base; "Hi there" two
    assert [len(enc.encode_ordinary(t)) for t in ("Hello", "user", "assistant", "Hi there")] == [1, 1, 1, 2]
    chat = {"messages": [U("Hello"), A("Hi there")]}
    # (3 + user 1 + Hello 1) + (3 + assistant 1 + "Hi there" 2) + 3 for the reply
    assert count_chat(chat, enc) == (14, 2)
    assert count_chat(chat, "o200k_base") == (14, 2)


def test_name_adds_one_token():
    enc = get_encoding("o200k_base")
    plain = {"messages": [U("Hello"), A("Hi there")]}
    named = {"messages": [{"role": "user", "content": "Hello", "name": "Bob"}, A("Hi there")]}
    assert len(enc.encode_ordinary("Bob")) == 1
    assert count_chat(named, enc)[0] == count_chat(plain, enc)[0] + 1 + 1


def test_encodings_differ_on_some_text():
    text = "这是一个用于微调的数据集。 नमस्ते दुनिया"
    o200k, cl100k = TokenCounter("o200k_base").count(text), TokenCounter("cl100k_base").count(text)
    assert o200k != cl100k
    assert o200k == len(get_encoding("o200k_base").encode_ordinary(text))
    assert cl100k == len(get_encoding("cl100k_base").encode_ordinary(text))


def test_special_token_text_counts_as_plain_text():
    enc = get_encoding("o200k_base")
    chat = {"messages": [U("end <|endoftext|> here"), A("<|endofprompt|>")]}
    total, assistant = count_chat(chat, enc)
    assert assistant == len(enc.encode_ordinary("<|endofprompt|>")) > 1
    tc = TokenCounter("o200k_base")
    assert tc.add(1, chat) == (total, assistant)


def test_non_string_values_weight_none_and_tools():
    enc = get_encoding("o200k_base")
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    chat = {
        "messages": [U("q"), {"role": "assistant", "content": None, "tool_calls": calls},
                     {"role": "tool", "tool_call_id": "c1", "content": "1"},
                     {"role": "assistant", "content": "one", "weight": 1}],
        "tools": tools,
    }
    n = lambda s: len(enc.encode_ordinary(s))  # noqa: E731
    calls_json = '[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\\"x\\": 1}"}}]'
    tools_json = '[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]'
    expected_total = (
        3 + n("user") + n("q")
        + 3 + n("assistant") + n(calls_json)
        + 3 + n("tool") + n("c1") + n("1")
        + 3 + n("assistant") + n("one")
        + 3 + n(tools_json)
    )
    assert count_chat(chat, enc) == (expected_total, n(calls_json) + n("one"))
    assert TokenCounter("o200k_base").add(1, chat) == (expected_total, n(calls_json) + n("one"))


def test_lone_surrogate_and_odd_input_do_not_crash():
    chat = {"messages": [U("broken \ud800 text"), A("ok")]}
    total, _ = count_chat(chat, get_encoding("o200k_base"))
    tc = TokenCounter("o200k_base")
    assert tc.add(1, chat)[0] == total
    assert tc.add(2, "not a chat") == (3, 0)
    assert tc.add(3, {"messages": ["x", None, 5]}) == (3, 0)
    deep: list = []
    node = deep
    for _ in range(100_000):
        node.append([])
        node = node[0]
    assert tc.add(4, {"messages": [{"role": "assistant", "content": "a", "tool_calls": deep}]})[1] >= 1


def varied_chats(n: int, seed: int = 0):
    rnd = random.Random(seed)
    words = ("the quick brown fox 42 3.14 don't WE'LL naïve café 東京 数据 привет 😀 👍🏽 <|endoftext|> "
             "\t tab  double  space\n\n newline \r\n def f(x): return x**2").split(" ")
    system = "You are a concise assistant. Answer in one sentence."
    for _ in range(n):
        msgs = []
        if rnd.random() < 0.8:
            msgs.append({"role": "system", "content": system})
        for _ in range(rnd.randint(1, 3)):
            msgs.append(U(" ".join(rnd.choices(words, k=rnd.randint(0, 40)))))
            a = A(" ".join(rnd.choices(words, k=rnd.randint(1, 60))))
            if rnd.random() < 0.2:
                a["weight"] = rnd.choice([0, 1])
            msgs.append(a)
        if rnd.random() < 0.1:
            msgs[-2]["name"] = "alice"
        yield {"messages": msgs}


@pytest.mark.parametrize("lean", [False, True])
def test_token_counter_equals_count_chat_summed(lean):
    chats = list(varied_chats(400, seed=3))
    enc = get_encoding("o200k_base")
    expected = [count_chat(c, enc) for c in chats]
    tc = TokenCounter("o200k_base", lean=lean)
    for i, c in enumerate(chats):
        tc.add(10 + i, c)
    stats = tc.finish(limit=150)
    assert stats.per_example == [t for t, _ in expected]
    assert stats.assistant_per_example == [a for _, a in expected]
    assert stats.lines == [10 + i for i in range(len(chats))]
    assert stats.total == sum(stats.per_example) and stats.assistant_total == sum(stats.assistant_per_example)
    assert stats.over_limit == [10 + i for i, (t, _) in enumerate(expected) if t > 150]
    assert stats.limit == 150 and stats.exact and stats.encoding == "o200k_base"
    assert stats.stats["total"]["max"] == max(stats.per_example)


def test_cache_is_bounded_and_does_not_change_counts(monkeypatch):
    monkeypatch.setattr(TokenCounter, "CACHE_MAX_ENTRIES", 8)
    chats = list(varied_chats(200, seed=5))
    tc = TokenCounter("cl100k_base")
    for i, c in enumerate(chats):
        tc.add(i, c)
    assert len(tc.known_counts) <= 8
    enc = get_encoding("cl100k_base")
    assert tc.finish().per_example == [count_chat(c, enc)[0] for c in chats]


def test_summarize_uses_numpy_linear_percentiles():
    values = [5, 1, 9, 3, 7, 100, 2]
    s = summarize(values)
    assert s["min"] == 1 and s["max"] == 100 and s["count"] == 7
    assert s["mean"] == pytest.approx(np.mean(values))
    assert s["median"] == 5.0
    assert s["p5"] == pytest.approx(np.percentile(values, 5)) == pytest.approx(1.3)
    assert s["p95"] == pytest.approx(np.percentile(values, 95)) == pytest.approx(72.7)
    empty = summarize([])
    assert empty["count"] == 0 and empty["max"] == 0


def test_unknown_encoding_for_a_counter_is_a_clear_error():
    with pytest.raises(ValueError, match="cl100k_base"):
        TokenCounter("r50k_base")


def test_finish_without_examples():
    stats = TokenCounter("o200k_base").finish(limit=10)
    assert stats.per_example == [] and stats.total == 0 and stats.over_limit == []
    assert stats.stats["total"]["count"] == 0


def test_count_chats_matches_count_chat():
    chats = list(varied_chats(150, seed=9)) + [{"messages": [U("x")], "tools": [{"type": "function"}]}]
    for name in ("o200k_base", "cl100k_base"):
        enc = get_encoding(name)
        expected = [count_chat(c, enc) for c in chats]
        assert T.count_chats(chats, enc) == expected
        assert T.count_chats(chats, name) == expected


# ---------------------------------------------------------------------- background worker


def _chunks(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def test_background_counter_matches_count_chat_in_order():
    chats = list(varied_chats(300, seed=11))
    enc = get_encoding("o200k_base")
    expected = [count_chat(c, enc) for c in chats]
    got, payloads = [], []
    with W.BackgroundChatCounter("o200k_base", max_pending=2) as bc:
        for n, chunk in enumerate(_chunks(chats, 25)):
            for done in bc.submit(chunk, payload=n):
                payloads.append(done.payload)
                got.extend(done.counts)
                assert done.words is None  # not asked for
        for done in bc.drain():
            payloads.append(done.payload)
            got.extend(done.counts)
        assert not bc.in_process and bc.chunks_counted_here == 0  # the worker did the counting, all of it
        assert bc.drain() == []
    assert payloads == list(range(len(payloads))) and len(payloads) == 12
    assert got == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pipe sizes are a Linux setting")
def test_the_pipes_to_the_worker_hold_a_whole_chunk():
    """Both pipes are widened to 1 MiB (or the system's maximum), so a chunk goes over in one write."""
    import fcntl

    expected = min(1 << 20, int(Path("/proc/sys/fs/pipe-max-size").read_text()))
    with W.BackgroundChatCounter("o200k_base") as bc:
        assert bc._proc is not None
        for stream in (bc._proc.stdin, bc._proc.stdout):
            assert fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_GETPIPE_SZ", 1032)) == expected


@pytest.mark.timeout(120)
@pytest.mark.parametrize("slow_writer", [False, True])
def test_frames_bigger_than_the_pipe_reach_the_worker_whole_and_in_order(monkeypatch, slow_writer):
    """A frame the pipe cannot take at once is written partly here and finished by the writer thread; the frames
    after it wait their turn, so none is cut or interleaved: the worker counts every chunk (none falls back to this
    process) and the counts are count_chat's, in order. `slow_writer`: the writer thread starts each remainder late
    (as when it waits for the GIL), so the pipe has room for the next frame before the last one is finished."""
    import queue
    import time

    class SlowQueue(queue.Queue):
        def get(self, *args, **kwargs):
            item = super().get(*args, **kwargs)
            if isinstance(item, (bytes, memoryview)):
                time.sleep(0.3)  # a delay injected into the writer, not a wait for anything
            return item

    if slow_writer:
        monkeypatch.setattr(queue, "Queue", SlowQueue)
    rng = random.Random(4)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    chats = [{"messages": [{"role": "user", "content": " ".join(rng.choices(words, k=20000)) + f" {i}"},
                           {"role": "assistant", "content": f"answer {i}"}]} for i in range(60)]
    enc = get_encoding("o200k_base")
    done = []
    with W.BackgroundChatCounter("o200k_base", max_pending=3) as bc:
        while not bc.started:  # a ready worker empties the pipe at once: the next frame finds room
            bc._started.wait(0.05)
        for n, chunk in enumerate(_chunks(chats, 20)):  # about 2.4 MB of text a chunk: more than the pipe holds
            done += bc.submit(chunk, payload=n)
        done += bc.drain()
        assert bc.chunks_counted_here == 0 and not bc.in_process
    assert [d.payload for d in done] == [0, 1, 2]
    assert [c for d in done for c in d.counts] == [count_chat(c, enc) for c in chats]


def test_the_worker_says_how_long_it_waited_for_each_chunk():
    """What the check's share of checklist work follows: a worker that sat idle before a chunk says so."""
    chats = list(varied_chats(20, seed=3))
    with W.BackgroundChatCounter("o200k_base") as bc:
        while not bc.started:  # ready, then idle until the chunk comes
            bc._started.wait(0.05)
        done = bc.submit(chats) + bc.drain()
        assert bc.chunks_counted_here == 0
    assert done[0].waited > 0


def test_background_counter_worker_exits_cleanly_on_close():
    """The worker leaves with status 0 once its input ends (straight out, without the interpreter's teardown),
    and only after answering every chunk."""
    chats = list(varied_chats(30, seed=5))
    bc = W.BackgroundChatCounter("o200k_base")
    done = bc.submit(chats) + bc.drain()
    proc = bc._proc
    assert not bc.in_process and proc is not None
    bc.close()
    assert proc.returncode == 0  # close() waited for it: not killed (-9) after its 2 s grace
    enc = get_encoding("o200k_base")
    assert [c for d in done for c in d.counts] == [count_chat(c, enc) for c in chats]


def test_background_counter_keeps_at_most_max_pending_chunks_in_flight():
    """Bounded memory: submit returns only once no more than `max_pending` chunks wait for the worker."""
    chats = list(varied_chats(120, seed=9))
    done = []
    with W.BackgroundChatCounter("o200k_base", max_pending=2) as bc:
        for n, chunk in enumerate(_chunks(chats, 10)):
            done += bc.submit(chunk, payload=n)
            assert bc.backlog <= 2
            assert len(done) + bc.backlog == n + 1  # every chunk is either returned or still in flight
        done += bc.drain()
        assert bc.chunks_counted_here == 0
    assert [d.payload for d in done] == list(range(12))


def test_background_counter_falls_back_when_no_worker(monkeypatch):
    monkeypatch.setattr(W.sys, "executable", "/nonexistent/python")
    chats = list(varied_chats(40, seed=2))
    with W.BackgroundChatCounter("cl100k_base") as bc:
        done = bc.submit(chats[:20], "a") + bc.submit(chats[20:], "b") + bc.drain()
        assert bc.in_process and bc.chunks_counted_here == 2
    enc = get_encoding("cl100k_base")
    assert [d.payload for d in done] == ["a", "b"]
    assert [c for d in done for c in d.counts] == [count_chat(c, enc) for c in chats]


def test_background_counter_survives_a_dead_worker_and_unpicklable_data():
    from array import array

    from ftassist.data.textkeys import WORD_HASH_CODE, chat_word_hashes

    chats = list(varied_chats(60, seed=4))
    enc = get_encoding("o200k_base")
    deep: list = []
    node = deep
    for _ in range(50_000):
        node.append([])
        node = node[0]
    odd = [{"messages": [{"role": "assistant", "content": "a", "tool_calls": deep}]}]
    with W.BackgroundChatCounter("o200k_base", max_pending=8) as bc:
        done = bc.submit(chats[:30], 1)
        done += bc.submit(odd + chats[:1], 2, words=True)  # cannot be pickled: counted here, order kept
        done += bc.drain()
        assert bc.chunks_counted_here == 1 and not bc.in_process  # that chunk only; the worker goes on
        bc._proc.kill()
        bc._proc.wait()
        done += bc.submit(chats[30:], 3)
        done += bc.drain()
        assert bc.chunks_counted_here == 2 and bc.in_process  # the dead worker's chunk, recounted here
    assert [d.payload for d in done] == [1, 2, 3]
    counts = [c for d in done for c in d.counts]
    assert counts[:30] + counts[32:] == [count_chat(c, enc) for c in chats]
    assert counts[30][1] >= 1 and counts[31] == count_chat(chats[0], enc)
    word_hashes = array(WORD_HASH_CODE)
    word_counts = [chat_word_hashes(chat, word_hashes) for chat in odd + chats[:1]]
    assert list(done[1].words[1]) == word_counts and done[1].words[0] == word_hashes and word_counts[1] > 0


def test_unwritable_cache_dir_falls_back_to_a_temp_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "_verified", set())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "read-only"))
    monkeypatch.setattr(F, "_writable", lambda path: False)
    monkeypatch.setattr(F.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    target = ensure_offline_encodings()
    assert target == tmp_path / "tmp" / "ftassist-tiktoken"
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(target)
    assert len(list(target.iterdir())) == 2
    assert not (tmp_path / "read-only").exists()


def test_env_dir_is_used_and_unset_env_is_set(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "_verified", set())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "env"))
    assert ensure_offline_encodings() == tmp_path / "env"
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ensure_offline_encodings() == tmp_path / "xdg" / "ftassist" / "tiktoken"
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(tmp_path / "xdg" / "ftassist" / "tiktoken")


def edge_chats():
    """Chats that take the packed path's less common turns, and some that travel whole."""
    return [
        {"messages": [A("only an answer")]},
        {"messages": [U("q1: first"), A("a1"), U("Q2: SECOND 42 question"), A("a2")]},
        {"messages": [S("sys"), U("ask"), {"role": "tool", "content": "tool out"}, A("done")]},
        {"messages": [U("no answer yet")]},
        {"messages": [U("a b c"), A("x"), U("trailing user after the last answer")]},
        {"messages": [U([{"type": "text", "text": "list content"}]), A("y")]},
        {"messages": [U("with tools"), A("z")], "tools": [{"type": "function", "function": {"name": "f"}}]},
        {"messages": [{"role": "user", "content": "named", "name": "bob"}, A("ok")]},
        {"messages": [U("x " * 400), A("long prompt")]},
    ]


def test_packed_chunk_counts_and_word_hashes_equal_the_plain_functions():
    import pickle
    from array import array

    from ftassist.data.textkeys import WORD_HASH_CODE, chat_word_hashes

    chats = list(varied_chats(150, seed=21)) + edge_chats()
    frame = W.pack_chats(chats, words=True)
    body = pickle.loads(frame[W._LENGTH_BYTES:])
    assert len(body[4]) < len(chats) // 2  # most chats travel packed, not whole
    totals, assistants, (wh_bytes, wc_bytes), part = W.count_packed(TokenCounter("o200k_base", lean=True), body)
    assert part is None  # no checklist work unless asked for
    enc = get_encoding("o200k_base")
    got = W._unpack_answer("p", (totals, assistants, (wh_bytes, wc_bytes), None))
    assert got.counts == [count_chat(c, enc) for c in chats]
    wh = array(WORD_HASH_CODE)
    wc = [chat_word_hashes(c, wh) for c in chats]
    assert list(got.words[1]) == wc and got.words[0] == wh
    assert wc[-1] == 300  # capped at NEAR_DUP_MAX_WORDS
    assert wc[150] == 0 and wc[153] == 3  # no user message; no answer: the last user message counts


def test_a_packed_chunk_judged_for_the_checklist_merges_like_its_examples_added_here():
    """The worker rebuilds the chats from the frame and judges them: the part, merged, gives the same checklist as
    the examples themselves (labels and lines included), whether the worker or the fallback here made it."""
    import pickle
    from array import array
    from dataclasses import asdict

    from ftassist.data.checklist import ChecklistBuilder
    from ftassist.data.report import Example

    chats = list(varied_chats(150, seed=22)) + edge_chats()
    examples = [Example(10 + 3 * i, chat, "chat", {"label": "ab"[i % 2], "note": "x"} if i % 5 == 0 else {},
                        ("messages",)) for i, chat in enumerate(chats)]
    here = ChecklistBuilder(tokens_later=True)  # as a check's: the worker's parts carry no token counts
    here.add_many(examples[:7])
    expected = ChecklistBuilder(tokens_later=True)
    expected.add_many(examples[:7])
    expected.add_many(examples[7:])
    request = W.ChecklistRequest(7, array("i", [e.line for e in examples[7:]]).tobytes(),
                                 {i: {"label": e.extra["label"]} for i, e in enumerate(examples[7:]) if e.extra},
                                 here.max_evidence, 64)
    body = pickle.loads(W.pack_chats(chats[7:], checklist=request)[W._LENGTH_BYTES:])
    got = W._unpack_answer(None, W.count_packed(TokenCounter("o200k_base", lean=True), body))
    assert got.checklist.first == 7 and got.checklist.n == len(chats)
    here.add_formats(examples[7:])
    here.merge(pickle.loads(pickle.dumps(got.checklist)))
    assert got.words is None  # the part holds the near-duplicate signatures
    for builder in (here, expected):
        builder.set_tokens(range(len(chats)), [1] * len(chats))
    assert [asdict(x) for x in here.finish()] == [asdict(x) for x in expected.finish()]
    assert W.checklist_part(chats[7:], request).example_hash == got.checklist.example_hash


def test_a_packed_chunk_without_any_answer_counts_like_the_plain_function():
    """A chunk whose chats have no assistant turn at all (and roles in an unusual order) counts 0 assistant tokens
    and the same totals as `count_chat`."""
    import pickle

    chats = [{"messages": [{"role": "tool", "content": "42"}, U("why?"), U("why?")]},
             {"messages": [U("only a question")]}, {"messages": []},
             {"messages": [{"role": "system", "content": "be brief"}, {"role": "tool", "content": "why?"}]}]
    body = pickle.loads(W.pack_chats(chats)[W._LENGTH_BYTES:])
    assert body[4] == {}  # every chat travelled packed
    answer = W.count_packed(TokenCounter("o200k_base", lean=True), body)
    assert answer[2] is None  # no word hashes unless asked for
    got = W._unpack_answer(None, answer)
    enc = get_encoding("o200k_base")
    assert got.counts == [count_chat(c, enc) for c in chats]
    assert list(got.assistants) == [0, 0, 0, 0]
    # and with no user turn in the whole chunk, no chat has words to compare (the tool's text is not a prompt)
    no_user = [chats[0]["messages"][:1], chats[3]["messages"]]
    no_user = [{"messages": messages} for messages in no_user]
    body = pickle.loads(W.pack_chats(no_user, words=True)[W._LENGTH_BYTES:])
    got = W._unpack_answer(None, W.count_packed(TokenCounter("o200k_base", lean=True), body))
    assert list(got.words[1]) == [0, 0] and got.counts == [count_chat(c, enc) for c in no_user]


def test_background_counter_hashes_words_when_asked_and_recounts_alike():
    from array import array

    from ftassist.data.textkeys import WORD_HASH_CODE, chat_word_hashes

    chats = list(varied_chats(80, seed=8)) + edge_chats()
    wh = array(WORD_HASH_CODE)
    wc = [chat_word_hashes(c, wh) for c in chats]
    with W.BackgroundChatCounter("o200k_base") as bc:
        worker = bc.submit(chats, "w", words=True) + bc.drain()
        assert not bc.in_process and bc.chunks_counted_here == 0
        bc._proc.kill()
        bc._proc.wait()
        here = bc.submit(chats, "h", words=True) + bc.drain()  # recounted in this process
        assert bc.chunks_counted_here == 1
    for done in (worker[0], here[0]):
        assert list(done.words[1]) == wc and done.words[0] == wh
        assert done.counts == [count_chat(c, get_encoding("o200k_base")) for c in chats]
