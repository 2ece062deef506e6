"""Battles and votes against hand-written expectations: the cases that mutation testing showed
untested (`tools/mutation.py ftassist/arena/battles.py`). The messages are checked word for
word because they are what the voter (or the arena's owner) reads.

Equivalent mutants (no observable difference, left alive on purpose; numbered as mutmut 3.8 numbers
the mutants of each function, so the numbers move when that function changes):
- SQL written in lower or upper case, or a column name given in capitals: keywords and identifiers are
  case-insensitive in DuckDB, and none of these changes the case of a string literal ('arena' stays 'arena'):
  _registered_names 4, 5; _serve 14, 15, 17; add_battle 29, 30, 32, 33; reflag_battles 6, 7, 20, 21;
  next_battle 23 (FALSE / false), 37, 38, 40, 41, 43, 44, 46, 47, 49, 50, 52, 53; vote 16, 17, 19, 21, 23,
  24, 26, 27, 29, 30, 51, 52, 112, 113, 115; skip 8, 9, 26, 27; pregenerate 104, 105; flag_suspicious_voters
  6, 129, 130, 132; arena_stats 4, 5, 9, 10, 14, 15, 19, 20; _daily_cap_reasons 4, 8, 22; _flag_burst 6, 15,
  18, 33, 36, 63, 66; _flag_day 6, 51, 54, 57; _linked_voter_voted 7, 8, 10, 11, 13; _spend_calls 14, 15, 34,
  35, 37, 38, 67, 68; compact 14, 15, 17, 18, 29, 30, 41, 42; flagged_vote_count 3, 4; review_prompt 7, 8, 31,
  32, 38, 39, 45, 46, 48, 49, 56, 57; voter_prompts 13, 16, 19, 22, 23; battle_for_prompt 121.
- load_prompts 8, 10: `encoding=None` / "UTF-8" read the same on a UTF-8 locale (here and in CI).
- skip 11, vote 32, review_prompt 10: an unknown token (or battle id) looked up as "XXXX" instead of "" finds
  no row either (tokens are random 24-character strings, battle ids 32 hex digits).
- pregenerate 12, 13: a plain-string prompt's reference is read with `.get("reference")`, None
  with or without the key; 83: `source` left out is the default "pregenerated".
- battle_for_prompt 50, 51: a pool of 3 (or the default size) runs the same two generations.
- _serve 7: `randbelow(2) != 1` swaps as often, and the stored flag says which way.
- _serve 2, 3: a token of 19 or 32 random bytes instead of 18 is as unguessable; its length is no
  contract.
- _registered_names 10: an empty config fails to parse as "XX{}XX" and falls back to {} as "{}".
- identity_leak 3: a missing answer read as "XXXX" instead of "" names no model.
- maybe_compact 22: float("-INF") is minus infinity as float("-inf") is.
- vote 94: `reasons = _daily_cap_reasons(...)` instead of `+=` runs only when `reasons` is empty.
- flag_suspicious_voters 38, 47: a count of 1 instead of 0 for an outcome nobody else chose
  never makes a unique majority (it ties with any real single vote, and needs another vote to
  reach two others); 109: `<=` instead of `<` only differs when a p-value equals alpha exactly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time

import pytest

from ftassist.arena import battles, limits
from ftassist.arena import models as arena_models
from ftassist.store import get_store


@pytest.fixture(autouse=True)
def fresh_limits():
    """The rate limiters, the rules' windows and the last compaction's time are module-level state: every test
    starts from empty windows."""
    for limiter in (battles.rate_limiter, battles.prompt_limiter):
        limiter.reset()
        limiter.per_minute = None
    limits.windows.reset()
    battles._last_compaction.clear()
    yield
    for limiter in (battles.rate_limiter, battles.prompt_limiter):
        limiter.reset()
        limiter.per_minute = None
    limits.windows.reset()
    battles._last_compaction.clear()


def message(error_type, call, *args, **kwargs) -> str:
    with pytest.raises(error_type) as raised:
        call(*args, **kwargs)
    return str(raised.value)


# -- prompts from files ------------------------------------------------------------------------
def test_prompt_text_is_the_last_user_turn():
    assert battles._prompt_text("plain") == "plain"
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "First?"},
            {"role": "assistant", "content": "One."}, "stray text", {"role": "user", "content": "Second?"},
            {"role": "assistant", "content": "Two."}]
    assert battles._prompt_text(chat) == "Second?"
    assert battles._prompt_text([{"role": "user"}]) == ""  # a turn without content reads as empty text
    expected = "a prompt is a string or a list of chat messages with a user turn"
    assert message(ValueError, battles._prompt_text, [{"role": "system", "content": "x"}]) == expected
    assert message(ValueError, battles._prompt_text, [{"role": "user", "content": [{"type": "text"}]}]) == expected
    assert message(ValueError, battles._prompt_text, 42) == expected


def write_jsonl(path, rows, blank_lines=False):
    lines = [json.dumps(r) for r in rows]
    path.write_text(("\n\n" if blank_lines else "\n").join(lines) + "\n", encoding="utf-8")
    return path


def test_each_row_shape_gives_its_prompt_and_reference(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "Only a question?"}]},
        {"messages": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}]},
        {"instruction": "Translate", "input": "bonjour", "output": "hello"},
        {"question": "Why?", "response": "Because."},
        {"prompt": "Say hi", "reference": "hi", "completion": "not this one"},
        {"prompt": [{"role": "user", "content": "Listed?"}], "completion": "Yes."},
        {"prompt": "Odd reference", "reference": ["not", "text"]},
        {"instruction": "No input", "input": ""},
        {"text": "no prompt key"},
        {"prompt": 5},
        {"prompt": [{"role": "system", "content": "no user turn"}]},
        {"messages": [{"role": "assistant", "content": "no question"}]},
        ["not", "an", "object"],
        "A bare string",
    ]
    assert battles.load_prompts(write_jsonl(tmp_path / "rows.jsonl", rows, blank_lines=True)) == [
        {"prompt": "Only a question?", "reference": None},
        {"prompt": "Q1", "reference": "A1"},
        {"prompt": "Translate\n\nbonjour", "reference": "hello"},
        {"prompt": "Why?", "reference": "Because."},
        {"prompt": "Say hi", "reference": "hi"},
        {"prompt": "Listed?", "reference": "Yes."},
        {"prompt": "Odd reference", "reference": None},
        {"prompt": "No input", "reference": None},
        {"prompt": "A bare string", "reference": None},
    ]


def test_a_json_file_holds_one_list_of_rows_whatever_the_case_of_its_suffix(tmp_path):
    rows = ["Plain one", {"prompt": "Second", "response": "2"}]
    for name in ("p.json", "P.JSON"):
        path = tmp_path / name
        path.write_text(json.dumps(rows, indent=2), encoding="utf-8")  # several lines: not JSON lines
        assert battles.load_prompts(path) == [{"prompt": "Plain one", "reference": None},
                                              {"prompt": "Second", "reference": "2"}]


def test_a_text_file_has_one_prompt_a_line(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("  one  \n\ntwo\n", encoding="utf-8")
    assert battles.load_prompts(path) == [{"prompt": "one", "reference": None}, {"prompt": "two", "reference": None}]


def test_a_sample_of_n_is_seeded_and_all_of_them_keep_their_order(tmp_path):
    lines = [f"prompt {i}" for i in range(10)]
    path = tmp_path / "p.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    items = [{"prompt": line, "reference": None} for line in lines]
    assert battles.load_prompts(path, n=3) == random.Random(0).sample(items, 3)  # seed 0 by default
    assert battles.load_prompts(path, n=3, seed=7) == random.Random(7).sample(items, 3)
    assert battles.load_prompts(path, n=10) == items  # n = all: no shuffle
    assert battles.load_prompts(path, n=50) == items


def test_prompt_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "none.txt"
    assert message(ValueError, battles.load_prompts, missing) == f"No prompt file at {missing}."
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    assert message(ValueError, battles.load_prompts, empty) == f"No prompts found in {empty}."
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{oops\n', encoding="utf-8")
    assert message(ValueError, battles.load_prompts, bad).startswith(f"{bad}: line 2 is not JSON (")


# -- creating battles --------------------------------------------------------------------------------
def test_add_battle_messages():
    store = get_store()
    assert message(ValueError, battles.add_battle, store, "p", "m", "m", "a", "b") == "A battle needs two different models."
    assert message(ValueError, battles.add_battle, store, "  ", "m1", "m2", "a", "b") == "A battle needs a non-empty prompt."


def fake_generate(calls, fail=None):
    """A stand-in for arena_models.generate: '<model> on <prompt>', and an error where `fail` says."""
    def generate(store, model_id, prompts, sampling=None, **kwargs):
        calls.append((model_id, list(prompts), sampling))
        out = []
        for prompt in prompts:
            if fail and fail(model_id, prompt):
                out.append({"text": "", "error": f"{model_id} failed", "sampling": None})
            else:
                out.append({"text": f"{model_id} on {prompt}", "error": None,
                            "sampling": {"temperature": 0.5, "seed": len(model_id)}})
        return out
    return generate


def test_pregenerate_reports_progress_errors_and_stores_the_source(monkeypatch):
    store = get_store()
    calls, progress = [], []
    monkeypatch.setattr(arena_models, "generate", fake_generate(calls, fail=lambda m, p: m == "m2" and p == "Q2"))
    result = battles.pregenerate(store, ["Q1", {"prompt": "Q2", "reference": "R2"}], ["m1", "m2"],
                                 sampling={"temperature": 0.5}, progress=lambda *a: progress.append(a))
    assert progress == [(0, 2, "generating with model 1/2"), (1, 2, "generating with model 2/2"), (2, 2, "done")]
    assert calls == [("m1", ["Q1", "Q2"], {"temperature": 0.5}), ("m2", ["Q1", "Q2"], {"temperature": 0.5})]
    assert result == {"battles": 1, "flagged": 0, "errors": [{"prompt": 1, "model": "m2", "error": "m2 failed"}]}
    assert store.query_rows("SELECT prompt, answer_a, answer_b, source, reference FROM battles") == [
        ("Q1", "m1 on Q1", "m2 on Q1", "pregenerated", None)]
    assert message(ValueError, battles.pregenerate, store, ["Q"], ["m1", "m1"]) == \
        "Pick at least two different models to compare."


# -- voter ids, serving, skipping ----------------------------------------------------------------------
def test_voter_ids_are_checked_with_one_message():
    store = get_store()
    battles.add_battle(store, "p", "m1", "m2", "one", "two")
    expected = "No voter id: reload the page to start a session."
    for voter in ("", "   ", None, "v" * 201):
        assert message(battles.VoteError, battles.next_battle, store, voter) == expected
    assert battles.next_battle(store, "v" * 200) is not None


def test_a_skip_only_counts_for_the_voter_the_battle_was_served_to():
    store = get_store()
    battles.add_battle(store, "p", "m1", "m2", "one", "two")
    view = battles.next_battle(store, "alice")
    expected = "This battle is not known for this session: start a new round."
    assert message(battles.VoteError, battles.skip, store, view.token, "mallory") == expected
    assert message(battles.VoteError, battles.skip, store, None, "alice") == expected
    assert store.query_rows("SELECT count(*) FROM battle_skips") == [(0,)]
    battles.skip(store, view.token, "alice")
    battles.skip(store, view.token, "alice")  # twice is once
    assert store.query_rows("SELECT battle_id, voter FROM battle_skips") == [
        (store.query_rows("SELECT id FROM battles")[0][0], "alice")]


def test_vote_messages_and_the_reveal_as_a_dict():
    store = get_store()
    battles.add_battle(store, "p", "m1", "m2", "one", "two")
    view = battles.next_battle(store, "alice")
    assert message(battles.VoteError, battles.vote, store, view.token, "alice", "left") == \
        "Unknown choice 'left': use one of A, B, tie, bothbad."
    assert message(battles.VoteError, battles.vote, store, "old", "alice", "A") == \
        "This battle is not known (the link may be old): start a new round."
    assert message(battles.VoteError, battles.vote, store, view.token, "bob", "A") == \
        "This battle was served to another session: start a new round."
    reveal = battles.vote(store, view.token, "alice", "tie")
    assert reveal.to_dict() == {"model_a": reveal.model_a, "model_b": reveal.model_b, "choice": "tie", "winner": "tie",
                                "already_voted": False, "flagged": False, "message": "Thanks, your vote is recorded."}
    assert {reveal.model_a, reveal.model_b} == {"m1", "m2"}


def test_a_new_limiter_speaks_of_votes_and_counts_per_voter():
    limiter = battles.RateLimiter(per_minute=1)
    limiter.check("v", now=100.0)
    assert message(battles.RateLimited, limiter.check, "v", now=110.0) == (
        "You are voting very fast (1 votes a minute at most). Please read both answers; you can vote again in 51 s.")
    limiter.check("w", now=110.0)  # another voter has a window of its own


# -- the voter's own prompt ------------------------------------------------------------------------------
def register(store, model_id, name):
    store.execute("INSERT INTO arena_models (id, kind, display_name, config_json) VALUES (?, 'openai_compatible', ?, '{}')",
                  [model_id, name])


def test_a_voters_prompt_is_answered_by_both_models_and_stored_with_the_first_ones_sampling(monkeypatch):
    store = get_store()
    calls = []
    monkeypatch.setattr(arena_models, "generate", fake_generate(calls))
    view = battles.battle_for_prompt(store, "Why is the sky blue?", "carol", model_ids=["left-m", "right-model"],
                                     sampling={"temperature": 0.5})
    assert sorted(calls) == [("left-m", ["Why is the sky blue?"], {"temperature": 0.5}),
                             ("right-model", ["Why is the sky blue?"], {"temperature": 0.5})]
    assert {view.answer_a, view.answer_b} == {"left-m on Why is the sky blue?", "right-model on Why is the sky blue?"}
    (row,) = store.query("SELECT model_a, model_b, answer_a, answer_b, sampling_json, source, flagged_reason FROM battles")
    assert row == {"model_a": "left-m", "model_b": "right-model", "answer_a": "left-m on Why is the sky blue?",
                   "answer_b": "right-model on Why is the sky blue?",
                   "sampling_json": json.dumps({"seed": 6, "temperature": 0.5}, sort_keys=True),  # left-m's
                   "source": "voter", "flagged_reason": None}


def test_a_voters_prompt_limits_and_messages(monkeypatch):
    store = get_store()
    monkeypatch.setattr(arena_models, "generate", fake_generate([]))
    pair = ["m-one", "m-two"]
    assert message(battles.VoteError, battles.battle_for_prompt, store, "  ", "carol", pair) == "Type a prompt first."
    long_prompt = "x" * battles.MAX_PROMPT_CHARS
    assert battles.battle_for_prompt(store, long_prompt, "carol", pair).prompt == long_prompt  # at the limit: fine
    assert message(battles.VoteError, battles.battle_for_prompt, store, long_prompt + "x", "carol", pair) == \
        "The prompt is too long (4001 characters; at most 4000)."
    assert message(battles.VoteError, battles.battle_for_prompt, store, "Q", "carol", ["m-one", "m-one"]) == \
        "A battle needs two different models."
    assert message(battles.VoteError, battles.battle_for_prompt, store, "Q", "carol") == \
        "The arena has fewer than two models: ask its owner to add some."
    battles.prompt_limiter.per_minute = 3  # carol has asked 3 times (the first too long, the others refused before)
    battles.battle_for_prompt(store, "Mine?", "dave", pair)  # dave has a window of his own
    assert message(battles.RateLimited, battles.battle_for_prompt, store, "Q", "carol", pair).startswith(
        "At most 3 own prompts a minute: try again in ")


def test_random_models_are_drawn_from_the_registered_ones(monkeypatch):
    store = get_store()
    monkeypatch.setattr(arena_models, "generate", fake_generate([]))
    register(store, "reg-one", "One")
    register(store, "reg-two", "Two")
    view = battles.battle_for_prompt(store, "Hello?", "erin")
    assert {view.answer_a, view.answer_b} == {"reg-one on Hello?", "reg-two on Hello?"}


def test_a_failed_answer_is_logged_and_the_voter_told_without_names(monkeypatch, caplog):
    store = get_store()
    monkeypatch.setattr(arena_models, "generate", fake_generate([], fail=lambda m, p: m == "secret-model"))
    with caplog.at_level(logging.WARNING, logger="ftassist.arena.battles"):
        text = message(battles.VoteError, battles.battle_for_prompt, store, "Q", "carol", ["fine-model", "secret-model"])
    assert text == "One of the models could not answer right now: try again, or vote on a prepared battle."
    assert [r.getMessage() for r in caplog.records] == ["arena: on-demand generation failed: [None, 'secret-model failed']"]
    assert store.query_rows("SELECT count(*) FROM battles") == [(0,)]


# -- review and counts -----------------------------------------------------------------------------------
def store_vote(store, battle_id, voter, winner, source="arena"):
    store.execute("INSERT INTO votes (id, battle_id, voter, model_a, model_b, winner, source) VALUES (?, ?, ?, 'x', 'y', ?, ?)",
                  [f"{battle_id}-{voter}", battle_id, voter, winner, source])


def test_suspicious_voters_with_the_default_threshold_and_minimum():
    store = get_store()
    for i in range(10):  # ten battles: four voters agree on x, one always says y
        for voter in ("h1", "h2", "h3", "h4"):
            store_vote(store, f"b{i}", voter, "model_a")
        store_vote(store, f"b{i}", "odd", "model_b")
        store_vote(store, f"b{i}", "imported", "model_b", source="import")  # not an arena vote: not judged
    flagged = battles.flag_suspicious_voters(store)
    # the referee: odd agrees 0 of 10 times, expected 40/50; P(X = 0) for X ~ Binomial(10, 0.8) = 0.2^10
    assert [(f["voter"], f["n_votes"], f["agreement"]) for f in flagged] == [("odd", 10, 0.0)]
    assert flagged[0]["expected"] == pytest.approx(0.8) and flagged[0]["p_value"] == pytest.approx(0.2**10)


def test_arena_stats_count_each_thing_once():
    store = get_store()
    register(store, "m1", "One")
    register(store, "m2", "Two")
    register(store, "m3", "Three")
    store.execute("UPDATE arena_models SET removed_at = current_timestamp WHERE id = 'm3'")
    battles.add_battle(store, "p", "m1", "m2", "fine", "also fine")
    battles.add_battle(store, "p", "m1", "m2", "I am ChatGPT", "fine")
    battles.add_battle(store, "q", "m1", "m2", "fine", "fine too")
    for battle, voter in (("b1", "alice"), ("b2", "alice"), ("b1", "bob")):
        store_vote(store, battle, voter, "tie")
    store.execute("INSERT INTO voter_flags (voter, reason) VALUES ('bob', 'test')")
    assert battles.arena_stats(store) == {"models": 2, "removed_models": 1, "battles": 3, "flagged_battles": 1,
                                          "votes": 3, "voters": 2, "flagged_voters": 1}


# -- names that give a model away -----------------------------------------------------------------------
def test_registered_names_come_from_ids_names_and_the_last_part_of_model_paths():
    store = get_store()
    store.executemany("INSERT INTO arena_models (id, kind, display_name, config_json) VALUES (?, 'hf_local', ?, ?)", [
        ["qwen-small", "Base", json.dumps({"model": "Qwen/Qwen2.5-0.5B", "base_model": "org/Llama-Mini/"})],
        ["ab", "Tuned", json.dumps({"model": 7})],
        ["mine", "Helper Bot", "not json"],
        ["x1", " Fine-Tuned ", json.dumps({"base_model": ""})],
        ["ada", "Ada", json.dumps({"model": "acme/Phi-X"})],
    ])
    # short names (ab, x1) and generic ones (Base, Tuned, Fine-Tuned) would flag ordinary text;
    # three characters are enough (Ada)
    assert battles._registered_names(store) == ["Ada", "Helper Bot", "Llama-Mini", "Phi-X", "Qwen2.5-0.5B", "ada",
                                                "mine", "qwen-small"]


def test_identity_leak_names_what_it_found():
    assert battles.identity_leak(["fine", "I use chatgpt daily"]) == "an answer mentions 'chatgpt'"
    assert battles.identity_leak([None, "Made by Meta."]) == "an answer mentions 'Meta'"
    assert battles.identity_leak(["the metadata of a meta-analysis"]) is None
    assert battles.identity_leak(["I am zeph-7 here"], ["Zeph-7"]) == "an answer mentions the model name 'Zeph-7'"
    assert battles.identity_leak(["Zeph-7b is another model"], ["Zeph-7"]) is None  # part of a longer word
    assert battles.identity_leak(["no names at all"], ["Zeph-7"]) is None


def test_empty_answers_flag_a_battle_on_either_side():
    store = get_store()
    for answer_a, answer_b in (("", "b"), ("a", "  \n"), (None, "b"), ("a", None)):
        bid = battles.add_battle(store, "p", "m1", "m2", answer_a, answer_b)
        assert store.query_rows("SELECT flagged_reason, answer_a, answer_b FROM battles WHERE id = ?", [bid]) == [
            ("an answer is empty", answer_a or "", answer_b or "")]


def test_a_battle_keeps_its_sampling_reference_and_source():
    store = get_store()
    bid = battles.add_battle(store, "p", "m1", "m2", "one", "two", sampling={"top_p": 0.9, "temperature": 0.2},
                             reference="ref", source="voter")
    plain = battles.add_battle(store, "q", "m1", "m2", "one", "two")
    rows = {r["id"]: r for r in store.query("SELECT id, sampling_json, reference, source, flagged_reason FROM battles")}
    assert rows[bid] == {"id": bid, "sampling_json": '{"temperature": 0.2, "top_p": 0.9}', "reference": "ref",
                         "source": "voter", "flagged_reason": None}
    assert rows[plain] == {"id": plain, "sampling_json": "{}", "reference": None, "source": "pregenerated",
                           "flagged_reason": None}


# -- serving and voting ---------------------------------------------------------------------------------
def test_battles_with_a_removed_model_are_not_served():
    store = get_store()
    register(store, "kept", "Kept")
    register(store, "gone", "Gone")
    register(store, "other", "Other")
    store.execute("UPDATE arena_models SET removed_at = current_timestamp WHERE id = 'gone'")
    battles.add_battle(store, "p", "gone", "kept", "one", "two")
    served = battles.add_battle(store, "p", "kept", "other", "one", "two")
    view = battles.next_battle(store, "alice")
    assert store.query_rows("SELECT battle_id FROM battle_serves WHERE token = ?", [view.token]) == [(served,)]
    battles.vote(store, view.token, "alice", "A")
    assert battles.next_battle(store, "alice") is None


def test_sides_are_swapped_half_the_time():
    """Position bias: the left answer must not be one model's more often than the other's."""
    store = get_store()
    bid = battles.add_battle(store, "p", "m1", "m2", "one", "two")
    left_is_b = sum(battles._serve(store, bid, "p", "one", "two", voter="v").answer_a == "two" for _ in range(1000))
    assert 420 <= left_is_b <= 580  # a fair coin: 500, five standard deviations either way
    stored = store.query_rows("SELECT count(*) FILTER (WHERE swapped) FROM battle_serves")[0][0]
    assert stored == left_is_b


@pytest.mark.parametrize(("choice", "swapped", "winner"), [
    ("A", False, "model_a"), ("A", True, "model_b"), ("B", False, "model_b"), ("B", True, "model_a"),
    ("tie", True, "tie"), ("bothbad", False, "tie (bothbad)"),
])
def test_the_clicked_side_maps_to_the_stored_winner(choice, swapped, winner):
    assert battles._winner(choice, swapped) == winner


def test_a_second_vote_reveals_the_first_and_a_flagged_battle_says_it_does_not_count():
    store = get_store()
    register(store, "m1", "Model One")
    register(store, "m2", "Model Two")
    bid = battles.add_battle(store, "p", "m1", "m2", "Claude here", "two")
    view = battles._serve(store, bid, "p", "Claude here", "two", voter="alice")
    swapped = view.answer_a == "two"
    first = battles.vote(store, view.token, "alice", "A")
    assert first.message == ("Thanks, your vote is recorded. (This battle is flagged because an answer gives a model"
                             " away, so it does not count.)")
    assert first.flagged and (first.model_a, first.model_b) == (
        ("Model Two", "Model One") if swapped else ("Model One", "Model Two"))
    again = battles.vote(store, view.token, "alice", "B")
    assert again.to_dict() == {**first.to_dict(), "already_voted": True,
                               "message": "You already voted on this battle; your first vote stands."}
    assert store.query_rows("SELECT voter, winner, choice, source FROM votes") == [
        ("alice", "model_b" if swapped else "model_a", "A", "arena")]


def test_limits_come_from_the_environment_unless_set():
    assert battles.RateLimiter().limit() == 30
    assert battles.RateLimiter(env="TEST_LIMIT_UNSET", default=4).limit() == 4


def test_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv(battles.RATE_LIMIT_ENV, "3")
    assert battles.RateLimiter().limit() == 3
    assert battles.RateLimiter(per_minute=9).limit() == 9
    monkeypatch.setenv(battles.RATE_LIMIT_ENV, "many")
    assert battles.RateLimiter().limit() == 30


def test_the_window_is_sixty_seconds_and_the_wait_is_rounded_up():
    limiter = battles.RateLimiter(per_minute=2, what="tries")
    limiter.check("v", now=0.0)
    limiter.check("v", now=10.0)
    assert message(battles.RateLimited, limiter.check, "v", now=20.0) == "At most 2 tries a minute: try again in 41 s."
    assert message(battles.RateLimited, limiter.check, "v", now=59.9) == "At most 2 tries a minute: try again in 1 s."
    limiter.check("v", now=60.0)  # the vote at 0 s has left the window
    unlimited = battles.RateLimiter(per_minute=0)
    for second in range(100):
        unlimited.check("v", now=float(second))


def test_suspicious_voter_reason_and_stored_flag():
    """Votes of all three outcomes (A, B, a tie): this once raised "assignment destination is
    read-only" (pandas 3 hands out a read-only array), so no voter could be reviewed."""
    store = get_store()
    for i in range(12):  # h1-h3 agree (B or a tie), odd says A: 36 votes agree, odd's 12 do not
        for voter in ("h1", "h2", "h3"):
            store_vote(store, f"b{i}", voter, "tie" if i % 2 else "model_b")
        store_vote(store, f"b{i}", "odd", "model_a")
    store_vote(store, "b0", "few", "model_b")  # few agrees twice: +2 of 2, and too few votes to judge
    store_vote(store, "b1", "few", "tie (bothbad)")  # (both ties are one outcome)
    for voter in ("h1", "h2", "h3", "odd"):  # everyone agrees once: +4 of 4
        store_vote(store, "c", voter, "model_b")
    for voter in ("h1", "h2", "h3"):  # two others each, in agreement: +3 of 3
        store_vote(store, "trio", voter, "tie")
    store_vote(store, "lonely", "odd", "model_a")  # no other voter: not scored
    store_vote(store, "pair", "h1", "model_a")  # one other voter: not scored
    store_vote(store, "pair", "odd", "model_b")
    store_vote(store, "split", "h1", "model_a")
    store_vote(store, "split", "h2", "model_b")
    store_vote(store, "split", "odd", "tie (bothbad)")  # the others disagree: no majority, not scored
    # the referee, by hand: 45 of 57 scored votes agree; odd agrees on 1 of 13
    expected = 45 / 57
    (flag,) = battles.flag_suspicious_voters(store, min_votes=12)
    assert (flag["voter"], flag["n_votes"], flag["agreement"]) == ("odd", 13, 1 / 13)
    assert flag["expected"] == pytest.approx(expected)
    assert flag["p_value"] == pytest.approx((1 - expected) ** 13 + 13 * expected * (1 - expected) ** 12)  # P(X <= 1)
    assert flag["reason"] == "agrees with the majority on 1/13 battles (expected 79%)"
    assert store.query_rows("SELECT voter, reason, n_votes, agreement, expected FROM voter_flags") == [
        ("odd", flag["reason"], 13, 1 / 13, pytest.approx(expected))]
    # one-sided: voters who agree on everything are never suspicious, however loose the threshold
    assert [f["voter"] for f in battles.flag_suspicious_voters(store, alpha=0.2, min_votes=12)] == ["odd"]


