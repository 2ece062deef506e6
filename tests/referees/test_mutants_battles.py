"""Battles and votes against hand-written expectations: the cases that mutation testing showed
untested (`tools/mutation.py ftassist/arena/battles.py`). The messages are checked word for
word because they are what the voter (or the arena's owner) reads.

Equivalent mutants (no observable difference, left alive on purpose; numbered as mutmut 3.8 numbers
the mutants of each function, so the numbers move when that function changes):
- SQL written in lower or upper case: keywords and identifiers are case-insensitive in DuckDB,
  and none of these changes the case of a string literal ('arena' stays 'arena'):
  _registered_names 4, 5; _serve 14, 15; add_battle 29, 30, 32, 33; reflag_battles 6, 7, 20, 21;
  next_battle 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23, 24; vote 12, 13, 15, 17, 18, 20, 21, 23,
  24, 45, 46, 60, 61, 63; skip 8, 9, 26, 27; pregenerate 104, 105; flag_suspicious_voters 6, 129,
  130, 132; arena_stats 4, 5, 9, 10, 14, 15, 19, 20.
- load_prompts 8, 10: `encoding=None` / "UTF-8" read the same on a UTF-8 locale (here and in CI).
- skip 11: an unknown token looked up as "XXXX" instead of "" finds no serve either (tokens are
  random 24-character strings).
- pregenerate 12, 13: a plain-string prompt's reference is read with `.get("reference")`, None
  with or without the key; 83: `source` left out is the default "pregenerated".
- battle_for_prompt 35, 36: a pool of 3 (or the default size) runs the same two generations.
- vote 26: like skip 11, an unknown token looked up as "XXXX".
- _serve 7: `randbelow(2) != 1` swaps as often, and the stored flag says which way.
- _serve 2, 3: a token of 19 or 32 random bytes instead of 18 is as unguessable; its length is no
  contract.
- _registered_names 10: an empty config fails to parse as "XX{}XX" and falls back to {} as "{}".
- identity_leak 3: a missing answer read as "XXXX" instead of "" names no model.
- flag_suspicious_voters 38, 47: a count of 1 instead of 0 for an outcome nobody else chose
  never makes a unique majority (it ties with any real single vote, and needs another vote to
  reach two others); 109: `<=` instead of `<` only differs when a p-value equals alpha exactly.
"""

from __future__ import annotations

import json
import logging
import random

import pytest

from ftassist.arena import battles
from ftassist.arena import models as arena_models
from ftassist.store import get_store


@pytest.fixture(autouse=True)
def fresh_limits():
    """The rate limiters are module-level state: every test starts from empty windows."""
    for limiter in (battles.rate_limiter, battles.prompt_limiter):
        limiter.reset()
        limiter.per_minute = None
    yield
    for limiter in (battles.rate_limiter, battles.prompt_limiter):
        limiter.reset()
        limiter.per_minute = None


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
