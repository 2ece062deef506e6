"""The whole check on real files: the DataReport contract the CLI, UI and Estimate rely on."""

import json

import pytest

from ftassist.data.check import check_path
from ftassist.data.load import LoadError


def chat(i, system=True):
    messages = [{"role": "user", "content": f"How do I reset password number {i} on my account?"},
                {"role": "assistant", "content": f"Open Settings, choose Security, then reset password {i}."}]
    if system:
        messages.insert(0, {"role": "system", "content": "You are a support bot."})
    return {"messages": messages}


def write_jsonl(path, objs):
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs), encoding="utf-8")
    return path


def test_clean_file_has_no_errors_and_exact_tokens(tmp_path):
    path = write_jsonl(tmp_path / "ok.jsonl", [chat(i) for i in range(12)])
    report = check_path(path, model="gpt-4o-mini-2024-07-18")
    assert report.errors == []
    assert report.n_records == report.n_examples == 12
    assert report.format == "chat"
    assert report.tokens.encoding == "o200k_base"
    assert len(report.tokens.per_example) == 12 and report.tokens.lines == list(range(1, 13))
    assert report.tokens.total == sum(report.tokens.per_example)
    # the cookbook's count: 3 per message + content + role tokens, + 3 for the reply
    import tiktoken

    enc = tiktoken.get_encoding("o200k_base")
    expected = 3 + sum(3 + len(enc.encode(m["role"])) + len(enc.encode(m["content"])) for m in chat(0)["messages"])
    assert report.tokens.per_example[0] == expected
    assert [item.id for item in report.checklist][:6] == [
        "accurate", "consistent", "diverse", "balanced", "no_contradictions", "lengths"]


def test_errors_keep_line_numbers_and_other_records(tmp_path):
    lines = [chat(i) for i in range(12)]
    lines[2] = "{not json"
    lines[5] = {"messages": [{"role": "user", "content": "hi"}]}  # no assistant
    lines[7] = [1, 2]
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    report = check_path(path)
    by_line = {(e.line, e.code) for e in report.errors}
    assert (3, "invalid_json") in by_line
    assert (6, "example_missing_assistant_message") in by_line
    assert (8, "data_type") in by_line
    assert report.error_counts["data_type"] == 1
    assert report.n_records == 12 and report.n_examples == 9  # nothing else was dropped
    assert 3 not in report.tokens.lines and 1 in report.tokens.lines


def test_mixed_formats_name_the_lines(tmp_path):
    objs = [chat(i) for i in range(10)] + [{"prompt": "p", "completion": "c"}, {"instruction": "i", "output": "o"}]
    report = check_path(write_jsonl(tmp_path / "mixed.jsonl", objs))
    mixed = [e for e in report.errors if e.code == "mixed_formats"]
    assert [e.line for e in mixed] == [11, 12]
    assert "chat" in mixed[0].message