def test_a_vote_count_without_any_b_win_still_scores_every_vote():
    store = get_store()
    for i in range(10):
        for voter in ("h1", "h2", "h3"):
            store_vote(store, f"b{i}", voter, "tie")
        store_vote(store, f"b{i}", "odd", "model_a")
    (flag,) = battles.flag_suspicious_voters(store)
    assert (flag["voter"], flag["n_votes"], flag["agreement"], flag["expected"]) == ("odd", 10, 0.0, 0.75)


def test_no_arena_votes_or_none_scorable_flag_no_one():
    store = get_store()
    assert battles.flag_suspicious_voters(store) == []
    store_vote(store, "b1", "alice", "model_a")
    store_vote(store, "b1", "bob", "model_b")
    assert battles.flag_suspicious_voters(store) == []


# -- the public arena's rules (limits.VotingRules) ---------------------------------------------------------
# Every rule is off in OFF; each test turns on the one it checks. The clock is passed in everywhere it can be;
# the per-minute windows (limits.windows) read the monotonic clock, so their waits are checked to the second.
OFF = limits.VotingRules(min_read_seconds=0, votes_per_minute_per_address=0, rounds_per_minute=0,
                         rounds_per_minute_per_address=0, burst_min_votes=10_000, votes_per_day_per_voter=0,
                         votes_per_day_per_address=0, daily_min_votes=10_000, prompt_calls_per_address_per_hour=0,
                         prompt_calls_per_day=10_000, serve_ttl_seconds=10_000, skip_ttl_seconds=10_000)
DAY = 24 * 3600.0
HOUR = 3600.0


@pytest.fixture
def unlimited():
    """The in-memory per-voter limiters off, so that a test's many votes meet only the rules it sets."""
    battles.rate_limiter.per_minute = 0
    battles.prompt_limiter.per_minute = 0


def rules(**changes) -> limits.VotingRules:
    return dataclasses.replace(OFF, **changes)


def cast(store, voter, pick, *, pair=("kappa", "omega"), address=None, rules=None, served=1000.0, read=10.0):
    """Serve `voter` a new battle between `pair` (model_a, model_b) at `served` and vote for `pick` (a model of
    the pair, or "tie") `read` seconds later, whichever side the pick was shown on; the Reveal."""
    model_a, model_b = pair
    battle_id = battles.add_battle(store, "question", model_a, model_b, "first answer", "second answer")
    view = battles._serve(store, battle_id, "question", "first answer", "second answer", voter=voter,
                          address=address, now=served)
    if pick == "tie":
        choice = "tie"
    else:
        model_on_the_left = model_a if view.answer_a == "first answer" else model_b
        choice = "A" if pick == model_on_the_left else "B"
    return battles.vote(store, view.token, voter, choice, address=address, rules=rules, now=served + read)


def flags(store) -> list[tuple]:
    """(voter, flagged_reason) of every vote, in the order they were cast."""
    return store.query_rows("SELECT voter, flagged_reason FROM votes ORDER BY voted_epoch, voter")