def test_empty_file_is_an_error_not_a_crash(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    report = check_path(path)
    assert [e.code for e in report.errors] == ["empty_file"]


def test_too_few_examples(tmp_path):
    report = check_path(write_jsonl(tmp_path / "few.jsonl", [chat(i) for i in range(3)]))
    assert "too_few_examples" in report.error_counts


def test_context_limit_warns(tmp_path):
    objs = [chat(i) for i in range(10)]
    objs.append({"messages": [{"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "ok"}]})
    report = check_path(write_jsonl(tmp_path / "long.jsonl", objs), context_limit=200)
    assert report.tokens.over_limit == [11]
    assert any(w.code == "over_context_limit" and w.line == 11 for w in report.warnings)


def test_binary_file_cannot_be_read(tmp_path):
    path = tmp_path / "model.jsonl"
    path.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(LoadError):
        check_path(path)


def test_report_serialises_to_json(tmp_path):
    report = check_path(write_jsonl(tmp_path / "ok.jsonl", [chat(i) for i in range(10)]))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["n_examples"] == 10 and data["tokens"]["per_example"]


def test_other_formats_convert_and_count(tmp_path):
    objs = [{"instruction": f"Translate {i}", "input": "hello", "output": f"bonjour {i}"} for i in range(10)]
    report = check_path(write_jsonl(tmp_path / "alpaca.jsonl", objs))
    assert report.format == "instruction" and report.errors == [] and report.n_examples == 10
    assert all(t > 0 for t in report.tokens.per_example)


_FLAGGED_ANSWERS = (  # answers the accuracy and secrets items flag, more than max_evidence of each kind
    "Write to jane.doe{i}@acme.io or call +1 415-555-01{i2:02d}.",
    "Dear [insert name], your code is sk-proj-{i:04d}abcdefghijklmnopqrstuv",
    "<div>Open Settings {i}</div> &nbsp;then reset",
    "Open Settings and choose {i}",
    "Card 4111 1111 1111 1111 for order {i}...",
)


def _shared_work_dataset(path):
    """Near-duplicates, exact duplicates, multi-turn chats, tools, a bad record and answers with
    flags and secrets (more than the evidence kept of each): every part of the checklist, spread
    over many chunks."""
    rows = []
    for i in range(300):
        ask = f"How do I reset password number {i % 40} on my account {'today' if i % 3 else 'now'}?"
        if i % 3 == 1:
            answer = _FLAGGED_ANSWERS[i % len(_FLAGGED_ANSWERS)].format(i=i, i2=i % 100)
            rows.append({"messages": [{"role": "user", "content": f"Question {i}: {ask}"},
                                      {"role": "assistant", "content": answer}]})
        elif i % 7 == 0:
            rows.append({"messages": [{"role": "user", "content": "Earlier question"},
                                      {"role": "assistant", "content": "Earlier answer."},
                                      {"role": "user", "content": ask},
                                      {"role": "assistant", "content": f"Open Settings {i % 5}."}]})
        elif i % 11 == 0:
            rows.append({"messages": [{"role": "user", "content": ask, "name": "bob"},
                                      {"role": "assistant", "content": "Use the reset link."}],
                         "tools": [{"type": "function", "function": {"name": "reset"}}]})
        else:
            rows.append(chat(i % 90))
        if i % 4 == 0:  # a label column: the balance and contradiction items read it
            rows[-1]["category"] = ("billing", "login", "other")[i % 3]
    rows.insert(150, "{not json")
    return write_jsonl(path, rows)


@pytest.mark.parametrize("words_to_worker_backlog, checklist_share", [(-1, 0.0), (1, None), (1000, 0.0),
                                                                      (1000, 1.0), (-1, 1.0)])
def test_worker_path_gives_the_same_report_however_the_work_is_shared(
        tmp_path, monkeypatch, words_to_worker_backlog, checklist_share):
    """A big file is checked with a token worker that may also hash near-duplicate words and judge
    chunks for the checklist: whoever does which chunk, the report must equal the all-in-one-process check's."""
    import ftassist.data.check as C

    path = _shared_work_dataset(tmp_path / "d.jsonl")
    monkeypatch.setattr(C, "CHUNK", 16)
    here = check_path(path, model="gpt-4o-mini-2024-07-18").to_dict()

    monkeypatch.setattr(C, "BACKGROUND_COUNT_BYTES", 0)
    monkeypatch.setattr(C._Accumulator, "WORDS_TO_WORKER_BACKLOG", words_to_worker_backlog)
    if checklist_share is not None:
        monkeypatch.setattr(C._Accumulator, "CHECKLIST_SHARE_BOUNDS", (checklist_share, checklist_share))
    handed, judged_there = [], []
    from ftassist.data import token_worker

    real_submit = token_worker.BackgroundChatCounter.submit

    def submit(self, chats, payload=None, words=False, checklist=None):
        handed.append(words)
        judged_there.append(checklist is not None)
        return real_submit(self, chats, payload, words, checklist)

    monkeypatch.setattr(token_worker.BackgroundChatCounter, "submit", submit)
    shared = check_path(path, model="gpt-4o-mini-2024-07-18").to_dict()
    for report in (here, shared):
        report.pop("seconds", None)
    assert shared == here
    items = {item["id"]: item for item in shared["checklist"]}
    assert items["diverse"]["details"]["n_near_duplicates"] > 0  # the shared hashes were used
    # the evidence kept is the first found, whichever process judged which chunk
    assert len(items["sensitive"]["evidence"]) == 20 and items["sensitive"]["details"]["n_examples"] > 40
    assert items["accurate"]["status"] == "fail" and items["accurate"]["evidence"]
    assert len(handed) > 10
    if checklist_share == 0:
        assert not any(judged_there)
    elif checklist_share == 1:  # all but the chunks sent before the worker started, and the last
        assert sum(judged_there) > len(judged_there) / 2 and not any(judged_there[-3:])
        assert not any(words for words, there in zip(handed, judged_there) if there)  # the part holds their words
    words_alone = [words for words, there in zip(handed, judged_there) if not there]
    if words_to_worker_backlog < 0:
        # the words go to the worker only while it starts (the chunks sent before its first answer: at most
        # max_pending + 1), so that numpy is not imported here at its memory peak
        assert not any(words_alone[5:])
        assert words_alone == sorted(words_alone, reverse=True)
    elif words_to_worker_backlog >= 1000:
        # near the end of the file the words stay here, so the checklist can be judged while
        # the worker counts the last chunks
        # (the last max_pending=4 chunks or so, and the partial one the drain sends)
        assert all(words_alone[1:-6]) and len(handed) > 10
        assert not any(handed[-3:])


class _FakeCounter:
    max_pending = 4


def _accumulator(bounds):
    import ftassist.data.check as C

    class Accumulator(C._Accumulator):
        CHECKLIST_SHARE_BOUNDS = bounds

    return Accumulator(None, None, _FakeCounter())


def test_the_share_of_chunks_the_worker_judges_follows_who_waits():
    from ftassist.data.token_worker import Counted

    def answer(waited):
        return Counted(None, [], [], waited=waited)

    acc = _accumulator((0.0, 1.0))
    assert acc.checklist_share == 0.5
    step = acc.CHECKLIST_SHARE_STEP
    acc._share_next([answer(0.01), answer(0.01), answer(0.0)], backlog=1)  # the worker waited twice
    assert acc.checklist_share == pytest.approx(0.5 + 2 * step)
    acc._share_next([], backlog=4)  # the parent's next chunk would wait for the worker
    assert acc.checklist_share == pytest.approx(0.5 + step)
    for _ in range(100):
        acc._share_next([answer(1.0)], backlog=0)
    assert acc.checklist_share == 1.0  # within its bounds
    # a share of 1/4: every fourth chunk goes, whatever the order of calls
    acc = _accumulator((0.25, 0.25))
    assert [acc._share_next([], backlog=1) for _ in range(8)] == [False, False, False, True] * 2


def test_chunks_of_long_examples_are_never_judged_in_the_worker(tmp_path, monkeypatch):
    """Chunks full by bytes, not by count (long examples): the worker only counts them, and so never imports the
    checklist (its memory is the check's peak on long texts), however much of the work it could take."""
    import ftassist.data.check as C
    from ftassist.data import token_worker

    rows = [{"messages": [{"role": "user", "content": f"Question {i}: " + "why " * 700},
                          {"role": "assistant", "content": f"Because {i}. " + "so " * 700}]} for i in range(200)]
    path = write_jsonl(tmp_path / "long.jsonl", rows)
    monkeypatch.setattr(C, "BACKGROUND_COUNT_BYTES", 0)
    monkeypatch.setattr(C, "CHUNK_BYTES", 16 * 2**10)  # about three examples a chunk ...
    monkeypatch.setattr(C, "CHUNK", 16)  # ... where sixteen would fill it by count (and few chunks are "near the end")
    monkeypatch.setattr(C._Accumulator, "CHECKLIST_SHARE_BOUNDS", (1.0, 1.0))
    requests = []
    real_submit = token_worker.BackgroundChatCounter.submit

    def submit(self, chats, payload=None, words=False, checklist=None):
        requests.append(checklist)
        return real_submit(self, chats, payload, words, checklist)

    monkeypatch.setattr(token_worker.BackgroundChatCounter, "submit", submit)
    report = check_path(path)
    assert report.n_examples == 200 and len(requests) > 20 and not any(requests)


def test_count_tokens_matches_the_check_without_the_checklist(tmp_path):
    from ftassist.data.check import count_tokens

    path = write_jsonl(tmp_path / "mixed.jsonl", [chat(0), '{"messages": []}', chat(1, system=False), chat(2)])
    report = check_path(path, model="gpt-3.5-turbo-0125")
    stats = count_tokens(path, model="gpt-3.5-turbo-0125")
    assert stats.encoding == report.tokens.encoding == "cl100k_base"
    assert stats.per_example == report.tokens.per_example and stats.lines == [1, 3, 4]
    assert stats.assistant_per_example == report.tokens.assistant_per_example
    assert stats.total == report.tokens.total and stats.stats == report.tokens.stats
    with pytest.raises(LoadError):
        count_tokens(tmp_path / "missing.jsonl")