THANKS = "Thanks, your vote is recorded."
NOT_COUNTED = THANKS + " It does not count toward the ratings: "


def test_what_each_flag_says_to_the_voter():
    said = {
        "too fast: x": "it came before you could have read both answers. Please read them, then vote.",
        "address rate: x": "too many votes are coming from your network right now.",
        "one-sided burst: x": "it is part of a run of very one-sided votes, kept for the arena's owner to review.",
        "daily cap: x": "today's votes that count are used up for you or your network. Thank you; come back tomorrow.",
        "one-sided day: x": ("today's votes from you or your network are far more one-sided than other voters', so "
                             "they are kept for the arena's owner to review."),
        "own prompt awaiting review": "your own question counts once the arena's owner has reviewed it.",
        "own prompt rejected": "the arena's owner did not accept this question.",
    }
    for reason, words in said.items():
        assert battles._voter_words(reason) == words


# reading time and the address's vote rate
def test_a_vote_inside_the_reading_time_is_flagged_and_one_at_it_counts(unlimited):
    store = get_store()
    reading = rules(min_read_seconds=2.5)
    fast = cast(store, "quick", "kappa", rules=reading, served=1000.0, read=0.4)
    assert (fast.flagged, fast.message) == (True, NOT_COUNTED + "it came before you could have read both answers. "
                                                               "Please read them, then vote.")
    at_the_limit = cast(store, "steady", "kappa", rules=reading, served=2000.0, read=2.5)
    assert (at_the_limit.flagged, at_the_limit.message) == (False, THANKS)
    early = cast(store, "clock-skew", "kappa", rules=reading, served=3000.0, read=-1.0)  # a vote "before" the serve
    assert flags(store) == [("quick", "too fast: voted 0.4 s after the answers appeared (reading time 2.5 s)"),
                            ("steady", None),
                            ("clock-skew", "too fast: voted 0.0 s after the answers appeared (reading time 2.5 s)")]
    assert early.flagged
    # no reading time: even a vote timed before its serve counts
    assert not cast(store, "no-rule", "kappa", rules=OFF, served=4000.0, read=-1.0).flagged


def test_a_serve_without_a_time_has_no_reading_time(unlimited):
    store = get_store()
    battle_id = battles.add_battle(store, "q", "kappa", "omega", "one", "two")
    view = battles._serve(store, battle_id, "q", "one", "two", voter="old-session")
    store.execute("UPDATE battle_serves SET served_epoch = NULL")  # served before the rules were in force
    assert not battles.vote(store, view.token, "old-session", "A", rules=rules(min_read_seconds=5), now=0.0).flagged


def test_votes_past_the_address_rate_are_flagged_and_other_addresses_are_not_charged(unlimited):
    store = get_store()
    rate = rules(votes_per_minute_per_address=2)
    reveals = [cast(store, f"nat-{i}", "kappa", address="nat", rules=rate, served=1000.0 + i) for i in range(3)]
    assert [r.flagged for r in reveals] == [False, False, True]
    assert reveals[2].message == NOT_COUNTED + "too many votes are coming from your network right now."
    assert not cast(store, "home", "kappa", address="home", rules=rate, served=1010.0).flagged
    for i in range(3):  # no address known: no address to charge
        assert not cast(store, f"nowhere-{i}", "kappa", rules=rate, served=1020.0 + i).flagged
    assert flags(store)[2] == ("nat-2", "address rate: over 2 votes a minute from one address")


def test_a_vote_both_too_fast_and_past_the_rate_keeps_both_reasons_and_says_the_first(unlimited):
    store = get_store()
    both = rules(min_read_seconds=3, votes_per_minute_per_address=1)
    cast(store, "first", "kappa", address="nat", rules=both)
    reveal = cast(store, "second", "kappa", address="nat", rules=both, served=2000.0, read=1.0)
    assert reveal.message == NOT_COUNTED + "it came before you could have read both answers. Please read them, then vote."
    assert flags(store)[1] == ("second", "too fast: voted 1.0 s after the answers appeared (reading time 3 s); "
                                         "address rate: over 1 votes a minute from one address")


# daily caps
def test_the_voters_daily_cap_counts_the_last_24_hours_of_counted_arena_votes(unlimited):
    store = get_store()
    capped = rules(votes_per_day_per_voter=2, min_read_seconds=3)
    store.execute("INSERT INTO votes (id, battle_id, voter, model_a, model_b, winner, source, voted_epoch)"
                  " VALUES ('imported', 'elsewhere', 'keen', 'x', 'y', 'tie', 'import', 1000)")  # not an arena vote
    cast(store, "keen", "kappa", rules=capped, served=1000.0, read=1.0)  # too fast: flagged, uses no cap
    first = cast(store, "keen", "kappa", rules=capped, served=1000.0)  # voted at 1010
    cast(store, "keen", "omega", rules=capped, served=1050.0)  # voted at 1060
    past = cast(store, "keen", "tie", rules=capped, served=1110.0)
    assert not first.flagged and past.flagged
    assert past.message == NOT_COUNTED + ("today's votes that count are used up for you or your network. "
                                          "Thank you; come back tomorrow.")
    assert flags(store)[-1] == ("keen", "daily cap: over 2 counted votes in a day from one voter")
    assert not cast(store, "other", "kappa", rules=capped, served=1200.0).flagged  # a cap per voter
    # exactly a day after the vote at 1010 it is still in the window; just after, it has left it
    assert cast(store, "keen", "kappa", rules=capped, served=1000.0 + DAY).flagged
    assert not cast(store, "keen", "kappa", rules=capped, served=1000.5 + DAY).flagged
    # a vote already flagged for another reason is not also charged to the cap
    assert flags(store)[1] == ("keen", "too fast: voted 1.0 s after the answers appeared (reading time 3 s)")


def test_the_addresss_daily_cap_holds_across_voters_and_zero_means_no_cap(unlimited):
    store = get_store()
    capped = rules(votes_per_day_per_address=2)
    reveals = [cast(store, f"nat-{i}", "kappa", address="nat", rules=capped, served=1000.0 + 60 * i) for i in range(3)]
    assert [r.flagged for r in reveals] == [False, False, True]
    assert flags(store)[2] == ("nat-2", "daily cap: over 2 counted votes in a day from one address")
    assert not cast(store, "home-voter", "kappa", address="home", rules=capped, served=1300.0).flagged
    assert not any(cast(store, "fan", "kappa", rules=OFF, served=2000.0 + i).flagged for i in range(3))


def test_the_voters_cap_is_checked_before_the_addresss(unlimited):
    store = get_store()
    both = rules(votes_per_day_per_voter=1, votes_per_day_per_address=1)
    cast(store, "keen", "kappa", address="nat", rules=both)
    cast(store, "keen", "kappa", address="nat", rules=both, served=1100.0)
    assert flags(store)[1] == ("keen", "daily cap: over 1 counted votes in a day from one voter")


# one-sided bursts
BURST = rules(burst_min_votes=4, burst_alpha=0.05, burst_window_seconds=60)


def test_a_burst_is_flagged_whole_once_it_is_unlikely_at_the_crowds_rate(unlimited):
    """No crowd: rate 1/2. Four of four for kappa: P = 1/16 = 0.0625, not below 0.05; five of five: 1/32 is."""
    store = get_store()
    reveals = [cast(store, f"nat-{i}", "kappa", pair=("kappa", "omega") if i % 2 else ("omega", "kappa"),
                    address="nat", rules=BURST, served=1000.0 + 5 * i) for i in range(5)]
    assert [r.flagged for r in reveals] == [False] * 4 + [True]
    assert reveals[-1].message == NOT_COUNTED + ("it is part of a run of very one-sided votes, kept for the arena's "
                                                 "owner to review.")
    reason = "one-sided burst: 5 of 5 votes for one model within 60 s from one address"
    assert flags(store) == [(f"nat-{i}", reason) for i in range(5)]


def test_a_burst_leaves_ties_other_models_other_addresses_imports_and_earlier_flags_alone(unlimited):
    store = get_store()
    burst = dataclasses.replace(BURST, min_read_seconds=3)
    cast(store, "nat-fast", "kappa", address="nat", rules=burst, served=1000.0, read=1.0)  # too fast, counted in n
    cast(store, "nat-tie", "tie", address="nat", rules=burst, served=1001.0)
    cast(store, "nat-other-pair", "sigma", pair=("sigma", "omega"), address="nat", rules=burst, served=1002.0)
    store.execute("INSERT INTO votes (id, battle_id, voter, model_a, model_b, winner, source, address_hash, voted_epoch)"
                  " VALUES ('imported', 'elsewhere', 'nat-import', 'kappa', 'omega', 'model_a', 'import', 'nat', 1003)")
    cast(store, "home", "kappa", address="home", rules=burst, served=1004.0)  # the crowd: 1 of 2, rate 1/2
    cast(store, "home-2", "omega", address="home-2", rules=burst, served=1004.0)
    reveals = [cast(store, f"nat-{i}", "kappa", address="nat", rules=burst, served=1005.0 + i) for i in range(4)]
    assert [r.flagged for r in reveals] == [False] * 3 + [True]  # the too-fast vote is the burst's first
    reason = "one-sided burst: 5 of 5 votes for one model within 60 s from one address"
    assert dict(flags(store)) == {
        "nat-fast": "too fast: voted 1.0 s after the answers appeared (reading time 3 s)",
        "nat-tie": None, "nat-other-pair": None, "nat-import": None, "home": None, "home-2": None,
        "nat-0": reason, "nat-1": reason, "nat-2": reason, "nat-3": reason}


def test_a_burst_counts_the_votes_of_its_window_from_the_first_second(unlimited):
    store = get_store()
    for i, voted in enumerate((1000.0, 1010.0, 1020.0, 1030.0)):
        cast(store, f"nat-{i}", "kappa", address="nat", rules=BURST, served=voted - 10)
    assert cast(store, "nat-4", "kappa", address="nat", rules=BURST, served=1050.0).flagged  # at 1060: 1000 is in

    store.execute("DELETE FROM votes")
    for i, voted in enumerate((1000.0, 1010.0, 1020.0, 1030.0)):
        cast(store, f"nat-{i}", "kappa", address="other-nat", rules=BURST, served=voted - 10)
    assert not cast(store, "nat-4", "kappa", address="other-nat", rules=BURST, served=1050.5).flagged


def test_a_crowd_that_rarely_picks_the_model_makes_a_shorter_burst_unlikely(unlimited):
    """Other voters gave kappa 0 of 2: rate (0 + 1) / (2 + 2) = 1/4, so four of four is 1/256, below 0.05.
    A crowd vote that is itself flagged is not part of the crowd."""
    store = get_store()
    for i in range(2):
        cast(store, f"crowd-{i}", "omega", address=f"home-{i}", rules=OFF, served=100.0 + i)
    cast(store, "crowd-flagged", "kappa", address="home-9", rules=rules(min_read_seconds=30), served=200.0)
    reveals = [cast(store, f"nat-{i}", "kappa", address="nat", rules=BURST, served=1000.0 + i) for i in range(4)]
    assert [r.flagged for r in reveals] == [False] * 3 + [True]
    assert flags(store)[-1] == ("nat-3", "one-sided burst: 4 of 4 votes for one model within 60 s from one address")


def test_a_crowd_that_agrees_makes_no_burst(unlimited):
    """Other voters gave kappa 6 of 6: rate 7/8, kept to 3/4; five of five is then 0.237, not below 0.05."""
    store = get_store()
    for i in range(6):
        cast(store, f"crowd-{i}", "kappa", address=f"home-{i}", rules=OFF, served=100.0 + i)
    assert not any(cast(store, f"nat-{i}", "kappa", address="nat", rules=BURST, served=1000.0 + i).flagged
                   for i in range(5))


def test_one_voter_on_many_addresses_makes_a_burst_of_its_own(unlimited):
    store = get_store()
    reveals = [cast(store, "roamer", "omega", address=f"cafe-{i}", rules=BURST, served=1000.0 + i) for i in range(5)]
    assert [r.flagged for r in reveals] == [False] * 4 + [True]
    assert flags(store) == [("roamer", "one-sided burst: 5 of 5 votes for one model within 60 s from one voter")] * 5


def test_no_burst_below_the_share_for_one_model(unlimited):
    """Nine votes for kappa of ten: 0.9 of them, a burst; eight of nine is less than 0.9."""
    store = get_store()
    share = dataclasses.replace(BURST, burst_min_votes=9, burst_alpha=0.5)
    cast(store, "nat-against", "omega", address="nat", rules=share, served=1000.0)
    reveals = [cast(store, f"nat-{i}", "kappa", address="nat", rules=share, served=1001.0 + i) for i in range(9)]
    assert [r.flagged for r in reveals] == [False] * 8 + [True]
    assert flags(store)[-1] == ("nat-8", "one-sided burst: 9 of 10 votes for one model within 60 s from one address")
    assert flags(store)[0] == ("nat-against", None)  # the vote against the favoured model stays counted


# one-sided days
DAYRULES = rules(daily_min_votes=4, daily_alpha=0.05)


def test_a_one_sided_day_is_judged_per_pair_against_the_other_voters(unlimited):
    """Other voters gave kappa 1 of 3 against omega: rate (1 + 1) / (3 + 2) = 0.4; four of four at 0.4 is
    0.0256, below 0.05 (at the rate of 1/2 with no crowd it would be 0.0625, not below)."""
    store = get_store()
    cast(store, "crowd-0", "kappa", address="home-0", rules=OFF, served=100.0)
    cast(store, "crowd-1", "omega", pair=("omega", "kappa"), address="home-1", rules=OFF, served=101.0)
    cast(store, "crowd-2", "omega", address="home-2", rules=OFF, served=102.0)
    cast(store, "crowd-3", "kappa", pair=("kappa", "sigma"), address="home-3", rules=OFF, served=103.0)  # another pair
    cast(store, "nat-sigma", "kappa", pair=("sigma", "kappa"), address="nat", rules=DAYRULES, served=1000.0)
    reveals = [cast(store, f"nat-{i}", "kappa", pair=("kappa", "omega") if i % 2 else ("omega", "kappa"),
                    address="nat", rules=DAYRULES, served=1000.0 + HOUR * (i + 1)) for i in range(4)]
    assert [r.flagged for r in reveals] == [False] * 3 + [True]
    assert reveals[-1].message == NOT_COUNTED + ("today's votes from you or your network are far more one-sided than "
                                                 "other voters', so they are kept for the arena's owner to review.")
    reason = ("one-sided day: 4 of 4 votes on one pair for one model within a day from one address "
              "(other voters: 1 of 3)")
    assert dict(flags(store)) == {"crowd-0": None, "crowd-1": None, "crowd-2": None, "crowd-3": None,
                                  "nat-sigma": None, "nat-0": reason, "nat-1": reason, "nat-2": reason,
                                  "nat-3": reason}


def test_a_day_without_a_crowd_needs_five_of_five_and_the_window_is_24_hours(unlimited):
    store = get_store()
    first = dataclasses.replace(DAYRULES, daily_min_votes=5)
    for i in range(4):
        cast(store, f"nat-{i}", "omega", address="nat", rules=first, served=1000.0 + HOUR * i)  # voted 1010 + ...
    assert cast(store, "nat-4", "omega", address="nat", rules=first, served=1000.0 + DAY).flagged  # 1010 still in
    assert flags(store)[0] == ("nat-0", "one-sided day: 5 of 5 votes on one pair for one model within a day from "
                                        "one address (other voters: 0 of 0)")
    store.execute("DELETE FROM votes")
    for i in range(4):
        cast(store, f"nat-{i}", "omega", address="nat2", rules=first, served=1000.0 + HOUR * i)
    assert not cast(store, "nat-4", "omega", address="nat2", rules=first, served=1000.5 + DAY).flagged


def test_a_one_sided_day_from_one_voter_on_many_addresses(unlimited):
    store = get_store()
    first = dataclasses.replace(DAYRULES, daily_min_votes=5)
    reveals = [cast(store, "roamer", "omega", address=f"cafe-{i}", rules=first, served=1000.0 + HOUR * i)
               for i in range(5)]
    assert [r.flagged for r in reveals] == [False] * 4 + [True]
    assert set(flags(store)) == {("roamer", "one-sided day: 5 of 5 votes on one pair for one model within a day "
                                            "from one voter (other voters: 0 of 0)")}


def test_a_day_below_the_share_for_one_model_is_not_flagged(unlimited):
    """Four of five is 0.8, below 0.85 (at alpha 1, any share above it would be flagged)."""
    store = get_store()
    loose = rules(daily_min_votes=5, daily_alpha=1.0)
    cast(store, "nat-against", "omega", address="nat", rules=loose, served=1000.0)
    reveals = [cast(store, f"nat-{i}", "kappa", address="nat", rules=loose, served=2000.0 + i) for i in range(4)]
    assert not any(r.flagged for r in reveals)


def test_a_burst_reason_is_what_the_voter_hears_when_the_day_is_one_sided_too(unlimited):
    store = get_store()
    both = rules(burst_min_votes=5, burst_alpha=0.05, burst_window_seconds=60, daily_min_votes=5, daily_alpha=0.05)
    reveals = [cast(store, f"nat-{i}", "kappa", address="nat", rules=both, served=1000.0 + i) for i in range(5)]
    assert reveals[-1].message == NOT_COUNTED + ("it is part of a run of very one-sided votes, kept for the arena's "
                                                 "owner to review.")
    assert {reason for _, reason in flags(store)} == {
        "one-sided burst: 5 of 5 votes for one model within 60 s from one address"}


def test_ties_are_never_part_of_a_burst_or_a_one_sided_day(unlimited):
    store = get_store()
    eager = rules(burst_min_votes=1, burst_alpha=1.0, daily_min_votes=1, daily_alpha=1.0)
    assert not cast(store, "nat", "tie", address="nat", rules=eager).flagged
    assert cast(store, "nat", "kappa", address="nat", rules=eager, served=1100.0).flagged


def test_a_flagged_battle_says_so_before_any_rule(unlimited):
    store = get_store()
    battle_id = battles.add_battle(store, "q", "kappa", "omega", "I am Claude", "two")
    view = battles._serve(store, battle_id, "q", "I am Claude", "two", voter="v", now=1000.0)
    reveal = battles.vote(store, view.token, "v", "A", rules=rules(min_read_seconds=30), now=1001.0)
    assert reveal.flagged and reveal.message == THANKS + (" (This battle is flagged because an answer gives a model "
                                                          "away, so it does not count.)")


# rounds
def test_rounds_are_refused_past_the_voters_rate_without_charging_the_address():
    store = get_store()
    battles.add_battle(store, "q", "kappa", "omega", "one", "two")
    per_voter = rules(rounds_per_minute=1, rounds_per_minute_per_address=2)
    battles.next_battle(store, "alice", address="nat", rules=per_voter, now=1000.0)
    assert message(battles.RateLimited, battles.next_battle, store, "alice", address="nat", rules=per_voter,
                   now=1000.0) == ("Too many new rounds in a minute: take your time with each battle; "
                                   "try again in 60 s.")
    battles.next_battle(store, "bob", address="nat", rules=per_voter, now=1000.0)  # the address's second round
    assert message(battles.RateLimited, battles.next_battle, store, "carol", address="nat", rules=per_voter,
                   now=1000.0).endswith("try again in 60 s.")
    battles.next_battle(store, "dave", address="home", rules=per_voter, now=1000.0)
    for voter in ("erin", "frank", "grace"):  # no address: only the voter's rate
        battles.next_battle(store, voter, rules=per_voter, now=1000.0)


# compaction
def add_serve(store, token, battle_id, voter, served):
    store.execute("INSERT INTO battle_serves (token, battle_id, voter, swapped, served_epoch) VALUES (?, ?, ?, FALSE, ?)",
                  [token, battle_id, voter, served])


def test_compaction_deletes_what_expired_and_keeps_what_votes_need():
    store = get_store()
    kept_battle = battles.add_battle(store, "q", "kappa", "omega", "one", "two")
    other_battle = battles.add_battle(store, "r", "kappa", "omega", "one", "two")
    add_serve(store, "old", kept_battle, "gone", 0.0)
    add_serve(store, "no-time", kept_battle, "ancient", None)
    add_serve(store, "at-the-limit", kept_battle, "edge", 100.0)
    add_serve(store, "voted", kept_battle, "voter", 0.0)
    add_serve(store, "voted-elsewhere", kept_battle, "roamer", 0.0)
    store_vote(store, kept_battle, "voter", "tie")
    store_vote(store, other_battle, "roamer", "tie")
    store.executemany("INSERT INTO battle_skips (battle_id, voter, skipped_epoch) VALUES (?, ?, ?)", [
        [kept_battle, "s-old", 49.5], [kept_battle, "s-edge", 50.0], [kept_battle, "s-none", None]])
    store.executemany("INSERT INTO arena_calls (ts_epoch, address_hash, voter, calls) VALUES (?, 'a', 'v', 2)", [
        [200.0 - DAY - 1], [200.0 - DAY]])
    deleted = battles.compact(store, rules(serve_ttl_seconds=100, skip_ttl_seconds=150), now=200.0)
    assert deleted == {"serves": 3, "skips": 2, "calls": 1}
    assert sorted(store.query_rows("SELECT token FROM battle_serves")) == [("at-the-limit",), ("voted",)]
    assert store.query_rows("SELECT voter FROM battle_skips") == [("s-edge",)]
    assert store.query_rows("SELECT ts_epoch FROM arena_calls") == [(200.0 - DAY,)]


@pytest.mark.parametrize(("ttl", "every"), [(100.0, 10.0), (5.0, 1.0), (10_000.0, 60.0)])
def test_compaction_runs_every_tenth_of_the_ttl_within_a_second_and_a_minute(ttl, every):
    store = get_store()
    battle_id = battles.add_battle(store, "q", "kappa", "omega", "one", "two")
    ttl_rules = rules(serve_ttl_seconds=ttl)
    battles.maybe_compact(store, ttl_rules, 1000.0)  # the first call compacts
    add_serve(store, "expired", battle_id, "gone", -DAY)
    battles.maybe_compact(store, ttl_rules, 1000.0 + every - 0.01)
    assert store.query_rows("SELECT count(*) FROM battle_serves") == [(1,)]
    battles.maybe_compact(store, ttl_rules, 1000.0 + every)
    assert store.query_rows("SELECT count(*) FROM battle_serves") == [(0,)]


def test_a_round_with_rules_compacts_first():
    store = get_store()
    battle_id = battles.add_battle(store, "q", "kappa", "omega", "one", "two")
    add_serve(store, "expired", battle_id, "gone", 0.0)
    view = battles.next_battle(store, "alice", rules=rules(serve_ttl_seconds=60), now=1000.0)
    assert store.query_rows("SELECT token, served_epoch FROM battle_serves") == [(view.token, 1000.0)]


# own prompts: the budgets of upstream calls
PAIR = ["kappa", "omega"]


def ask(store, voter, now, address=None, budget=None):
    return battles.battle_for_prompt(store, f"question from {voter}", voter, PAIR, address=address, rules=budget,
                                     now=now)


def test_the_arenas_daily_budget_of_calls(monkeypatch, unlimited):
    store = get_store()
    calls = []
    monkeypatch.setattr(arena_models, "generate", fake_generate(calls))
    budget = rules(prompt_calls_per_day=4)
    ask(store, "v1", 100.0, budget=budget)
    ask(store, "v2", 200.0, budget=budget)  # 4 calls: the whole budget, not past it
    refused = "The arena has used today's budget for answering voters' own questions: vote on the prepared battles, " \
              "or ask again tomorrow."
    assert message(battles.RateLimited, ask, store, "v3", 300.0, budget=budget) == refused
    assert message(battles.RateLimited, ask, store, "v3", 100.0 + DAY, budget=budget) == refused  # 100 still in
    ask(store, "v3", 100.5 + DAY, budget=budget)
    assert len(calls) == 6
    assert store.query_rows("SELECT ts_epoch, address_hash, voter, calls FROM arena_calls ORDER BY ts_epoch") == [
        (100.0, None, "v1", 2), (200.0, None, "v2", 2), (100.5 + DAY, None, "v3", 2)]
    for per_day in (0, 1):  # 1 is below one question's 2 calls: off too, not "ask again tomorrow"
        assert message(battles.RateLimited, ask, store, "v4", 0.0, budget=rules(prompt_calls_per_day=per_day)) == (
            "Asking your own question is turned off in this arena: vote on the prepared battles.")


def test_the_addresss_hourly_budget_of_calls(monkeypatch, unlimited):
    store = get_store()
    monkeypatch.setattr(arena_models, "generate", fake_generate([]))
    budget = rules(prompt_calls_per_address_per_hour=4)
    ask(store, "v1", 100.0, "nat", budget)
    ask(store, "v2", 200.0, "nat", budget)
    assert message(battles.RateLimited, ask, store, "v3", 300.0, "nat", budget) == (
        "At most 2 own questions an hour from one network: try again in 57 min, or vote on the prepared battles.")
    ask(store, "v3", 300.0, "home", budget)  # another network
    for i in range(3):
        ask(store, f"anon-{i}", 300.0, None, budget)  # no address: no hourly budget
    assert message(battles.RateLimited, ask, store, "v3", 100.0 + HOUR, "nat", budget).startswith(
        "At most 2 own questions an hour from one network: try again in 1 min,")  # the call at 100 is still in
    ask(store, "v3", 100.5 + HOUR, "nat", budget)
    # an hourly budget below one question's 2 calls can never be met: off, not "try again in 60 min"
    assert message(battles.RateLimited, ask, store, "v4", 0.0, "cafe", rules(prompt_calls_per_address_per_hour=1)) == (
        "Asking your own question is turned off in this arena: vote on the prepared battles.")
    for i in range(3):
        ask(store, f"nat-{i}", 5000.0, "nat", rules(prompt_calls_per_address_per_hour=0))


def test_an_own_prompt_is_stored_pending_and_served_at_the_given_time(monkeypatch, unlimited):
    store = get_store()
    monkeypatch.setattr(arena_models, "generate", fake_generate([]))
    view = ask(store, "asker", 1234.5, "nat", rules())
    assert store.query_rows("SELECT b.review, s.served_epoch, s.address_hash, s.voter FROM battles b"
                            " JOIN battle_serves s ON s.battle_id = b.id WHERE s.token = ?", [view.token]) == [
        ("pending", 1234.5, "nat", "asker")]


# own prompts: the review
def own_prompt(store, prompt, created):
    battle_id = battles.add_battle(store, prompt, "kappa", "omega", "one", "two", source="voter")
    store.execute("UPDATE battles SET review = 'pending', created_at = ? WHERE id = ?", [created, battle_id])
    return battle_id


def test_votes_on_an_own_prompt_count_only_once_approved(unlimited):
    store = get_store()
    battle_id = own_prompt(store, "mine?", "2024-01-01 00:00:00")
    view = battles._serve(store, battle_id, "mine?", "one", "two", voter="asker", now=0.0)
    reveal = battles.vote(store, view.token, "asker", "A", now=10.0)
    assert reveal.message == NOT_COUNTED + "your own question counts once the arena's owner has reviewed it."
    store.execute("UPDATE battles SET review = 'rejected'")
    view = battles._serve(store, battle_id, "mine?", "one", "two", voter="other", now=0.0)
    assert battles.vote(store, view.token, "other", "A", now=10.0).message == \
        NOT_COUNTED + "the arena's owner did not accept this question."
    store.execute("UPDATE battles SET review = 'approved'")
    view = battles._serve(store, battle_id, "mine?", "one", "two", voter="third", now=0.0)
    assert battles.vote(store, view.token, "third", "A", now=10.0).message == THANKS
    assert flags(store) == [("asker", "own prompt awaiting review"), ("other", "own prompt rejected"), ("third", None)]


def test_approving_clears_only_the_reviews_flags_and_rejecting_keeps_the_others():
    store = get_store()
    approved = own_prompt(store, "good one", "2024-01-01 00:00:00")
    rejected = own_prompt(store, "spam", "2024-01-02 00:00:00")
    for battle_id in (approved, rejected):
        store.executemany("INSERT INTO votes (id, battle_id, voter, model_a, model_b, winner, flagged_reason)"
                          " VALUES (?, ?, ?, 'kappa', 'omega', 'tie', ?)", [
                              [battle_id + "1", battle_id, "a", "own prompt awaiting review"],
                              [battle_id + "2", battle_id, "b", "own prompt rejected"],
                              [battle_id + "3", battle_id, "c", "too fast: voted 1.0 s after"],
                              [battle_id + "4", battle_id, "d", None]])
    assert battles.review_prompt(store, approved, True) == {"battle_id": approved, "review": "approved",
                                                            "prompt": "good one", "votes_counted": 3}
    assert battles.review_prompt(store, rejected, False) == {"battle_id": rejected, "review": "rejected",
                                                             "prompt": "spam", "votes_counted": 0}
    reasons = store.query_rows("SELECT battle_id, voter, flagged_reason FROM votes ORDER BY battle_id = ?, voter",
                               [rejected])
    assert reasons == [(approved, "a", None), (approved, "b", None), (approved, "c", "too fast: voted 1.0 s after"),
                       (approved, "d", None),
                       (rejected, "a", "own prompt rejected"), (rejected, "b", "own prompt rejected"),
                       (rejected, "c", "too fast: voted 1.0 s after"), (rejected, "d", "own prompt rejected")]
    assert battles.flagged_vote_count(store) == 5
    assert store.query_rows("SELECT review FROM battles ORDER BY id = ?", [rejected]) == [("approved",), ("rejected",)]


def test_only_voters_prompts_can_be_reviewed():
    store = get_store()
    prepared = battles.add_battle(store, "q", "kappa", "omega", "one", "two")
    for battle_id in (prepared, "no-such-battle", None):
        assert message(battles.VoteError, battles.review_prompt, store, battle_id, True) == (
            f"No voter's prompt with battle id {battle_id!r}: the pending list shows them.")


def test_the_review_list_is_one_state_oldest_first_with_its_votes():
    store = get_store()
    later = own_prompt(store, "later", "2024-01-02 00:00:00")
    earlier = own_prompt(store, "earlier", "2024-01-01 00:00:00")
    done = own_prompt(store, "done", "2024-01-03 00:00:00")
    battles.add_battle(store, "prepared", "kappa", "omega", "one", "two")
    store.execute("UPDATE battles SET review = NULL WHERE id = ?", [later])  # from before the review: pending
    store.execute("UPDATE battles SET review = 'approved' WHERE id = ?", [done])
    store_vote(store, earlier, "a", "tie")
    store_vote(store, earlier, "b", "tie")
    listed = battles.voter_prompts(store)
    assert [(p["battle_id"], p["prompt"], p["answer_a"], p["answer_b"], p["votes"]) for p in listed] == [
        (earlier, "earlier", "one", "two", 2), (later, "later", "one", "two", 0)]
    assert listed[0]["asked_at"].startswith("2024-01-01 00:00:00")
    assert [p["battle_id"] for p in battles.voter_prompts(store, limit=1)] == [earlier]
    assert [p["prompt"] for p in battles.voter_prompts(store, "approved")] == ["done"]
    assert battles.voter_prompts(store, "rejected") == []
    assert message(ValueError, battles.voter_prompts, store, "maybe") == (
        "Unknown review state 'maybe': use one of pending, approved, rejected.")


def test_who_is_served_a_voters_prompt():
    store = get_store()
    battle_id = own_prompt(store, "mine?", "2024-01-01 00:00:00")
    assert battles.next_battle(store, "someone", rules=OFF, now=0.0) is None  # pending
    store.execute("UPDATE battles SET review = 'approved' WHERE id = ?", [battle_id])
    assert battles.next_battle(store, "someone", now=0.0).prompt == "mine?"
    assert battles.next_battle(store, "another", rules=OFF, now=0.0).prompt == "mine?"
    assert battles.next_battle(store, "a-third", rules=rules(voter_prompts="never"), now=0.0) is None


# second pass: the survivors of the run with the tests above
def test_a_voter_without_an_address_is_judged_alone_for_bursts_and_days(unlimited):
    store = get_store()
    reveals = [cast(store, "lone", "omega", rules=BURST, served=1000.0 + i) for i in range(5)]
    assert [r.flagged for r in reveals] == [False] * 4 + [True]
    assert flags(store)[0] == ("lone", "one-sided burst: 5 of 5 votes for one model within 60 s from one voter")
    day = dataclasses.replace(DAYRULES, daily_min_votes=5)
    reveals = [cast(store, "slow", "kappa", rules=day, served=5000.0 + HOUR * i) for i in range(5)]
    assert [r.flagged for r in reveals] == [False] * 4 + [True]


def test_with_a_minimum_of_one_vote_or_none_a_single_vote_is_judged(unlimited):
    """One vote of one at the rate of 1/2: P = 0.5, below an alpha of 0.6."""
    store = get_store()
    for minimum in (0, 1):
        assert cast(store, f"burst-{minimum}", "kappa", address=f"b{minimum}", served=1000.0 + minimum,
                    rules=rules(burst_min_votes=minimum, burst_alpha=0.6)).flagged
        assert cast(store, f"day-{minimum}", "kappa", address=f"d{minimum}", served=2000.0 + minimum,
                    rules=rules(daily_min_votes=minimum, daily_alpha=0.6)).flagged


def test_a_reading_time_under_a_second_still_counts(unlimited):
    store = get_store()
    assert cast(store, "quick", "kappa", rules=rules(min_read_seconds=0.5), read=0.2).flagged


def test_a_vote_on_an_own_prompt_keeps_the_review_flag_beside_the_rules(unlimited):
    store = get_store()
    battle_id = own_prompt(store, "mine?", "2024-01-01 00:00:00")
    view = battles._serve(store, battle_id, "mine?", "one", "two", voter="asker", now=0.0)
    battles.vote(store, view.token, "asker", "A", rules=rules(min_read_seconds=3), now=1.0)
    assert flags(store) == [("asker", "own prompt awaiting review; too fast: voted 1.0 s after the answers appeared "
                                      "(reading time 3 s)")]


def test_a_second_vote_as_a_linked_voter_is_flagged_either_way(unlimited):
    store = get_store()
    store.execute("INSERT INTO voter_links (account, alias) VALUES ('account', 'browser')")
    first = battles.add_battle(store, "q", "kappa", "omega", "one", "two")
    second = battles.add_battle(store, "r", "kappa", "omega", "one", "two")

    def vote_on(battle_id, voter):
        view = battles._serve(store, battle_id, "q", "one", "two", voter=voter, now=0.0)
        return battles.vote(store, view.token, voter, "A", now=10.0)

    assert not vote_on(first, "browser").flagged
    again = vote_on(first, "account")  # signed in now: the same person on the same battle
    assert again.message == NOT_COUNTED + ("you already voted on this battle from this browser, signed in or not; "
                                           "your first vote stands.")
    assert not vote_on(first, "stranger").flagged
    assert not vote_on(second, "account").flagged  # another battle
    assert vote_on(second, "browser").flagged  # the account voted first this time
    assert dict((voter, reason) for voter, reason in store.query_rows(
        "SELECT voter, flagged_reason FROM votes WHERE battle_id = ?", [first])) == {
        "browser": None, "account": "already voted as a linked voter", "stranger": None}


def test_without_a_clock_given_now_is_the_time_of_the_call(monkeypatch, unlimited):
    store = get_store()
    monkeypatch.setattr(arena_models, "generate", fake_generate([]))
    before = time.time()
    battle_id = battles.add_battle(store, "q", "kappa", "omega", "one", "two")
    direct = battles._serve(store, battle_id, "q", "one", "two", voter="direct")
    round_view = battles.next_battle(store, "round", address="nat", rules=OFF)
    own = battles.battle_for_prompt(store, "mine?", "asker", PAIR, address="nat", rules=OFF)
    battles.vote(store, direct.token, "direct", "tie", rules=OFF)
    battles.skip(store, round_view.token, "round")
    battles.compact(store, OFF)
    after = time.time()
    for token in (direct.token, round_view.token, own.token):
        (served,), = store.query_rows("SELECT served_epoch FROM battle_serves WHERE token = ?", [token])
        assert before <= served <= after
    (voted,), = store.query_rows("SELECT voted_epoch FROM votes")
    (skipped,), = store.query_rows("SELECT skipped_epoch FROM battle_skips")
    assert before <= voted <= after and before <= skipped <= after
    assert store.query_rows("SELECT address_hash FROM battle_serves WHERE token = ?", [round_view.token]) == [("nat",)]


def test_a_skip_keeps_the_time_it_is_given():
    store = get_store()
    battles.add_battle(store, "q", "kappa", "omega", "one", "two")
    view = battles.next_battle(store, "alice", now=5.0)
    battles.skip(store, view.token, "alice", now=7.5)
    assert store.query_rows("SELECT skipped_epoch FROM battle_skips") == [(7.5,)]


def test_the_review_list_shows_200_by_default():
    store = get_store()
    store.executemany("INSERT INTO battles (id, prompt, model_a, model_b, answer_a, answer_b, source, review)"
                      " VALUES (?, 'q', 'kappa', 'omega', 'one', 'two', 'voter', 'pending')",
                      [[f"own-{i:03d}"] for i in range(201)])
    assert len(battles.voter_prompts(store)) == 200
